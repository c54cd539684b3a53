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
	"github.com/strata-broker/strata/tiering"
	"github.com/strata-broker/strata/tiering/objstore"
)

// paddedBatch is one record by producer pid (-1: none), in its
// transaction when pid >= 0, large enough that a 1 KiB segment holds a few.
func paddedBatch(t *testing.T, pid int64) []byte {
	t.Helper()
	bld := record.NewBuilder(time.Now().UnixMilli(), 0)
	if pid >= 0 {
		bld.SetProducer(pid, 0, 0)
		bld.SetTransactional(true)
	}
	bld.Append(&record.Record{Value: fmt.Appendf(nil, "p%d-%0150d", pid, 0)})
	data, err := bld.Build(record.None)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), data...)
}

// A read_committed fetch of records that are only in the bucket carries the
// aborted transactions of what it returns (the Kafka path, which takes the
// batches where they lie) or leaves their batches out (the gRPC path), as
// reads of the local log do; read_uncommitted gets every record and no
// list.
func TestReadCommittedFromTheBucket(t *testing.T) {
	objects, err := objstore.Open(context.Background(), "file://"+t.TempDir(), objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := startBrokerWith(t, Config{ObjectStore: objects,
		Settings: smallSegments(map[string]string{"remote.log.manager.task.interval.ms": "50"})})
	if _, err := b.CreateTopic(context.Background(), TopicSpec{Name: "tx", Partitions: 1, Configs: map[string]string{
		"remote.storage.enable": "true", "segment.bytes": "1024", "local.retention.bytes": "1024",
	}}); err != nil {
		t.Fatal(err)
	}
	var p *Partition
	await.True(t, 30*time.Second, "leading tx-0", func() bool {
		p, err = b.hosted.leaderPartition("tx", 0)
		return err == nil
	})

	var aborted, kept []int64
	for range 2 {
		kept = append(kept, leaderAppendRaw(t, p, paddedBatch(t, -1)))
	}
	first := leaderAppendRaw(t, p, paddedBatch(t, 7))
	aborted = append(aborted, first)
	for range 8 { // over several segments
		kept = append(kept, leaderAppendRaw(t, p, paddedBatch(t, 8)))
		aborted = append(aborted, leaderAppendRaw(t, p, paddedBatch(t, 7)))
	}
	leaderAppendRaw(t, p, endTxn(8, true))
	marker := leaderAppendRaw(t, p, endTxn(7, false))
	for range 20 {
		kept = append(kept, leaderAppendRaw(t, p, paddedBatch(t, -1)))
	}
	await.True(t, 30*time.Second, "the transactions to be only in the bucket", func() bool {
		return p.log.LogStartOffset() > marker
	})
	end := p.log.LogStartOffset()
	inRange := func(offs []int64) []int64 {
		return slices.DeleteFunc(slices.Clone(offs), func(o int64) bool { return o >= end })
	}

	// fetchAll fetches from 0 to the bucket's end, a segment at a time,
	// and returns the data records' offsets and the aborted transactions
	// the fetches reported, each once (nil when every list was null).
	fetchAll := func(opts FetchOptions) (offsets []int64, ab []partlog.AbortedTxn) {
		t.Helper()
		opts.MaxBytes = 1 << 20
		for offset := int64(0); offset < end; {
			res, err := b.Fetch(context.Background(), []FetchPartition{{Topic: "tx", Partition: 0, Offset: offset, MaxBytes: 1 << 20}}, opts)
			if err != nil || res[0].Err != nil {
				t.Fatalf("fetch at %d: %v, %v", offset, err, res[0].Err)
			}
			r := res[0]
			if r.NextOffset <= offset {
				t.Fatalf("fetch at %d read nothing", offset)
			}
			if r.Pieces != nil {
				r.Data = slices.Concat(r.Pieces...)
			}
			offsets = append(offsets, offsetsIn(t, r, offset)...)
			for _, e := range r.Aborted {
				if !slices.Contains(ab, e) {
					ab = append(ab, e)
				}
			}
			if r.Aborted != nil && ab == nil {
				ab = []partlog.AbortedTxn{}
			}
			r.Release()
			offset = r.NextOffset
		}
		return offsets, ab
	}
	want := []partlog.AbortedTxn{{ProducerID: 7, FirstOffset: first, LastOffset: marker, LastStableOffset: marker + 1}}
	all := slices.Sorted(slices.Values(append(slices.Clone(kept), aborted...)))

	// Kafka's path: the batches as they lie, the client filters by the list.
	got, ab := fetchAll(FetchOptions{IsolationLevel: ReadCommitted, Pieces: true})
	if !slices.Equal(ab, want) || !slices.Equal(got, inRange(all)) {
		t.Fatalf("read_committed in pieces: aborted %+v (want %+v), offsets %v (want %v)", ab, want, got, inRange(all))
	}
	// gRPC's: the broker drops the aborted batches.
	got, ab = fetchAll(FetchOptions{IsolationLevel: ReadCommitted, DropAborted: true})
	if !slices.Equal(got, inRange(kept)) || !slices.Equal(ab, want) {
		t.Fatalf("read_committed, aborted dropped: offsets %v (want %v), aborted %+v (want %+v)", got, inRange(kept), ab, want)
	}
	got, ab = fetchAll(uncommitted)
	if !slices.Equal(got, inRange(all)) || ab != nil {
		t.Fatalf("read_uncommitted: offsets %v (want %v), aborted %+v (want a null list)", got, inRange(all), ab)
	}
}

// Remote compaction gives the cleaned segment the aborted transactions of
// the segments it replaces, so a read_committed fetch of it still reports
// them.
func TestRemoteCompactionKeepsAbortedTransactions(t *testing.T) {
	objects, err := objstore.Open(context.Background(), "file://"+t.TempDir(), objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := startBrokerWith(t, Config{ObjectStore: objects, Settings: smallSegments(map[string]string{
		"remote.log.manager.task.interval.ms": "50", "log.cleaner.backoff.ms": "50",
		"log.cleaner.dedupe.buffer.size": "1048576"})})
	if _, err := b.CreateTopic(context.Background(), TopicSpec{Name: "stock", Partitions: 1, Configs: map[string]string{
		"cleanup.policy": "compact", "remote.storage.enable": "true", "segment.bytes": "4096",
		"local.retention.bytes": "0", "min.cleanable.dirty.ratio": "0.2",
	}}); err != nil {
		t.Fatal(err)
	}
	var p *Partition
	await.True(t, 30*time.Second, "leading stock-0", func() bool {
		p, err = b.hosted.leaderPartition("stock", 0)
		return err == nil
	})
	const keys, rounds = 40, 60
	if err := produceKeyed(t, b, "stock", keys, 0, nil); err != nil {
		t.Fatal(err)
	}
	bld := record.NewBuilder(time.Now().UnixMilli(), 0)
	bld.SetProducer(7, 0, 0)
	bld.SetTransactional(true)
	for i := range 5 {
		bld.Append(&record.Record{Key: fmt.Appendf(nil, "aborted-%d", i), Value: []byte("x")})
	}
	batch, err := bld.Build(record.None)
	if err != nil {
		t.Fatal(err)
	}
	first := leaderAppendRaw(t, p, append([]byte(nil), batch...))
	marker := leaderAppendRaw(t, p, endTxn(7, false))
	for round := 1; round < rounds; round++ {
		if err := produceKeyed(t, b, "stock", keys, round, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.log.Flush(); err != nil {
		t.Fatal(err)
	}
	// The first remote segment, holding the transaction, is a cleaned one
	// once it reaches past the segments first uploaded (4 KiB each).
	var m *tiering.PartitionManifest
	await.True(t, 10*time.Second, "the remote segments holding the transaction to be compacted", func() bool {
		m, _ = p.remoteManifest()
		return m != nil && m.CompactedTo > marker && len(m.Segments) > 0 && m.Segments[0].BaseOffset == 0 &&
			m.Segments[0].Size < 4096 && m.Segments[0].NextOffset > marker && p.log.LogStartOffset() > marker
	})
	want := []partlog.AbortedTxn{{ProducerID: 7, FirstOffset: first, LastOffset: marker, LastStableOffset: marker + 1}}
	x, err := tiering.ReadTxnIndex(context.Background(), objects, m.Segments[0])
	if err != nil || !slices.Equal(x.Aborted, want) {
		t.Fatalf("the cleaned segment's aborted transactions: %+v, %v; want %+v", x.Aborted, err, want)
	}
	res, err := b.Fetch(context.Background(), []FetchPartition{{Topic: "stock", Partition: 0, Offset: 0, MaxBytes: 1 << 20}},
		FetchOptions{MaxBytes: 1 << 20, IsolationLevel: ReadCommitted})
	if err != nil || res[0].Err != nil || !slices.Equal(res[0].Aborted, want) {
		t.Fatalf("read_committed fetch of the cleaned segment: aborted %+v, %v, %v; want %+v", res[0].Aborted, err, res[0].Err, want)
	}
}
