package partlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/record"
)

// crash copies the log's directory as a process crash would leave it (page
// cache content, no Close) into a fresh env. It first waits for background
// sealing to finish: copying file by file is not an atomic snapshot, and could
// pair a listing from before an index file was written with a checkpoint
// from after.
func (e *env) crash(l *Log) *env {
	e.t.Helper()
	await.True(e.t, 10*time.Second, "sealed segments to be durable", func() bool { return l.nextToSeal() == nil })
	l.ckMu.Lock() // no checkpoint write in the middle of the copy
	defer l.ckMu.Unlock()
	c := *e
	c.dir = e.t.TempDir()
	c.logs = &logBuffer{}
	copyDir(e.t, e.dir, c.dir)
	return &c
}

func TestRecoveryTornTailAtEveryByte(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 1200, IndexIntervalBytes: 150})
	l := e.open()
	w := newWriter(t, l)
	w.appendMany(20, 4, 20)
	if err := l.Flush(); err != nil { // the recovery point is mid-log
		t.Fatal(err)
	}
	w.appendMany(6, 4, 20)
	last := w.append(1, 5)
	segs := l.Segments()
	active := segs[len(segs)-1]
	if len(segs) < 3 || active.BaseOffset > w.batches[len(w.batches)-3].first {
		t.Fatalf("want several segments and a few batches in the active one: %+v", segs)
	}
	pristine := e.crash(l)
	activePath := segmentName(active.BaseOffset, logSuffix)
	lastPos := active.Size - int64(last.size)

	for cut := 0; cut <= last.size; cut++ {
		c := *pristine
		c.dir = filepath.Join(t.TempDir(), "p")
		c.logs = &logBuffer{}
		copyDir(t, pristine.dir, c.dir)
		if err := os.Truncate(filepath.Join(c.dir, activePath), lastPos+int64(cut)); err != nil {
			t.Fatal(err)
		}
		cl := c.open()
		wantEnd := last.first
		if cut == last.size {
			wantEnd = last.next
		}
		if cl.LogEndOffset() != wantEnd {
			t.Fatalf("cut %d of %d: LEO %d, want %d", cut, last.size, cl.LogEndOffset(), wantEnd)
		}
		if cut > 0 && cut < last.size {
			wantLogged(t, c.logs, fmt.Sprintf("truncating segment at the first bad batch\" dir=%s segment=%s position=%d bytes=%d", c.dir, activePath, lastPos, cut))
		}
		readAll(t, cl, 0, 1000)
		// Appending continues densely.
		newWriter(t, cl).append(2, 10)
		readAll(t, cl, 0, 1<<20)
		if err := cl.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRecoveryGarbageAfterLastBatch(t *testing.T) {
	next := func(w *writer) []byte { return buildBatch(t, w.l.LogEndOffset(), 3, 20) }
	cases := []struct {
		name    string
		garbage func(w *writer) []byte
	}{
		{"zeros", func(*writer) []byte { return make([]byte, 4096) }},
		{"random", func(*writer) []byte {
			b := make([]byte, 777)
			r := rand.New(rand.NewPCG(1, 2))
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			return b
		}},
		{"batch with bad crc", func(w *writer) []byte { b := next(w); b[len(b)-2] ^= 0x10; return b }},
		{"batch with wrong base offset", func(w *writer) []byte { b := next(w); binary.BigEndian.PutUint64(b, 3); return b }},
		{"half a batch", func(w *writer) []byte { b := next(w); return b[:len(b)/2] }},
		{"header only", func(w *writer) []byte { return next(w)[:61] }},
	}
	for _, tc := range cases {
		for _, clean := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/clean=%v", tc.name, clean), func(t *testing.T) {
				e := newEnv(t, Config{SegmentBytes: 2000})
				l := e.open()
				w := newWriter(t, l)
				w.appendMany(30, 3, 20)
				end := l.LogEndOffset()
				garbage := tc.garbage(w)
				active := l.Segments()[len(l.Segments())-1]
				c := e
				if clean {
					if err := l.Close(); err != nil {
						t.Fatal(err)
					}
				} else {
					c = e.crash(l)
				}
				appendToFile(t, c.segPath(active.BaseOffset, logSuffix), garbage)
				c.logs.Reset()
				cl := c.open()
				if cl.LogEndOffset() != end {
					t.Fatalf("LEO %d, want %d", cl.LogEndOffset(), end)
				}
				wantLogged(t, c.logs, fmt.Sprintf("position=%d bytes=%d", active.Size, len(garbage)))
				readAll(t, cl, 0, 1<<20)
				newWriter(t, cl).append(2, 10)
				c.logs.Reset()
				cl = c.reopen(cl)
				readAll(t, cl, 0, 1<<20)
				wantNotLogged(t, c.logs, "level=WARN")
			})
		}
	}
}

