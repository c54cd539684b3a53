package compaction

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/fakeclock"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
)

// txnWriter appends transactional batches and markers to a log, as a
// partition leader would write them.
type txnWriter struct {
	t     *testing.T
	l     *partlog.Log
	clock *fakeclock.Clock
}

// data appends one transactional batch of key=value pairs for producer pid
// and returns its base offset.
func (w txnWriter) data(pid int64, kvs ...string) int64 {
	w.t.Helper()
	ts := w.clock.Now().UnixMilli()
	b := record.NewBuilder(ts, 0)
	b.SetProducer(pid, 0, 0)
	b.SetTransactional(true)
	for i := 0; i < len(kvs); i += 2 {
		b.Append(&record.Record{Timestamp: ts, Key: []byte(kvs[i]), Value: []byte(kvs[i+1])})
	}
	batch, err := b.Build(record.None)
	if err != nil {
		w.t.Fatal(err)
	}
	res, err := w.l.Append(batch, 1)
	if err != nil {
		w.t.Fatal(err)
	}
	return res.FirstOffset
}

// end appends pid's commit or abort marker and returns its offset.
func (w txnWriter) end(pid int64, commit bool) int64 {
	w.t.Helper()
	m := record.BuildEndTxnMarker(record.EndTxnMarker{ProducerID: pid, Commit: commit, CoordinatorEpoch: 3}, w.clock.Now().UnixMilli())
	res, err := w.l.Append(m, 1)
	if err != nil {
		w.t.Fatal(err)
	}
	return res.FirstOffset
}

// plain appends a non-transactional batch of key=value pairs.
func (w txnWriter) plain(kvs ...string) {
	w.t.Helper()
	var recs []record.Record
	for i := 0; i < len(kvs); i += 2 {
		recs = append(recs, record.Record{Key: []byte(kvs[i]), Value: []byte(kvs[i+1])})
	}
	appendBatch(w.t, w.l, w.clock, recs...)
}

func (w txnWriter) roll() {
	w.t.Helper()
	if err := w.l.Roll(); err != nil {
		w.t.Fatal(err)
	}
	if err := w.l.Flush(); err != nil {
		w.t.Fatal(err)
	}
}

// lso is the last stable offset of a single-replica log (high watermark =
// log end), as the workers compute it.
func lso(l *partlog.Log) int64 {
	return lastStableOffset(&fakeReplica{log: l})
}

// visible reads the log as a read_committed consumer with Kafka's filter
// would, up to the last stable offset: key → value of the latest committed
// record, markers skipped. It also returns every marker batch's producer id
// by offset.
func visible(t *testing.T, l *partlog.Log) (map[string]string, map[int64]int64) {
	t.Helper()
	end := lso(l)
	aborted := l.AbortedTransactions(l.LogStartOffset(), end)
	latest := map[string]string{}
	markers := map[int64]int64{}
	offset := l.LogStartOffset()
	for offset < end {
		res, err := l.Read(offset, 64<<10, end)
		if err != nil {
			t.Fatalf("read at %d: %v", offset, err)
		}
		it := record.NewBatches(res.Data)
		for it.Next() {
			h := it.Header()
			if h.Control() {
				markers[h.BaseOffset] = h.ProducerID
				continue
			}
			if h.Transactional() && slices.ContainsFunc(aborted, func(e partlog.AbortedTxn) bool {
				return e.ProducerID == h.ProducerID && e.FirstOffset <= h.BaseOffset && h.BaseOffset < e.LastOffset
			}) {
				continue
			}
			recs, err := record.Decode(it.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				latest[string(r.Key)] = string(r.Value)
			}
		}
		offset = res.NextOffset
	}
	return latest, markers
}

// records returns every data record in the log, aborted or not, as
// key=value by offset.
func records(t *testing.T, l *partlog.Log) map[int64]string {
	t.Helper()
	out := map[int64]string{}
	for _, r := range readAll(t, l) {
		out[r.Offset] = string(r.Key) + "=" + string(r.Value)
	}
	return out
}

type abortKey struct{ pid, marker int64 }

