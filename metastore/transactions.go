// Transactions: the transaction coordinator's state per transactional id,
// so that a broker taking over a dead coordinator's transactional ids reads
// them back and finishes what was in flight.
//
// # Key layout
//
//	<prefix>/transactions/<transactional id>   TransactionMeta as JSON
//
// <transactional id> is url.PathEscape'd, as group ids are: any string maps
// one to one onto a string without '/'. One key per transactional id holds
// all of its state (producer id and epochs, state, partitions, groups,
// times), so every transition is one compare-and-swap on that key's mod
// revision: a coordinator that was replaced, and so last read an older
// revision, cannot write over what its successor wrote. Times are stored in
// Unix milliseconds, as Kafka keeps them.

package metastore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// MaxTransactionalIDBytes is the longest transactional id: what the int16
// string length of Kafka's transactional APIs can carry.
const MaxTransactionalIDBytes = 1<<15 - 1

// txnScanPage is the number of keys read per request by ListTransactions.
const txnScanPage = 256

// ErrTransactionNotFound means a transactional id has no stored state.
var ErrTransactionNotFound = errors.New("metastore: transactional id not found")

// TransactionMeta is the state of one transactional id, as Kafka's
// TransactionMetadata: what a coordinator needs to continue it. The
// coordinator owns the meaning of State and of the transitions; the store
// only keeps the value and fences its writes.
type TransactionMeta struct {
	TransactionalID string
	ProducerID      int64
	ProducerEpoch   int16
	// LastProducerID and LastProducerEpoch are the producer id and epoch
	// before the latest bump (KIP-360), so a producer retrying an
	// InitProducerId whose answer it lost is recognised; -1 for none.
	LastProducerID    int64
	LastProducerEpoch int16
	TimeoutMs         int32
	State             string
	// Partitions are those added to the ongoing (or completing)
	// transaction, sorted by topic and partition, without duplicates.
	Partitions []TopicPartition
	// Groups are the consumer groups whose offsets the transaction commits
	// (AddOffsetsToTxn), sorted, without duplicates.
	Groups []string
	// StartTime is when the first partition or group was added to the
	// transaction; zero when no transaction is open. Stored to the ms.
	StartTime time.Time
	// UpdatedAt is the time of the latest transition, stored to the ms.
	UpdatedAt time.Time
	// CoordinatorEpoch grows each time another coordinator takes the
	// transactional id over; markers carry it, so that a partition leader
	// can refuse the markers of a coordinator that was replaced.
	CoordinatorEpoch int32
	// Revision is the etcd mod revision of the key, filled on read and on
	// write.
	Revision int64
}

// txnValue is the JSON stored at <prefix>/transactions/<id>.
type txnValue struct {
	ProducerID        int64           `json:"pid"`
	ProducerEpoch     int16           `json:"e"`
	LastProducerID    int64           `json:"lpid"`
	LastProducerEpoch int16           `json:"le"`
	TimeoutMs         int32           `json:"to"`
	State             string          `json:"s"`
	Partitions        []txnTopicValue `json:"tp,omitempty"`
	Groups            []string        `json:"g,omitempty"`
	StartTime         int64           `json:"st,omitempty"` // Unix ms, 0 for none
	UpdatedAt         int64           `json:"u"`            // Unix ms
	CoordinatorEpoch  int32           `json:"ce"`
}

// txnTopicValue is the partitions of one topic in a transaction: topics
// are written once, not once per partition, so that a transaction over many
// partitions stays well under etcd's request size.
type txnTopicValue struct {
	Topic      string  `json:"t"`
	Partitions []int32 `json:"p"`
}

// NormalizeTransaction returns m with its partitions and groups sorted and
// without duplicates, and its times to the millisecond in UTC: as it reads
// back from the store.
func NormalizeTransaction(m TransactionMeta) TransactionMeta {
	m.Partitions = slices.Clone(m.Partitions)
	slices.SortFunc(m.Partitions, CompareTopicPartitions)
	m.Partitions = slices.Compact(m.Partitions)
	if len(m.Partitions) == 0 {
		m.Partitions = nil
	}
	m.Groups = slices.Clone(m.Groups)
	slices.Sort(m.Groups)
	m.Groups = slices.Compact(m.Groups)
	if len(m.Groups) == 0 {
		m.Groups = nil
	}
	if m.StartTime.IsZero() || m.StartTime.UnixMilli() <= 0 {
		m.StartTime = time.Time{}
	} else {
		m.StartTime = time.UnixMilli(m.StartTime.UnixMilli()).UTC()
	}
	m.UpdatedAt = time.UnixMilli(m.UpdatedAt.UnixMilli()).UTC()
	return m
}

