package controller

import (
	"errors"
	"fmt"
	"slices"

	"github.com/strata-broker/strata/metastore"
)

// A partition moves to a new replica set as Kafka reassigns it: the set
// first grows to the target plus the replicas leaving (the adding replicas
// start as followers, outside the ISR, and catch up), then, once every
// target replica is in the ISR, the controller writes the target alone
// (CompleteMove), moving leadership off a leaving replica in the same
// write. Nothing in between removes an in-sync replica, so an acks=all
// producer's ISR never shrinks because of the move, and every record
// acknowledged before the last write is on every replica of the target.

// ErrNoMove: a cancellation of a partition that is not moving.
var ErrNoMove = errors.New("no reassignment in progress")

// ErrBadTarget: a target replica set a partition cannot move to.
var ErrBadTarget = errors.New("invalid replica assignment")

// StartMove returns st with a move to target started, replacing a move in
// progress (whose adding replicas that target drops leave again). A target
// that is the partition's set in another order reorders it at once. ok is
// false when st already is target with nothing moving.
func StartMove(st metastore.PartitionState, target []int32) (metastore.PartitionState, bool, error) {
	if len(target) == 0 {
		return st, false, fmt.Errorf("%w: no replicas", ErrBadTarget)
	}
	for i, id := range target {
		if id < 0 || slices.Contains(target[i+1:], id) {
			return st, false, fmt.Errorf("%w: replica %d is listed twice or negative", ErrBadTarget, id)
		}
	}
	if slices.Equal(target, st.Replicas) && !st.Moving() {
		return st, false, nil
	}
	original := st.OriginalReplicas()
	next := st
	next.AddingReplicas = without(target, original)
	next.RemovingReplicas = without(original, target)
	next.Replicas = append(slices.Clone(target), next.RemovingReplicas...)
	next.ISR = slices.DeleteFunc(slices.Clone(st.ISR), func(id int32) bool { return !slices.Contains(next.Replicas, id) })
	if len(next.ISR) == 0 {
		return st, false, fmt.Errorf("%w: none of the replicas %v is in sync (ISR %v); the partition cannot move there", ErrBadTarget, next.Replicas, st.ISR)
	}
	if len(next.AddingReplicas) == 0 {
		next.AddingReplicas = nil
	}
	if len(next.RemovingReplicas) == 0 {
		next.RemovingReplicas = nil
	}
	if st.Leader >= 0 && !slices.Contains(next.Replicas, st.Leader) {
		// Only an adding replica of the replaced move can lead and be
		// dropped: hand over to the first in-sync replica.
		next.Leader = firstIn(next.Replicas, next.ISR)
		next.LeaderEpoch = st.LeaderEpoch + 1
	}
	return next, true, nil
}

// CancelMove returns st with its move undone: the original replicas, the
// adding ones gone. ErrNoMove if nothing moves.
func CancelMove(st metastore.PartitionState) (metastore.PartitionState, error) {
	if !st.Moving() {
		return st, ErrNoMove
	}
	next, _, err := StartMove(st, st.OriginalReplicas())
	return next, err
}

// CompleteMove returns the final state of a move whose target replicas are
// all alive and in the ISR: the target alone, led by the current leader if
// it stays, else by the first target replica (a new leader epoch). ok is
// false while the move must wait (or nothing moves).
func CompleteMove(st metastore.PartitionState, live map[int32]bool) (metastore.PartitionState, bool) {
	if !st.Moving() {
		return st, false
	}
	target := st.TargetReplicas()
	for _, id := range target {
		if !live[id] || !slices.Contains(st.ISR, id) {
			return st, false
		}
	}
	next := st
	next.Replicas = target
	next.AddingReplicas, next.RemovingReplicas = nil, nil
	next.ISR = slices.DeleteFunc(slices.Clone(st.ISR), func(id int32) bool { return !slices.Contains(target, id) })
	if st.Leader < 0 || !slices.Contains(target, st.Leader) || !live[st.Leader] {
		next.Leader = target[0]
		next.LeaderEpoch = st.LeaderEpoch + 1
	}
	return next, true
}

// without returns the ids of a that b lacks, in a's order.
func without(a, b []int32) []int32 {
	return slices.DeleteFunc(slices.Clone(a), func(id int32) bool { return slices.Contains(b, id) })
}

// firstIn returns the first of ids that set holds, -1 if none.
func firstIn(ids, set []int32) int32 {
	for _, id := range ids {
		if slices.Contains(set, id) {
			return id
		}
	}
	return -1
}

// PreferredLeader returns st led by its preferred replica (the first of its
// replicas), in a new leader epoch. ErrElectionNotNeeded if it leads
// already; ErrPreferredUnavailable if it is not alive or not in the ISR.
func PreferredLeader(st metastore.PartitionState, live map[int32]bool) (metastore.PartitionState, error) {
	pref := st.Replicas[0]
	switch {
	case st.Leader == pref:
		return st, ErrElectionNotNeeded
	case !live[pref] || !slices.Contains(st.ISR, pref):
		return st, fmt.Errorf("%w: broker %d is not alive or not in the ISR %v", ErrPreferredUnavailable, pref, st.ISR)
	}
	next := st
	next.Leader = pref
	next.LeaderEpoch = st.LeaderEpoch + 1
	return next, nil
}

// UncleanLeader returns a leaderless st led by a live replica: an in-sync
// one if there is one, else any (which may lose acknowledged records).
// ErrElectionNotNeeded if st has a live leader; ErrNoEligibleLeader if no
// replica is alive.
func UncleanLeader(st metastore.PartitionState, live map[int32]bool) (metastore.PartitionState, error) {
	if st.Leader >= 0 && live[st.Leader] {
		return st, ErrElectionNotNeeded
	}
	next, _ := Decide(st, live, true)
	if next.Leader < 0 {
		return st, fmt.Errorf("%w: no replica of %v is alive", ErrNoEligibleLeader, st.Replicas)
	}
	return next, nil
}

// Errors of leader elections asked for by an operator.
var (
	ErrElectionNotNeeded    = errors.New("election not needed")
	ErrPreferredUnavailable = errors.New("preferred leader not available")
	ErrNoEligibleLeader     = errors.New("eligible leaders not available")
)
