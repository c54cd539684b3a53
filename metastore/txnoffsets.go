// Transactional offset commits (Kafka's TxnOffsetCommit): offsets a
// transaction commits for a consumer group. They are pending until the
// transaction ends: its commit makes them the group's committed offsets,
// its abort drops them.
//
// # Key layout
//
//	<prefix>/groups/<group>/txn-offsets/<producer id>/<topic>/<partition>   the pending offset, the same JSON as a committed one
//
// beside the group's committed offsets, so that deleting a group deletes
// them too. The producer id is in decimal; topic and group are escaped as
// for committed offsets.
//
// # Consistency
//
//   - A pending offset is written only while the transactional id's stored
//     state (<prefix>/transactions/<id>) has the producer id and epoch of the
//     request, is Ongoing and names the group (AddOffsetsToTxn stored it):
//     the write compares that key's mod revision with the one checked, as a
//     member's commit compares the group's meta. So once the coordinator has
//     stored PrepareCommit or PrepareAbort no pending offset of the
//     transaction can be written any more, and completing the group reads
//     every one there will ever be. A zombie producer (an older epoch) is
//     refused in the same way.
//   - Completing a producer's pending offsets of a group is idempotent and
//     needs no group coordinator: it reads them and, in one transaction
//     that compares their mod revisions, deletes them and (commit) copies
//     each to the committed offset, unless that was written after it: as in
//     Kafka, a transactional offset replaces a committed one only if it was
//     written later.
//   - Deleting a group or some of its offsets deletes their pending offsets
//     too, as Kafka does; a group with pending offsets is never expired.

package metastore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TxnStateOngoing is the coordinator's state of a transactional id with a
// transaction open: the only state in which offsets may join it.
const TxnStateOngoing = "Ongoing"

// Refusals of a transactional offset commit, checked against the
// transactional id's stored state in Kafka's order.
var (
	// ErrTxnProducerIDMismatch: the transactional id is unknown or has
	// another producer id (Kafka's INVALID_PRODUCER_ID_MAPPING).
	ErrTxnProducerIDMismatch = errors.New("metastore: the transactional id has no such producer id")
	// ErrTxnProducerFenced: the producer epoch is not the transactional
	// id's (PRODUCER_FENCED): a newer producer took the id over, or the
	// coordinator fenced this one.
	ErrTxnProducerFenced = errors.New("metastore: producer epoch fenced")
	// ErrTxnNotOngoing: the transaction is not open, or the group was not
	// added to it (INVALID_TXN_STATE).
	ErrTxnNotOngoing = errors.New("metastore: the group is not part of an ongoing transaction of the producer")
)

// TxnProducer names the transaction a TxnOffsetCommit belongs to.
type TxnProducer struct {
	TransactionalID string
	ProducerID      int64
	ProducerEpoch   int16
}

// CheckTxnOffsetCommit is the fence of a transactional offset commit to
// group: the transactional id's state m must be the producer's open
// transaction, with the group in it.
func (m TransactionMeta) CheckTxnOffsetCommit(p TxnProducer, group string) error {
	switch {
	case m.ProducerID != p.ProducerID:
		return fmt.Errorf("transactional id %q has producer id %d, not %d: %w", m.TransactionalID, m.ProducerID, p.ProducerID, ErrTxnProducerIDMismatch)
	case m.ProducerEpoch != p.ProducerEpoch:
		return fmt.Errorf("transactional id %q has producer epoch %d, not %d: %w", m.TransactionalID, m.ProducerEpoch, p.ProducerEpoch, ErrTxnProducerFenced)
	case m.State != TxnStateOngoing:
		return fmt.Errorf("transactional id %q is %s: %w", m.TransactionalID, m.State, ErrTxnNotOngoing)
	case !slices.Contains(m.Groups, group):
		return fmt.Errorf("group %q was not added to the transaction of %q: %w", group, m.TransactionalID, ErrTxnNotOngoing)
	}
	return nil
}

func (s *Store) groupTxnOffsetsPrefix(group string) string {
	return s.groupPrefix(group) + "txn-offsets/"
}

