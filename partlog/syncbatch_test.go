package partlog

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// openBatched opens e's log with its opening fsyncs deferred to batch.
func (e *env) openBatched(batch *SyncBatch) *Log {
	e.t.Helper()
	l, err := Open(Options{Dir: e.dir, Config: e.cfg, Now: e.clock.Now, Files: e.files, Sync: batch})
	if err != nil {
		e.t.Fatalf("Open(%s): %v", e.dir, err)
	}
	e.t.Cleanup(func() { l.Close() })
	return l
}

// Logs opened together with one batch, new and after a clean shutdown, are
// what they would be opened one by one: after the batch's Sync they take
// writes, and what they hold survives a close and a reopen.
func TestSyncBatchOpensLogs(t *testing.T) {
	envs := make([]*env, 5)
	batch := NewSyncBatch()
	logs := make([]*Log, len(envs))
	for i := range envs {
		envs[i] = newEnv(t, Config{})
		logs[i] = envs[i].openBatched(batch)
	}
	if err := batch.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	for i, l := range logs {
		w := newWriter(t, l)
		w.appendMany(i+1, 3, 100)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	batch = NewSyncBatch()
	for i, e := range envs {
		if _, err := os.Stat(filepath.Join(e.dir, cleanShutdownFile)); err != nil {
			t.Fatalf("log %d closed without its clean shutdown marker: %v", i, err)
		}
		logs[i] = e.openBatched(batch)
		if _, err := os.Stat(filepath.Join(e.dir, cleanShutdownFile)); !os.IsNotExist(err) {
			t.Fatalf("log %d: the clean shutdown marker is still there after opening: %v", i, err)
		}
	}
	if err := batch.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	for i, l := range logs {
		var want int64
		for j := range i + 1 {
			want += int64(1 + j%3)
		}
		if got := l.LogEndOffset(); got != want {
			t.Errorf("log %d: end offset %d after reopening, want %d", i, got, want)
		}
		readAll(t, l, 0, 1<<20)
	}
}

// What a power loss before a batch's Sync may leave of a new log (files
// created but never written back: empty checkpoints, an empty segment, or
// none) opens as an empty log, and recovery says why it scanned.
func TestSyncBatchUnsyncedCreationRecovers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string
	}{
		{"empty checkpoints and segment", []string{recoveryPointFile, logStartFile, segmentName(0, logSuffix)}},
		{"empty checkpoints, no segment", []string{recoveryPointFile, logStartFile}},
		{"an empty recovery point only", []string{recoveryPointFile}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			for _, name := range tc.files {
				if err := os.WriteFile(filepath.Join(e.dir, name), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			l := e.open()
			if l.LogEndOffset() != 0 || l.LogStartOffset() != 0 {
				t.Fatalf("log [%d, %d), want an empty log at 0", l.LogStartOffset(), l.LogEndOffset())
			}
			wantLogged(t, e.logs, "unreadable recovery point checkpoint")
			newWriter(t, l).append(2, 10)
			l = e.reopen(l)
			if l.LogEndOffset() != 2 {
				t.Fatalf("end offset %d after reopening, want 2", l.LogEndOffset())
			}
		})
	}
}

// HoldsRecords tells a directory with a non-empty segment from one whose
// segments are all empty.
func TestHoldsRecords(t *testing.T) {
	e := newEnv(t, Config{})
	l := e.open()
	if held, err := HoldsRecords(e.dir); err != nil || held {
		t.Fatalf("HoldsRecords of a new log = %v, %v; want false", held, err)
	}
	newWriter(t, l).append(1, 10)
	if held, err := HoldsRecords(e.dir); err != nil || !held {
		t.Fatalf("HoldsRecords after an append = %v, %v; want true", held, err)
	}
	if _, err := HoldsRecords(filepath.Join(e.dir, "missing")); err == nil {
		t.Fatal("HoldsRecords of a missing directory: no error")
	}
}

