package partlog

import (
	"errors"
	"os"
	"slices"
	"testing"
)

// appendEpochs appends count batches of 2 records (value size 30) in each
// of the given leader epochs, in order.
func appendEpochs(t *testing.T, l *Log, count int, epochs ...int32) {
	t.Helper()
	for _, epoch := range epochs {
		for range count {
			if _, err := l.Append(buildBatch(t, l.LogEndOffset(), 2, 30), epoch); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func wantOutOfRange(t *testing.T, l *Log, offset int64) {
	t.Helper()
	var oor *OffsetOutOfRangeError
	if _, err := l.Read(offset, 1<<20, l.LogEndOffset()); !errors.As(err, &oor) || oor.Start != l.LogStartOffset() {
		t.Fatalf("Read(%d) below the log start %d: %v, want *OffsetOutOfRangeError", offset, l.LogStartOffset(), err)
	}
}

func TestAdvanceLogStart(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 1000})
	l := e.open()
	newWriter(t, l).appendMany(45, 3, 30)
	segs := l.Segments()
	if len(segs) < 6 {
		t.Fatalf("%d segments", len(segs))
	}
	// Inside segment 2: segments 0 and 1 go, the one holding the start stays.
	start := segs[2].BaseOffset + 1
	if err := l.AdvanceLogStart(start); err != nil {
		t.Fatal(err)
	}
	if l.LogStartOffset() != start || l.Segments()[0].BaseOffset != segs[2].BaseOffset {
		t.Fatalf("log start %d, first segment %d; want %d, %d", l.LogStartOffset(), l.Segments()[0].BaseOffset, start, segs[2].BaseOffset)
	}
	for _, s := range segs[:2] {
		if _, err := os.Stat(e.segPath(s.BaseOffset, logSuffix)); !os.IsNotExist(err) {
			t.Fatalf("segment %d still on disk", s.BaseOffset)
		}
	}
	if ls, err := readCheckpoint(e.dir, logStartFile); err != nil || ls != start {
		t.Fatalf("log start checkpoint %d, %v; want %d", ls, err, start)
	}
	wantOutOfRange(t, l, start-1)
	wantOutOfRange(t, l, 0)
	// The batch holding the start is served whole, as Kafka does.
	res, err := l.Read(start, 1<<20, l.LogEndOffset())
	if err != nil || res.FirstOffset > start || res.NextOffset <= start {
		t.Fatalf("Read(%d) = [%d, %d), %v", start, res.FirstOffset, res.NextOffset, err)
	}
	readAll(t, l, start, 1<<20)

	// Never backwards; never past the log end.
	if err := l.AdvanceLogStart(1); err != nil || l.LogStartOffset() != start {
		t.Fatalf("AdvanceLogStart(1) = %v, start %d", err, l.LogStartOffset())
	}
	var oor *OffsetOutOfRangeError
	if err := l.AdvanceLogStart(l.LogEndOffset() + 1); !errors.As(err, &oor) || l.LogStartOffset() != start {
		t.Fatalf("beyond the log end: %v, start %d", err, l.LogStartOffset())
	}

	l = e.reopen(l)
	if l.LogStartOffset() != start || l.Segments()[0].BaseOffset != segs[2].BaseOffset {
		t.Fatalf("after reopen: log start %d, first segment %d", l.LogStartOffset(), l.Segments()[0].BaseOffset)
	}
	wantOutOfRange(t, l, start-1)

	// Up to the log end: every segment goes (the log rolls first), and the
	// log goes on from there.
	end := l.LogEndOffset()
	if err := l.AdvanceLogStart(end); err != nil {
		t.Fatal(err)
	}
	if s := l.Segments(); len(s) != 1 || s[0].BaseOffset != end || s[0].Size != 0 || l.LogStartOffset() != end {
		t.Fatalf("after advancing to the end: start %d, segments %+v", l.LogStartOffset(), s)
	}
	wantOutOfRange(t, l, end-1)
	newWriter(t, l).append(3, 10)
	l = e.reopen(l)
	if l.LogStartOffset() != end || l.LogEndOffset() != end+3 {
		t.Fatalf("after reopen: start %d end %d, want %d %d", l.LogStartOffset(), l.LogEndOffset(), end, end+3)
	}
	readAll(t, l, end, 1<<20)
}

// The epochs of deleted records are forgotten, but the epoch holding the log
// start stays (moved up to it), so divergence answers stay right and the
// latest epoch survives a log emptied up to its end, across reopens.
func TestAdvanceLogStartTruncatesEpochs(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 1000})
	l := e.open()
	appendEpochs(t, l, 10, 1)
	e2 := l.LogEndOffset()
	appendEpochs(t, l, 10, 2)
	e3 := l.LogEndOffset()
	appendEpochs(t, l, 10, 3)
	end := l.LogEndOffset()

	start := e2 + 5 // inside epoch 2
	if err := l.AdvanceLogStart(start); err != nil {
		t.Fatal(err)
	}
	want := []EpochEntry{{2, start}, {3, e3}}
	if got := l.Epochs(); !slices.Equal(got, want) {
		t.Fatalf("epochs %v, want %v", got, want)
	}
	for _, c := range []struct {
		ask, epoch int32
		end        int64
	}{
		{1, 1, start}, // older than every epoch left: ends at the log start
		{2, 2, e3},
		{3, 3, end},
	} {
		if epoch, off := l.EndOffsetForEpoch(c.ask); epoch != c.epoch || off != c.end {
			t.Errorf("EndOffsetForEpoch(%d) = %d, %d; want %d, %d", c.ask, epoch, off, c.epoch, c.end)
		}
	}
	l = e.reopen(l)
	if got := l.Epochs(); !slices.Equal(got, want) {
		t.Fatalf("epochs after reopen %v, want %v", got, want)
	}
	// Rebuilt from the batches, the checkpoint gone: the same.
	l.Close()
	if err := os.Remove(e.dir + "/" + leaderEpochFile); err != nil {
		t.Fatal(err)
	}
	l = e.open()
	if got := l.Epochs(); !slices.Equal(got, want) {
		t.Fatalf("epochs rebuilt %v, want %v", got, want)
	}

	if err := l.AdvanceLogStart(end); err != nil {
		t.Fatal(err)
	}
	want = []EpochEntry{{3, end}}
	if got := l.Epochs(); !slices.Equal(got, want) || l.LatestEpoch() != 3 {
		t.Fatalf("epochs of a log emptied to its end %v, want %v", got, want)
	}
	l = e.reopen(l)
	if got := l.Epochs(); !slices.Equal(got, want) || l.LatestEpoch() != 3 {
		t.Fatalf("epochs of an emptied log after reopen %v, want %v", got, want)
	}
	if epoch, off := l.EndOffsetForEpoch(3); epoch != 3 || off != end {
		t.Fatalf("EndOffsetForEpoch(3) = %d, %d", epoch, off)
	}
}

