package broker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
)

func testPartition(t *testing.T, self int32) *Partition {
	t.Helper()
	l, err := partlog.Open(partlog.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return newPartition("t", "id-1", 0, l, self)
}

func oneBatch(t *testing.T, n int) []byte {
	t.Helper()
	b := record.NewBuilder(time.Now().UnixMilli(), 0)
	for range n {
		b.Append(&record.Record{Value: []byte("v")})
	}
	out, err := b.Build(record.None)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), out...)
}

func TestPartitionLeaderHighWatermark(t *testing.T) {
	p := testPartition(t, 1)
	now := time.Now()
	st := metastore.PartitionState{Topic: "t", Leader: 1, LeaderEpoch: 3, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}, Revision: 10}
	if follow, _ := p.applyState(st, now, 0); follow != -1 {
		t.Fatalf("leader told to follow %d", follow)
	}
	res, epoch, err := p.leaderAppend(oneBatch(t, 5), AcksAll, 2, func() bool { return true }, 0)
	if err != nil || epoch != 3 {
		t.Fatal(err, epoch)
	}
	if hw := p.HighWatermark(); hw != 0 {
		t.Fatalf("high watermark %d before any follower fetched", hw)
	}
	// acks=all waits for the ISR; it times out while followers lag.
	if err := p.waitCommitted(context.Background(), res.LastOffset, epoch, 1, 20*time.Millisecond); !errors.Is(err, ErrRequestTimedOut) {
		t.Fatalf("waitCommitted = %v, want ErrRequestTimedOut", err)
	}
	done := make(chan error, 1)
	go func() { done <- p.waitCommitted(context.Background(), res.LastOffset, epoch, 1, 10*time.Second) }()
	if _, err := p.followerFetched(2, 3, 5, now); err != nil {
		t.Fatal(err)
	}
	if hw := p.HighWatermark(); hw != 0 {
		t.Fatalf("high watermark %d with follower 3 unheard", hw)
	}
	if _, err := p.followerFetched(3, 3, 4, now); err != nil {
		t.Fatal(err)
	}
	if hw := p.HighWatermark(); hw != 4 {
		t.Fatalf("high watermark %d, want the ISR minimum 4", hw)
	}
	if _, err := p.followerFetched(3, 3, 5, now); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("acks=all after the ISR caught up: %v", err)
	}
	// A follower at another epoch is fenced.
	if _, err := p.followerFetched(2, 2, 5, now); !errors.Is(err, ErrFencedLeaderEpoch) {
		t.Fatalf("stale epoch: %v", err)
	}
	if _, err := p.followerFetched(2, 4, 5, now); !errors.Is(err, ErrUnknownLeaderEpoch) {
		t.Fatalf("future epoch: %v", err)
	}
	// Too small an ISR refuses acks=all before writing.
	st.ISR, st.Revision = []int32{1}, 11
	p.applyState(st, now, 0)
	if _, _, err := p.leaderAppend(oneBatch(t, 1), AcksAll, 2, func() bool { return true }, 0); !errors.Is(err, ErrNotEnoughReplicas) {
		t.Fatalf("ISR of 1 with min.insync.replicas=2: %v", err)
	}
	if p.LogEndOffset() != 5 {
		t.Fatalf("refused append wrote: log end %d", p.LogEndOffset())
	}
	// Without a lease it can trust, the leader takes no writes.
	if _, _, err := p.leaderAppend(oneBatch(t, 1), AcksLeader, 1, func() bool { return false }, 0); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("append with an expired lease: %v", err)
	}
	// An older state is ignored.
	old := st
	old.Leader, old.Revision = 2, 9
	p.applyState(old, now, 0)
	if _, r := p.State(); r != roleLeader {
		t.Fatalf("stale state applied: role %v", r)
	}
}

func TestPartitionLosesLeadership(t *testing.T) {
	p := testPartition(t, 1)
	now := time.Now()
	st := metastore.PartitionState{Topic: "t", Leader: 1, LeaderEpoch: 0, Replicas: []int32{1, 2}, ISR: []int32{1, 2}, Revision: 5}
	p.applyState(st, now, 0)
	res, epoch, err := p.leaderAppend(oneBatch(t, 2), AcksAll, 1, func() bool { return true }, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.waitCommitted(context.Background(), res.LastOffset, epoch, 1, 10*time.Second) }()
	st.Leader, st.LeaderEpoch, st.ISR, st.Revision = 2, 1, []int32{2}, 6
	if follow, changed := p.applyState(st, now, 0); follow != 2 || !changed {
		t.Fatalf("follow %d changed %v", follow, changed)
	}
	if err := <-done; !errors.Is(err, ErrNotLeader) {
		t.Fatalf("acks=all waiter after losing leadership: %v", err)
	}
	if _, _, err := p.leaderAppend(oneBatch(t, 1), AcksLeader, 1, func() bool { return true }, 0); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("follower append: %v", err)
	}
	st.Leader, st.LeaderEpoch, st.Revision = -1, 2, 7
	p.applyState(st, now, 0)
	if err := p.checkLeader(); !errors.Is(err, ErrLeaderNotAvailable) {
		t.Fatalf("leaderless: %v", err)
	}
}

