package partlog

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/tmpfs"
)

// offline checks that l is offline after a storage failure: its failure is
// one, reads and writes are refused with it.
func offline(t *testing.T, l *Log) {
	t.Helper()
	if err := l.Failed(); !errors.Is(err, ErrLogFailed) || !IsStorageError(err) {
		t.Fatalf("Failed() = %v, want a storage failure", err)
	}
	if _, err := l.Read(l.LogStartOffset(), 1<<20, l.LogEndOffset()); !errors.Is(err, ErrLogFailed) || !IsStorageError(err) {
		t.Fatalf("Read of an offline log: %v, want the storage failure", err)
	}
	if _, err := l.Append(buildBatch(t, 0, 1, 10), 7); !errors.Is(err, ErrLogFailed) || !IsStorageError(err) {
		t.Fatalf("Append to an offline log: %v, want the storage failure", err)
	}
	if _, _, _, err := l.OffsetForTimestamp(0); !errors.Is(err, ErrLogFailed) || !IsStorageError(err) {
		t.Fatalf("OffsetForTimestamp on an offline log: %v, want the storage failure", err)
	}
}

// online checks that l serves reads and writes.
func online(t *testing.T, l *Log) {
	t.Helper()
	if err := l.Failed(); err != nil {
		t.Fatalf("Failed() = %v, want nil", err)
	}
	readAll(t, l, l.LogStartOffset(), 1<<20)
}

// Which failures take a log offline: those of the storage under it, for
// writes and reads alike. Damaged data, a request the log refuses and a
// closed log do not: the log stays online and its error is no storage
// error.
func TestStorageErrorsAreTheStoragesFailures(t *testing.T) {
	t.Run("damaged batch", func(t *testing.T) {
		e := newEnv(t, Config{})
		l := e.open()
		w := newWriter(t, l)
		w.appendMany(4, 3, 50)
		l = e.reopen(l)
		flipBit(t, e.segPath(0, logSuffix), batchPositions(t, e.segPath(0, logSuffix))[1]+70, 3)
		_, err := l.Read(w.batches[1].first, 1<<20, l.LogEndOffset())
		var corrupt *CorruptionError
		if !errors.As(err, &corrupt) || IsStorageError(err) {
			t.Fatalf("read of a damaged batch: %v, want a *CorruptionError and no storage error", err)
		}
		if l.Failed() != nil {
			t.Fatalf("a damaged batch took the log offline: %v", l.Failed())
		}
		newWriter(t, l).append(2, 50) // still writable
	})
	t.Run("refused requests", func(t *testing.T) {
		e := newEnv(t, Config{MaxMessageBytes: 1000})
		l := e.open()
		newWriter(t, l).append(3, 50)
		_, err := l.Read(l.LogEndOffset()+5, 1<<20, l.LogEndOffset()+5)
		var oor *OffsetOutOfRangeError
		if !errors.As(err, &oor) || IsStorageError(err) {
			t.Errorf("read past the end: %v, want *OffsetOutOfRangeError", err)
		}
		_, err = l.Append(buildBatch(t, 0, 5, 500), 7)
		var tooLarge *RecordTooLargeError
		if !errors.As(err, &tooLarge) || IsStorageError(err) {
			t.Errorf("batch over max.message.bytes: %v, want *RecordTooLargeError", err)
		}
		torn := buildBatch(t, 0, 2, 10)
		if _, err := l.Append(torn[:len(torn)-3], 7); err == nil || IsStorageError(err) {
			t.Errorf("truncated batch: %v, want a refusal that is no storage error", err)
		}
		if _, err := l.AppendReplicated(buildBatch(t, 100, 1, 10)); !errors.Is(err, ErrOffsetMismatch) || IsStorageError(err) {
			t.Errorf("replicated batch not at the log end: %v, want ErrOffsetMismatch", err)
		}
		if l.Failed() != nil {
			t.Fatalf("a refused request took the log offline: %v", l.Failed())
		}
		online(t, l)
	})
	t.Run("closed log", func(t *testing.T) {
		e := newEnv(t, Config{})
		l := e.open()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Read(0, 100, 0); !errors.Is(err, ErrLogClosed) || IsStorageError(err) {
			t.Errorf("read of a closed log: %v, want ErrLogClosed", err)
		}
		if err := l.Recover(); !errors.Is(err, ErrLogClosed) {
			t.Errorf("Recover of a closed log: %v, want ErrLogClosed", err)
		}
	})
	t.Run("read failure", func(t *testing.T) {
		e := newEnv(t, Config{})
		l := e.open()
		w := newWriter(t, l)
		w.appendMany(5, 4, 100)
		// The device under the segment fails: its descriptor stops
		// working, as a read from a failed disk does.
		l.segMu.RLock()
		l.segs[0].f.Close()
		l.segMu.RUnlock()
		_, err := l.Read(w.batches[2].first, 1<<20, l.LogEndOffset())
		var corrupt *CorruptionError
		if !IsStorageError(err) || errors.As(err, &corrupt) {
			t.Fatalf("read that the file refused: %v, want a storage error", err)
		}
		offline(t, l)
		if err := l.Recover(); err != nil {
			t.Fatalf("Recover: %v", err)
		}
		online(t, l)
		if got := l.LogEndOffset(); got != w.batches[4].next {
			t.Fatalf("log end %d after recovery, want %d: nothing was lost", got, w.batches[4].next)
		}
		w.append(3, 100)
		readAll(t, l, 0, 1<<20)
	})
	t.Run("segment cannot be created", func(t *testing.T) {
		e := newEnv(t, Config{SegmentMs: time.Minute})
		l := e.open()
		w := newWriter(t, l)
		w.appendMany(3, 2, 100)
		// The filesystem refuses the next segment's file: a directory
		// stands where it goes.
		obstacle := e.segPath(l.LogEndOffset(), logSuffix)
		if err := os.Mkdir(obstacle, 0o755); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(2 * time.Minute) // the next append rolls
		_, err := l.Append(buildBatch(t, l.LogEndOffset(), 1, 100), 7)
		if !IsStorageError(err) || !errors.Is(err, syscall.EISDIR) {
			t.Fatalf("append that rolls into a file it cannot create: %v, want a storage error", err)
		}
		offline(t, l)
		if err := os.Remove(obstacle); err != nil {
			t.Fatal(err)
		}
		if err := l.Recover(); err != nil {
			t.Fatalf("Recover: %v", err)
		}
		online(t, l)
		e.clock.Advance(2 * time.Minute)
		w.append(2, 100)
		if n := len(l.Segments()); n != 2 {
			t.Fatalf("%d segments, want 2: the append after recovery rolls", n)
		}
		readAll(t, l, 0, 1<<20)
	})
	t.Run("full disk", func(t *testing.T) {
		l, _, _ := fillDisk(t)
		if err := l.Failed(); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Failed() = %v, want the ENOSPC that took the log offline", err)
		}
	})
}