func (s *Store) groupProducerTxnOffsetsPrefix(group string, producerID int64) string {
	return s.groupTxnOffsetsPrefix(group) + strconv.FormatInt(producerID, 10) + "/"
}

// txnCompleteChunk is how many pending offsets one completing transaction
// handles: each needs a delete and a nested transaction of one put, and
// etcd counts a nested transaction's operations against what the outer
// one leaves of --max-txn-ops.
const txnCompleteChunk = (groupMaxTxnOps - 8) / 2

// CommitTxnOffsets stores offsets as pending offsets of producer's
// transaction for group. The transactional id's stored state must be the
// producer's (same producer id and epoch), Ongoing, with the group added
// (else ErrTxnProducerIDMismatch, ErrTxnProducerFenced or ErrTxnNotOngoing);
// with generation >= 0 memberID must also be a member of the group's stored
// generation, as for CommitOffsets. The checks and the write are one: the
// write compares the mod revisions of the states checked. A partition
// listed twice keeps the later entry; a partition already pending for the
// producer is overwritten. Large requests are split as CommitOffsets
// splits them (each part fenced, the whole then not atomic: a transaction
// whose commit failed half way is aborted by its producer anyway).
func (s *Store) CommitTxnOffsets(ctx context.Context, group string, producer TxnProducer, memberID string, generation int32, offsets []OffsetCommit) error {
	fail := func(err error) error {
		return fmt.Errorf("metastore: commit transactional offsets of group %q for producer %d: %w", group, producer.ProducerID, err)
	}
	if err := CheckGroupName(group); err != nil {
		return fail(err)
	}
	if producer.TransactionalID == "" || len(producer.TransactionalID) > MaxTransactionalIDBytes || producer.ProducerID < 0 {
		return fail(fmt.Errorf("bad transactional id %q or producer id %d", producer.TransactionalID, producer.ProducerID))
	}
	puts, err := s.offsetPuts(group, offsets, func(topic string, partition int32) string {
		return s.groupProducerTxnOffsetsPrefix(group, producer.ProducerID) + url.PathEscape(topic) + "/" + strconv.FormatInt(int64(partition), 10)
	})
	if err != nil {
		return fail(err)
	}
	txnKey, metaKey := s.transactionKey(producer.TransactionalID), s.groupMetaKey(group)
	var txnRev, metaRev int64
	check := func() error {
		ops := []clientv3.Op{clientv3.OpGet(txnKey)}
		if generation >= 0 {
			ops = append(ops, clientv3.OpGet(metaKey))
		}
		resp, err := s.client.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return err
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return fmt.Errorf("transactional id %q has no state: %w", producer.TransactionalID, ErrTxnProducerIDMismatch)
		}
		m, err := decodeTransaction(producer.TransactionalID, kvs[0])
		if err != nil {
			return err
		}
		if err := m.CheckTxnOffsetCommit(producer, group); err != nil {
			return err
		}
		txnRev = m.Revision
		if generation >= 0 {
			var kv *mvccpb.KeyValue
			if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
				kv = kvs[0]
			}
			if metaRev, err = checkCommitFence(group, kv, memberID, generation); err != nil {
				return err
			}
		}
		return nil
	}
	if err := check(); err != nil {
		return fail(err)
	}
	for done, retries := 0, 0; done < len(puts); {
		chunk := offsetChunk(puts[done:])
		ops := make([]clientv3.Op, len(chunk))
		for i, p := range chunk {
			ops[i] = clientv3.OpPut(p.key, p.val)
		}
		fence := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(txnKey), "=", txnRev)}
		if generation >= 0 {
			fence = append(fence, clientv3.Compare(clientv3.ModRevision(metaKey), "=", metaRev))
		}
		resp, err := s.client.Txn(ctx).If(fence...).Then(ops...).Commit()
		if err != nil {
			return fail(fmt.Errorf("%s%w", partly(done, len(puts)), err))
		}
		if !resp.Succeeded {
			// The transaction or the group changed since they were checked
			// (AddPartitionsToTxn, a rebalance): check them again.
			if retries++; retries > commitFenceRetries {
				return fail(fmt.Errorf("%sthe transaction's or the group's state kept changing: %w", partly(done, len(puts)), ErrTxnNotOngoing))
			}
			if err := check(); err != nil {
				return fail(fmt.Errorf("%s%w", partly(done, len(puts)), err))
			}
			continue
		}
		done += len(chunk)
	}
	return nil
}

