package broker

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
)

// Transactions are opened here by appending transactional batches to the
// leader's log directly: Produce does not take them yet.

// txnBatch builds a batch of n records by producer pid (-1: none), in its
// transaction when txn, with timestamp ts.
func txnBatch(t *testing.T, pid int64, txn bool, n int, ts int64) []byte {
	t.Helper()
	bld := record.NewBuilder(ts, 0)
	if pid >= 0 {
		bld.SetProducer(pid, 0, 0)
	}
	bld.SetTransactional(txn)
	for i := range n {
		bld.Append(&record.Record{Value: fmt.Appendf(nil, "p%d-%d", pid, i)})
	}
	data, err := bld.Build(record.None)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), data...)
}

// endTxn builds pid's commit or abort marker.
func endTxn(pid int64, commit bool) []byte {
	return record.BuildEndTxnMarker(record.EndTxnMarker{ProducerID: pid, Commit: commit, CoordinatorEpoch: 1}, time.Now().UnixMilli())
}

// leaderAppendRaw appends batches to p's log as its leader would, and
// returns their base offset.
func leaderAppendRaw(t *testing.T, p *Partition, batches []byte) int64 {
	t.Helper()
	p.mu.Lock()
	epoch := p.leaderEpoch
	p.mu.Unlock()
	res, err := p.log.Append(batches, epoch)
	if err != nil {
		t.Fatal(err)
	}
	p.appendedAsLeader()
	return res.FirstOffset
}