// CompareTopicPartitions orders partitions by topic, then partition.
func CompareTopicPartitions(a, b TopicPartition) int {
	return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
}

// CheckTransaction refuses what the store cannot keep: an empty or too long
// transactional id, a negative producer id or timeout, an empty state, a
// bad partition or group.
func CheckTransaction(m TransactionMeta) error {
	switch {
	case m.TransactionalID == "":
		return errors.New("empty transactional id")
	case len(m.TransactionalID) > MaxTransactionalIDBytes:
		return fmt.Errorf("transactional id of %d bytes, longer than %d", len(m.TransactionalID), MaxTransactionalIDBytes)
	case m.ProducerID < 0:
		return fmt.Errorf("negative producer id %d", m.ProducerID)
	case m.TimeoutMs < 0:
		return fmt.Errorf("negative timeout %d ms", m.TimeoutMs)
	case m.State == "":
		return errors.New("empty state")
	}
	for _, tp := range m.Partitions {
		if tp.Topic == "" || tp.Partition < 0 {
			return fmt.Errorf("bad partition %q-%d", tp.Topic, tp.Partition)
		}
	}
	for _, g := range m.Groups {
		if err := CheckGroupName(g); err != nil {
			return err
		}
	}
	return nil
}

func (m TransactionMeta) value() txnValue {
	v := txnValue{
		ProducerID:        m.ProducerID,
		ProducerEpoch:     m.ProducerEpoch,
		LastProducerID:    m.LastProducerID,
		LastProducerEpoch: m.LastProducerEpoch,
		TimeoutMs:         m.TimeoutMs,
		State:             m.State,
		Groups:            m.Groups,
		UpdatedAt:         m.UpdatedAt.UnixMilli(),
		CoordinatorEpoch:  m.CoordinatorEpoch,
	}
	if !m.StartTime.IsZero() {
		v.StartTime = m.StartTime.UnixMilli()
	}
	for _, tp := range m.Partitions { // sorted: one run per topic
		if n := len(v.Partitions); n > 0 && v.Partitions[n-1].Topic == tp.Topic {
			v.Partitions[n-1].Partitions = append(v.Partitions[n-1].Partitions, tp.Partition)
			continue
		}
		v.Partitions = append(v.Partitions, txnTopicValue{Topic: tp.Topic, Partitions: []int32{tp.Partition}})
	}
	return v
}

func decodeTransaction(id string, kv *mvccpb.KeyValue) (TransactionMeta, error) {
	var v txnValue
	if err := json.Unmarshal(kv.Value, &v); err != nil {
		return TransactionMeta{}, fmt.Errorf("key %q: decode transaction: %w", kv.Key, err)
	}
	m := TransactionMeta{
		TransactionalID:   id,
		ProducerID:        v.ProducerID,
		ProducerEpoch:     v.ProducerEpoch,
		LastProducerID:    v.LastProducerID,
		LastProducerEpoch: v.LastProducerEpoch,
		TimeoutMs:         v.TimeoutMs,
		State:             v.State,
		Groups:            v.Groups,
		UpdatedAt:         time.UnixMilli(v.UpdatedAt).UTC(),
		CoordinatorEpoch:  v.CoordinatorEpoch,
		Revision:          kv.ModRevision,
	}
	if v.StartTime > 0 {
		m.StartTime = time.UnixMilli(v.StartTime).UTC()
	}
	for _, t := range v.Partitions {
		for _, p := range t.Partitions {
			m.Partitions = append(m.Partitions, TopicPartition{Topic: t.Topic, Partition: p})
		}
	}
	return m, nil
}

func (s *Store) transactionsPrefix() string { return s.prefix + "/transactions/" }

func (s *Store) transactionKey(id string) string {
	return s.transactionsPrefix() + url.PathEscape(id)
}