// Closing with a batch moves the recovery point only in Checkpoint, after
// the batch synced the data, and marks the clean shutdown only when MarkClean runs
// (after the batch synced what the marker vouches for); a log whose marker
// was never written is recovered, and loses nothing either way. Closing
// twice gives nothing to mark.
func TestCloseBatched(t *testing.T) {
	for _, mark := range []bool{true, false} {
		e := newEnv(t, Config{})
		l := e.open()
		newWriter(t, l).appendMany(5, 3, 40)
		end := l.LogEndOffset()
		batch := NewSyncBatch()
		ps := NewProducerStates(ProducerStateConfig{})
		if _, err := l.WriteProducerSnapshotTo(batch, ps, e.clock.Now()); err != nil {
			t.Fatal(err)
		}
		closing, err := l.CloseBatched(batch)
		if err != nil || closing == nil {
			t.Fatalf("CloseBatched = %v, %v; want what is left of closing", closing != nil, err)
		}
		if again, err := l.CloseBatched(batch); again != nil || err != nil {
			t.Fatalf("second CloseBatched = %v, %v; want nothing", again != nil, err)
		}
		if err := batch.Sync(); err != nil {
			t.Fatal(err)
		}
		// The recovery point moves only after the data is synced.
		if rp, err := readCheckpoint(e.dir, recoveryPointFile); err == nil && rp == end {
			t.Fatalf("recovery point already at the log end %d before Checkpoint", end)
		}
		if err := closing.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		if rp, err := readCheckpoint(e.dir, recoveryPointFile); err != nil || rp != end {
			t.Fatalf("recovery point after Checkpoint %d, %v; want the log end %d", rp, err, end)
		}
		if err := batch.Sync(); err != nil {
			t.Fatal(err)
		}
		marker := filepath.Join(e.dir, cleanShutdownFile)
		if _, err := os.Stat(marker); !os.IsNotExist(err) {
			t.Fatalf("clean shutdown marker before MarkClean: %v", err)
		}
		if mark {
			if err := closing.MarkClean(); err != nil {
				t.Fatal(err)
			}
			if err := batch.Sync(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(marker); err != nil {
				t.Fatalf("clean shutdown marker after MarkClean: %v", err)
			}
		}
		l = e.open()
		if l.LogEndOffset() != end {
			t.Fatalf("mark=%v: end offset %d after reopening, want %d", mark, l.LogEndOffset(), end)
		}
		readAll(t, l, 0, 1<<20)
	}
}

// A new log is one empty segment: its checkpoints would say what their
// absence says, so none is written until there is something to say. A
// crash before any is written loses nothing appended.
func TestNewLogCreatesOnlyItsSegment(t *testing.T) {
	e := newEnv(t, Config{})
	l := e.open()
	entries, err := os.ReadDir(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, en := range entries {
		names = append(names, en.Name())
	}
	if len(names) != 1 || names[0] != segmentName(0, logSuffix) {
		t.Fatalf("a new log's directory holds %v, want only its first segment", names)
	}
	newWriter(t, l).appendMany(3, 2, 20)
	crashed := t.TempDir()
	copyDir(t, e.dir, crashed)
	e2 := &env{t: t, dir: crashed, cfg: e.cfg, clock: e.clock, logs: &logBuffer{}, files: NewFileCache(envOpenFiles)}
	l2 := e2.open()
	if l2.LogEndOffset() != l.LogEndOffset() || l2.LogStartOffset() != 0 {
		t.Fatalf("after a crash the log is [%d, %d), want [0, %d)", l2.LogStartOffset(), l2.LogEndOffset(), l.LogEndOffset())
	}
	readAll(t, l2, 0, 1<<20)
	wantNotLogged(t, e2.logs, "level=WARN")
	// Nor does its recovery write a log start that its absence says.
	if _, err := os.Stat(filepath.Join(crashed, logStartFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("recovery wrote %s (err %v), which says what its absence does", logStartFile, err)
	}
}

// A batch holds each filesystem it defers writes to open from the first of
// them until Sync, since syncfs reports only the write-back errors that
// happened after its descriptor was opened: the kernel may write a
// deferred file back, and fail, long before Sync. Sync lets go of it.
func TestSyncBatchHoldsItsFilesystemFromTheFirstDeferredWrite(t *testing.T) {
	if !syncfsAvailable {
		t.Skip("no syncfs: a batch defers nothing")
	}
	e1, e2 := newEnv(t, Config{}), newEnv(t, Config{})
	batch := NewSyncBatch()
	e1.openBatched(batch)
	e2.openBatched(batch)
	held := func() []string {
		t.Helper()
		fds, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skipf("no /proc/self/fd: %v", err)
		}
		var dirs []string
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
			if err == nil && (target == e1.dir || target == e2.dir) {
				dirs = append(dirs, target)
			}
		}
		return dirs
	}
	if got := held(); len(got) != 1 {
		t.Fatalf("before Sync the batch holds %v open, want one of the two log directories (one filesystem)", got)
	}
	if err := batch.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := held(); len(got) != 0 {
		t.Fatalf("after Sync %v still open", got)
	}
}

// A log closed before the batch it was opened with has synced (a Sync that
// failed, or none) is not marked clean: what its opening wrote (its
// recovery point, the clean shutdown marker's removal) may be lost, and
// the marker would have the next open trust it. Once the batch synced, a
// close marks it clean.
func TestLogClosedBeforeItsBatchSyncedIsNotMarkedClean(t *testing.T) {
	if !syncfsAvailable {
		t.Skip("no syncfs: a batch defers nothing")
	}
	e := newEnv(t, Config{})
	l := e.open()
	newWriter(t, l).appendMany(4, 2, 50)
	end := l.LogEndOffset()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(e.dir, cleanShutdownFile)
	for _, sync := range []bool{false, true} {
		batch := NewSyncBatch()
		l = e.openBatched(batch)
		if sync {
			if err := batch.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(marker); sync != (err == nil) {
			t.Fatalf("synced=%v: clean shutdown marker after Close: %v", sync, err)
		}
	}
	if l = e.open(); l.LogEndOffset() != end {
		t.Fatalf("end offset %d after reopening, want %d", l.LogEndOffset(), end)
	}
}

// After a clean shutdown the sealed segments open without their indexes:
// nothing of them is read until used. Readers arriving together load each
// once and read what was written; a crash (no clean shutdown marker) loads
// them at open as before.
func TestSealedSegmentsLoadLazilyAfterACleanShutdown(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 3000, IndexIntervalBytes: 200})
	l := e.open()
	w := newWriter(t, l)
	w.appendMany(80, 4, 30)
	l = e.reopen(l)
	sealed := l.segs[:len(l.segs)-1]
	if len(sealed) < 3 {
		t.Fatalf("%d sealed segments, want at least 3", len(sealed))
	}
	for _, s := range sealed {
		if !s.lazy.Load() {
			t.Fatalf("segment %s loaded at a clean open", s.name())
		}
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := w.batches[i*len(w.batches)/8]
			res, err := l.Read(b.first, 1<<20, l.LogEndOffset())
			if err != nil {
				t.Errorf("Read(%d): %v", b.first, err)
				return
			}
			checkRecords(t, res.Data, b.first)
		}()
	}
	wg.Wait()
	readAll(t, l, 0, 1000)
	for _, s := range sealed {
		if s.lazy.Load() {
			t.Fatalf("segment %s still not loaded after reads of every offset", s.name())
		}
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(e.dir, cleanShutdownFile)); err != nil {
		t.Fatal(err)
	}
	l = e.open()
	for _, s := range l.segs {
		if s.lazy.Load() {
			t.Fatalf("segment %s left unloaded by an open after a crash", s.name())
		}
	}
}

// A lazy segment whose index files do not check out is rebuilt on first
// use, whichever use comes first, the tiering upload's OpenSealed among
// them, and the rebuilt files are written.
func TestLazySegmentRebuiltOnFirstUseByOpenSealed(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 3000, IndexIntervalBytes: 200})
	l := e.open()
	newWriter(t, l).appendMany(60, 4, 30)
	segs := l.Segments()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	victim := segs[1].BaseOffset
	if err := os.WriteFile(e.segPath(victim, indexSuffix), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	l = e.open()
	sealed, err := l.OpenSealed(victim)
	if err != nil {
		t.Fatalf("OpenSealed: %v", err)
	}
	sealed.Close()
	wantLogged(t, e.logs, "rebuilding segment index\" dir="+e.dir+" segment="+segmentName(victim, logSuffix))
	raw, err := os.ReadFile(e.segPath(victim, indexSuffix))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeOffsetEntries(raw); err != nil {
		t.Fatalf("the rebuilt index was not written: %v", err)
	}
	readAll(t, l, 0, 1000)
}
