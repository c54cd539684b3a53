package compaction

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/fakeclock"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
)

// model is the reference the compacted log is checked against: every
// record ever appended, by offset.
type model struct {
	records map[int64]record.Record
	latest  map[string]int64 // key -> offset of its latest record
	next    int64
	// droppable: tombstones below it may be gone (a pass with
	// delete.retention.ms 0 reached it, even one a crash cut short).
	droppable int64
}

func newModel() *model {
	return &model{records: map[int64]record.Record{}, latest: map[string]int64{}}
}

// tempDir is a test directory in memory when the machine has one: these
// tests simulate crashes by abandoning the log, so they do not need the
// disk's durability, and thousands of fsyncs would dominate their time.
func tempDir(t *testing.T) string {
	t.Helper()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		dir, err := os.MkdirTemp("/dev/shm", "compaction-test-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}

var codecs = []record.Compression{record.None, record.GZIP, record.Snappy, record.LZ4, record.ZSTD}

// appendRandom appends one batch of 1-6 records over nKeys keys, about one
// in eight a tombstone.
func (m *model) appendRandom(t *testing.T, l *partlog.Log, rng *rand.Rand, nKeys int, clock *fakeclock.Clock, epoch int32) {
	t.Helper()
	ts := clock.Now().UnixMilli()
	b := record.NewBuilder(ts, 256)
	var recs []record.Record
	for i := 0; i < 1+rng.IntN(6); i++ {
		r := record.Record{Timestamp: ts, Key: fmt.Appendf(nil, "key-%d", rng.IntN(nKeys))}
		if rng.IntN(8) != 0 {
			r.Value = fmt.Appendf(nil, "value-%d-%d", m.next+int64(i), rng.Int())
		}
		b.Append(&r)
		recs = append(recs, r)
	}
	batch, err := b.Build(codecs[rng.IntN(len(codecs))])
	if err != nil {
		t.Fatal(err)
	}
	res, err := l.Append(batch, epoch)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		r.Offset = res.FirstOffset + int64(i)
		m.records[r.Offset] = r
		m.latest[string(r.Key)] = r.Offset
	}
	m.next = res.LastOffset + 1
}

// readAll reads the whole log through its public read path.
func readAll(t *testing.T, l *partlog.Log) []record.Record {
	t.Helper()
	var out []record.Record
	offset := l.LogStartOffset()
	for offset < l.LogEndOffset() {
		res, err := l.Read(offset, 64<<10, l.LogEndOffset())
		if err != nil {
			t.Fatalf("read at %d: %v", offset, err)
		}
		if res.NextOffset <= offset {
			t.Fatalf("read at %d made no progress", offset)
		}
		it := record.NewBatches(res.Data)
		for it.Next() {
			recs, err := record.Decode(it.Bytes())
			if err != nil {
				t.Fatalf("decode batch at %d: %v", it.Header().BaseOffset, err)
			}
			for _, r := range recs {
				if r.Offset >= offset {
					out = append(out, r)
				}
			}
		}
		offset = res.NextOffset
	}
	return out
}

// check verifies the compacted log against the model:
//   - every record read is the one appended at its offset, unaltered, in
//     increasing offset order;
//   - every key's latest record is there, unless it is a tombstone the
//     cleaner may drop;
//   - below the cleaner offset no key appears twice;
//   - with dropTombstones, no tombstone is left below the cleaner offset.
func (m *model) check(t *testing.T, l *partlog.Log, dropTombstones bool) []record.Record {
	t.Helper()
	got := readAll(t, l)
	cleaned := l.CleanerOffset()
	seen := map[int64]bool{}
	below := map[string]int64{}
	prev := int64(-1)
	for _, r := range got {
		if r.Offset <= prev {
			t.Fatalf("offset %d after %d", r.Offset, prev)
		}
		prev = r.Offset
		want, ok := m.records[r.Offset]
		if !ok {
			t.Fatalf("record at offset %d was never appended", r.Offset)
		}
		if !bytes.Equal(r.Key, want.Key) || !bytes.Equal(r.Value, want.Value) || (r.Value == nil) != (want.Value == nil) || r.Timestamp != want.Timestamp {
			t.Fatalf("offset %d: got %q=%q@%d, appended %q=%q@%d", r.Offset, r.Key, r.Value, r.Timestamp, want.Key, want.Value, want.Timestamp)
		}
		seen[r.Offset] = true
		if r.Offset < cleaned {
			if o, dup := below[string(r.Key)]; dup {
				t.Fatalf("key %q at offsets %d and %d, both below the cleaner offset %d", r.Key, o, r.Offset, cleaned)
			}
			below[string(r.Key)] = r.Offset
			if dropTombstones && r.Value == nil {
				t.Fatalf("tombstone of %q at %d survived below the cleaner offset %d with delete.retention.ms 0", r.Key, r.Offset, cleaned)
			}
		}
	}
	for key, off := range m.latest {
		if off < l.LogStartOffset() || seen[off] {
			continue
		}
		if m.records[off].Value == nil && off < m.droppable {
			continue
		}
		t.Fatalf("latest record of %q at %d is missing (cleaner offset %d)", key, off, cleaned)
	}
	return got
}

var crashSteps = []string{"before-swap-marker", "after-swap-marker", "after-old-removed", "after-rename", "after-swap-marker-removed"}

// TestCompactionModel appends random keyed records and tombstones, runs
// cleaning passes at random points, some of them cut short by a simulated
// crash at a random step of a segment swap (the log is then reopened from
// its directory), and checks the log against a reference model after each.
func TestCompactionModel(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, seed*7919))
			dir := tempDir(t)
			clock := fakeclock.New(time.UnixMilli(1_800_000_000_000))
			var crashStep string // "" = no crash planned
			var crashMu sync.Mutex
			open := func() *partlog.Log {
				l, err := partlog.Open(partlog.Options{
					Dir:    dir,
					Config: partlog.Config{SegmentBytes: 2048, IndexIntervalBytes: 256},
					Now:    clock.Now,
					CrashAt: func(step string) bool {
						crashMu.Lock()
						defer crashMu.Unlock()
						if step == crashStep {
							crashStep = ""
							return true
						}
						return false
					},
				})
				if err != nil {
					t.Fatal(err)
				}
				return l
			}
			l := open()
			defer func() { l.Close() }()
			m := newModel()
			nKeys := 10 + rng.IntN(60)
			crashes, passes := 0, 0
			for step := 0; step < 400; step++ {
				clock.Advance(time.Second)
				m.appendRandom(t, l, rng, nKeys, clock, 1+int32(step/150))
				if rng.IntN(25) != 0 {
					continue
				}
				if err := l.Flush(); err != nil {
					t.Fatal(err)
				}
				dropTombstones := rng.IntN(2) == 0
				p := Policy{MinCleanableDirtyRatio: rng.Float64() / 2, DeleteRetention: time.Hour, SegmentBytes: 2048 * int64(1+rng.IntN(4))}
				if dropTombstones {
					p.DeleteRetention = 0
				}
				mapBytes := 1 << 16
				if rng.IntN(3) == 0 {
					mapBytes = 24 * (2 + rng.IntN(16)) // a map that fills: partial passes
				}
				crash := rng.IntN(3) == 0
				planned := ""
				if crash {
					planned = crashSteps[rng.IntN(len(crashSteps))]
				}
				crashMu.Lock()
				crashStep = planned
				crashMu.Unlock()
				c := &Cleaner{Map: NewOffsetMap(mapBytes), Now: clock.Now}
				d := Inspect(l.Segments(), l.LogStartOffset(), l.CleanerOffset(), l.LogEndOffset(), p, clock.Now())
				st, err := c.Clean(context.Background(), Local(l), d, p)
				passes++
				if dropTombstones {
					m.droppable = max(m.droppable, st.CleanedTo)
				}
				crashMu.Lock()
				crashed := crash && crashStep == ""
				crashMu.Unlock()
				switch {
				case crashed:
					if err == nil {
						t.Fatal("a pass stopped by a crash reported no error")
					}
					crashes++
					l.Close() // fails: the log is marked failed; files stay as the crash left them
					l = open()
				case err != nil && !errors.Is(err, ErrMapTooSmall):
					t.Fatalf("pass %d: %v", passes, err)
				}
				if !crashed && err == nil && st.CleanedTo > 0 && l.CleanerOffset() != st.CleanedTo {
					t.Fatalf("cleaner offset %d after a pass that cleaned to %d", l.CleanerOffset(), st.CleanedTo)
				}
				t.Logf("pass %d: map %d bytes, crash at %q (crashed %v), err %v, stats %+v, cleaner offset %d, log end %d",
					passes, mapBytes, planned, crashed, err, st, l.CleanerOffset(), l.LogEndOffset())
				// Tombstones are dropped only by a pass that completed.
				m.check(t, l, dropTombstones && !crashed && err == nil && st.CleanedTo > 0)
			}
			// A final full pass: the log holds about one record per key.
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
			clock.Advance(time.Second)
			p := Policy{DeleteRetention: time.Hour, SegmentBytes: 1 << 20}
			c := &Cleaner{Map: NewOffsetMap(1 << 16), Now: clock.Now}
			d := Inspect(l.Segments(), l.LogStartOffset(), l.CleanerOffset(), l.LogEndOffset(), p, clock.Now())
			if _, err := c.Clean(context.Background(), Local(l), d, p); err != nil {
				t.Fatal(err)
			}
			got := m.check(t, l, false)
			active := l.Segments()[len(l.Segments())-1].BaseOffset
			n := 0
			for _, r := range got {
				if r.Offset < active {
					n++
				}
			}
			if n > nKeys {
				t.Fatalf("%d records below the active segment after a full pass over %d keys", n, nKeys)
			}
			t.Logf("%d passes, %d crashes, %d records appended, %d left (%d keys)", passes, crashes, m.next, len(got), nKeys)
			if crashes == 0 {
				t.Fatal("no pass crashed: the crash paths went untested")
			}
		})
	}
}

