package partlog

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/record"
)

func TestAppendReadRoundtrip(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 64 << 10, IndexIntervalBytes: 1024})
	l := e.open()
	w := newWriter(t, l)
	w.appendMany(500, 10, 40)
	if got, want := l.LogEndOffset(), w.batches[len(w.batches)-1].next; got != want {
		t.Fatalf("LogEndOffset = %d, want %d", got, want)
	}
	for _, maxBytes := range []int{1, 100, 4096, 50 << 10, 10 << 20} {
		readAll(t, l, 0, maxBytes)
	}
	if n := len(l.Segments()); n < 3 {
		t.Fatalf("%d segments, want several", n)
	}
}

func TestReadEveryOffset(t *testing.T) {
	// Mid-batch offsets, batch boundaries, segment boundaries, with a dense
	// and a sparse offset index.
	for _, interval := range []int{1, 300, 4096} {
		t.Run(fmt.Sprint("interval=", interval), func(t *testing.T) {
			e := newEnv(t, Config{SegmentBytes: 2000, IndexIntervalBytes: interval})
			l := e.open()
			w := newWriter(t, l)
			w.appendMany(60, 5, 20)
			end := l.LogEndOffset()
			for off := int64(0); off < end; off++ {
				res, err := l.Read(off, 1, end)
				if err != nil {
					t.Fatalf("Read(%d): %v", off, err)
				}
				// Exactly the batch containing off.
				var want batchInfo
				for _, b := range w.batches {
					if b.first <= off && off < b.next {
						want = b
					}
				}
				if res.FirstOffset != want.first || res.NextOffset != want.next || len(res.Data) != want.size {
					t.Fatalf("Read(%d) = [%d, %d) %d bytes, want batch [%d, %d) %d bytes",
						off, res.FirstOffset, res.NextOffset, len(res.Data), want.first, want.next, want.size)
				}
				checkRecords(t, res.Data, res.FirstOffset)
			}
		})
	}
}

func TestReadAcrossSegments(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 1000})
	l := e.open()
	w := newWriter(t, l)
	w.appendMany(40, 3, 30)
	segs := l.Segments()
	if len(segs) < 4 {
		t.Fatalf("%d segments", len(segs))
	}
	// A read stays in one segment: from the start of segment 1 with a huge
	// maxBytes it ends at segment 2's base.
	res, err := l.Read(segs[1].BaseOffset, 1<<20, l.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	if res.NextOffset != segs[2].BaseOffset {
		t.Fatalf("read of segment 1 ends at %d, want %d", res.NextOffset, segs[2].BaseOffset)
	}
	if int64(len(res.Data)) != segs[1].Size {
		t.Fatalf("read %d bytes of a %d-byte segment", len(res.Data), segs[1].Size)
	}
	// The last offset of a segment, then the first of the next.
	for _, off := range []int64{segs[2].BaseOffset - 1, segs[2].BaseOffset} {
		res, err := l.Read(off, 1, l.LogEndOffset())
		if err != nil || res.FirstOffset > off || res.NextOffset <= off {
			t.Fatalf("Read(%d) = [%d, %d), %v", off, res.FirstOffset, res.NextOffset, err)
		}
	}
	for i := 1; i < len(segs); i++ {
		if segs[i].BaseOffset != segs[i-1].NextOffset || !segs[i-1].Sealed {
			t.Fatalf("segments %+v", segs)
		}
		if segs[i-1].Size > 1000 {
			t.Fatalf("segment %d is %d bytes, over segment.bytes", i-1, segs[i-1].Size)
		}
	}
	if segs[len(segs)-1].Sealed {
		t.Fatal("active segment reported sealed")
	}
}

