package metastore

import (
	"errors"
	"strings"
	"testing"
)

func TestPartitionStatesSortedNumerically(t *testing.T) {
	s := newTestStore(t)
	createTestTopic(t, s, "t", 12, nil)
	states, err := s.PartitionStates(testContext(t), "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 12 {
		t.Fatalf("%d states, want 12", len(states))
	}
	for i, st := range states {
		if st.Partition != int32(i) || st.Topic != "t" {
			t.Errorf("states[%d] is %s-%d", i, st.Topic, st.Partition)
		}
	}
}

func TestCompareAndSwapPartitionState(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	createTestTopic(t, s, "t", 2, nil)
	states, err := s.PartitionStates(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	old := states[1] // replicas [1 2], leader 1

	next := old
	next.Leader, next.LeaderEpoch, next.ISR = 2, 1, []int32{2}
	swapped, err := s.CompareAndSwapPartitionState(ctx, old, next)
	if err != nil {
		t.Fatal(err)
	}
	if swapped.Revision <= old.Revision || swapped.Leader != 2 || swapped.LeaderEpoch != 1 {
		t.Errorf("swapped = %+v", swapped)
	}
	reread, err := s.PartitionStates(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if !equalStates(reread[1:], []PartitionState{swapped}) {
		t.Errorf("stored %+v, want %+v", reread[1], swapped)
	}
	if reread[0].Revision != old.Revision {
		t.Error("partition 0 changed too")
	}

	// A second writer holding the old revision loses, and learns the
	// current state.
	stale := old
	stale.Leader, stale.LeaderEpoch = -1, 1
	current, err := s.CompareAndSwapPartitionState(ctx, old, stale)
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("stale CAS: %v, want ErrConflict", err)
	}
	if !equalStates([]PartitionState{current}, []PartitionState{swapped}) {
		t.Errorf("conflict returned %+v, want current %+v", current, swapped)
	}

	// Retrying from the current state succeeds.
	next2 := current
	next2.Leader, next2.LeaderEpoch = -1, 2
	if _, err := s.CompareAndSwapPartitionState(ctx, current, next2); err != nil {
		t.Fatal(err)
	}

	// Gone with its topic.
	if err := s.DeleteTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CompareAndSwapPartitionState(ctx, current, next2); !errors.Is(err, ErrTopicNotFound) {
		t.Errorf("CAS on deleted topic: %v, want ErrTopicNotFound", err)
	}
}

// A zero revision must never create a partition key.
func TestCompareAndSwapPartitionStateRejectsBadUpdates(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	createTestTopic(t, s, "t", 1, nil)
	states, err := s.PartitionStates(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	old := states[0] // replicas [0 1], leader 0, epoch 0
	old.LeaderEpoch = 3
	withEpoch := func(p PartitionState) PartitionState { p.LeaderEpoch = 3; return p }

	tests := []struct {
		name    string
		old     PartitionState
		next    func(PartitionState) PartitionState
		wantErr string
	}{
		{"no revision", PartitionState{Topic: "t", Partition: 5, LeaderEpoch: 3}, func(p PartitionState) PartitionState { return p }, "no revision"},
		{"other partition", old, func(p PartitionState) PartitionState { p.Partition = 1; return p }, "new state is for t-1"},
		{"epoch goes back", old, func(p PartitionState) PartitionState { p.LeaderEpoch = 2; return p }, "leader epoch would go back"},
		{"leader not a replica", old, func(p PartitionState) PartitionState { p.Leader = 7; return withEpoch(p) }, "leader 7 is not a replica"},
		{"isr not replicas", old, func(p PartitionState) PartitionState { p.ISR = []int32{0, 9}; return withEpoch(p) }, "ISR member 9"},
		{"no replicas", old, func(p PartitionState) PartitionState { p.Replicas, p.ISR, p.Leader = nil, nil, -1; return p }, "no replicas"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.CompareAndSwapPartitionState(ctx, tt.old, tt.next(tt.old))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
	after, err := s.PartitionStates(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != 1 || after[0].Revision != states[0].Revision {
		t.Errorf("rejected updates changed the store: %+v", after)
	}
}
