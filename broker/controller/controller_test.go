package controller

import (
	"slices"
	"testing"

	"github.com/strata-broker/strata/metastore"
)

func liveSet(ids ...int32) map[int32]bool {
	m := map[int32]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}

func TestDecide(t *testing.T) {
	base := metastore.PartitionState{Topic: "t", Leader: 1, LeaderEpoch: 4, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}}
	for _, c := range []struct {
		name    string
		st      metastore.PartitionState
		live    map[int32]bool
		unclean bool
		change  bool
		leader  int32
		epoch   int32
		isr     []int32
	}{
		{name: "all alive", st: base, live: liveSet(1, 2, 3)},
		{name: "follower gone leaves the ISR, same epoch", st: base, live: liveSet(1, 2),
			change: true, leader: 1, epoch: 4, isr: []int32{1, 2}},
		{name: "leader gone: next ISR member in replica order, new epoch", st: base, live: liveSet(2, 3),
			change: true, leader: 2, epoch: 5, isr: []int32{2, 3}},
		{name: "leader gone, only an out-of-sync replica left: leaderless, ISR kept", live: liveSet(3),
			st:     metastore.PartitionState{Leader: 1, LeaderEpoch: 4, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}},
			change: true, leader: -1, epoch: 5, isr: []int32{1}},
		{name: "unclean election takes any live replica", unclean: true, live: liveSet(3),
			st:     metastore.PartitionState{Leader: 1, LeaderEpoch: 4, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}},
			change: true, leader: 3, epoch: 5, isr: []int32{3}},
		{name: "leaderless partition gets its last ISR member back", live: liveSet(1, 3),
			st:     metastore.PartitionState{Leader: -1, LeaderEpoch: 5, Replicas: []int32{1, 2, 3}, ISR: []int32{1}},
			change: true, leader: 1, epoch: 6, isr: []int32{1}},
		{name: "leaderless and nobody in sync is back: no change", live: liveSet(3),
			st: metastore.PartitionState{Leader: -1, LeaderEpoch: 5, Replicas: []int32{1, 2, 3}, ISR: []int32{1}}},
		{name: "empty ISR (its last member lost its log): no election", live: liveSet(1, 2, 3),
			st: metastore.PartitionState{Leader: -1, LeaderEpoch: 5, Replicas: []int32{1, 2, 3}, ISR: []int32{}, Lost: []int32{1}}},
		{name: "empty ISR, unclean: the first live replica that did not lose its log", unclean: true, live: liveSet(1, 3),
			st:     metastore.PartitionState{Leader: -1, LeaderEpoch: 5, Replicas: []int32{1, 2, 3}, ISR: []int32{}, Lost: []int32{1}},
			change: true, leader: 3, epoch: 6, isr: []int32{3}},
		{name: "empty ISR, unclean, only the replica that lost its log is live: it", unclean: true, live: liveSet(1),
			st:     metastore.PartitionState{Leader: -1, LeaderEpoch: 5, Replicas: []int32{1, 2, 3}, ISR: []int32{}, Lost: []int32{1}},
			change: true, leader: 1, epoch: 6, isr: []int32{1}},
		{name: "empty ISR, unclean, nobody live: no change", unclean: true, live: liveSet(),
			st: metastore.PartitionState{Leader: -1, LeaderEpoch: 5, Replicas: []int32{1, 2, 3}, ISR: []int32{}, Lost: []int32{1}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			next, ok := Decide(c.st, c.live, c.unclean)
			if ok != c.change {
				t.Fatalf("change = %v, want %v (next %+v)", ok, c.change, next)
			}
			if !ok {
				return
			}
			if next.Leader != c.leader || next.LeaderEpoch != c.epoch || !slices.Equal(next.ISR, c.isr) {
				t.Fatalf("next = leader %d epoch %d isr %v; want %d %d %v", next.Leader, next.LeaderEpoch, next.ISR, c.leader, c.epoch, c.isr)
			}
			if !slices.Equal(next.Replicas, c.st.Replicas) {
				t.Fatalf("replicas changed: %v", next.Replicas)
			}
			if again, ok := Decide(next, c.live, c.unclean); ok {
				t.Fatalf("not stable: %+v then %+v", next, again)
			}
		})
	}
}

func TestBrokersRegisteredSinceAStateDoNotCountForIt(t *testing.T) {
	st := metastore.PartitionState{Leader: 1, LeaderEpoch: 4, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}, Revision: 100}
	live := map[int32]int64{1: 120, 2: 50, 3: 90} // broker 1 registered again after the state
	cur := Current(st, live)
	if cur[1] || !cur[2] || !cur[3] {
		t.Fatalf("current = %v", cur)
	}
	next, ok := Decide(st, cur, false)
	if !ok || next.Leader != 2 || next.LeaderEpoch != 5 || !slices.Equal(next.ISR, []int32{2, 3}) {
		t.Fatalf("restarted leader: next %+v", next)
	}
	// Its only in-sync replica restarted: leaderless first, then, once the
	// state is newer than its registration, elected again in a new epoch.
	st = metastore.PartitionState{Leader: 1, LeaderEpoch: 4, Replicas: []int32{1, 2}, ISR: []int32{1}, Revision: 100}
	next, ok = Decide(st, Current(st, map[int32]int64{1: 120, 2: 50}), false)
	if !ok || next.Leader != -1 || !slices.Equal(next.ISR, []int32{1}) {
		t.Fatalf("sole ISR member restarted: next %+v", next)
	}
	next.Revision = 110 // even written before its return: a leaderless state's ISR counts at once
	again, ok := Decide(next, Current(next, map[int32]int64{1: 120, 2: 50}), false)
	if !ok || again.Leader != 1 || again.LeaderEpoch != 6 {
		t.Fatalf("re-election: %+v", again)
	}
}