func TestRecoveryTruncatesCorruptBatchAndLaterSegments(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 1000})
	l := e.open()
	w := newWriter(t, l)
	w.appendMany(5, 3, 20)
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	w.appendMany(40, 3, 20)
	segs := l.Segments()
	if len(segs) < 5 {
		t.Fatalf("%d segments", len(segs))
	}
	// A bad batch above the recovery point, in a segment with later ones:
	// the crash came before the sealer made the later segments durable.
	c := e.crash(l)
	if err := writeCheckpoint(c.dir, recoveryPointFile, w.batches[4].next); err != nil {
		t.Fatal(err)
	}
	victimSeg := segs[2]
	pos := batchPositions(t, c.segPath(victimSeg.BaseOffset, logSuffix))
	flipBit(t, c.segPath(victimSeg.BaseOffset, logSuffix), pos[1]+40, 3)
	var victim batchInfo
	for _, b := range w.batches {
		if b.first > victimSeg.BaseOffset {
			victim = b
			break
		}
	}
	cl := c.open()
	if cl.LogEndOffset() != victim.first {
		t.Fatalf("LEO %d, want %d (the corrupt batch's offset)", cl.LogEndOffset(), victim.first)
	}
	if n := len(cl.Segments()); n != 3 {
		t.Fatalf("%d segments after recovery, want 3", n)
	}
	wantLogged(t, c.logs, "cause=\"corrupt batch\"")
	for _, s := range segs[3:] {
		wantLogged(t, c.logs, "removing segment after the truncation point\" dir="+c.dir+" segment="+segmentName(s.BaseOffset, logSuffix))
		if _, err := os.Stat(c.segPath(s.BaseOffset, logSuffix)); !os.IsNotExist(err) {
			t.Fatalf("segment %d not removed", s.BaseOffset)
		}
	}
	readAll(t, cl, 0, 1<<20)
	newWriter(t, cl).appendMany(10, 3, 20)
	readAll(t, cl, 0, 1<<20)
}

func TestRecoveryDoesNotScanBelowRecoveryPoint(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 1000})
	l := e.open()
	w := newWriter(t, l)
	w.appendMany(30, 3, 20)
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	w.appendMany(3, 3, 20) // unflushed
	c := e.crash(l)
	// Bit rot in the first segment, wholly below the recovery point: not
	// truncated (that would throw away the rest of the log); reads report it.
	pos := batchPositions(t, c.segPath(0, logSuffix))
	flipBit(t, c.segPath(0, logSuffix), pos[2]+50, 0)
	cl := c.open()
	if cl.LogEndOffset() != l.LogEndOffset() {
		t.Fatalf("LEO %d, want %d", cl.LogEndOffset(), l.LogEndOffset())
	}
	wantNotLogged(t, c.logs, "truncating")
	_, err := cl.Read(w.batches[2].first, 1<<20, cl.LogEndOffset())
	var ce *CorruptionError
	if !errors.As(err, &ce) || ce.FirstOffset != w.batches[2].first || ce.NextOffset != w.batches[3].first {
		t.Fatalf("Read of the damaged batch: %v", err)
	}
	readAll(t, cl, w.batches[3].first, 1<<20)
}