func TestReadLimits(t *testing.T) {
	e := newEnv(t, Config{})
	l := e.open()
	w := newWriter(t, l)
	for range 10 {
		w.append(4, 100)
	}
	end := l.LogEndOffset()

	t.Run("maxBytes", func(t *testing.T) {
		sum := 0
		for n := 1; n <= 10; n++ {
			sum += w.batches[n-1].size
			for _, maxBytes := range []int{sum, sum + w.batches[0].size/2} {
				res, err := l.Read(0, maxBytes, end)
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Data) != sum || res.NextOffset != w.batches[n-1].next {
					t.Fatalf("maxBytes %d: %d bytes up to %d, want %d batches", maxBytes, len(res.Data), res.NextOffset, n)
				}
			}
		}
	})
	t.Run("maxOffset", func(t *testing.T) {
		// No batch whose base offset is at or above maxOffset.
		for _, tc := range []struct{ maxOffset, wantNext int64 }{
			{1, 4}, {4, 4}, {5, 8}, {12, 12}, {13, 16}, {end, end},
		} {
			res, err := l.Read(0, 1<<20, tc.maxOffset)
			if err != nil {
				t.Fatal(err)
			}
			if res.NextOffset != tc.wantNext {
				t.Fatalf("maxOffset %d: NextOffset %d, want %d", tc.maxOffset, res.NextOffset, tc.wantNext)
			}
			checkRecords(t, res.Data, 0)
		}
		res, err := l.Read(8, 1<<20, 8)
		if err != nil || len(res.Data) != 0 || res.NextOffset != 8 {
			t.Fatalf("read at maxOffset = %+v, %v; want empty", res, err)
		}
	})
	t.Run("first batch larger than maxBytes", func(t *testing.T) {
		big := w.append(200, 1000) // ~200 KB
		for _, maxBytes := range []int{0, 1, 60, 61, 4096, big.size - 1} {
			res, err := l.Read(big.first+17, maxBytes, l.LogEndOffset())
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Data) != big.size || res.FirstOffset != big.first || res.NextOffset != big.next {
				t.Fatalf("maxBytes %d: %d bytes [%d, %d), want the whole batch", maxBytes, len(res.Data), res.FirstOffset, res.NextOffset)
			}
			checkRecords(t, res.Data, big.first)
		}
	})
}

func TestReadOutOfRangeAndEmpty(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 500})
	l := e.open()
	w := newWriter(t, l)
	w.appendMany(20, 3, 30)
	end := l.LogEndOffset()

	res, err := l.Read(end, 1<<20, end)
	if err != nil || len(res.Data) != 0 || res.FirstOffset != end || res.NextOffset != end {
		t.Fatalf("Read(LEO) = %+v, %v", res, err)
	}
	_, err = l.Read(end+1, 1<<20, end)
	var oor *OffsetOutOfRangeError
	if !errors.As(err, &oor) || oor.Offset != end+1 || oor.Start != 0 || oor.End != end {
		t.Fatalf("Read(LEO+1) error = %v", err)
	}
	if _, err := l.Read(-1, 1<<20, end); !errors.As(err, &oor) {
		t.Fatalf("Read(-1) error = %v", err)
	}
	if _, err := l.DeleteSegmentsBelow(l.Segments()[2].BaseOffset); err != nil {
		t.Fatal(err)
	}
	start := l.LogStartOffset()
	if _, err := l.Read(start-1, 1<<20, end); !errors.As(err, &oor) || oor.Start != start {
		t.Fatalf("Read(start-1) error = %v", err)
	}
	readAll(t, l, start, 1000)
}

func TestRollBySegmentBytes(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 4096})
	l := e.open()
	w := newWriter(t, l)
	w.appendMany(100, 4, 50)
	segs := l.Segments()
	if len(segs) < 5 {
		t.Fatalf("only %d segments", len(segs))
	}
	var total int64
	for i, s := range segs {
		total += s.Size
		if s.Size > 4096 {
			t.Fatalf("segment %d is %d bytes", i, s.Size)
		}
		// Sealed segments get their index files in the background.
		if i < len(segs)-1 {
			await.True(t, 10*time.Second, "index files of sealed segment", func() bool {
				_, err1 := os.Stat(e.segPath(s.BaseOffset, indexSuffix))
				_, err2 := os.Stat(e.segPath(s.BaseOffset, timeIndexSuffix))
				return err1 == nil && err2 == nil
			})
		}
	}
	if total != l.Size() {
		t.Fatalf("Size = %d, segments sum to %d", l.Size(), total)
	}
	readAll(t, l, 0, 3000)

	// A batch larger than segment.bytes goes into a segment of its own.
	big := w.append(100, 100)
	segs = l.Segments()
	if last := segs[len(segs)-1]; last.BaseOffset != big.first || last.Size != int64(big.size) {
		t.Fatalf("big batch: last segment %+v", last)
	}
	w.append(1, 10)
	if segs2 := l.Segments(); len(segs2) != len(segs)+1 {
		t.Fatalf("append after an oversized batch did not roll")
	}
}