// fillDisk opens a log on a tmpfs of 1 MiB that also holds a file of 256
// KiB, roomFile, and appends batches of 8 KiB until the disk is full. It
// returns the log, offline, its env and the log end offset of the last
// acknowledged append.
func fillDisk(t *testing.T) (*Log, *env, int64) {
	t.Helper()
	e := newEnv(t, Config{})
	mnt := filepath.Join(t.TempDir(), "disk")
	tmpfs.Mount(t, mnt, 1<<20)
	if err := os.WriteFile(filepath.Join(mnt, roomFile), make([]byte, 256<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	e.dir = filepath.Join(mnt, "topic-0")
	l := e.open()
	acked := l.LogEndOffset()
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatal("1000 appends of 8 KiB fitted on a disk of 1 MiB")
		}
		res, err := l.Append(buildBatch(t, acked, 4, 2<<10), 7)
		if err != nil {
			if !IsStorageError(err) || !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("append to a full disk: %v, want a storage error with ENOSPC", err)
			}
			break
		}
		acked = res.LastOffset + 1
	}
	offline(t, l)
	return l, e, acked
}

// roomFile is the file fillDisk leaves beside the log, whose removal gives
// space back.
const roomFile = "room"

// A full disk takes the log offline at the append that met it, leaving
// part of its batch in the segment file. Once there is space again,
// recovery cuts the torn batch and the log carries on from the last
// acknowledged one, without being reopened.
func TestRecoverAfterFullDisk(t *testing.T) {
	l, e, acked := fillDisk(t)
	mnt := filepath.Dir(e.dir)
	if got := l.LogEndOffset(); got != acked {
		t.Fatalf("log end %d after the failed append, want %d", got, acked)
	}
	if size := fileSize(t, e.segPath(0, logSuffix)); size <= l.Size() {
		t.Fatalf("segment file of %d bytes; want part of the failed batch past the log's %d bytes", size, l.Size())
	}

	if err := os.Remove(filepath.Join(mnt, roomFile)); err != nil {
		t.Fatal(err)
	}
	e.logs.Reset()
	if err := l.Recover(); err != nil {
		t.Fatalf("Recover with space again: %v", err)
	}
	wantLogged(t, e.logs, "torn write")
	online(t, l)
	if got := l.LogEndOffset(); got != acked {
		t.Fatalf("log end %d after recovery, want %d, the end of the last acknowledged append", got, acked)
	}
	if size := fileSize(t, e.segPath(0, logSuffix)); size != l.Size() {
		t.Fatalf("segment file of %d bytes; want the log's %d bytes, the torn batch cut", size, l.Size())
	}
	w := newWriter(t, l)
	w.append(4, 2<<10)
	if err := l.Flush(); err != nil {
		t.Fatalf("Flush after recovery: %v", err)
	}
	l = e.reopen(l)
	if got := l.LogEndOffset(); got != acked+4 {
		t.Fatalf("log end %d after reopening, want %d", got, acked+4)
	}
	readAll(t, l, 0, 1<<20)
}