// GetTransaction reads the state of a transactional id;
// ErrTransactionNotFound if it has none.
func (s *Store) GetTransaction(ctx context.Context, id string) (TransactionMeta, error) {
	if id == "" || len(id) > MaxTransactionalIDBytes {
		return TransactionMeta{}, fmt.Errorf("metastore: get transaction %q: bad transactional id", id)
	}
	resp, err := s.client.Get(ctx, s.transactionKey(id))
	if err != nil {
		return TransactionMeta{}, fmt.Errorf("metastore: get transaction %q: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return TransactionMeta{}, fmt.Errorf("metastore: get transaction %q: %w", id, ErrTransactionNotFound)
	}
	m, err := decodeTransaction(id, resp.Kvs[0])
	if err != nil {
		return TransactionMeta{}, fmt.Errorf("metastore: get transaction %q: %w", id, err)
	}
	return m, nil
}

// PutTransaction stores meta if its key's mod revision is still
// prevRevision (0: the transactional id must have no state yet). It returns
// meta as stored (NormalizeTransaction'd, with its new Revision). If the
// revision moved it returns ErrConflict together with the current state,
// whose Revision is 0 if there is none, so the caller need not read again.
func (s *Store) PutTransaction(ctx context.Context, meta TransactionMeta, prevRevision int64) (TransactionMeta, error) {
	id := meta.TransactionalID
	if err := CheckTransaction(meta); err != nil {
		return TransactionMeta{}, fmt.Errorf("metastore: put transaction %q: %w", id, err)
	}
	if prevRevision < 0 {
		return TransactionMeta{}, fmt.Errorf("metastore: put transaction %q: negative revision %d", id, prevRevision)
	}
	meta = NormalizeTransaction(meta)
	val, err := encode(meta.value())
	if err != nil {
		return TransactionMeta{}, fmt.Errorf("metastore: put transaction %q: %w", id, err)
	}
	key := s.transactionKey(id)
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", prevRevision)).
		Then(clientv3.OpPut(key, val)).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return TransactionMeta{}, fmt.Errorf("metastore: put transaction %q: %w", id, err)
	}
	if resp.Succeeded {
		meta.Revision = resp.Header.Revision
		return meta, nil
	}
	current := TransactionMeta{TransactionalID: id}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		if current, err = decodeTransaction(id, kvs[0]); err != nil {
			return TransactionMeta{}, fmt.Errorf("metastore: put transaction %q: revision %d is stale: %w", id, prevRevision, err)
		}
	}
	return current, fmt.Errorf("metastore: put transaction %q: revision %d is stale (now %d): %w",
		id, prevRevision, current.Revision, ErrConflict)
}

// DeleteTransaction deletes the state of a transactional id if its mod
// revision is still revision: ErrConflict if it changed,
// ErrTransactionNotFound if there is none.
func (s *Store) DeleteTransaction(ctx context.Context, id string, revision int64) error {
	key := s.transactionKey(id)
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", revision)).
		Then(clientv3.OpDelete(key)).
		Else(clientv3.OpGet(key, clientv3.WithCountOnly())).
		Commit()
	if err != nil {
		return fmt.Errorf("metastore: delete transaction %q: %w", id, err)
	}
	if resp.Succeeded {
		if resp.Responses[0].GetResponseDeleteRange().Deleted == 0 {
			return fmt.Errorf("metastore: delete transaction %q: %w", id, ErrTransactionNotFound)
		}
		return nil
	}
	if resp.Responses[0].GetResponseRange().Count == 0 {
		return fmt.Errorf("metastore: delete transaction %q: %w", id, ErrTransactionNotFound)
	}
	return fmt.Errorf("metastore: delete transaction %q: revision %d is stale: %w", id, revision, ErrConflict)
}

// ListTransactions reads the state of every transactional id, sorted by
// id, from one snapshot of the store (read in pages, so that many ids do
// not make one huge response).
func (s *Store) ListTransactions(ctx context.Context) ([]TransactionMeta, error) {
	prefix := s.transactionsPrefix()
	start, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	var rev int64
	var out []TransactionMeta
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(txnScanPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.client.Get(ctx, start, opts...)
		if err != nil {
			return nil, fmt.Errorf("metastore: list transactions: %w", err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			esc := strings.TrimPrefix(string(kv.Key), prefix)
			id, err := url.PathUnescape(esc)
			if err != nil || id == "" || url.PathEscape(id) != esc {
				return nil, fmt.Errorf("metastore: list transactions: key %q is not a transaction key", kv.Key)
			}
			m, err := decodeTransaction(id, kv)
			if err != nil {
				return nil, fmt.Errorf("metastore: list transactions: %w", err)
			}
			out = append(out, m)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	// Keys sort by escaped id, which is not always the id's order.
	slices.SortFunc(out, func(a, b TransactionMeta) int { return strings.Compare(a.TransactionalID, b.TransactionalID) })
	return out, nil
}