func TestRollBySegmentMs(t *testing.T) {
	e := newEnv(t, Config{SegmentMs: time.Hour})
	l := e.open()
	w := newWriter(t, l)
	w.append(3, 10)
	e.clock.Advance(59 * time.Minute)
	w.append(3, 10)
	if n := len(l.Segments()); n != 1 {
		t.Fatalf("rolled before segment.ms: %d segments", n)
	}
	e.clock.Advance(2 * time.Minute)
	w.append(3, 10)
	segs := l.Segments()
	if len(segs) != 2 || segs[1].BaseOffset != 6 || !segs[0].Sealed {
		t.Fatalf("segments after segment.ms: %+v", segs)
	}
	// An empty segment is never rolled, however old; and it ages from its
	// first batch.
	e.clock.Advance(3 * time.Hour)
	w.append(1, 10)
	if n := len(l.Segments()); n != 3 {
		t.Fatalf("%d segments, want 3", n)
	}
	e.clock.Advance(30 * time.Minute)
	w.append(1, 10)
	if n := len(l.Segments()); n != 3 {
		t.Fatalf("%d segments, want 3 (segment is 30 minutes old)", n)
	}
	readAll(t, l, 0, 1<<20)
}

func TestOffsetForTimestamp(t *testing.T) {
	for _, interval := range []int{1, 4096} {
		t.Run(fmt.Sprint("interval=", interval), func(t *testing.T) {
			e := newEnv(t, Config{SegmentBytes: 3000, IndexIntervalBytes: interval})
			l := e.open()
			w := newWriter(t, l)
			w.appendMany(80, 7, 30)
			end := l.LogEndOffset()
			if len(l.Segments()) < 3 {
				t.Fatal("want several segments")
			}
			for reopened := range 2 {
				if reopened == 1 {
					l = e.reopen(l)
				}
				// Record at offset o has timestamp tsBase+o.
				for off := int64(0); off < end; off++ {
					got, ts, found, err := l.OffsetForTimestamp(tsBase + off)
					if err != nil || !found || got != off || ts != tsBase+off {
						t.Fatalf("OffsetForTimestamp(ts of %d) = %d, %d, %v, %v", off, got, ts, found, err)
					}
				}
				if got, _, found, err := l.OffsetForTimestamp(0); err != nil || !found || got != 0 {
					t.Fatalf("OffsetForTimestamp(0) = %d, %v, %v", got, found, err)
				}
				if _, _, found, err := l.OffsetForTimestamp(tsBase + end); err != nil || found {
					t.Fatalf("OffsetForTimestamp(after the last record) found=%v, %v", found, err)
				}
			}
		})
	}
}

func TestOffsetForTimestampOutOfOrder(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 400, IndexIntervalBytes: 1})
	l := e.open()
	// Timestamps by offset; a producer may send them out of order.
	tss := []int64{100, 300, 200, 200, 500, 400, 450, 50, 600, 600, 700, 10}
	for i, ts := range tss {
		b := record.NewBuilder(ts, 64)
		b.Append(&record.Record{Timestamp: ts, Value: []byte(fmt.Sprint(i))})
		buf, err := b.Build(record.None)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(bytes.Clone(buf), 0); err != nil {
			t.Fatal(err)
		}
	}
	if len(l.Segments()) < 3 {
		t.Fatalf("%d segments", len(l.Segments()))
	}
	for target := int64(0); target <= 800; target += 5 {
		wantOff, wantTS, wantFound := int64(0), int64(0), false
		for i, ts := range tss {
			if ts >= target {
				wantOff, wantTS, wantFound = int64(i), ts, true
				break
			}
		}
		off, ts, found, err := l.OffsetForTimestamp(target)
		if err != nil || found != wantFound || (found && (off != wantOff || ts != wantTS)) {
			t.Fatalf("OffsetForTimestamp(%d) = %d, %d, %v, %v; want %d, %d, %v", target, off, ts, found, err, wantOff, wantTS, wantFound)
		}
	}
}

