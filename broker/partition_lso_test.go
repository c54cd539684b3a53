package broker

import (
	"testing"
	"time"

	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
)

// The last stable offset follows Kafka's rule: a transaction's marker
// appended by the leader leaves it at the transaction's first offset until
// a follower has the marker and the high watermark passes it; that move
// of the high watermark wakes the long polls (read_committed ones wait on
// the last stable offset).
func TestLastStableOffsetWaitsForTheMarkerOnTheISR(t *testing.T) {
	p := testPartition(t, 1)
	now := time.Now()
	st := metastore.PartitionState{Topic: "t", Leader: 1, LeaderEpoch: 3, Replicas: []int32{1, 2}, ISR: []int32{1, 2}, Revision: 10}
	p.applyState(st, now, 0)
	leaseOK := func() bool { return true }
	if _, _, err := p.leaderAppend(oneBatch(t, 2), AcksAll, 1, leaseOK, 0); err != nil {
		t.Fatal(err)
	}
	const pid = 7
	// As if its coordinator had verified the transaction for this request
	// (txnproduce.go).
	g := &txnGuard{epoch: 0, leaderEpoch: 3, verified: true}
	p.producers.guards = map[int64]*txnGuard{pid: g}
	res, _, err := p.leaderAppendVerified(markerTxnBatch(t, pid, 0, 0, 3), AcksAll, 1, leaseOK, 0, map[int64]*txnGuard{pid: g})
	if err != nil {
		t.Fatal(err)
	}
	first := res.FirstOffset
	if _, err := p.followerFetched(2, 3, p.LogEndOffset(), now); err != nil {
		t.Fatal(err)
	}
	if lso, hw := p.LastStableOffset(), p.HighWatermark(); lso != first || hw != p.LogEndOffset() {
		t.Fatalf("open transaction: last stable offset %d, high watermark %d; want %d, %d", lso, hw, first, p.LogEndOffset())
	}

	marker, _, err := p.appendMarker(record.EndTxnMarker{ProducerID: pid, Commit: true, CoordinatorEpoch: 1}, 1, leaseOK, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	if p.txnOpen(pid) {
		t.Fatal("transaction still open in the leader's log after its marker")
	}
	if lso := p.LastStableOffset(); lso != first {
		t.Fatalf("last stable offset %d with the marker at %d on the leader only, want the transaction's first offset %d", lso, marker, first)
	}
	wake := make(chan struct{}, 1)
	p.addWaiter(wake)
	defer p.removeWaiter(wake)
	// A fetch by the follower still without the marker changes nothing.
	if _, err := p.followerFetched(2, 3, marker, now); err != nil {
		t.Fatal(err)
	}
	if lso := p.LastStableOffset(); lso != first {
		t.Fatalf("last stable offset %d with the follower at the marker %d, want %d", lso, marker, first)
	}
	select {
	case <-wake:
		t.Fatal("long polls woken though nothing they can read changed")
	default:
	}
	// The follower has the marker: the transaction is decided.
	if _, err := p.followerFetched(2, 3, marker+1, now); err != nil {
		t.Fatal(err)
	}
	if lso := p.LastStableOffset(); lso != marker+1 {
		t.Fatalf("last stable offset %d once the follower has the marker, want %d", lso, marker+1)
	}
	select {
	case <-wake:
	default:
		t.Fatal("long polls not woken when the last stable offset moved")
	}
}

// cutBefore keeps whole batches starting before the offset, and the offset
// after the last one kept.
func TestCutBeforeKeepsTheBatchesBeforeTheOffset(t *testing.T) {
	ts := time.Now().UnixMilli()
	var data []byte
	var bases []int64
	next := int64(10)
	for _, n := range []int{2, 3, 1} {
		b := txnBatch(t, 5, true, n, ts)
		record.SetBaseOffset(b, next)
		bases = append(bases, next)
		data = append(data, b...)
		next += int64(n)
	}
	rr := partlog.ReadResult{Data: data, NextOffset: next}
	for _, c := range []struct {
		at, next int64
		batches  int
	}{
		{bases[0], bases[0], 0},
		{bases[1], bases[1], 1},
		{bases[2], bases[2], 2},
		{next, next, 3},
	} {
		got := cutBefore(rr, c.at)
		n := 0
		it := record.NewBatches(got.Data)
		for it.Next() {
			n++
		}
		if it.Err() != nil || n != c.batches || got.NextOffset != c.next {
			t.Fatalf("cut at %d: %d batches up to %d (%v), want %d up to %d", c.at, n, got.NextOffset, it.Err(), c.batches, c.next)
		}
	}
}