func TestFollowerRejoinsISR(t *testing.T) {
	p := testPartition(t, 1)
	now := time.Now()
	p.applyState(metastore.PartitionState{Topic: "t", Leader: 1, Replicas: []int32{1, 2}, ISR: []int32{1}, Revision: 2}, now, 0)
	if _, _, err := p.leaderAppend(oneBatch(t, 4), AcksLeader, 1, func() bool { return true }, 0); err != nil {
		t.Fatal(err)
	}
	if hw := p.HighWatermark(); hw != 4 {
		t.Fatalf("sole ISR member: high watermark %d, want 4", hw)
	}
	if join, _ := p.followerFetched(2, 0, 2, now); join {
		t.Fatal("a follower below the high watermark joined the ISR")
	}
	if join, _ := p.followerFetched(2, 0, 4, now); !join {
		t.Fatal("a caught-up follower was not asked to join")
	}
	// A follower that stops catching up is reported lagging.
	later := now.Add(time.Minute)
	p.applyState(metastore.PartitionState{Topic: "t", Leader: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}, Revision: 3}, now, 0)
	if _, err := p.followerFetched(2, 0, 4, now); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.leaderAppend(oneBatch(t, 1), AcksLeader, 1, func() bool { return true }, 0); err != nil {
		t.Fatal(err)
	}
	if lag := p.laggingISR(later, 30*time.Second); len(lag) != 1 || lag[0] != 2 {
		t.Fatalf("lagging %v, want [2]", lag)
	}
	if lag := p.laggingISR(now.Add(time.Second), 30*time.Second); len(lag) != 0 {
		t.Fatalf("lagging %v within the allowed lag", lag)
	}
}

// A state from before this broker's registration does not make it leader:
// its log may lack what the state's leader had.
func TestPartitionIgnoresLeadershipFromBeforeRegistration(t *testing.T) {
	p := testPartition(t, 1)
	now := time.Now()
	st := metastore.PartitionState{Topic: "t", Leader: 1, LeaderEpoch: 2, Replicas: []int32{1, 2}, ISR: []int32{1, 2}, Revision: 10}
	p.applyState(st, now, 11)
	if err := p.checkLeader(); !errors.Is(err, ErrLeaderNotAvailable) {
		t.Fatalf("leader from a state older than the registration: %v (want LEADER_NOT_AVAILABLE, an election is due)", err)
	}
	st.LeaderEpoch, st.Revision = 3, 12 // the controller elected it again
	p.applyState(st, now, 11)
	if err := p.checkLeader(); err != nil {
		t.Fatalf("after a new election: %v", err)
	}
}

// acks=all committed by an ISR that shrank below min.insync.replicas while
// the producer waited is reported, as Kafka's NOT_ENOUGH_REPLICAS_AFTER_APPEND.
func TestCommittedAfterISRShrankBelowMinimum(t *testing.T) {
	p := testPartition(t, 1)
	now := time.Now()
	st := metastore.PartitionState{Topic: "t", Leader: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}, Revision: 2}
	p.applyState(st, now, 0)
	res, epoch, err := p.leaderAppend(oneBatch(t, 3), AcksAll, 2, func() bool { return true }, 0)
	if err != nil {
		t.Fatal(err)
	}
	st.ISR, st.Revision = []int32{1}, 3 // the follower is dropped: the leader alone commits
	p.applyState(st, now, 0)
	if err := p.waitCommitted(context.Background(), res.LastOffset, epoch, 2, time.Second); !errors.Is(err, ErrNotEnoughReplicasAfterAppend) {
		t.Fatalf("waitCommitted = %v, want ErrNotEnoughReplicasAfterAppend", err)
	}
}

