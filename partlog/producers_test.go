package partlog

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/strata-broker/strata/record"
)

// WalkTailHeaders visits a suffix of the log's batches, in order and without
// gaps, that ends at the log end and fits within the byte budget.
func TestWalkTailHeadersVisitsBoundedSuffix(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 4096, IndexIntervalBytes: 512})
	l := e.open()
	w := newWriter(t, l)
	w.appendMany(60, 4, 100)
	if n := len(l.Segments()); n < 3 {
		t.Fatalf("%d segments, want several", n)
	}

	walk := func(budget int64) []record.Header {
		t.Helper()
		var out []record.Header
		if err := l.WalkTailHeaders(budget, func(h *record.Header) { out = append(out, *h) }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	check := func(budget int64, got []record.Header) {
		t.Helper()
		if len(got) == 0 {
			t.Fatalf("budget %d: no batches", budget)
		}
		size := int64(0)
		for i, h := range got {
			size += int64(h.Size())
			if i > 0 && h.BaseOffset != got[i-1].NextOffset() {
				t.Fatalf("budget %d: batch %d at %d after one ending at %d", budget, i, h.BaseOffset, got[i-1].NextOffset())
			}
		}
		if last := got[len(got)-1]; last.NextOffset() != l.LogEndOffset() {
			t.Fatalf("budget %d: walk ends at %d, log end is %d", budget, last.NextOffset(), l.LogEndOffset())
		}
		if size > budget {
			t.Fatalf("budget %d: walked %d bytes", budget, size)
		}
	}

	all := walk(1 << 30)
	check(1<<30, all)
	if all[0].BaseOffset != 0 || len(all) != len(w.batches) {
		t.Fatalf("large budget: %d batches from %d, want all %d from 0", len(all), all[0].BaseOffset, len(w.batches))
	}
	for _, budget := range []int64{3000, 5000, 9000} {
		got := walk(budget)
		check(budget, got)
		if len(got) == len(all) {
			t.Fatalf("budget %d: walked the whole log", budget)
		}
	}

	// After a reopen (indexes loaded or rebuilt) the walk is the same.
	l = e.reopen(l)
	check(1<<30, walk(1<<30))
}

// producerBatch is an idempotent producer's batch of n records from
// sequence seq, at offset base.
func producerBatch(t testing.TB, id int64, epoch int16, seq int32, n int, base int64) []byte {
	t.Helper()
	bld := record.NewBuilder(tsBase, 0)
	bld.SetProducer(id, epoch, seq)
	for range n {
		bld.Append(&record.Record{Timestamp: tsBase, Value: []byte("v")})
	}
	out, err := bld.Build(record.None)
	if err != nil {
		t.Fatal(err)
	}
	out = bytes.Clone(out)
	record.SetBaseOffset(out, base)
	return out
}

func header(t testing.TB, batch []byte) *record.Header {
	t.Helper()
	h, err := record.ParseHeader(batch)
	if err != nil {
		t.Fatal(err)
	}
	return &h
}

// The state keeps at most MaxEntries producers and evicts the one recorded
// longest ago; looking a producer up does not make it recent.
func TestProducerStatesEvictLeastRecentlyUsed(t *testing.T) {
	evicted := 0
	ps := NewProducerStates(ProducerStateConfig{MaxEntries: 3, Evicted: func(n int) { evicted += n }})
	now := time.Unix(1_700_000_000, 0)
	off := int64(0)
	rec := func(id int64) {
		t.Helper()
		ps.Record(header(t, producerBatch(t, id, 0, 0, 1, off)), now)
		off++
	}
	known := func() []int64 {
		var ids []int64
		for id := int64(1); id <= 6; id++ {
			if ps.Get(id, now) != nil {
				ids = append(ids, id)
			}
		}
		return ids
	}
	rec(1)
	rec(2)
	rec(3)
	rec(1) // 2 is now the least recently used
	rec(4)
	if got := known(); !slices.Equal(got, []int64{1, 3, 4}) || evicted != 1 || ps.Len() != 3 {
		t.Fatalf("after 1,2,3,1,4 with room for 3: known %v, %d evicted, len %d; want [1 3 4], 1, 3", got, evicted, ps.Len())
	}
	if ps.Get(3, now) == nil { // a lookup, not a use
		t.Fatal("3 unknown")
	}
	rec(5)
	if got := known(); !slices.Equal(got, []int64{1, 4, 5}) || evicted != 2 {
		t.Fatalf("after 5: known %v, %d evicted; want [1 4 5], 2", got, evicted)
	}
	// A recycled entry keeps nothing of the producer it held.
	if e := ps.Get(5, now); e.Epoch != 0 || len(e.Batches) != 1 || e.Batches[0].FirstOffset != off-1 {
		t.Fatalf("new entry %+v", e)
	}
}

// Lookups that start at the most recently used producer find each
// producer's own entry, also once that entry was recycled for another
// producer or has expired.
func TestProducerStatesLookupByRecency(t *testing.T) {
	ps := NewProducerStates(ProducerStateConfig{MaxEntries: 2, Expiry: time.Minute})
	now := time.Unix(1_700_000_000, 0)
	ps.Record(header(t, producerBatch(t, 1, 0, 0, 1, 0)), now)
	ps.Record(header(t, producerBatch(t, 2, 3, 0, 1, 1)), now)
	if e := ps.Get(1, now); e == nil || e.Epoch != 0 || e.Batches[0].FirstOffset != 0 {
		t.Fatalf("producer 1 behind the most recent: %+v", e)
	}
	if e := ps.Get(2, now); e == nil || e.Epoch != 3 || e.Batches[0].FirstOffset != 1 {
		t.Fatalf("the most recent producer 2: %+v", e)
	}
	// Producer 3 takes over the entry of 1, the least recently used.
	ps.Record(header(t, producerBatch(t, 3, 5, 0, 1, 2)), now)
	if e := ps.Get(1, now); e != nil {
		t.Fatalf("evicted producer 1 still found: %+v", e)
	}
	if e := ps.Get(3, now); e == nil || e.Epoch != 5 || e.Batches[0].FirstOffset != 2 {
		t.Fatalf("producer 3 in a recycled entry: %+v", e)
	}
	// Producer 2 again: recorded in its own entry, not in 3's.
	ps.Record(header(t, producerBatch(t, 2, 3, 1, 1, 3)), now)
	if e := ps.Get(2, now); e == nil || len(e.Batches) != 2 || e.Batches[1].FirstOffset != 3 {
		t.Fatalf("producer 2 after another batch: %+v", e)
	}
	if e := ps.Get(3, now); e == nil || len(e.Batches) != 1 {
		t.Fatalf("producer 3 after producer 2's batch: %+v", e)
	}
	if e := ps.Get(2, now.Add(time.Minute)); e != nil {
		t.Fatalf("the most recent producer 2 past its expiry: %+v", e)
	}
}

// A producer not seen for Expiry is unknown, and dropped when another one
// is recorded; that is not an eviction.
func TestProducerStatesExpire(t *testing.T) {
	evicted := 0
	ps := NewProducerStates(ProducerStateConfig{Expiry: time.Minute, MaxEntries: 10, Evicted: func(n int) { evicted += n }})
	t0 := time.Unix(1_700_000_000, 0)
	ps.Record(header(t, producerBatch(t, 1, 0, 0, 1, 0)), t0)
	ps.Record(header(t, producerBatch(t, 2, 0, 0, 1, 1)), t0.Add(30*time.Second))
	later := t0.Add(61 * time.Second)
	if ps.Get(1, later) != nil || ps.Get(2, later) == nil {
		t.Fatal("at 61s: want 1 expired, 2 known")
	}
	ps.Record(header(t, producerBatch(t, 3, 0, 0, 1, 2)), later)
	if ps.Len() != 2 || evicted != 0 {
		t.Fatalf("len %d, %d evicted after recording past the expiry; want 2, 0", ps.Len(), evicted)
	}
	// An expired producer recorded again starts afresh.
	ps.Record(header(t, producerBatch(t, 2, 0, 7, 1, 3)), t0.Add(200*time.Second))
	if e := ps.Get(2, t0.Add(200*time.Second)); e == nil || len(e.Batches) != 1 || e.Batches[0].FirstSeq != 7 {
		t.Fatalf("re-recorded producer: %+v", e)
	}
}

// Only a producer's latest MaxProducerBatches batches of its latest epoch
// are kept; a batch of an older epoch changes nothing.
func TestProducerStatesLatestBatches(t *testing.T) {
	ps := NewProducerStates(ProducerStateConfig{})
	now := time.Unix(1_700_000_000, 0)
	for i := range int32(7) {
		ps.Record(header(t, producerBatch(t, 9, 1, 2*i, 2, int64(2*i))), now)
	}
	e := ps.Get(9, now)
	if len(e.Batches) != MaxProducerBatches {
		t.Fatalf("%d batches kept, want %d", len(e.Batches), MaxProducerBatches)
	}
	if _, ok := e.Find(2, 3); ok {
		t.Fatal("second batch still found")
	}
	if m, ok := e.Find(12, 13); !ok || m.FirstOffset != 12 || m.LastOffset != 13 {
		t.Fatalf("last batch: %+v, %v", m, ok)
	}
	ps.Record(header(t, producerBatch(t, 9, 0, 14, 1, 14)), now)
	if e := ps.Get(9, now); e.Epoch != 1 || len(e.Batches) != MaxProducerBatches {
		t.Fatalf("older epoch changed the state: %+v", e)
	}
	ps.Record(header(t, producerBatch(t, 9, 2, 0, 1, 15)), now)
	if e := ps.Get(9, now); e.Epoch != 2 || len(e.Batches) != 1 {
		t.Fatalf("newer epoch: %+v", e)
	}
}

// Rebuilding the state from a log written by many more producers than the
// bound keeps the most recent ones, and allocates for them only, not for
// every producer in the log.
func TestProducerStatesLoadBounded(t *testing.T) {
	const producers, maxEntries = 5000, 100
	e := newEnv(t, Config{SegmentBytes: 64 << 10})
	l := e.open()
	for id := range int64(producers) {
		if _, err := l.Append(producerBatch(t, id, 0, 0, 1, 0), 1); err != nil {
			t.Fatal(err)
		}
	}
	// A producer written again at the end.
	for seq := range int32(3) {
		if _, err := l.Append(producerBatch(t, 1, 0, seq+1, 1, 0), 1); err != nil {
			t.Fatal(err)
		}
	}
	l = e.reopen(l)

	evicted := 0
	ps := NewProducerStates(ProducerStateConfig{MaxEntries: maxEntries, Evicted: func(n int) { evicted += n }})
	now := time.Unix(1_700_000_000, 0)
	if _, err := ps.Load(l, 1<<30, now); err != nil {
		t.Fatal(err)
	}
	if ps.Len() != maxEntries || evicted != producers+1-maxEntries {
		t.Fatalf("loaded %d producers, evicted %d; want %d, %d", ps.Len(), evicted, maxEntries, producers+1-maxEntries)
	}
	for id := range int64(producers) {
		e := ps.Get(id, now)
		recent := id == 1 || id >= producers-maxEntries+1
		if (e != nil) != recent {
			t.Fatalf("producer %d known: %v, want %v", id, e != nil, recent)
		}
		if e != nil && id != 1 && (len(e.Batches) != 1 || e.Batches[0].FirstOffset != id) {
			t.Fatalf("producer %d: %+v, want its batch at offset %d", id, e.Batches, id)
		}
	}
	// Producer 1's first batch was evicted long before its last three.
	if e := ps.Get(1, now); len(e.Batches) != 3 || e.Batches[0].FirstSeq != 1 || e.Batches[2].FirstOffset != producers+2 {
		t.Fatalf("producer 1: %+v", e.Batches)
	}

	allocs := testing.AllocsPerRun(1, func() {
		if _, err := ps.Load(l, 1<<30, now); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 5*maxEntries {
		t.Fatalf("loading %d producers into room for %d took %v allocations", producers, maxEntries, allocs)
	}
}

// An end-transaction marker moves its producer to the marker's epoch (a
// coordinator fencing the producer bumps it), keeps the coordinator epoch
// and the marker, and a data batch of the same epoch keeps them; a newer
// epoch forgets the marker. Loading from the log gets the epoch from a
// marker's header, and neither the coordinator epoch nor the marker.
func TestProducerStatesRecordMarker(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	ps := NewProducerStates(ProducerStateConfig{})
	ps.Record(header(t, producerBatch(t, 9, 0, 0, 2, 10)), now)
	marker := func(epoch int16, commit bool, coordinatorEpoch int32, base int64) []byte {
		b := record.BuildEndTxnMarker(record.EndTxnMarker{ProducerID: 9, ProducerEpoch: epoch, Commit: commit, CoordinatorEpoch: coordinatorEpoch}, tsBase)
		record.SetBaseOffset(b, base)
		return b
	}
	m := record.EndTxnMarker{ProducerID: 9, ProducerEpoch: 1, CoordinatorEpoch: 4}
	ps.RecordMarker(header(t, marker(1, false, 4, 12)), &m, now)
	e := ps.Get(9, now)
	if e.Epoch != 1 || len(e.Batches) != 0 || e.CoordinatorEpoch != 4 || !e.HasMarker || e.Marker != (ProducerMarker{Commit: false, Offset: 12}) {
		t.Fatalf("after an abort of epoch 1: %+v", e)
	}
	ps.Record(header(t, producerBatch(t, 9, 1, 0, 1, 13)), now)
	if e := ps.Get(9, now); e.CoordinatorEpoch != 4 || !e.HasMarker || len(e.Batches) != 1 {
		t.Fatalf("a batch of the same epoch lost the marker: %+v", e)
	}
	// A marker of an older epoch, as only a follower's log can hold, changes nothing.
	old := record.EndTxnMarker{ProducerID: 9, ProducerEpoch: 0, CoordinatorEpoch: 9}
	ps.RecordMarker(header(t, marker(0, true, 9, 14)), &old, now)
	if e := ps.Get(9, now); e.Epoch != 1 || e.CoordinatorEpoch != 4 || e.Marker.Offset != 12 {
		t.Fatalf("an older epoch's marker changed the state: %+v", e)
	}
	ps.Record(header(t, producerBatch(t, 9, 2, 0, 1, 15)), now)
	if e := ps.Get(9, now); e.HasMarker || e.CoordinatorEpoch != 4 {
		t.Fatalf("a new epoch kept the old epoch's marker, or lost the coordinator epoch: %+v", e)
	}

	env := newEnv(t, Config{})
	l := env.open()
	for _, b := range [][]byte{producerBatch(t, 9, 0, 0, 2, 0), marker(3, true, 4, 0)} {
		if _, err := l.Append(b, 1); err != nil {
			t.Fatal(err)
		}
	}
	loaded := NewProducerStates(ProducerStateConfig{})
	if _, err := loaded.Load(l, 1<<30, now); err != nil {
		t.Fatal(err)
	}
	if e := loaded.Get(9, now); e == nil || e.Epoch != 3 || e.CoordinatorEpoch != -1 || e.HasMarker || len(e.Batches) != 0 {
		t.Fatalf("loaded %+v, want epoch 3 from the marker and nothing else", e)
	}
}