// A crash after the log start checkpoint was written but before any segment
// was deleted (and before the epoch checkpoint caught up): Open deletes the
// segments below the start and forgets their epochs.
func TestAdvanceLogStartFinishedAfterCrash(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 1000})
	l := e.open()
	appendEpochs(t, l, 10, 1)
	e2 := l.LogEndOffset()
	appendEpochs(t, l, 10, 2)
	segs := l.Segments()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	start := segs[2].BaseOffset + 1
	if start <= e2 {
		t.Fatalf("test setup: start %d is not in epoch 2 (from %d)", start, e2)
	}
	if err := writeCheckpoint(e.dir, logStartFile, start); err != nil {
		t.Fatal(err)
	}
	l = e.open()
	if l.LogStartOffset() != start || l.Segments()[0].BaseOffset != segs[2].BaseOffset {
		t.Fatalf("log start %d, first segment %d; want %d, %d", l.LogStartOffset(), l.Segments()[0].BaseOffset, start, segs[2].BaseOffset)
	}
	for _, s := range segs[:2] {
		if _, err := os.Stat(e.segPath(s.BaseOffset, logSuffix)); !os.IsNotExist(err) {
			t.Fatalf("segment %d below the log start still on disk", s.BaseOffset)
		}
	}
	if got, want := l.Epochs(), []EpochEntry{{2, start}}; !slices.Equal(got, want) {
		t.Fatalf("epochs %v, want %v", got, want)
	}
	wantOutOfRange(t, l, start-1)
	if res, err := l.Read(start, 1<<20, l.LogEndOffset()); err != nil || res.FirstOffset > start || len(res.Data) == 0 {
		t.Fatalf("Read(%d) = [%d, %d), %v", start, res.FirstOffset, res.NextOffset, err)
	}
}