// A follower joins the ISR only with everything up to where this leader's
// term began, and counts for the high watermark while its addition is in
// flight.
func TestISRExpansionIsSafe(t *testing.T) {
	p := testPartition(t, 1)
	now := time.Now()
	if _, err := p.log.Append(oneBatch(t, 10), 0); err != nil { // written in an earlier term
		t.Fatal(err)
	}
	p.applyState(metastore.PartitionState{Topic: "t", Leader: 1, LeaderEpoch: 1, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 3}, Revision: 5}, now, 0)
	// Follower 3 has not fetched yet in this term, so the high watermark is
	// still 0: follower 2 at offset 4 is past it but short of the term's start.
	if join, err := p.followerFetched(2, 1, 4, now); err != nil || join {
		t.Fatalf("join at 4 of 10: %v %v", join, err)
	}
	if join, _ := p.followerFetched(2, 1, 10, now); !join {
		t.Fatal("a follower with the whole log was not asked to join")
	}
	if _, ok := p.beginISRChange(2); !ok {
		t.Fatal("no ISR change could begin")
	}
	if _, err := p.followerFetched(3, 1, 10, now); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.leaderAppend(oneBatch(t, 5), AcksLeader, 1, func() bool { return true }, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := p.followerFetched(3, 1, 15, now); err != nil {
		t.Fatal(err)
	}
	if hw := p.HighWatermark(); hw != 10 {
		t.Fatalf("high watermark %d while 2 (at 10) is joining; want 10", hw)
	}
	p.endISRChange()
}

// A state of another incarnation of the topic (deleted and created again
// under the same name) is not applied to this replica.
func TestPartitionIgnoresAnotherIncarnation(t *testing.T) {
	p := testPartition(t, 1)
	now := time.Now()
	p.applyState(metastore.PartitionState{Topic: "t", TopicID: "id-1", Leader: 1, LeaderEpoch: 5, Replicas: []int32{1, 2}, ISR: []int32{1, 2}, Revision: 10}, now, 0)
	p.applyState(metastore.PartitionState{Topic: "t", TopicID: "id-2", Leader: 2, LeaderEpoch: 0, Replicas: []int32{2, 1}, ISR: []int32{2, 1}, Revision: 20}, now, 0)
	if st, r := p.State(); r != roleLeader || st.TopicID != "id-1" || st.LeaderEpoch != 5 {
		t.Fatalf("after a state of another incarnation: role %v state %+v", r, st)
	}
	if _, err := p.followerFetched(2, 5, 0, now); err != nil {
		t.Fatal(err)
	}
}

func TestPartitionLastStableOffset(t *testing.T) {
	p := testPartition(t, 1)
	now := time.Now()
	st := metastore.PartitionState{Topic: "t", Leader: 1, LeaderEpoch: 3, Replicas: []int32{1, 2}, ISR: []int32{1, 2}, Revision: 10}
	p.applyState(st, now, 0)
	if _, _, err := p.leaderAppend(oneBatch(t, 5), AcksAll, 1, func() bool { return true }, 0); err != nil {
		t.Fatal(err)
	}
	fetched := func(leo int64) {
		t.Helper()
		if _, err := p.followerFetched(2, 3, leo, now); err != nil {
			t.Fatal(err)
		}
	}
	wantLSO := func(hw, lso int64) {
		t.Helper()
		if got := p.HighWatermark(); got != hw {
			t.Fatalf("high watermark %d, want %d", got, hw)
		}
		if got := p.LastStableOffset(); got != lso {
			t.Fatalf("last stable offset %d, want %d", got, lso)
		}
	}
	fetched(5)
	wantLSO(5, 5)

	// A transaction opens at 5 (appended to the log directly: produce
	// would verify it with a coordinator's state).
	b := record.NewBuilder(time.Now().UnixMilli(), 0)
	b.SetProducer(7, 0, 0)
	b.SetTransactional(true)
	b.Append(&record.Record{Value: []byte("a")})
	b.Append(&record.Record{Value: []byte("b")})
	data, err := b.Build(record.None)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.log.Append(append([]byte(nil), data...), 3); err != nil {
		t.Fatal(err)
	}
	fetched(7)
	wantLSO(7, 5) // committed, but not stable
	marker := record.BuildEndTxnMarker(record.EndTxnMarker{ProducerID: 7, Commit: true}, time.Now().UnixMilli())
	if _, err := p.log.Append(marker, 3); err != nil {
		t.Fatal(err)
	}
	wantLSO(7, 5) // ended in this log, but the marker is not replicated
	fetched(8)
	wantLSO(8, 8)
}
