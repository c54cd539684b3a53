package partlog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/strata-broker/strata/record"
)

// A lazy load that fails on I/O takes the log offline, and OpenSealed,
// which the tiering upload calls without asking whether the log is
// online, must not hand out the segment as if it were loaded: its max
// timestamp, never loaded, would be uploaded as "none".
func TestOpenSealedRefusesALazySegmentWhoseLoadFailed(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 3000, IndexIntervalBytes: 200})
	l := e.open()
	newWriter(t, l).appendMany(60, 4, 30)
	victim := l.Segments()[1].BaseOffset
	l = e.reopen(l)
	// The filesystem refuses the segment's file: a directory stands where
	// it was.
	if err := os.Rename(e.segPath(victim, logSuffix), e.segPath(victim, logSuffix+".moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(e.segPath(victim, logSuffix), 0o755); err != nil {
		t.Fatal(err)
	}
	sealed, err := l.OpenSealed(victim)
	if err == nil {
		sealed.Close()
		t.Fatalf("OpenSealed of a segment whose load failed: max timestamp %d, want an error", sealed.Info.MaxTimestamp)
	}
	if !errors.Is(err, syscall.EISDIR) {
		t.Fatalf("OpenSealed of a segment whose load failed: %v, want the load's error (EISDIR)", err)
	}
	if err := l.Failed(); !errors.Is(err, syscall.EISDIR) {
		t.Fatalf("log after a failed load: %v, want offline (EISDIR)", err)
	}
}

// A lazy load of a segment that Recover has since replaced (OpenSealed
// finds the segment, Recover swaps the list and closes its file, then
// OpenSealed loads it) must not take the recovered log offline again: the
// segment is no longer the log's.
func TestLazyLoadOfASegmentRecoverReplacedKeepsTheLogOnline(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 3000, IndexIntervalBytes: 200})
	e.files = NewFileCache(0) // every file stays open
	l := e.open()
	newWriter(t, l).appendMany(60, 4, 30)
	l = e.reopen(l)
	// A walk from the start opens the segments' files without loading
	// their indexes.
	if _, err := l.WalkHeadersFrom(0, func(*record.Header) {}); err != nil {
		t.Fatal(err)
	}
	old := l.segs[len(l.segs)-2]
	if !old.lazy.Load() {
		t.Fatalf("segment %s is not lazy", old.name())
	}
	l.fail(errors.New("simulated storage failure"))
	if err := l.Recover(); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	old.ensureIndexes() // its file, closed by Recover, fails the load
	if err := l.Failed(); err != nil {
		t.Fatalf("log after a load of a segment it no longer holds: %v, want online", err)
	}
	readAll(t, l, 0, 1000)
}

// A lazy segment whose indexes are rebuilt gets the time index an open
// rebuilding them at once gives it: one ending with the segment's max
// timestamp (sealTimeIndex), so that the file written, and uploaded by
// tiering, is the same either way.
func TestLazyRebuiltTimeIndexEndsWithTheMaxTimestamp(t *testing.T) {
	// Sparse entries: the segment's last batches, which reach its max
	// timestamp, are not indexed.
	e := newEnv(t, Config{SegmentBytes: 3000, IndexIntervalBytes: 1000})
	l := e.open()
	newWriter(t, l).appendMany(60, 4, 30)
	l = e.reopen(l)
	victim := l.Segments()[1]
	l.Close()
	if err := os.Remove(e.segPath(victim.BaseOffset, timeIndexSuffix)); err != nil {
		t.Fatal(err)
	}
	eager := newEnv(t, e.cfg)
	copyDir(t, e.dir, eager.dir)
	if err := os.Remove(filepath.Join(eager.dir, cleanShutdownFile)); err != nil {
		t.Fatal(err)
	}
	eager.open().Close()
	want, err := os.ReadFile(eager.segPath(victim.BaseOffset, timeIndexSuffix))
	if err != nil {
		t.Fatal(err)
	}
	if tim, err := decodeTimeEntries(want); err != nil || len(tim) == 0 || tim[len(tim)-1].ts != victim.MaxTimestamp {
		t.Fatalf("time index rebuilt at an eager open: %v, %v; want it to end with %d", tim, err, victim.MaxTimestamp)
	}

	l = e.open()
	if got := l.Segments()[1]; got != victim {
		t.Fatalf("segment after its lazy load: %+v, want %+v", got, victim)
	}
	got, err := os.ReadFile(e.segPath(victim.BaseOffset, timeIndexSuffix))
	if err != nil {
		t.Fatalf("time index rebuilt by the lazy load not written: %v", err)
	}
	if !bytes.Equal(got, want) {
		gotTim, _ := decodeTimeEntries(got)
		wantTim, _ := decodeTimeEntries(want)
		t.Fatalf("time index rebuilt by the lazy load: %v, want %v (as an eager open rebuilds it)", gotTim, wantTim)
	}
}

// OffsetForTimestamp reaching a lazy segment whose load fails on I/O
// reports the failure: the segment's max timestamp is missing, not lower
// than every timestamp, and skipping it would answer with an offset of a
// later segment.
func TestOffsetForTimestampReportsAFailedLazyLoad(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 3000, IndexIntervalBytes: 200})
	l := e.open()
	newWriter(t, l).appendMany(60, 4, 30)
	l = e.reopen(l)
	segs := l.Segments()
	if len(segs) < 3 {
		t.Fatalf("%d segments, want at least 3", len(segs))
	}
	l = e.reopen(l)
	victim := segs[1]
	if err := os.Rename(e.segPath(victim.BaseOffset, logSuffix), e.segPath(victim.BaseOffset, logSuffix+".moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(e.segPath(victim.BaseOffset, logSuffix), 0o755); err != nil {
		t.Fatal(err)
	}
	off, _, found, err := l.OffsetForTimestamp(tsBase + victim.BaseOffset + 1)
	if err == nil {
		t.Fatalf("OffsetForTimestamp in a segment whose load failed: offset %d (found %v), want an error", off, found)
	}
	if !IsStorageError(err) || !errors.Is(err, syscall.EISDIR) {
		t.Fatalf("OffsetForTimestamp in a segment whose load failed: %v, want a storage error (EISDIR)", err)
	}
}