func TestOffsetForTimestampAfterDeleteSegments(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 1000})
	l := e.open()
	newWriter(t, l).appendMany(30, 3, 30)
	// Log start inside a segment: records below it are not answers.
	start := l.Segments()[1].BaseOffset + 1
	if _, err := l.DeleteSegmentsBelow(start); err != nil {
		t.Fatal(err)
	}
	off, _, found, err := l.OffsetForTimestamp(0)
	if err != nil || !found || off != start {
		t.Fatalf("OffsetForTimestamp(0) = %d, %v, %v; want the log start %d", off, found, err, start)
	}
}

func TestReopenAfterClose(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 2000, IndexIntervalBytes: 200})
	l := e.open()
	w := newWriter(t, l)
	w.appendMany(50, 5, 40)
	before := l.Segments()
	end := l.LogEndOffset()

	l = e.reopen(l)
	if got := l.Segments(); fmt.Sprint(shape(got)) != fmt.Sprint(shape(before)) {
		t.Fatalf("segments after reopen:\n%v\nwant\n%v", got, before)
	}
	if l.LogEndOffset() != end || l.LogStartOffset() != 0 || l.RecoveryPoint() != end {
		t.Fatalf("after reopen: LEO %d start %d recovery point %d", l.LogEndOffset(), l.LogStartOffset(), l.RecoveryPoint())
	}
	readAll(t, l, 0, 1500)
	wantNotLogged(t, e.logs, "level=WARN")
	// A clean shutdown means no scan: indexes are loaded, not rebuilt.
	wantNotLogged(t, e.logs, "rebuilding")

	w = newWriter(t, l)
	w.appendMany(10, 5, 40)
	l = e.reopen(l)
	readAll(t, l, 0, 1500)
	wantNotLogged(t, e.logs, "level=WARN")
}

func TestAppendRecordTooLarge(t *testing.T) {
	e := newEnv(t, Config{MaxMessageBytes: 1000})
	l := e.open()
	w := newWriter(t, l)
	w.append(2, 10)
	small := buildBatch(t, 0, 1, 10)
	big := buildBatch(t, 0, 5, 300)
	_, err := l.Append(append(append([]byte{}, small...), big...), 0)
	var tooLarge *RecordTooLargeError
	if !errors.As(err, &tooLarge) || tooLarge.Batch != 1 || tooLarge.Size != len(big) || tooLarge.Max != 1000 {
		t.Fatalf("Append error = %v", err)
	}
	_, err = l.AppendChecked(append(append([]byte{}, small...), big...), 0)
	if !errors.As(err, &tooLarge) || tooLarge.Batch != 1 {
		t.Fatalf("AppendChecked error = %v", err)
	}
	if l.LogEndOffset() != 2 || l.Size() != int64(w.batches[0].size) {
		t.Fatalf("a rejected append wrote: LEO %d size %d", l.LogEndOffset(), l.Size())
	}
	// Raising max.message.bytes live lets it through.
	l.SetConfig(Config{MaxMessageBytes: 4000})
	if _, err := l.Append(big, 0); err != nil {
		t.Fatal(err)
	}
}

func TestAppendRejectsWholeCallOnInvalidBatch(t *testing.T) {
	e := newEnv(t, Config{})
	l := e.open()
	w := newWriter(t, l)
	w.append(3, 10)
	size := l.Size()

	b0, b1, b2 := buildBatch(t, 0, 2, 10), buildBatch(t, 0, 2, 10), buildBatch(t, 0, 2, 10)
	bad := bytes.Clone(b1)
	bad[len(bad)-1] ^= 0xff // CRC mismatch
	cases := []struct {
		name    string
		in      []byte
		batch   string
		wantErr func(error) bool
	}{
		{"crc", bytes.Join([][]byte{b0, bad, b2}, nil), "batch 1", record.IsCorrupt},
		{"truncated", bytes.Join([][]byte{b0, b1, b2[:40]}, nil), "batch 2", func(err error) bool {
			return record.IsCorrupt(err) && errors.Is(err, record.ErrShortBuffer)
		}},
		{"trailing bytes", bytes.Join([][]byte{b0, {1, 2, 3}}, nil), "batch 1", record.IsCorrupt},
		{"magic", func() []byte { b := bytes.Clone(b0); b[16] = 1; return b }(), "batch 0", record.IsCorrupt},
		{"empty", nil, "no record batches", record.IsCorrupt},
	}
	// AppendChecked trusts the caller with the CRCs, and with nothing else.
	appends := map[string]func([]byte, int32) (AppendResult, error){"Append": l.Append, "AppendChecked": l.AppendChecked}
	for _, tc := range cases {
		for name, appendFn := range appends {
			if name == "AppendChecked" && tc.name == "crc" {
				continue
			}
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				orig := bytes.Clone(tc.in)
				_, err := appendFn(tc.in, 3)
				if err == nil || !tc.wantErr(err) || !strings.Contains(err.Error(), tc.batch) {
					t.Fatalf("%s error = %v, want one naming %q", name, err, tc.batch)
				}
				if l.LogEndOffset() != 3 || l.Size() != size {
					t.Fatalf("rejected append wrote: LEO %d size %d", l.LogEndOffset(), l.Size())
				}
				if !bytes.Equal(tc.in, orig) {
					t.Fatal("rejected append modified the caller's buffer")
				}
			})
		}
	}
	readAll(t, l, 0, 1<<20)
	w.append(1, 10) // the log is still writable
}

