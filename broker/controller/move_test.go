package controller

import (
	"errors"
	"slices"
	"testing"

	"github.com/strata-broker/strata/metastore"
)

func state(leader int32, replicas, isr []int32) metastore.PartitionState {
	return metastore.PartitionState{Topic: "t", Partition: 0, Leader: leader, LeaderEpoch: 3, Replicas: replicas, ISR: isr, Revision: 10}
}

// A move from 1,2,3 to 2,3,4 grows the set, waits for 4 to be in sync,
// then shrinks it and moves leadership off 1 in the same write.
func TestMoveGrowsWaitsThenShrinks(t *testing.T) {
	st := state(1, []int32{1, 2, 3}, []int32{1, 2, 3})
	next, changed, err := StartMove(st, []int32{2, 3, 4})
	if err != nil || !changed {
		t.Fatalf("StartMove: %v, %v", changed, err)
	}
	if !slices.Equal(next.Replicas, []int32{2, 3, 4, 1}) || !slices.Equal(next.AddingReplicas, []int32{4}) ||
		!slices.Equal(next.RemovingReplicas, []int32{1}) || next.Leader != 1 || next.LeaderEpoch != 3 ||
		!slices.Equal(next.ISR, []int32{1, 2, 3}) {
		t.Fatalf("started: %+v", next)
	}
	if err := metastore.ValidatePartitionUpdate(st, next); err != nil {
		t.Fatalf("started state is not a valid update: %v", err)
	}
	live := liveSet(1, 2, 3, 4)
	if _, ok := CompleteMove(next, live); ok {
		t.Fatal("completed before the adding replica is in sync")
	}
	if needsChange(next, live) {
		t.Fatal("a move waiting for its replica needs no change")
	}
	next.ISR = []int32{1, 2, 3, 4}
	if !needsChange(next, live) {
		t.Fatal("a completable move needs a change")
	}
	done, ok := CompleteMove(next, live)
	if !ok {
		t.Fatal("not completed with every target replica in sync")
	}
	if !slices.Equal(done.Replicas, []int32{2, 3, 4}) || done.Moving() || !slices.Equal(done.ISR, []int32{2, 3, 4}) ||
		done.Leader != 2 || done.LeaderEpoch != 4 {
		t.Fatalf("completed: %+v", done)
	}
	// A target replica that is in the ISR but not alive holds the move.
	if _, ok := CompleteMove(next, liveSet(1, 2, 3)); ok {
		t.Fatal("completed with a dead target replica")
	}
}

// A leader that stays keeps leading, in the same epoch.
func TestMoveKeepsAStayingLeader(t *testing.T) {
	st := state(2, []int32{1, 2, 3}, []int32{1, 2, 3})
	next, _, _ := StartMove(st, []int32{4, 2, 3})
	next.ISR = []int32{1, 2, 3, 4}
	done, ok := CompleteMove(next, liveSet(1, 2, 3, 4))
	if !ok || done.Leader != 2 || done.LeaderEpoch != 3 || !slices.Equal(done.Replicas, []int32{4, 2, 3}) {
		t.Fatalf("completed: %+v, %v", done, ok)
	}
}

func TestCancelMoveRestoresTheOriginal(t *testing.T) {
	st := state(1, []int32{1, 2, 3}, []int32{1, 2, 3})
	if _, err := CancelMove(st); !errors.Is(err, ErrNoMove) {
		t.Fatalf("cancel without a move: %v", err)
	}
	moving, _, _ := StartMove(st, []int32{4, 5, 6})
	moving.ISR = []int32{1, 2, 3, 4}
	back, err := CancelMove(moving)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.Replicas, []int32{1, 2, 3}) || back.Moving() || !slices.Equal(back.ISR, []int32{1, 2, 3}) || back.Leader != 1 {
		t.Fatalf("cancelled: %+v", back)
	}
}

// A new target replaces a move in progress: the first move's adding
// replicas that the new one drops leave, leadership included.
func TestNewTargetReplacesAMove(t *testing.T) {
	st := state(4, []int32{4, 1, 2}, []int32{1, 2, 4})
	st.AddingReplicas, st.RemovingReplicas = []int32{4}, nil
	next, changed, err := StartMove(st, []int32{1, 5})
	if err != nil || !changed {
		t.Fatal(err)
	}
	if !slices.Equal(next.Replicas, []int32{1, 5, 2}) || !slices.Equal(next.AddingReplicas, []int32{5}) ||
		!slices.Equal(next.RemovingReplicas, []int32{2}) || next.Leader != 1 || next.LeaderEpoch != 4 || !slices.Equal(next.ISR, []int32{1, 2}) {
		t.Fatalf("replaced: %+v", next)
	}
}

func TestStartMoveRefuses(t *testing.T) {
	st := state(1, []int32{1, 2}, []int32{1, 2})
	for _, target := range [][]int32{nil, {3, 3}, {-1}} {
		if _, _, err := StartMove(st, target); !errors.Is(err, ErrBadTarget) {
			t.Errorf("target %v: %v", target, err)
		}
	}
	if _, changed, err := StartMove(st, []int32{1, 2}); err != nil || changed {
		t.Fatalf("the same replicas: %v, %v", changed, err)
	}
	// Reordering needs no data to move: done at once.
	next, changed, err := StartMove(st, []int32{2, 1})
	if err != nil || !changed || next.Moving() || !slices.Equal(next.Replicas, []int32{2, 1}) {
		t.Fatalf("reorder: %+v, %v, %v", next, changed, err)
	}
}

func TestPreferredAndUncleanElections(t *testing.T) {
	st := state(2, []int32{1, 2, 3}, []int32{2, 3})
	if _, err := PreferredLeader(st, liveSet(1, 2, 3)); !errors.Is(err, ErrPreferredUnavailable) {
		t.Fatalf("preferred out of the ISR: %v", err)
	}
	st.ISR = []int32{1, 2, 3}
	next, err := PreferredLeader(st, liveSet(1, 2, 3))
	if err != nil || next.Leader != 1 || next.LeaderEpoch != 4 {
		t.Fatalf("preferred: %+v, %v", next, err)
	}
	if _, err := PreferredLeader(next, liveSet(1, 2, 3)); !errors.Is(err, ErrElectionNotNeeded) {
		t.Fatalf("again: %v", err)
	}
	if _, err := UncleanLeader(st, liveSet(1, 2, 3)); !errors.Is(err, ErrElectionNotNeeded) {
		t.Fatalf("unclean with a live leader: %v", err)
	}
	lost := state(-1, []int32{1, 2, 3}, []int32{1})
	got, err := UncleanLeader(lost, liveSet(3))
	if err != nil || got.Leader != 3 || !slices.Equal(got.ISR, []int32{3}) {
		t.Fatalf("unclean: %+v, %v", got, err)
	}
	if _, err := UncleanLeader(lost, liveSet()); !errors.Is(err, ErrNoEligibleLeader) {
		t.Fatalf("unclean with nobody alive: %v", err)
	}
	// Its last in-sync replica came back without its log and left the ISR:
	// the first live replica in order is passed over for one that kept its.
	emptied := state(-1, []int32{1, 2, 3}, []int32{})
	emptied.Lost = []int32{1}
	if got, err := UncleanLeader(emptied, liveSet(1, 2, 3)); err != nil || got.Leader != 2 || !slices.Equal(got.ISR, []int32{2}) {
		t.Fatalf("unclean after a lost log: %+v, %v", got, err)
	}
}