func TestTruncateFullyAndStartAt(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 1000})
	l := e.open()
	appendEpochs(t, l, 10, 1, 2)
	at := l.LogEndOffset() + 100
	if err := l.TruncateFullyAndStartAt(at); err != nil {
		t.Fatal(err)
	}
	if s := l.Segments(); len(s) != 1 || s[0].BaseOffset != at || s[0].Size != 0 {
		t.Fatalf("segments %+v", s)
	}
	if l.LogStartOffset() != at || l.LogEndOffset() != at || l.LatestEpoch() != UndefinedEpoch || l.RecoveryPoint() != at {
		t.Fatalf("start %d end %d epoch %d recovery point %d", l.LogStartOffset(), l.LogEndOffset(), l.LatestEpoch(), l.RecoveryPoint())
	}
	wantOutOfRange(t, l, at-1)
	// A replica goes on with its leader's batches from there.
	if _, err := l.AppendReplicated(replicaBatch(t, at, 5, 3)); err != nil {
		t.Fatal(err)
	}
	l = e.reopen(l)
	if l.LogStartOffset() != at || l.LogEndOffset() != at+3 || !slices.Equal(l.Epochs(), []EpochEntry{{5, at}}) {
		t.Fatalf("after reopen: start %d end %d epochs %v", l.LogStartOffset(), l.LogEndOffset(), l.Epochs())
	}
	entries, err := os.ReadDir(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range entries {
		if base, _, ok := parseSegmentName(de.Name()); ok && base != at {
			t.Fatalf("old segment file %s left", de.Name())
		}
	}

	// A lower offset resets too (a replica dropping what it holds).
	if err := l.TruncateFullyAndStartAt(at - 50); err != nil {
		t.Fatal(err)
	}
	if l.LogStartOffset() != at-50 || l.LogEndOffset() != at-50 {
		t.Fatalf("start %d end %d", l.LogStartOffset(), l.LogEndOffset())
	}
}

// A crash right after the new start was checkpointed: Open empties the log
// there.
func TestTruncateFullyAndStartAtFinishedAfterCrash(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 1000})
	l := e.open()
	appendEpochs(t, l, 10, 1)
	at := l.LogEndOffset() + 7
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := writeCheckpoint(e.dir, logStartFile, at); err != nil {
		t.Fatal(err)
	}
	l = e.open()
	if s := l.Segments(); len(s) != 1 || s[0].BaseOffset != at || l.LogStartOffset() != at || l.LogEndOffset() != at {
		t.Fatalf("start %d end %d segments %+v", l.LogStartOffset(), l.LogEndOffset(), s)
	}
}

// Truncating into the batch that holds a log start moved into its middle
// leaves an empty log starting at its new end, before and after a reopen.
func TestTruncateIntoTheBatchHoldingTheLogStart(t *testing.T) {
	e := newEnv(t, Config{})
	l := e.open()
	w := newWriter(t, l)
	w.append(5, 10)      // 0..4
	b := w.append(5, 10) // 5..9
	start := b.first + 2
	if err := l.AdvanceLogStart(start); err != nil {
		t.Fatal(err)
	}
	if err := l.TruncateTo(start); err != nil {
		t.Fatal(err)
	}
	if l.LogStartOffset() != b.first || l.LogEndOffset() != b.first {
		t.Fatalf("start %d end %d, want both %d", l.LogStartOffset(), l.LogEndOffset(), b.first)
	}
	wantOutOfRange(t, l, b.first-1)
	l = e.reopen(l)
	if l.LogStartOffset() != b.first || l.LogEndOffset() != b.first {
		t.Fatalf("after reopen: start %d end %d, want both %d", l.LogStartOffset(), l.LogEndOffset(), b.first)
	}
	newWriter(t, l).append(2, 10)
	readAll(t, l, b.first, 1<<20)
}