func TestAppendStampsOffsetsAndEpoch(t *testing.T) {
	e := newEnv(t, Config{})
	l := e.open()
	newWriter(t, l).append(5, 10)
	// Three batches in one call, with garbage base offsets from the client.
	var in []byte
	for i, n := range []int{3, 1, 4} {
		b := buildBatch(t, 0, n, 10)
		record.SetBaseOffset(b, int64(1000*i+99))
		in = append(in, b...)
	}
	res, err := l.Append(in, 42)
	if err != nil {
		t.Fatal(err)
	}
	if res.FirstOffset != 5 || res.LastOffset != 12 || res.Batches != 3 || res.Records != 8 {
		t.Fatalf("AppendResult = %+v", res)
	}
	got, err := l.Read(5, 1<<20, l.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Data, in) {
		t.Fatal("stored bytes differ from the stamped input")
	}
	it := record.NewBatches(got.Data)
	for want := int64(5); it.Next(); {
		h := it.Header()
		if h.BaseOffset != want || h.PartitionLeaderEpoch != 42 {
			t.Fatalf("batch header %+v, want base %d epoch 42", h, want)
		}
		want = h.NextOffset()
	}
}

func TestTruncateTo(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 1500, IndexIntervalBytes: 100})
	l := e.open()
	w := newWriter(t, l)
	w.appendMany(40, 4, 30)
	segs := l.Segments()
	if len(segs) < 4 {
		t.Fatalf("%d segments", len(segs))
	}
	end := l.LogEndOffset()

	// Beyond the end: nothing happens.
	if err := l.TruncateTo(end + 5); err != nil || l.LogEndOffset() != end {
		t.Fatalf("TruncateTo(end+5): %v, LEO %d", err, l.LogEndOffset())
	}
	// Inside a batch of the active segment: the whole batch goes.
	last := w.batches[len(w.batches)-1]
	if last.next-last.first < 2 {
		t.Fatal("want a multi-record last batch")
	}
	if err := l.TruncateTo(last.first + 1); err != nil {
		t.Fatal(err)
	}
	if l.LogEndOffset() != last.first {
		t.Fatalf("LEO %d after truncating into batch [%d, %d)", l.LogEndOffset(), last.first, last.next)
	}
	// Into a sealed segment, mid-segment at a batch boundary: later segments
	// go and it becomes active again.
	var cut batchInfo
	for _, b := range w.batches {
		if b.first > segs[1].BaseOffset && b.next < segs[1].NextOffset {
			cut = b
			break
		}
	}
	if err := l.TruncateTo(cut.first); err != nil {
		t.Fatal(err)
	}
	after := l.Segments()
	if len(after) != 2 || after[1].Sealed || after[1].NextOffset != cut.first || l.LogEndOffset() != cut.first {
		t.Fatalf("after TruncateTo(%d): segments %+v, LEO %d", cut.first, after, l.LogEndOffset())
	}
	for _, s := range segs[2:] {
		if _, err := os.Stat(e.segPath(s.BaseOffset, logSuffix)); !os.IsNotExist(err) {
			t.Fatalf("segment %d still on disk: %v", s.BaseOffset, err)
		}
	}
	if rp := l.RecoveryPoint(); rp > cut.first {
		t.Fatalf("recovery point %d above the log end %d", rp, cut.first)
	}
	readAll(t, l, 0, 700)
	if _, _, found, _ := l.OffsetForTimestamp(tsBase + cut.first); found {
		t.Fatal("OffsetForTimestamp finds a truncated record")
	}
	if got := after[1].MaxTimestamp; got != tsBase+cut.first-1 {
		t.Fatalf("max timestamp after truncation %d, want %d", got, tsBase+cut.first-1)
	}
	// Appending continues densely, also after a reopen.
	w = newWriter(t, l)
	w.appendMany(20, 4, 30)
	readAll(t, l, 0, 700)
	l = e.reopen(l)
	readAll(t, l, 0, 700)
	// At a segment's base: that segment is kept, empty.
	base := l.Segments()[1].BaseOffset
	if err := l.TruncateTo(base); err != nil {
		t.Fatal(err)
	}
	if s := l.Segments(); len(s) != 2 || s[1].Size != 0 || l.LogEndOffset() != base {
		t.Fatalf("after TruncateTo(segment base): %+v", s)
	}
	// Below the log start: out of range.
	if _, err := l.DeleteSegmentsBelow(base); err != nil {
		t.Fatal(err)
	}
	var oor *OffsetOutOfRangeError
	if err := l.TruncateTo(base - 1); !errors.As(err, &oor) {
		t.Fatalf("TruncateTo below the log start: %v", err)
	}
}