func abortKeys(l *partlog.Log) []abortKey {
	var out []abortKey
	for _, e := range l.AbortedTransactions(l.LogStartOffset(), l.LogEndOffset()) {
		out = append(out, abortKey{e.ProducerID, e.LastOffset})
	}
	return out
}

// The cleaner drops aborted transactions' records, never lets them stand for
// their key, keeps every marker in the pass that drops its transaction's
// records, drops it in a later pass past delete.retention.ms unless records
// of its transaction remain or began before the segments cleaned, stops at
// the last stable offset, and leaves the aborted-transaction index and the
// open transactions what a rebuild from the batches finds.
func TestCleanerTransactions(t *testing.T) {
	clock := fakeclock.New(time.UnixMilli(1_800_000_000_000))
	dir := tempDir(t)
	open := func() *partlog.Log {
		l, err := partlog.Open(partlog.Options{Dir: dir, Config: partlog.Config{SegmentBytes: 1 << 20}, Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	l := open()
	defer func() { l.Close() }()
	w := txnWriter{t: t, l: l, clock: clock}

	// Segment 0: the transactions of producers 10 (aborted), 11
	// (committed, later superseded) and 13 (committed, kept), and the
	// first batch of 20, whose abort marker is in segment 1.
	w.plain("k0", "v0", "k1", "v0", "k2", "v0", "k3", "v0", "k4", "v0")
	w.data(10, "k0", "aborted", "k1", "aborted")
	w.data(10, "k1", "aborted-again")
	abort10 := w.end(10, false)
	w.data(11, "k2", "committed")
	commit11 := w.end(11, true)
	w.data(13, "k4", "committed")
	commit13 := w.end(13, true)
	w.data(20, "k0", "aborted-20")
	w.roll()
	// Segment 1.
	w.plain("k2", "v1")
	abort20 := w.end(20, false)
	w.roll()
	// Segment 2: producer 12's transaction, still open.
	open12 := w.data(12, "k3", "pending")
	w.plain("k5", "v0")
	w.roll()
	w.plain("k6", "v0")

	if got := lso(l); got != open12 {
		t.Fatalf("last stable offset %d, want producer 12's first offset %d", got, open12)
	}
	// Every segment its own run (segment.bytes 1): producer 20's marker is
	// in a run its transaction was open at the start of.
	p := Policy{SegmentBytes: 1, DeleteRetention: time.Hour}
	c := &Cleaner{Map: NewOffsetMap(1 << 14), Now: clock.Now}
	pass := func() Stats {
		t.Helper()
		d := Inspect(l.Segments(), l.LogStartOffset(), l.CleanerOffset(), lso(l), p, clock.Now())
		st, err := c.Clean(context.Background(), Local(l), d, p)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	before := records(t, l)

	// Past delete.retention.ms already: even so, the pass that drops a
	// transaction's records keeps its marker.
	clock.Advance(2 * time.Hour)
	st := pass()
	if st.CleanedTo > open12 {
		t.Fatalf("cleaned to %d, past the last stable offset %d", st.CleanedTo, open12)
	}
	if st.AbortedDropped != 4 || st.MarkersDropped != 0 {
		t.Errorf("first pass: %d aborted records and %d markers dropped, want 4 and 0", st.AbortedDropped, st.MarkersDropped)
	}
	got, markers := visible(t, l)
	want := map[string]string{"k0": "v0", "k1": "v0", "k2": "v1", "k3": "v0", "k4": "committed"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after the first pass the committed view is %v, want %v", got, want)
	}
	for offset, r := range records(t, l) {
		if r == "k0=aborted" || r == "k1=aborted" || r == "k1=aborted-again" || r == "k0=aborted-20" || r == "k2=committed" {
			t.Errorf("offset %d: %s still in the log", offset, r)
		}
	}
	for offset, r := range before {
		if offset >= open12 && records(t, l)[offset] != r {
			t.Errorf("offset %d at or past the last stable offset changed: %s", offset, r)
		}
	}
	wantMarkers := map[int64]int64{abort10: 10, commit11: 11, commit13: 13, abort20: 20}
	if fmt.Sprint(markers) != fmt.Sprint(wantMarkers) {
		t.Errorf("after the first pass the markers are %v, want %v (offset → producer id)", markers, wantMarkers)
	}
	if got, want := abortKeys(l), []abortKey{{10, abort10}, {20, abort20}}; !slices.Equal(got, want) {
		t.Errorf("aborted transactions %v, want %v", got, want)
	}

	// Producer 12 commits; past delete.retention.ms the next pass drops the
	// markers whose transactions have nothing left, except producer 20's.
	commit12 := w.end(12, true)
	w.roll()
	clock.Advance(2 * time.Hour)
	st = pass()
	if st.MarkersDropped != 2 {
		t.Errorf("second pass dropped %d markers, want 2", st.MarkersDropped)
	}
	want["k3"], want["k5"], want["k6"] = "pending", "v0", "v0"
	got, markers = visible(t, l)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after the second pass the committed view is %v, want %v", got, want)
	}
	wantMarkers = map[int64]int64{commit13: 13, abort20: 20, commit12: 12}
	if fmt.Sprint(markers) != fmt.Sprint(wantMarkers) {
		t.Errorf("after the second pass the markers are %v, want %v", markers, wantMarkers)
	}
	wantAborts := []abortKey{{20, abort20}}
	if got := abortKeys(l); !slices.Equal(got, wantAborts) {
		t.Errorf("aborted transactions %v, want %v", got, wantAborts)
	}
	if f := l.FirstUnstableOffset(); f != -1 {
		t.Errorf("first unstable offset %d, want none", f)
	}

	// The same from the .txnindex files, and from the batches alone.
	for _, rebuild := range []bool{false, true} {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if rebuild {
			names, _ := filepath.Glob(filepath.Join(dir, "*.txnindex"))
			if len(names) == 0 {
				t.Fatal("no .txnindex files")
			}
			for _, n := range names {
				if err := os.Remove(n); err != nil {
					t.Fatal(err)
				}
			}
		}
		l = open()
		if got := abortKeys(l); !slices.Equal(got, wantAborts) {
			t.Errorf("reopened (rebuilt %v): aborted transactions %v, want %v", rebuild, got, wantAborts)
		}
		if f := l.FirstUnstableOffset(); f != -1 {
			t.Errorf("reopened (rebuilt %v): first unstable offset %d, want none", rebuild, f)
		}
		if got, _ := visible(t, l); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("reopened (rebuilt %v): committed view %v, want %v", rebuild, got, want)
		}
	}
}

// A marker is never re-spanned over the offsets of batches dropped around
// it: it would lose its producer id, and with it its transaction's end.
func TestCleanerKeepsMarkerOffsets(t *testing.T) {
	clock := fakeclock.New(time.UnixMilli(1_800_000_000_000))
	l, err := partlog.Open(partlog.Options{Dir: tempDir(t), Config: partlog.Config{SegmentBytes: 1 << 20}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	w := txnWriter{t: t, l: l, clock: clock}
	w.plain("k", "old")
	w.data(7, "t", "committed")
	commit := w.end(7, true)
	w.plain("k", "new") // drops "old" before the data and nothing else
	w.plain("k", "newer")
	w.plain("t", "newer")
	w.roll()
	p := Policy{SegmentBytes: 1 << 20, DeleteRetention: time.Hour}
	c := &Cleaner{Map: NewOffsetMap(1 << 14), Now: clock.Now}
	d := Inspect(l.Segments(), l.LogStartOffset(), l.CleanerOffset(), lso(l), p, clock.Now())
	if _, err := c.Clean(context.Background(), Local(l), d, p); err != nil {
		t.Fatal(err)
	}
	_, markers := visible(t, l)
	if got := markers[commit]; got != 7 {
		t.Fatalf("markers %v: the marker at %d has producer id %d, want 7", markers, commit, got)
	}
	res, err := l.Read(commit, 1<<10, l.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	if h, err := record.ParseHeader(res.Data); err != nil || h.BaseOffset != commit || h.LastOffset() != commit {
		t.Fatalf("the marker's batch spans %d..%d (%v), want %d..%d", h.BaseOffset, h.LastOffset(), err, commit, commit)
	}
}

// Control records' keys are not the topic's: a data key equal to a marker's
// control key is not superseded by the marker.
func TestCleanerControlKeysAreNotKeys(t *testing.T) {
	clock := fakeclock.New(time.UnixMilli(1_800_000_000_000))
	l, err := partlog.Open(partlog.Options{Dir: tempDir(t), Config: partlog.Config{SegmentBytes: 1 << 20}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	w := txnWriter{t: t, l: l, clock: clock}
	commitKey := string([]byte{0, 0, 0, 1}) // version 0, type commit
	w.plain(commitKey, "data")
	w.data(7, "t", "committed")
	w.end(7, true)
	w.roll()
	p := Policy{SegmentBytes: 1 << 20, DeleteRetention: time.Hour}
	c := &Cleaner{Map: NewOffsetMap(1 << 14), Now: clock.Now}
	d := Inspect(l.Segments(), l.LogStartOffset(), l.CleanerOffset(), lso(l), p, clock.Now())
	if _, err := c.Clean(context.Background(), Local(l), d, p); err != nil {
		t.Fatal(err)
	}
	if got, _ := visible(t, l); got[commitKey] != "data" {
		t.Fatalf("committed view %q: the record keyed like a commit marker is gone", got)
	}
}

// Retention stops at the last stable offset (Kafka stops at the high
// watermark): the segments holding an open transaction's records, and
// those after, stay past retention.ms until the transaction ends.
func TestRetentionWorkerStopsAtAnOpenTransaction(t *testing.T) {
	clock := fakeclock.New(now)
	h := newFakeHost(clock)
	h.configure(t, "events", map[string]string{"segment.bytes": "1024", "retention.ms": "3600000"})
	r := h.host(t, "events", 0)
	w := txnWriter{t: t, l: r.log, clock: clock}
	appendValues(t, r.log, clock, 20)
	first := w.data(5, "k", "pending")
	appendValues(t, r.log, clock, 20)
	if n := len(r.log.Segments()); n < 4 {
		t.Fatalf("%d segments, want several on either side of the transaction", n)
	}
	worker := newRetentionWorker(t, h, nil, nil)
	clock.Advance(2 * time.Hour) // every record is past retention.ms
	worker.Round(context.Background())
	if start := r.log.LogStartOffset(); start > first || start == 0 {
		t.Fatalf("log start %d with a transaction open at %d: want the segments before it deleted and no more", start, first)
	}
	w.end(5, false)
	clock.Advance(2 * time.Hour) // the marker too
	worker.Round(context.Background())
	if start, end := r.log.LogStartOffset(), r.log.LogEndOffset(); start != end {
		t.Fatalf("log start %d once the transaction ended, want the log end %d", start, end)
	}
}

// The cleaner worker cleans nothing at or past the last stable offset: a
// segment holding an open transaction's records, and those after it, stay
// dirty until the transaction ends.
func TestCleanerWorkerStopsAtTheLastStableOffset(t *testing.T) {
	clock := fakeclock.New(now)
	h := newFakeHost(clock)
	h.configure(t, "prices", map[string]string{"cleanup.policy": "compact"})
	r := h.host(t, "prices", 0)
	w := txnWriter{t: t, l: r.log, clock: clock}
	appendKeyed(t, r.log, clock, 10, 0)
	appendKeyed(t, r.log, clock, 10, 1)
	flush(t, r)
	first := w.data(5, "key-0", "pending")
	appendKeyed(t, r.log, clock, 10, 2)
	flush(t, r)
	appendKeyed(t, r.log, clock, 10, 3)

	worker := newCleanerWorker(t, h, CleanerConfig{})
	ctx := context.Background()
	if !worker.cleanDirtiest(ctx) {
		t.Fatal("nothing cleaned below the transaction")
	}
	if co := r.log.CleanerOffset(); co != first {
		t.Fatalf("cleaner offset %d, want the transaction's first offset %d", co, first)
	}
	if worker.cleanDirtiest(ctx) {
		t.Fatal("cleaned again with the transaction open")
	}
	w.end(5, true)
	flush(t, r)
	if !worker.cleanDirtiest(ctx) {
		t.Fatal("nothing cleaned once the transaction committed")
	}
	if co, end := r.log.CleanerOffset(), r.log.LogEndOffset(); co != end {
		t.Fatalf("cleaner offset %d, want the log end %d", co, end)
	}
}

// txnModel is the committed view's reference: every record appended, the
// transaction it belongs to, and how each transaction ended.
type txnModel struct {
	value   map[int64]string // offset → key=value of every data record
	key     map[int64]string
	txnOf   map[int64]int // offset → transaction number; absent for plain records
	ended   map[int]bool  // transaction → committed; absent while open
	openTxn map[int64]int // producer → its open transaction
	marker  map[int64]int // marker offset → its transaction
	nextTxn int
}

// committedView is what a read_committed consumer of the uncompacted log
// sees below end: each key's latest committed or plain record.
func (m *txnModel) committedView(end int64) map[string]string {
	best := map[string]int64{}
	for off := range m.value {
		if off >= end {
			continue
		}
		if n, ok := m.txnOf[off]; ok && !m.ended[n] {
			continue // aborted (or, past the LSO only, open)
		}
		if b, ok := best[m.key[off]]; !ok || off > b {
			best[m.key[off]] = off
		}
	}
	out := map[string]string{}
	for k, off := range best {
		out[k] = m.value[off]
	}
	return out
}

// Random transactional producers, plain writes and compaction passes (some
// cut short by a crash) at random times: the committed view read through
// the aborted-transaction index always equals the reference, nothing at or
// past the last stable offset is cleaned, and a reopened log, with its
// .txnindex files or rebuilt without them, has the same aborted
// transactions and no transaction open once every one has ended.
func TestCompactionModelTransactions(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, seed*104729))
			dir := tempDir(t)
			clock := fakeclock.New(time.UnixMilli(1_800_000_000_000))
			var crashStep atomic.Value
			crashStep.Store("")
			open := func() *partlog.Log {
				l, err := partlog.Open(partlog.Options{
					Dir: dir, Config: partlog.Config{SegmentBytes: 1024, IndexIntervalBytes: 256}, Now: clock.Now,
					CrashAt: func(step string) bool { return crashStep.CompareAndSwap(step, "") && step != "" },
				})
				if err != nil {
					t.Fatal(err)
				}
				return l
			}
			l := open()
			defer func() { l.Close() }()
			w := txnWriter{t: t, clock: clock}
			m := &txnModel{value: map[int64]string{}, key: map[int64]string{}, txnOf: map[int64]int{}, ended: map[int]bool{}, openTxn: map[int64]int{}, marker: map[int64]int{}}
			nKeys := 5 + rng.IntN(20)
			record := func(first int64, txn int, ok bool, kvs []string) {
				for i := 0; i < len(kvs); i += 2 {
					off := first + int64(i/2)
					m.key[off], m.value[off] = kvs[i], kvs[i+1]
					if ok {
						m.txnOf[off] = txn
					}
				}
			}
			randomKVs := func() []string {
				var kvs []string
				for range 1 + rng.IntN(3) {
					kvs = append(kvs, fmt.Sprint("key-", rng.IntN(nKeys)), fmt.Sprint("v", rng.Int()))
				}
				return kvs
			}
			check := func(when string) {
				t.Helper()
				end := lso(l)
				got, _ := visible(t, l)
				if want := m.committedView(end); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("%s: committed view below %d\n got %v\nwant %v", when, end, got, want)
				}
			}
			passes, crashes := 0, 0
			for step := range 500 {
				w.l = l
				clock.Advance(time.Duration(rng.IntN(600)) * time.Second)
				pid := int64(1 + rng.IntN(4))
				switch r := rng.IntN(10); {
				case r < 4:
					kvs := randomKVs()
					n, ok := m.openTxn[pid]
					if !ok {
						n = m.nextTxn
						m.nextTxn++
						m.openTxn[pid] = n
					}
					record(w.data(pid, kvs...), n, true, kvs)
				case r < 6:
					if n, ok := m.openTxn[pid]; ok {
						commit := rng.IntN(2) == 0
						m.marker[w.end(pid, commit)] = n
						m.ended[n] = commit
						delete(m.openTxn, pid)
					}
				default:
					kvs := randomKVs()
					res := l.LogEndOffset()
					w.plain(kvs...)
					record(res, 0, false, kvs)
				}
				if rng.IntN(20) != 0 {
					continue
				}
				w.roll()
				planned := ""
				if rng.IntN(4) == 0 {
					planned = crashSteps[rng.IntN(len(crashSteps))]
				}
				crashStep.Store(planned)
				p := Policy{DeleteRetention: time.Hour, SegmentBytes: 1024 * int64(1+rng.IntN(4))}
				mapBytes := 1 << 16
				if rng.IntN(3) == 0 {
					mapBytes = 24 * (2 + rng.IntN(8))
				}
				c := &Cleaner{Map: NewOffsetMap(mapBytes), Now: clock.Now}
				upper := lso(l)
				d := Inspect(l.Segments(), l.LogStartOffset(), l.CleanerOffset(), upper, p, clock.Now())
				st, err := c.Clean(context.Background(), Local(l), d, p)
				passes++
				crashed := planned != "" && crashStep.Load() == ""
				switch {
				case crashed:
					crashes++
					l.Close()
					l = open()
				case err != nil && !errors.Is(err, ErrMapTooSmall):
					t.Fatalf("step %d: %v", step, err)
				}
				if st.CleanedTo > upper {
					t.Fatalf("step %d: cleaned to %d, past the last stable offset %d", step, st.CleanedTo, upper)
				}
				check(fmt.Sprintf("step %d, pass %d (crash at %q: %v)", step, passes, planned, crashed))
			}
			crashStep.Store("")
			w.l = l
			for pid := range m.openTxn {
				m.marker[w.end(pid, false)] = m.openTxn[pid]
				m.ended[m.openTxn[pid]] = false
				delete(m.openTxn, pid)
			}
			// Two full passes past delete.retention.ms: the first drops every
			// aborted record, the second the markers of the transactions
			// with nothing left.
			for range 2 {
				w.plain("key-0", "last")
				record(l.LogEndOffset()-1, 0, false, []string{"key-0", "last"})
				w.roll()
				clock.Advance(2 * time.Hour)
				p := Policy{DeleteRetention: time.Hour, SegmentBytes: 1 << 20}
				c := &Cleaner{Map: NewOffsetMap(1 << 16), Now: clock.Now}
				d := Inspect(l.Segments(), l.LogStartOffset(), l.CleanerOffset(), lso(l), p, clock.Now())
				if _, err := c.Clean(context.Background(), Local(l), d, p); err != nil {
					t.Fatal(err)
				}
			}
			check("after the final passes")
			_, markers := visible(t, l)
			aborts := abortKeys(l)
			if len(aborts) != 0 {
				t.Errorf("aborted transactions %v left after two full passes", aborts)
			}
			left := map[int]bool{}
			for off := range records(t, l) {
				if n, ok := m.txnOf[off]; ok {
					left[n] = true
				}
			}
			for off := range markers {
				if n := m.marker[off]; !m.ended[n] || !left[n] {
					t.Errorf("marker at %d left: its transaction committed %v, records left %v", off, m.ended[n], left[n])
				}
			}
			for _, rebuild := range []bool{false, true} {
				l.Close()
				if rebuild {
					names, _ := filepath.Glob(filepath.Join(dir, "*.txnindex"))
					for _, n := range names {
						if err := os.Remove(n); err != nil {
							t.Fatal(err)
						}
					}
				}
				l = open()
				if got := abortKeys(l); !slices.Equal(got, aborts) {
					t.Fatalf("reopened (rebuilt %v): aborted transactions %v, want %v", rebuild, got, aborts)
				}
				if f := l.FirstUnstableOffset(); f != -1 {
					t.Fatalf("reopened (rebuilt %v): first unstable offset %d, want none", rebuild, f)
				}
				check(fmt.Sprintf("reopened (rebuilt %v)", rebuild))
			}
			t.Logf("%d passes, %d crashes, %d transactions, %d markers and %d aborted transactions left", passes, crashes, m.nextTxn, len(markers), len(aborts))
			if crashes == 0 {
				t.Fatal("no pass crashed: the crash paths went untested")
			}
		})
	}
}