func TestIndexRebuilt(t *testing.T) {
	writeIndex := func(t *testing.T, path string, entries []offsetEntry) {
		var b []byte
		for _, e := range entries {
			b = binary.BigEndian.AppendUint32(b, e.rel)
			b = binary.BigEndian.AppendUint32(b, e.pos)
		}
		if err := os.WriteFile(path, appendIndexTrailer(b, offsetIndexMagic, len(entries)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	readEntries := func(t *testing.T, path string) []offsetEntry {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		body, err := indexBody(raw, offsetIndexMagic, offsetEntrySize)
		if err != nil {
			t.Fatal(err)
		}
		var out []offsetEntry
		for i := 0; i < len(body); i += offsetEntrySize {
			out = append(out, offsetEntry{binary.BigEndian.Uint32(body[i:]), binary.BigEndian.Uint32(body[i+4:])})
		}
		return out
	}
	cases := []struct {
		name   string
		damage func(t *testing.T, index, timeIndex string)
	}{
		{"index deleted", func(t *testing.T, index, _ string) { os.Remove(index) }},
		{"time index deleted", func(t *testing.T, _, timeIndex string) { os.Remove(timeIndex) }},
		{"index truncated", func(t *testing.T, index, _ string) {
			st, _ := os.Stat(index)
			os.Truncate(index, st.Size()/2)
		}},
		{"index emptied", func(t *testing.T, index, _ string) { os.Truncate(index, 0) }},
		{"index bit flip", func(t *testing.T, index, _ string) { flipBit(t, index, 5, 2) }},
		{"time index bit flip", func(t *testing.T, _, timeIndex string) { flipBit(t, timeIndex, 3, 0) }},
		{"index garbage", func(t *testing.T, index, _ string) {
			os.WriteFile(index, bytes.Repeat([]byte("garbage!"), 100), 0o644)
		}},
		{"entry past the end", func(t *testing.T, index, _ string) {
			e := readEntries(t, index)
			e = append(e, offsetEntry{e[len(e)-1].rel + 1000, 1 << 20})
			writeIndex(t, index, e)
		}},
		{"entry at the wrong batch", func(t *testing.T, index, _ string) {
			e := readEntries(t, index)
			e[len(e)-1].rel++ // checksum is right, the log disagrees
			writeIndex(t, index, e)
		}},
		{"entry not at a batch", func(t *testing.T, index, _ string) {
			e := readEntries(t, index)
			e[len(e)/2].pos++
			writeIndex(t, index, e)
		}},
	}
	for _, tc := range cases {
		for _, which := range []string{"sealed", "active"} {
			t.Run(tc.name+"/"+which, func(t *testing.T) {
				e := newEnv(t, Config{SegmentBytes: 3000, IndexIntervalBytes: 200})
				l := e.open()
				w := newWriter(t, l)
				w.appendMany(60, 5, 20)
				segs := l.Segments()
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				s := segs[1]
				if which == "active" {
					s = segs[len(segs)-1]
				}
				tc.damage(t, e.segPath(s.BaseOffset, indexSuffix), e.segPath(s.BaseOffset, timeIndexSuffix))
				l = e.open()
				rebuilt := "rebuilding segment index\" dir=" + e.dir + " segment=" + segmentName(s.BaseOffset, logSuffix)
				if which == "sealed" {
					// After a clean shutdown a sealed segment's indexes are
					// loaded, and checked, on first use.
					wantNotLogged(t, e.logs, rebuilt)
				}
				got := l.Segments()
				wantLogged(t, e.logs, rebuilt)
				if which == "sealed" {
					// The rebuilt indexes were written: the next clean
					// start finds nothing to rebuild.
					e.logs.Reset()
					l = e.reopen(l)
					l.Segments()
					wantNotLogged(t, e.logs, rebuilt)
				}
				if fmt.Sprint(shape(got)) != fmt.Sprint(shape(segs)) {
					t.Fatalf("segments after rebuild:\n%v\nwant\n%v", got, segs)
				}
				readAll(t, l, 0, 1)
				readAll(t, l, 0, 1000)
				for off := s.BaseOffset; off < s.NextOffset; off++ {
					got, _, found, err := l.OffsetForTimestamp(tsBase + off)
					if err != nil || !found || got != off {
						t.Fatalf("OffsetForTimestamp(ts of %d) = %d, %v, %v", off, got, found, err)
					}
				}
				// The rebuilt index was written: no rebuild the next time.
				e.logs.Reset()
				l = e.reopen(l)
				wantNotLogged(t, e.logs, "rebuilding")
				readAll(t, l, 0, 1000)
			})
		}
	}
}

func TestStrayFilesIgnored(t *testing.T) {
	e := newEnv(t, Config{})
	l := e.open()
	newWriter(t, l).appendMany(5, 3, 10)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"notes.txt":                             "hello",
		"0000000000000000abcd.log":              "not a segment",
		"00000000000000000000.log.x":            "nor this",
		brokerMetaFile:                          "{}",
		recoveryPointFile + tmpSuffix:           "torn",
		segmentName(0, indexSuffix) + tmpSuffix: "torn",
		segmentName(999, indexSuffix):           "orphan index",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(e.dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(e.dir, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	l = e.open()
	readAll(t, l, 0, 1<<20)
	for _, name := range []string{"notes.txt", "0000000000000000abcd.log", "00000000000000000000.log.x", "subdir"} {
		wantLogged(t, e.logs, "ignoring unknown file in partition directory\" dir="+e.dir+" file="+name)
		if _, err := os.Stat(filepath.Join(e.dir, name)); err != nil {
			t.Fatalf("stray %s touched: %v", name, err)
		}
	}
	wantNotLogged(t, e.logs, brokerMetaFile)
	for _, name := range []string{recoveryPointFile + tmpSuffix, segmentName(0, indexSuffix) + tmpSuffix, segmentName(999, indexSuffix)} {
		if _, err := os.Stat(filepath.Join(e.dir, name)); !os.IsNotExist(err) {
			t.Fatalf("leftover %s not removed", name)
		}
	}
}

func TestEmptyTrailingSegment(t *testing.T) {
	for _, clean := range []bool{true, false} {
		t.Run(fmt.Sprint("clean=", clean), func(t *testing.T) {
			e := newEnv(t, Config{SegmentBytes: 1000})
			l := e.open()
			w := newWriter(t, l)
			w.appendMany(20, 3, 20)
			end := l.LogEndOffset()
			c := e
			if clean {
				l.Close()
			} else {
				c = e.crash(l)
			}
			// A crash right after a roll leaves an empty segment.
			if err := os.WriteFile(c.segPath(end, logSuffix), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			cl := c.open()
			segs := cl.Segments()
			if last := segs[len(segs)-1]; last.BaseOffset != end || last.Size != 0 || cl.LogEndOffset() != end {
				t.Fatalf("segments %+v, LEO %d", segs, cl.LogEndOffset())
			}
			wantNotLogged(t, c.logs, "level=WARN")
			newWriter(t, cl).append(2, 10)
			cl = c.reopen(cl)
			readAll(t, cl, 0, 1<<20)
		})
	}
}

func TestDamagedCheckpoints(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 1000})
	l := e.open()
	newWriter(t, l).appendMany(30, 3, 20)
	if _, err := l.DeleteSegmentsBelow(l.Segments()[1].BaseOffset); err != nil {
		t.Fatal(err)
	}
	end, start := l.LogEndOffset(), l.LogStartOffset()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(e.dir, recoveryPointFile), []byte("1 99999 00000000\n"), 0o644)
	os.WriteFile(filepath.Join(e.dir, logStartFile), []byte("garbage"), 0o644)
	l = e.open()
	wantLogged(t, e.logs, "unreadable recovery point checkpoint")
	wantLogged(t, e.logs, "unreadable log start checkpoint")
	if l.LogEndOffset() != end || l.LogStartOffset() != start {
		t.Fatalf("LEO %d start %d, want %d %d", l.LogEndOffset(), l.LogStartOffset(), end, start)
	}
	readAll(t, l, start, 1<<20)
	// Both were rewritten.
	if rp, err := readCheckpoint(e.dir, recoveryPointFile); err != nil || rp != end {
		t.Fatalf("recovery point %d, %v", rp, err)
	}
	if ls, err := readCheckpoint(e.dir, logStartFile); err != nil || ls != start {
		t.Fatalf("log start %d, %v", ls, err)
	}
}

func TestCheckpointEncoding(t *testing.T) {
	for _, v := range []int64{0, 1, 123456789, 1<<62 + 5} {
		got, err := decodeCheckpoint(encodeCheckpoint(v))
		if err != nil || got != v {
			t.Fatalf("roundtrip %d: %d, %v", v, got, err)
		}
	}
	good := encodeCheckpoint(42)
	for i := range good {
		b := bytes.Clone(good)
		b[i] ^= 0x01
		if v, err := decodeCheckpoint(b); err == nil && v != 42 {
			t.Fatalf("flipped byte %d decoded to %d", i, v)
		}
	}
	for _, bad := range []string{"", "\n", "1 42\n", "2 42 00000000\n", "1 -1 00000000\n", "1 42 zz\n"} {
		if _, err := decodeCheckpoint([]byte(bad)); err == nil {
			t.Fatalf("decoded %q", bad)
		}
	}
}

// TestRandomDamageNeverPanics damages a log at random (bit flips, cuts,
// garbage, deleted files) and checks that opening and using it never
// panics or hangs, and that a reader skipping damaged ranges always makes
// progress.
func TestRandomDamageNeverPanics(t *testing.T) {
	iterations := 150
	if testing.Short() {
		iterations = 30
	}
	randomDamage(t, 7, iterations)
}

func randomDamage(t *testing.T, seed uint64, iterations int) {
	e := newEnv(t, Config{SegmentBytes: 1500, IndexIntervalBytes: 100})
	l := e.open()
	newWriter(t, l).appendMany(40, 4, 20)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, en := range entries {
		names = append(names, en.Name())
	}
	r := rand.New(rand.NewPCG(seed, 11))
	for i := range iterations {
		c := *e
		c.dir = filepath.Join(t.TempDir(), "d")
		c.logs = &logBuffer{}
		copyDir(t, e.dir, c.dir)
		var did []string
		for range 1 + r.IntN(4) {
			name := names[r.IntN(len(names))]
			path := filepath.Join(c.dir, name)
			b, err := os.ReadFile(path)
			if err != nil {
				continue
			}
			switch op := r.IntN(6); {
			case op <= 2 && len(b) > 0: // bit flips
				for range 1 + r.IntN(3) {
					b[r.IntN(len(b))] ^= 1 << r.IntN(8)
				}
				did = append(did, "flip "+name)
			case op == 3 && len(b) > 0:
				b = b[:r.IntN(len(b))]
				did = append(did, "cut "+name)
			case op == 4:
				g := make([]byte, r.IntN(300))
				for j := range g {
					g[j] = byte(r.Uint32())
				}
				b = append(b, g...)
				did = append(did, "garbage "+name)
			default:
				os.Remove(path)
				did = append(did, "delete "+name)
				continue
			}
			os.WriteFile(path, b, 0o644)
		}
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("iteration %d (%s): panic: %v", i, strings.Join(did, ", "), p)
				}
			}()
			cl := c.open()
			start, end := cl.LogStartOffset(), cl.LogEndOffset()
			for off, steps := start, 0; off < end; steps++ {
				if steps > 10000 {
					t.Fatalf("iteration %d (%s): reader makes no progress at %d", i, strings.Join(did, ", "), off)
				}
				res, err := cl.Read(off, 1+r.IntN(2000), end)
				var ce *CorruptionError
				if errors.As(err, &ce) {
					if ce.NextOffset <= off || ce.NextOffset > end {
						t.Fatalf("iteration %d (%s): Read(%d): NextOffset %d (LEO %d)", i, strings.Join(did, ", "), off, ce.NextOffset, end)
					}
					off = ce.NextOffset
					continue
				}
				if err != nil {
					t.Fatalf("iteration %d (%s): Read(%d): %v", i, strings.Join(did, ", "), off, err)
				}
				if len(res.Data) == 0 {
					break
				}
				// What is served is right, damage or not. (Only the leader
				// epoch is covered by no check at all.)
				it := record.NewBatches(res.Data)
				for want := res.FirstOffset; it.Next(); {
					err := record.ForEach(it.Bytes(), func(rec *record.Record) error {
						if rec.Offset != want || !bytes.Equal(rec.Key, key(want)) || !bytes.HasPrefix(rec.Value, fmt.Appendf(nil, "value-%d-", want)) {
							return fmt.Errorf("record at %d: offset %d key %q", want, rec.Offset, rec.Key)
						}
						want++
						return nil
					})
					if err != nil {
						t.Fatalf("iteration %d (%s): Read(%d) served wrong data: %v", i, strings.Join(did, ", "), off, err)
					}
				}
				off = res.NextOffset
			}
			for range 5 {
				cl.OffsetForTimestamp(tsBase + r.Int64N(200) - 10)
			}
			if _, err := cl.Append(buildBatch(t, 0, 2, 10), 1); err != nil {
				t.Fatalf("iteration %d (%s): Append: %v", i, strings.Join(did, ", "), err)
			}
			if end > start {
				if err := cl.TruncateTo(start + r.Int64N(end-start)); err != nil {
					var ce *CorruptionError
					if !errors.As(err, &ce) {
						t.Fatalf("iteration %d (%s): TruncateTo: %v", i, strings.Join(did, ", "), err)
					}
				}
			}
			if err := cl.Close(); err != nil {
				t.Fatalf("iteration %d (%s): Close: %v", i, strings.Join(did, ", "), err)
			}
		}()
	}
}
