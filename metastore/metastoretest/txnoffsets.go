package metastoretest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/strata-broker/strata/metastore"
)

// pendingOffset is a transactional offset waiting for its transaction's
// end, with the revision it was written at.
type pendingOffset struct {
	offset metastore.OffsetCommit
	rev    int64
}

// setOffset stores o as g's committed offset of its partition, written at
// rev.
func (g *groupKeys) setOffset(o metastore.OffsetCommit, rev int64) {
	if g.offsets == nil {
		g.offsets = map[metastore.TopicPartition]metastore.OffsetCommit{}
		g.offsetRevs = map[metastore.TopicPartition]int64{}
	}
	tp := metastore.TopicPartition{Topic: o.Topic, Partition: o.Partition}
	g.offsets[tp], g.offsetRevs[tp] = o, rev
}

// pendingKeys counts g's pending offsets as etcd's keys: one per producer
// and partition.
func (g *groupKeys) pendingKeys() int {
	n := 0
	for _, p := range g.txnOffsets {
		n += len(p)
	}
	return n
}

// CommitTxnOffsets is metastore.Store.CommitTxnOffsets, fenced by the
// transactional id's stored state and, with generation >= 0, by the
// group's. Here a commit is always atomic.
func (s *Store) CommitTxnOffsets(ctx context.Context, group string, producer metastore.TxnProducer, memberID string, generation int32, offsets []metastore.OffsetCommit) error {
	fail := func(err error) error {
		return fmt.Errorf("metastore: commit transactional offsets of group %q for producer %d: %w", group, producer.ProducerID, err)
	}
	if err := metastore.CheckGroupName(group); err != nil {
		return fail(err)
	}
	if producer.TransactionalID == "" || len(producer.TransactionalID) > metastore.MaxTransactionalIDBytes || producer.ProducerID < 0 {
		return fail(fmt.Errorf("bad transactional id %q or producer id %d", producer.TransactionalID, producer.ProducerID))
	}
	for _, o := range offsets {
		if o.Topic == "" || o.Partition < 0 {
			return fail(fmt.Errorf("bad partition %q-%d", o.Topic, o.Partition))
		}
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.txns[producer.TransactionalID]
	if !ok {
		return fail(fmt.Errorf("transactional id %q has no state: %w", producer.TransactionalID, metastore.ErrTxnProducerIDMismatch))
	}
	if err := m.CheckTxnOffsetCommit(producer, group); err != nil {
		return fail(err)
	}
	g := s.groups[group]
	if generation >= 0 {
		if g == nil || g.meta == nil {
			return fail(fmt.Errorf("generation %d, stored generation none: %w", generation, metastore.ErrGenerationMismatch))
		}
		if err := g.meta.CheckCommit(memberID, generation); err != nil {
			return fail(err)
		}
	}
	if len(offsets) == 0 {
		return nil
	}
	if g == nil {
		g = &groupKeys{}
		s.groups[group] = g
	}
	if g.txnOffsets == nil {
		g.txnOffsets = map[int64]map[metastore.TopicPartition]pendingOffset{}
	}
	pending := g.txnOffsets[producer.ProducerID]
	if pending == nil {
		pending = map[metastore.TopicPartition]pendingOffset{}
		g.txnOffsets[producer.ProducerID] = pending
	}
	rev := s.write()
	for _, o := range offsets {
		if o.CommitTime.IsZero() {
			o.CommitTime = now
		}
		o.CommitTime = msUTC(o.CommitTime)
		pending[metastore.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = pendingOffset{o, rev}
	}
	return nil
}

// FetchOffsetsAndPending is metastore.Store.FetchOffsetsAndPending.
func (s *Store) FetchOffsetsAndPending(ctx context.Context, group string) ([]metastore.OffsetCommit, []metastore.TopicPartition, error) {
	offsets, err := s.FetchOffsets(ctx, group)
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var pending []metastore.TopicPartition
	if g := s.groups[group]; g != nil {
		for _, p := range g.txnOffsets {
			pending = slices.AppendSeq(pending, maps.Keys(p))
		}
	}
	slices.SortFunc(pending, metastore.CompareTopicPartitions)
	return offsets, slices.Compact(pending), nil
}

// CompleteTxnOffsets is metastore.Store.CompleteTxnOffsets: here all of a
// producer's pending offsets complete at once.
func (s *Store) CompleteTxnOffsets(ctx context.Context, group string, producerID int64, commit bool) ([]metastore.TopicPartition, error) {
	if err := metastore.CheckGroupName(group); err != nil {
		return nil, fmt.Errorf("metastore: complete transactional offsets of group %q for producer %d: %w", group, producerID, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("metastore: complete transactional offsets of group %q for producer %d: %w", group, producerID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[group]
	if g == nil || len(g.txnOffsets[producerID]) == 0 {
		return nil, nil
	}
	rev := s.write()
	var written []metastore.TopicPartition
	for tp, p := range g.txnOffsets[producerID] {
		if commit && g.offsetRevs[tp] < p.rev {
			g.setOffset(p.offset, rev)
			written = append(written, tp)
		}
	}
	delete(g.txnOffsets, producerID)
	slices.SortFunc(written, metastore.CompareTopicPartitions)
	return written, nil
}