// offsetPut is one offset key and value to write.
type offsetPut struct{ key, val string }

// offsetPuts encodes offsets for the keys key names, the later entry of a
// partition listed twice winning (etcd refuses a transaction that puts one
// key twice). A zero CommitTime is now.
func (s *Store) offsetPuts(group string, offsets []OffsetCommit, key func(topic string, partition int32) string) ([]offsetPut, error) {
	now := time.Now()
	puts := make([]offsetPut, 0, len(offsets))
	index := make(map[string]int, len(offsets))
	for _, o := range offsets {
		if o.Topic == "" || o.Partition < 0 {
			return nil, fmt.Errorf("bad partition %q-%d", o.Topic, o.Partition)
		}
		t := o.CommitTime
		if t.IsZero() {
			t = now
		}
		val, err := encode(offsetValue{Offset: o.Offset, LeaderEpoch: o.LeaderEpoch, Metadata: o.Metadata, CommitTime: t.UnixMilli()})
		if err != nil {
			return nil, err
		}
		k := key(o.Topic, o.Partition)
		if i, ok := index[k]; ok {
			puts[i].val = val
			continue
		}
		index[k] = len(puts)
		puts = append(puts, offsetPut{k, val})
	}
	return puts, nil
}

// offsetChunk is the head of puts that one transaction writes: at most
// groupMaxTxnOps keys and groupMaxTxnBytes of keys and values, and at
// least one.
func offsetChunk(puts []offsetPut) []offsetPut {
	chunk := puts[:min(groupMaxTxnOps, len(puts))]
	size := len(chunk[0].key) + len(chunk[0].val)
	for i := 1; i < len(chunk); i++ {
		if size += len(chunk[i].key) + len(chunk[i].val); size > groupMaxTxnBytes {
			return chunk[:i]
		}
	}
	return chunk
}

// FetchOffsetsAndPending is FetchOffsets together with the partitions that
// have pending transactional offsets (of any producer), sorted, read at the
// same revision in one request: what OffsetFetch with require_stable needs.
func (s *Store) FetchOffsetsAndPending(ctx context.Context, group string) ([]OffsetCommit, []TopicPartition, error) {
	fail := func(err error) error { return fmt.Errorf("metastore: fetch offsets of group %q: %w", group, err) }
	if err := CheckGroupName(group); err != nil {
		return nil, nil, fail(err)
	}
	prefix, txnPrefix := s.groupOffsetsPrefix(group), s.groupTxnOffsetsPrefix(group)
	resp, err := s.client.Txn(ctx).Then(
		clientv3.OpGet(prefix, clientv3.WithPrefix()),
		clientv3.OpGet(txnPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly()),
	).Commit()
	if err != nil {
		return nil, nil, fail(err)
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	offsets := make([]OffsetCommit, 0, len(kvs))
	for _, kv := range kvs {
		o, err := decodeOffset(prefix, kv)
		if err != nil {
			return nil, nil, fail(err)
		}
		offsets = append(offsets, o)
	}
	slices.SortFunc(offsets, compareOffsets)
	var pending []TopicPartition
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		tp, err := decodePendingKey(txnPrefix, kv.Key)
		if err != nil {
			return nil, nil, fail(err)
		}
		pending = append(pending, tp)
	}
	slices.SortFunc(pending, CompareTopicPartitions)
	return offsets, slices.Compact(pending), nil
}

// decodePendingKey reads the partition of a pending offset's key, which is
// under txnPrefix (<producer id>/<topic>/<partition> follows it).
func decodePendingKey(txnPrefix string, key []byte) (TopicPartition, error) {
	rest, ok := strings.CutPrefix(string(key), txnPrefix)
	_, rest, ok2 := strings.Cut(rest, "/")
	escTopic, part, ok3 := strings.Cut(rest, "/")
	if !ok || !ok2 || !ok3 {
		return TopicPartition{}, fmt.Errorf("key %q is not a pending offset key", key)
	}
	topic, err := url.PathUnescape(escTopic)
	if err != nil || topic == "" {
		return TopicPartition{}, fmt.Errorf("key %q: bad topic %q", key, escTopic)
	}
	p, err := strconv.ParseInt(part, 10, 32)
	if err != nil || p < 0 {
		return TopicPartition{}, fmt.Errorf("key %q: bad partition %q", key, part)
	}
	return TopicPartition{Topic: topic, Partition: int32(p)}, nil
}