func TestTruncateToSurvivesCrash(t *testing.T) {
	// After a truncation the recovery point must not claim the new, unsynced
	// data at the truncated offsets is durable.
	e := newEnv(t, Config{SegmentBytes: 1000})
	l := e.open()
	w := newWriter(t, l)
	w.appendMany(30, 3, 30)
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	cut := w.batches[5].first
	if err := l.TruncateTo(cut); err != nil {
		t.Fatal(err)
	}
	w.appendMany(5, 3, 30)
	rp, err := readCheckpoint(e.dir, recoveryPointFile)
	if err != nil || rp > cut {
		t.Fatalf("recovery point checkpoint %d (%v), want <= %d", rp, err, cut)
	}
	l2 := e.crash(l).open()
	readAll(t, l2, 0, 1<<20)
	if l2.LogEndOffset() != l.LogEndOffset() {
		t.Fatalf("LEO after crash %d, want %d", l2.LogEndOffset(), l.LogEndOffset())
	}
}

func TestDeleteSegmentsBelow(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 1000})
	l := e.open()
	w := newWriter(t, l)
	w.appendMany(40, 3, 30)
	segs := l.Segments()
	if len(segs) < 5 {
		t.Fatalf("%d segments", len(segs))
	}
	// Inside segment 2: segments 0 and 1 go, the log start moves to the offset.
	off := segs[2].BaseOffset + 1
	n, err := l.DeleteSegmentsBelow(off)
	if err != nil || n != 2 {
		t.Fatalf("DeleteSegmentsBelow = %d, %v", n, err)
	}
	if l.LogStartOffset() != off || l.Segments()[0].BaseOffset != segs[2].BaseOffset {
		t.Fatalf("log start %d, first segment %d", l.LogStartOffset(), l.Segments()[0].BaseOffset)
	}
	for _, s := range segs[:2] {
		for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
			if _, err := os.Stat(e.segPath(s.BaseOffset, suffix)); !os.IsNotExist(err) {
				t.Fatalf("%s of segment %d still there", suffix, s.BaseOffset)
			}
		}
	}
	// Backwards: nothing.
	if n, err := l.DeleteSegmentsBelow(1); n != 0 || err != nil || l.LogStartOffset() != off {
		t.Fatalf("DeleteSegmentsBelow(1) = %d, %v", n, err)
	}
	var oor *OffsetOutOfRangeError
	if _, err := l.DeleteSegmentsBelow(l.LogEndOffset() + 1); !errors.As(err, &oor) {
		t.Fatalf("beyond LEO: %v", err)
	}
	l = e.reopen(l)
	if l.LogStartOffset() != off {
		t.Fatalf("log start after reopen %d, want %d", l.LogStartOffset(), off)
	}
	readAll(t, l, off, 1<<20)

	// Everything: the log rolls so that the active segment can go too.
	end := l.LogEndOffset()
	n, err = l.DeleteSegmentsBelow(end)
	if err != nil || n != len(segs)-2 {
		t.Fatalf("DeleteSegmentsBelow(LEO) = %d, %v", n, err)
	}
	if s := l.Segments(); len(s) != 1 || s[0].BaseOffset != end || s[0].Size != 0 {
		t.Fatalf("segments %+v", s)
	}
	w = newWriter(t, l)
	w.append(2, 10)
	l = e.reopen(l)
	if l.LogStartOffset() != end || l.LogEndOffset() != end+2 {
		t.Fatalf("after reopen: start %d end %d", l.LogStartOffset(), l.LogEndOffset())
	}
	readAll(t, l, end, 1<<20)
}