// Recovery cuts whatever a failed write left past the last whole batch, as
// Open does after a crash, and leaves an online log alone. While the
// filesystem still refuses writes it fails, and the log stays offline.
func TestRecoverCutsTheTornTail(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 4 << 10})
	l := e.open()
	if err := l.Recover(); err != nil {
		t.Fatalf("Recover of an online log: %v", err)
	}
	w := newWriter(t, l)
	w.appendMany(12, 4, 300)
	end := l.LogEndOffset()
	segs := l.Segments()
	active := segs[len(segs)-1]
	// A write that failed half way: part of a batch reached the file, then
	// the filesystem refused the rest.
	next := buildBatch(t, end, 3, 300)
	appendToFile(t, e.segPath(active.BaseOffset, logSuffix), next[:len(next)/2])
	l.fail(&os.PathError{Op: "write", Path: e.segPath(active.BaseOffset, logSuffix), Err: syscall.ENOSPC})
	offline(t, l)

	// The filesystem refuses to create the recovery point checkpoint: a
	// directory stands where its temporary file goes.
	obstacle := filepath.Join(e.dir, recoveryPointFile+tmpSuffix)
	if err := os.Mkdir(obstacle, 0o755); err != nil {
		t.Fatal(err)
	}
	e.logs.Reset()
	err := l.Recover()
	if !IsStorageError(err) || !errors.Is(err, syscall.EISDIR) {
		t.Fatalf("Recover while the checkpoint cannot be written: %v, want a storage error (EISDIR)", err)
	}
	offline(t, l)
	if err := l.Failed(); !errors.Is(err, syscall.EISDIR) {
		t.Fatalf("after a failed recovery the log reports %v, want that failure", err)
	}
	if err := os.Remove(obstacle); err != nil {
		t.Fatal(err)
	}

	// Readers are refused during the recovery, then see the recovered log.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				if _, err := l.Read(0, 1<<10, l.LogEndOffset()); err != nil && !errors.Is(err, ErrLogFailed) {
					t.Errorf("Read during recovery: %v", err)
					return
				}
				l.Segments() // as a metrics scrape does
				l.LatestEpoch()
			}
		})
	}
	if err := l.Recover(); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	wg.Wait()
	wantLogged(t, e.logs, "torn write")
	online(t, l)
	if size := fileSize(t, e.segPath(active.BaseOffset, logSuffix)); size != active.Size {
		t.Fatalf("active segment file of %d bytes; want %d, the torn batch cut", size, active.Size)
	}
	if got := l.LogEndOffset(); got != end {
		t.Fatalf("log end %d after recovery, want %d", got, end)
	}
	if got := l.Segments(); len(got) != len(segs) {
		t.Fatalf("%d segments after recovery, want %d", len(got), len(segs))
	}
	if epoch, _ := l.EndOffsetForEpoch(7); epoch != 7 || l.LatestEpoch() != 7 {
		t.Fatalf("leader epochs after recovery: latest %d, want 7", l.LatestEpoch())
	}
	w.appendMany(6, 4, 300)
	readAll(t, l, 0, 1<<20)
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}