// CompleteTxnOffsets ends producerID's pending offsets of group: with
// commit each becomes the group's committed offset of its partition, unless
// that was written after it (a plain commit that came later wins, as in
// Kafka); without commit they are dropped. It returns the partitions whose
// committed offset it wrote. It is idempotent (nothing pending: nothing
// done) and may run on any broker. Up to txnCompleteChunk (60) offsets are
// completed in one transaction; more are completed in several, each
// atomic, and a failure between them leaves the rest pending for the next
// call.
func (s *Store) CompleteTxnOffsets(ctx context.Context, group string, producerID int64, commit bool) ([]TopicPartition, error) {
	fail := func(err error) error {
		return fmt.Errorf("metastore: complete transactional offsets of group %q for producer %d: %w", group, producerID, err)
	}
	if err := CheckGroupName(group); err != nil {
		return nil, fail(err)
	}
	prefix := s.groupProducerTxnOffsetsPrefix(group, producerID)
	txnPrefix := s.groupTxnOffsetsPrefix(group)
	var written []TopicPartition
	for retries := 0; ; {
		resp, err := s.client.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithLimit(txnCompleteChunk))
		if err != nil {
			return written, fail(err)
		}
		if len(resp.Kvs) == 0 {
			slices.SortFunc(written, CompareTopicPartitions)
			return written, nil
		}
		var fence []clientv3.Cmp
		var ops []clientv3.Op
		var tps []TopicPartition
		for _, kv := range resp.Kvs {
			fence = append(fence, clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision))
			ops = append(ops, clientv3.OpDelete(string(kv.Key)))
			if !commit {
				continue
			}
			tp, err := decodePendingKey(txnPrefix, kv.Key)
			if err != nil {
				return written, fail(err)
			}
			key := s.groupOffsetKey(group, tp.Topic, tp.Partition)
			ops = append(ops, clientv3.OpTxn(
				[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "<", kv.ModRevision)},
				[]clientv3.Op{clientv3.OpPut(key, string(kv.Value))},
				nil))
			tps = append(tps, tp)
		}
		tresp, err := s.client.Txn(ctx).If(fence...).Then(ops...).Commit()
		if err != nil {
			return written, fail(err)
		}
		if !tresp.Succeeded {
			// A pending offset changed under us: only a retried
			// TxnOffsetCommit racing its own transaction's end can do
			// that. Read them again.
			if retries++; retries > commitFenceRetries {
				return written, fail(errors.New("the pending offsets kept changing"))
			}
			continue
		}
		i := 0
		for _, r := range tresp.Responses {
			if nested := r.GetResponseTxn(); nested != nil {
				if nested.Succeeded {
					written = append(written, tps[i])
				}
				i++
			}
		}
		if !resp.More {
			// That was all of them: a TxnOffsetCommit cannot add more
			// once the transaction is being completed.
			slices.SortFunc(written, CompareTopicPartitions)
			return written, nil
		}
	}
}

// deletePendingOps returns the deletes of group's pending offsets (of every
// producer) of topic's partitions (all of them if partitions is empty), as
// read now.
func (s *Store) deletePendingOps(ctx context.Context, group, topic string, partitions []int32) ([]clientv3.Op, error) {
	txnPrefix := s.groupTxnOffsetsPrefix(group)
	resp, err := s.client.Get(ctx, txnPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	var ops []clientv3.Op
	for _, kv := range resp.Kvs {
		tp, err := decodePendingKey(txnPrefix, kv.Key)
		if err != nil {
			return nil, err
		}
		if tp.Topic == topic && (len(partitions) == 0 || slices.Contains(partitions, tp.Partition)) {
			ops = append(ops, clientv3.OpDelete(string(kv.Key)))
		}
	}
	return ops, nil
}