func TestDeleteSegmentsBelowFinishedAfterCrash(t *testing.T) {
	// The log start checkpoint is written before files are deleted; a crash
	// in between leaves segments below it, which Open deletes.
	e := newEnv(t, Config{SegmentBytes: 1000})
	l := e.open()
	newWriter(t, l).appendMany(30, 3, 30)
	segs := l.Segments()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := writeCheckpoint(e.dir, logStartFile, segs[2].BaseOffset); err != nil {
		t.Fatal(err)
	}
	l = e.open()
	if got := l.Segments()[0].BaseOffset; got != segs[2].BaseOffset || l.LogStartOffset() != got {
		t.Fatalf("first segment %d, log start %d; want %d", got, l.LogStartOffset(), segs[2].BaseOffset)
	}
	if _, err := os.Stat(e.segPath(0, logSuffix)); !os.IsNotExist(err) {
		t.Fatal("segment below the log start not deleted")
	}
}

func TestFlushPolicy(t *testing.T) {
	t.Run("flush.messages=1", func(t *testing.T) {
		e := newEnv(t, Config{FlushMessages: 1, SegmentBytes: 500})
		l := e.open()
		w := newWriter(t, l)
		for range 20 {
			w.append(2, 20)
			if rp := l.RecoveryPoint(); rp != l.LogEndOffset() {
				t.Fatalf("recovery point %d after an fsynced append, LEO %d", rp, l.LogEndOffset())
			}
		}
	})
	t.Run("flush.messages=10", func(t *testing.T) {
		e := newEnv(t, Config{FlushMessages: 10})
		l := e.open()
		w := newWriter(t, l)
		for i := 1; i <= 12; i++ {
			w.append(1, 20)
			want := int64(0)
			if i >= 10 {
				want = 10
			}
			if rp := l.RecoveryPoint(); rp != want {
				t.Fatalf("after %d records: recovery point %d, want %d", i, rp, want)
			}
		}
	})
	t.Run("flush.ms", func(t *testing.T) {
		e := newEnv(t, Config{FlushInterval: time.Second})
		l := e.open()
		w := newWriter(t, l)
		w.append(3, 20)
		if err := l.MaybeFlush(); err != nil || l.RecoveryPoint() != 0 {
			t.Fatalf("MaybeFlush before the interval: %v, recovery point %d", err, l.RecoveryPoint())
		}
		e.clock.Advance(time.Second)
		if err := l.MaybeFlush(); err != nil || l.RecoveryPoint() != 3 {
			t.Fatalf("MaybeFlush after the interval: %v, recovery point %d", err, l.RecoveryPoint())
		}
		if rp, err := readCheckpoint(e.dir, recoveryPointFile); err != nil || rp != 3 {
			t.Fatalf("checkpoint %d, %v", rp, err)
		}
		if _, err := os.Stat(e.segPath(0, indexSuffix)); err != nil {
			t.Fatalf("Flush did not write the index: %v", err)
		}
	})
	t.Run("Flush", func(t *testing.T) {
		e := newEnv(t, Config{SegmentBytes: 300})
		l := e.open()
		w := newWriter(t, l)
		w.appendMany(10, 3, 30)
		if err := l.Flush(); err != nil {
			t.Fatal(err)
		}
		for _, s := range l.Segments() {
			if _, err := readCheckpoint(e.dir, recoveryPointFile); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(e.segPath(s.BaseOffset, indexSuffix)); err != nil {
				t.Fatalf("segment %d has no index after Flush", s.BaseOffset)
			}
		}
		if rp, _ := readCheckpoint(e.dir, recoveryPointFile); rp != l.LogEndOffset() {
			t.Fatalf("checkpoint %d, LEO %d", rp, l.LogEndOffset())
		}
	})
}