// singleLeader starts a broker with a topic "tx" of one partition and
// returns that partition.
func singleLeader(t *testing.T) (*Broker, *Partition) {
	t.Helper()
	b, _ := startBroker(t)
	if _, err := b.CreateTopic(context.Background(), TopicSpec{Name: "tx", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	var p *Partition
	await.True(t, 30*time.Second, "leading tx-0", func() bool {
		var err error
		p, err = b.hosted.leaderPartition("tx", 0)
		return err == nil
	})
	return b, p
}

func fetchTx(t *testing.T, b *Broker, offset int64, opts FetchOptions) FetchResult {
	t.Helper()
	res, err := b.Fetch(context.Background(), []FetchPartition{{Topic: "tx", Partition: 0, Offset: offset}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	return res[0]
}

// offsetsIn lists the offsets of the data records in res at or after from.
func offsetsIn(t *testing.T, res FetchResult, from int64) []int64 {
	t.Helper()
	var out []int64
	it := record.NewBatches(res.Data)
	for it.Next() {
		if h := it.Header(); h.Control() {
			continue
		}
		if err := record.ForEach(it.Bytes(), func(r *record.Record) error {
			if r.Offset >= from {
				out = append(out, r.Offset)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

var (
	uncommitted = FetchOptions{}
	committed   = FetchOptions{IsolationLevel: ReadCommitted}
)

// A read_committed fetch stops at the first offset of the open transaction
// and, once it aborts, carries it in the aborted list; read_uncommitted
// reads everything and never gets the list. ListOffsets follows the same
// ends.
func TestReadCommittedStopsAtLastStableOffset(t *testing.T) {
	b, p := singleLeader(t)
	base := time.Now().UnixMilli()
	leaderAppendRaw(t, p, txnBatch(t, -1, false, 2, base))    // 0-1
	leaderAppendRaw(t, p, txnBatch(t, 7, true, 2, base+1))    // 2-3, producer 7's transaction
	leaderAppendRaw(t, p, txnBatch(t, -1, false, 1, base+10)) // 4
	if hw, lso := p.HighWatermark(), p.LastStableOffset(); hw != 5 || lso != 2 {
		t.Fatalf("high watermark %d, last stable offset %d; want 5, 2", hw, lso)
	}

	res := fetchTx(t, b, 0, uncommitted)
	if got := offsetsIn(t, res, 0); !slices.Equal(got, []int64{0, 1, 2, 3, 4}) || res.Aborted != nil {
		t.Fatalf("read_uncommitted: offsets %v, aborted %v; want 0-4 and a null list", got, res.Aborted)
	}
	if res.HighWatermark != 5 || res.LastStableOffset != 2 {
		t.Fatalf("read_uncommitted: high watermark %d, last stable offset %d; want 5, 2", res.HighWatermark, res.LastStableOffset)
	}
	res = fetchTx(t, b, 0, committed)
	if got := offsetsIn(t, res, 0); !slices.Equal(got, []int64{0, 1}) || res.NextOffset != 2 {
		t.Fatalf("read_committed: offsets %v, next %d; want 0-1, next 2", got, res.NextOffset)
	}
	if res.Aborted == nil || len(res.Aborted) != 0 || res.LastStableOffset != 2 || res.HighWatermark != 5 {
		t.Fatalf("read_committed: aborted %#v, last stable offset %d, high watermark %d; want an empty list, 2, 5",
			res.Aborted, res.LastStableOffset, res.HighWatermark)
	}
	// At the last stable offset: nothing yet, not out of range.
	if res := fetchTx(t, b, 2, committed); len(res.Data) != 0 {
		t.Fatalf("read_committed at the last stable offset: %d bytes", len(res.Data))
	}

	for _, c := range []struct {
		iso    IsolationLevel
		ts     int64
		off    int64
		exists bool
	}{
		{ReadUncommitted, LatestTimestamp, 5, true},
		{ReadCommitted, LatestTimestamp, 2, true},
		{ReadUncommitted, base + 10, 4, true},
		{ReadCommitted, base + 10, 0, false}, // offset 4 lies past the last stable offset
		{ReadCommitted, base, 0, true},
	} {
		off, _, found, err := b.ListOffset("tx", 0, c.ts, c.iso)
		if err != nil || found != c.exists || found && off != c.off {
			t.Fatalf("ListOffset(%d, isolation %d) = %d, found %v, %v; want %d, found %v", c.ts, c.iso, off, found, err, c.off, c.exists)
		}
	}

	leaderAppendRaw(t, p, endTxn(7, false)) // 5
	res = fetchTx(t, b, 0, committed)
	want := []partlog.AbortedTxn{{ProducerID: 7, FirstOffset: 2, LastOffset: 5, LastStableOffset: 6}}
	if got := offsetsIn(t, res, 0); !slices.Equal(got, []int64{0, 1, 2, 3, 4}) || !slices.Equal(res.Aborted, want) || res.LastStableOffset != 6 {
		t.Fatalf("read_committed after the abort: offsets %v, aborted %+v, last stable offset %d; want 0-4, %+v, 6",
			got, res.Aborted, res.LastStableOffset, want)
	}
	// Past the abort marker, the list is empty again.
	if res := fetchTx(t, b, 6, committed); len(res.Aborted) != 0 {
		t.Fatalf("read_committed past the marker: aborted %+v", res.Aborted)
	}
	if res := fetchTx(t, b, 0, uncommitted); res.Aborted != nil {
		t.Fatalf("read_uncommitted after the abort: aborted %+v, want null", res.Aborted)
	}

	// Dropped by the broker (the gRPC path): the aborted records are gone,
	// and the next offset is past them all.
	res = fetchTx(t, b, 0, FetchOptions{IsolationLevel: ReadCommitted, DropAborted: true})
	if got := offsetsIn(t, res, 0); !slices.Equal(got, []int64{0, 1, 4}) || res.NextOffset != 6 {
		t.Fatalf("aborted dropped: offsets %v, next %d; want 0, 1, 4 and next 6", got, res.NextOffset)
	}
	res = fetchTx(t, b, 2, FetchOptions{IsolationLevel: ReadCommitted, DropAborted: true, MaxBytes: 1})
	if got := offsetsIn(t, res, 0); len(got) != 0 || res.NextOffset != 4 {
		t.Fatalf("only an aborted batch read: offsets %v, next %d; want none, next 4", got, res.NextOffset)
	}

	// In the fetch's pooled buffer, dropped in place; a buffer left with
	// nothing goes back to the pool at once.
	pool := &dirtyPool{}
	res = fetchTx(t, b, 0, FetchOptions{IsolationLevel: ReadCommitted, DropAborted: true, Buffers: pool})
	if got := offsetsIn(t, res, 0); !slices.Equal(got, []int64{0, 1, 4}) || res.Buffer == nil || &(*res.Buffer)[0] != &res.Data[0] {
		t.Fatalf("pooled: offsets %v, buffer %p; want 0, 1, 4 as a prefix of the pooled buffer", got, res.Buffer)
	}
	pool.Put(res.Buffer)
	res = fetchTx(t, b, 2, FetchOptions{IsolationLevel: ReadCommitted, DropAborted: true, MaxBytes: 1, Buffers: pool})
	if len(res.Data) != 0 || res.Buffer != nil || pool.gets.Load() != pool.puts.Load() {
		t.Fatalf("pooled, all dropped: %d bytes, buffer %p, %d gets, %d puts; want the buffer given back",
			len(res.Data), res.Buffer, pool.gets.Load(), pool.puts.Load())
	}
}

// A read_committed long poll at the last stable offset waits, and is
// answered once the transaction ends.
func TestReadCommittedLongPollWakesWhenTransactionEnds(t *testing.T) {
	b, p := singleLeader(t)
	leaderAppendRaw(t, p, txnBatch(t, 9, true, 3, time.Now().UnixMilli())) // 0-2
	got := make(chan FetchResult, 1)
	go func() {
		res, err := b.Fetch(context.Background(), []FetchPartition{{Topic: "tx", Partition: 0, Offset: 0}},
			FetchOptions{IsolationLevel: ReadCommitted, MinBytes: 1, MaxWait: 30 * time.Second})
		if err != nil {
			res = []FetchResult{{Err: err}}
		}
		got <- res[0]
	}()
	await.True(t, 30*time.Second, "the fetch waiting", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.waiters) > 0
	})
	select {
	case res := <-got:
		t.Fatalf("read_committed fetch answered with the transaction open: %d bytes, %v", len(res.Data), res.Err)
	default:
	}
	leaderAppendRaw(t, p, endTxn(9, true))
	select {
	case res := <-got:
		if res.Err != nil || !slices.Equal(offsetsIn(t, res, 0), []int64{0, 1, 2}) || res.LastStableOffset != 4 {
			t.Fatalf("after the commit: offsets %v, last stable offset %d, %v", offsetsIn(t, res, 0), res.LastStableOffset, res.Err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the read_committed long poll was not woken by the commit")
	}
}

// A follower serving consumers (KIP-392) holds them to its own last stable
// offset: a replicated marker leaves it at the transaction's first offset
// while the high watermark is below the marker (a replica of the ISR has
// not fetched it), and the high watermark passing the marker wakes them.
func TestFollowerServesReadCommittedUpToItsLastStableOffset(t *testing.T) {
	c := rackCluster(t, "", 2) // 0-1 on brokers 1 (leader), 2 and 3
	leader, err := c.core(1).hosted.leaderPartition("r", 0)
	if err != nil {
		t.Fatal(err)
	}
	leaderAppendRaw(t, leader, txnBatch(t, 5, true, 2, time.Now().UnixMilli())) // 2-3
	follower := c.core(2)
	await.True(t, 30*time.Second, "broker 2 knowing 2-3 committed", func() bool {
		return c.hosted(2, "r", 0).HighWatermark() == 4
	})
	opts := FetchOptions{FollowerReads: true, IsolationLevel: ReadCommitted}
	if res := fetchOne(t, follower, 0, opts); res.Err != nil || recordsIn(t, res, 0) != 2 || res.LastStableOffset != 2 {
		t.Fatalf("follower, transaction open: %d records, last stable offset %d, %v; want 2 records, 2",
			recordsIn(t, res, 0), res.LastStableOffset, res.Err)
	}

	// Broker 3 stops fetching but stays in the ISR for a while: the high
	// watermark stays below the marker.
	c.stop(3)
	got := make(chan FetchResult, 1)
	go func() {
		o := opts
		o.MinBytes, o.MaxWait = 1, 30*time.Second
		res, err := follower.Fetch(context.Background(), []FetchPartition{{Topic: "r", Partition: 0, Offset: 2}}, o)
		if err != nil {
			res = []FetchResult{{Err: err}}
		}
		got <- res[0]
	}()
	leaderAppendRaw(t, leader, endTxn(5, true)) // 4
	p2 := c.hosted(2, "r", 0)
	await.True(t, 30*time.Second, "broker 2 having the marker", func() bool { return p2.LogEndOffset() == 5 })
	if hw, lso := p2.HighWatermark(), p2.LastStableOffset(); hw != 4 || lso != 2 {
		t.Fatalf("follower with the marker below the high watermark: high watermark %d, last stable offset %d; want 4, 2", hw, lso)
	}
	select {
	case res := <-got:
		t.Fatalf("follower answered before the marker was replicated: %d records from 2, last stable offset %d, %v", recordsIn(t, res, 2), res.LastStableOffset, res.Err)
	default:
	}
	c.start(3) // fetches the marker: the high watermark passes it
	select {
	case res := <-got:
		// The two records and the marker.
		if res.Err != nil || recordsIn(t, res, 2) != 3 || res.LastStableOffset != 5 {
			t.Fatalf("follower after the commit: %d records from 2, last stable offset %d, %v", recordsIn(t, res, 2), res.LastStableOffset, res.Err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a read_committed consumer of the follower was not woken when the high watermark passed the marker")
	}
}

// dropAborted keeps every batch but the aborted transaction's: other
// producers' transactional batches, batches outside transactions, markers.
func TestDropAbortedKeepsAllButAbortedBatches(t *testing.T) {
	ts := time.Now().UnixMilli()
	var data []byte
	var kept []int64
	next := int64(0)
	add := func(batch []byte, keep bool) {
		h, err := record.ParseHeader(batch)
		if err != nil {
			t.Fatal(err)
		}
		off := next
		record.SetBaseOffset(batch, off)
		next = off + int64(h.LastOffsetDelta) + 1
		if keep {
			kept = append(kept, off)
		}
		data = append(data, batch...)
	}
	add(txnBatch(t, -1, false, 1, ts), true) // 0
	add(txnBatch(t, 7, true, 2, ts), false)  // 1-2: aborted
	add(txnBatch(t, 8, true, 1, ts), true)   // 3: another producer's
	add(txnBatch(t, 7, true, 1, ts), false)  // 4: aborted
	add(endTxn(7, false), true)              // 5: the marker
	add(txnBatch(t, 7, false, 1, ts), true)  // 6: producer 7 again, not transactional
	aborted := []partlog.AbortedTxn{{ProducerID: 7, FirstOffset: 1, LastOffset: 5}}

	bases := func(b []byte) []int64 {
		var out []int64
		it := record.NewBatches(b)
		for it.Next() {
			out = append(out, it.Header().BaseOffset)
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	orig := append([]byte(nil), data...)
	if got := bases(dropAborted(data, aborted, false)); !slices.Equal(got, kept) {
		t.Fatalf("copied: batches at %v, want %v", got, kept)
	}
	if !slices.Equal(data, orig) {
		t.Fatal("dropAborted without inPlace changed its input")
	}
	if got := bases(dropAborted(data, aborted, true)); !slices.Equal(got, kept) {
		t.Fatalf("in place: batches at %v, want %v", got, kept)
	}
	if got := dropAborted(orig, nil, true); len(got) != len(orig) {
		t.Fatalf("nothing aborted: %d bytes of %d", len(got), len(orig))
	}
}
