package metastoretest

import (
	"context"
	"fmt"
	"slices"

	"github.com/strata-broker/strata/metastore"
)

type shareKey struct {
	group, topic string
	partition    int32
}

func copyShareState(st metastore.ShareState) metastore.ShareState {
	st.Batches = slices.Clone(st.Batches)
	return st
}

// GetShareState is metastore.Store.GetShareState.
func (s *Store) GetShareState(ctx context.Context, group, topic string, partition int32) (metastore.ShareState, error) {
	if err := ctx.Err(); err != nil {
		return metastore.ShareState{}, fmt.Errorf("metastore: get share state %s/%s-%d: %w", group, topic, partition, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.shares[shareKey{group, topic, partition}]
	if !ok {
		return metastore.ShareState{}, fmt.Errorf("metastore: get share state %s/%s-%d: %w", group, topic, partition, metastore.ErrShareStateNotFound)
	}
	return copyShareState(st), nil
}

// PutShareState is metastore.Store.PutShareState: a compare-and-swap on
// the state's revision.
func (s *Store) PutShareState(ctx context.Context, st metastore.ShareState, prevRevision int64) (metastore.ShareState, error) {
	if err := st.Check(); err != nil {
		return metastore.ShareState{}, fmt.Errorf("metastore: put share state %s/%s-%d: %w", st.Group, st.Topic, st.Partition, err)
	}
	if err := ctx.Err(); err != nil {
		return metastore.ShareState{}, fmt.Errorf("metastore: put share state %s/%s-%d: %w", st.Group, st.Topic, st.Partition, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := shareKey{st.Group, st.Topic, st.Partition}
	cur, ok := s.shares[k]
	if !ok {
		cur = metastore.ShareState{Group: st.Group, Topic: st.Topic, Partition: st.Partition}
	}
	if cur.Revision != prevRevision {
		return copyShareState(cur), fmt.Errorf("metastore: put share state %s/%s-%d: revision %d is stale (now %d): %w",
			st.Group, st.Topic, st.Partition, prevRevision, cur.Revision, metastore.ErrConflict)
	}
	st.Revision = s.write()
	s.shares[k] = copyShareState(st)
	return copyShareState(st), nil
}

// ListShareStates is metastore.Store.ListShareStates.
func (s *Store) ListShareStates(ctx context.Context, group string) ([]metastore.ShareState, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("metastore: list share states of %q: %w", group, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []metastore.ShareState
	for k, st := range s.shares {
		if k.group == group {
			out = append(out, copyShareState(st))
		}
	}
	metastore.SortShareStates(out)
	return out, nil
}

// DeleteShareStates is metastore.Store.DeleteShareStates.
func (s *Store) DeleteShareStates(ctx context.Context, group, topic string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("metastore: delete share states %s/%s: %w", group, topic, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k := range s.shares {
		if k.group == group && (topic == "" || k.topic == topic) {
			delete(s.shares, k)
			n++
		}
	}
	if n > 0 {
		s.write()
	}
	return n, nil
}