func TestClosedLog(t *testing.T) {
	e := newEnv(t, Config{})
	l := e.open()
	newWriter(t, l).append(1, 10)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := l.Append(buildBatch(t, 0, 1, 10), 0); !errors.Is(err, ErrLogClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if _, err := l.Read(0, 100, 1); !errors.Is(err, ErrLogClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if _, _, _, err := l.OffsetForTimestamp(0); !errors.Is(err, ErrLogClosed) {
		t.Fatalf("OffsetForTimestamp after Close: %v", err)
	}
	if err := l.Flush(); !errors.Is(err, ErrLogClosed) {
		t.Fatalf("Flush after Close: %v", err)
	}
	if _, err := os.Stat(e.dir + "/" + cleanShutdownFile); err != nil {
		t.Fatalf("no clean shutdown marker: %v", err)
	}
}

func TestWriteFailureIsSticky(t *testing.T) {
	e := newEnv(t, Config{})
	l := e.open()
	w := newWriter(t, l)
	w.append(2, 10)
	// Make the next write fail: the file under the active segment is closed.
	l.mu.Lock()
	l.active().f.Close()
	l.mu.Unlock()
	_, err := l.Append(buildBatch(t, 0, 1, 10), 0)
	if err == nil {
		t.Fatal("Append to a closed file succeeded")
	}
	// Refused from now on, with the first error.
	_, err2 := l.Append(buildBatch(t, 0, 1, 10), 0)
	if !errors.Is(err2, ErrLogFailed) || !strings.Contains(err2.Error(), err.Error()) {
		t.Fatalf("second Append: %v (first: %v)", err2, err)
	}
	if err := l.Flush(); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("Flush after failure: %v", err)
	}
	if l.LogEndOffset() != 2 {
		t.Fatalf("LEO %d", l.LogEndOffset())
	}
	if _, err := l.Read(0, 1<<20, l.LogEndOffset()); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("Read after a write failure: %v, want ErrLogFailed", err)
	}
	l.Close()
	if _, err := os.Stat(e.dir + "/" + cleanShutdownFile); !os.IsNotExist(err) {
		t.Fatal("a failed log was marked clean")
	}
}

func TestConcurrentReadersWhileAppending(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 16 << 10, IndexIntervalBytes: 512})
	l := e.open()
	const batches = 600
	var total int64
	for i := range batches {
		total += int64(1 + i%5)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := range batches {
			first := l.LogEndOffset()
			if _, err := l.Append(buildBatch(t, first, 1+i%5, 50), 7); err != nil {
				errs <- err
				return
			}
			if i%100 == 99 {
				if err := l.Flush(); err != nil {
					errs <- err
					return
				}
			}
		}
	}()
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			maxBytes := []int{1, 700, 8192}[r]
			for off := int64(0); off < total; {
				end := l.LogEndOffset()
				res, err := l.Read(off, maxBytes, end)
				if err != nil {
					errs <- fmt.Errorf("reader %d: Read(%d): %w", r, off, err)
					return
				}
				if len(res.Data) == 0 {
					if off != end {
						errs <- fmt.Errorf("reader %d: empty read at %d < LEO %d", r, off, end)
						return
					}
					time.Sleep(100 * time.Microsecond)
					continue
				}
				off = checkRecords(t, res.Data, res.FirstOffset)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if end := l.LogEndOffset(); end > 0 {
				off, _, found, err := l.OffsetForTimestamp(tsBase + end - 1)
				if err != nil || !found || off != end-1 {
					errs <- fmt.Errorf("OffsetForTimestamp(ts of %d) = %d, %v, %v", end-1, off, found, err)
					return
				}
			}
			_ = l.Segments()
			_ = l.Size()
			_ = l.RecoveryPoint()
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if l.LogEndOffset() != total {
		t.Fatalf("LEO %d, want %d", l.LogEndOffset(), total)
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.WithDefaults()
	if c.SegmentBytes != 1<<30 || c.SegmentMs != 7*24*time.Hour || c.IndexIntervalBytes != 4096 || c.MaxMessageBytes != 1048588 ||
		c.FlushMessages != 0 || c.FlushInterval != 0 {
		t.Fatalf("defaults: %+v", c)
	}
	if c := (Config{SegmentBytes: math.MaxInt64}).WithDefaults(); c.SegmentBytes != math.MaxInt32 {
		t.Fatalf("segment.bytes not bounded: %d", c.SegmentBytes)
	}
}