// TestReaderDuringSwaps reads the log from the start over and over while
// passes swap cleaned segments in: every read sees offsets in order, each
// once, and never misses a record that the log still holds at the end.
func TestReaderDuringSwaps(t *testing.T) {
	clock := fakeclock.New(time.UnixMilli(1_800_000_000_000))
	l, err := partlog.Open(partlog.Options{Dir: tempDir(t), Config: partlog.Config{SegmentBytes: 4096, IndexIntervalBytes: 512}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	m := newModel()
	rng := rand.New(rand.NewPCG(42, 43))
	// 200 keys first, then only 40 of them: 160 keys keep their latest
	// record in the part the reader reads.
	for range 400 {
		m.appendRandom(t, l, rng, 200, clock, 1)
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	end := l.LogEndOffset()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var reads [][]int64
	var readErr error
	var readsDone atomic.Int64
	var readerExited atomic.Bool
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer readerExited.Store(true)
		for ctx.Err() == nil {
			var offs []int64
			offset := int64(0)
			for offset < end {
				res, err := l.Read(offset, 2048, end)
				if err != nil {
					readErr = fmt.Errorf("read at %d: %w", offset, err)
					return
				}
				it := record.NewBatches(res.Data)
				for it.Next() {
					recs, err := record.Decode(it.Bytes())
					if err != nil {
						readErr = err
						return
					}
					for _, r := range recs {
						if r.Offset >= offset {
							offs = append(offs, r.Offset)
						}
					}
				}
				offset = res.NextOffset
			}
			if len(reads) < 300 {
				reads = append(reads, offs)
			}
			readsDone.Add(1)
			time.Sleep(time.Millisecond) // let the passes have the CPU
		}
	}()
	p := Policy{SegmentBytes: 8192, DeleteRetention: time.Hour}
	for i := range 5 {
		// Each pass starts while a read is under way, after at least one
		// more read completed.
		// A tight spin, not internal/await: its 10 ms poll would let
		// several reads go by.
		for n := readsDone.Load(); readsDone.Load() == n && !readerExited.Load(); {
			time.Sleep(100 * time.Microsecond)
		}
		// Appends between passes keep giving the cleaner dirty data; more
		// go on during the pass, as producers do while a swap happens.
		for range 30 {
			m.appendRandom(t, l, rng, 40, clock, 1)
		}
		if err := l.Flush(); err != nil {
			t.Fatal(err)
		}
		appending := make(chan struct{})
		appended := make(chan struct{})
		go func() {
			defer close(appended)
			for {
				select {
				case <-appending:
					return
				default:
				}
				m.appendRandom(t, l, rng, 40, clock, 1)
			}
		}()
		c := &Cleaner{Map: NewOffsetMap(1 << 14), Now: clock.Now}
		d := Inspect(l.Segments(), l.LogStartOffset(), l.CleanerOffset(), l.LogEndOffset(), p, clock.Now())
		_, err := c.Clean(context.Background(), Local(l), d, p)
		close(appending)
		<-appended
		if err != nil {
			t.Fatalf("pass %d: %v", i, err)
		}
	}
	cancel()
	wg.Wait()
	if readErr != nil {
		t.Fatal(readErr)
	}
	final := map[int64]bool{}
	for _, r := range m.check(t, l, false) {
		if r.Offset < end {
			final[r.Offset] = true
		}
	}
	if len(final) < 60 {
		t.Fatalf("only %d records below %d survive: the reads prove little", len(final), end)
	}
	if len(reads) < 2 {
		t.Fatalf("only %d whole reads ran during the passes", len(reads))
	}
	for i, offs := range reads {
		got := map[int64]bool{}
		for j, o := range offs {
			if j > 0 && o <= offs[j-1] {
				t.Fatalf("read %d: offset %d after %d", i, o, offs[j-1])
			}
			got[o] = true
		}
		for o := range final {
			if !got[o] {
				t.Fatalf("read %d missed offset %d, which the log still holds", i, o)
			}
		}
	}
	t.Logf("%d whole reads during 5 passes; %d of %d offsets survive", len(reads), len(final), end)
}

func TestOffsetMap(t *testing.T) {
	m := NewOffsetMap(24 * 64)
	if m.Cap() < 32 || m.Cap() >= 64 {
		t.Fatalf("cap %d for 64 slots", m.Cap())
	}
	for i := range m.Cap() {
		if !m.Put(fmt.Appendf(nil, "k%d", i), int64(i)) {
			t.Fatalf("put %d of %d failed", i, m.Cap())
		}
	}
	if m.Put([]byte("one more"), 1) {
		t.Fatal("a full map took a new key")
	}
	if !m.Put([]byte("k3"), 1000) {
		t.Fatal("a full map refused to update a key it holds")
	}
	if off, ok := m.Get([]byte("k3")); !ok || off != 1000 {
		t.Fatalf("k3: %d, %v", off, ok)
	}
	if off, ok := m.Get([]byte("k0")); !ok || off != 0 {
		t.Fatalf("k0 (offset 0): %d, %v", off, ok)
	}
	if _, ok := m.Get([]byte("absent")); ok {
		t.Fatal("found a key never put")
	}
	m.Reset()
	if m.Len() != 0 {
		t.Fatal("Reset left keys")
	}
	if _, ok := m.Get([]byte("k3")); ok {
		t.Fatal("found a key after Reset")
	}
	// Reset is a new generation: the old entries read as empty slots and
	// their room is free again, also when the generations wrap.
	for _, gen := range []uint64{5, maxGen} {
		m.gen = gen
		for i := range m.Cap() {
			m.Put(fmt.Appendf(nil, "g%d", i), int64(i))
		}
		m.Reset()
		if _, ok := m.Get([]byte("g1")); ok || m.Len() != 0 {
			t.Fatalf("generation %d: an entry survived Reset", gen)
		}
		for i := range m.Cap() {
			if !m.Put(fmt.Appendf(nil, "h%d", i), 7) {
				t.Fatalf("generation %d: put %d after Reset failed: old entries still take room", gen, i)
			}
		}
		m.Reset()
	}
	if m.Put([]byte("far"), MaxOffset+1) || !m.Put([]byte("far"), MaxOffset) {
		t.Fatal("MaxOffset is not the bound")
	}
	if off, ok := m.Get([]byte("far")); !ok || off != MaxOffset {
		t.Fatalf("far: %d, %v", off, ok)
	}
	tiny := NewOffsetMap(0)
	if !tiny.Put([]byte("a"), 1) || tiny.Put([]byte("b"), 2) {
		t.Fatal("the smallest map must hold exactly one key")
	}
}

// BenchmarkOffsetMapReset is the per-pass cost of emptying the broker's
// default 128 MiB map.
func BenchmarkOffsetMapReset(b *testing.B) {
	m := NewOffsetMap(128 << 20)
	for i := range 1000 {
		m.Put(fmt.Appendf(nil, "k%d", i), int64(i))
	}
	b.ResetTimer()
	for b.Loop() {
		m.Reset()
	}
}

// The first pass over full segments leaves a small segment for each; with
// no dirty bytes left, a later pass merges them, changing no record.
func TestMergePassWithoutDirtyBytes(t *testing.T) {
	clock := fakeclock.New(time.UnixMilli(1_800_000_000_000))
	l, err := partlog.Open(partlog.Options{Dir: tempDir(t), Config: partlog.Config{SegmentBytes: 2048}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	m := newModel()
	rng := rand.New(rand.NewPCG(7, 8))
	for range 600 {
		m.appendRandom(t, l, rng, 20, clock, 1)
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	p := Policy{SegmentBytes: 2048, DeleteRetention: time.Hour}
	c := &Cleaner{Map: NewOffsetMap(1 << 14), Now: clock.Now}
	pass := func() Dirt {
		t.Helper()
		d := Inspect(l.Segments(), l.LogStartOffset(), l.CleanerOffset(), l.LogEndOffset(), p, clock.Now())
		if _, err := c.Clean(context.Background(), Local(l), d, p); err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := pass(); d.DirtyBytes == 0 {
		t.Fatal("the first pass found nothing dirty")
	}
	before := len(l.Segments())
	d := Inspect(l.Segments(), l.LogStartOffset(), l.CleanerOffset(), l.LogEndOffset(), p, clock.Now())
	if d.DirtyBytes != 0 || !d.Due(p) || d.Mergeable < mergeWorthIt {
		t.Fatalf("after the first pass: dirty %d bytes, mergeable %d, due %v; want a merge pass due", d.DirtyBytes, d.Mergeable, d.Due(p))
	}
	got := readAll(t, l)
	pass()
	after := len(l.Segments())
	if after > before-d.Mergeable+1 || after >= before {
		t.Fatalf("%d segments before the merge pass, %d after; it should save %d", before, after, d.Mergeable)
	}
	again := readAll(t, l)
	if fmt.Sprint(again) != fmt.Sprint(got) {
		t.Fatal("the merge pass changed the records")
	}
	m.check(t, l, false)
	if d := Inspect(l.Segments(), l.LogStartOffset(), l.CleanerOffset(), l.LogEndOffset(), p, clock.Now()); d.Due(p) {
		t.Fatalf("still due after the merge pass (mergeable %d)", d.Mergeable)
	}
	t.Logf("%d segments merged into %d", before, after)
}
