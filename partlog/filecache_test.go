package partlog

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/strata-broker/strata/record"
)

// openFDs counts this process's open descriptors, where the system says.
func openFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count descriptors: %v", err)
	}
	return len(fds)
}

// A log with many segments holds open only the active segment and as many
// sealed ones as the cache allows, while it is written, read from its
// start, and reopened.
func TestSealedSegmentFilesAreBounded(t *testing.T) {
	const maxOpen = 3
	e := newEnv(t, Config{SegmentBytes: 1024})
	e.files = NewFileCache(maxOpen)
	before := openFDs(t)
	l := e.open()
	w := newWriter(t, l)
	w.appendMany(200, 4, 100)
	segs := len(l.Segments())
	if segs < 50 {
		t.Fatalf("%d segments; the test needs many", segs)
	}
	check := func(when string) {
		t.Helper()
		st := e.files.Stats()
		if st.Open > maxOpen {
			t.Fatalf("%s: the cache holds %d files, bound %d", when, st.Open, maxOpen)
		}
		// The active segment is pinned, outside the bound, and the sealer
		// may be writing a checkpoint or syncing the directory.
		if n := openFDs(t) - before; n > maxOpen+1+2 {
			t.Fatalf("%s: %d more descriptors open than before the log, for %d segments; want at most %d", when, n, segs, maxOpen+3)
		}
	}
	check("after writing")
	readAll(t, l, 0, 1<<20)
	check("after reading every segment")
	if st := e.files.Stats(); st.Evictions == 0 || st.Opens <= uint64(maxOpen) {
		t.Fatalf("stats %+v: reading %d segments should have reopened and evicted files", st, segs)
	}
	l = e.reopen(l)
	check("after reopening")
	readAll(t, l, 0, 1<<20)
	check("after reading again")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if st := e.files.Stats(); st.Open != 0 {
		t.Fatalf("%d files still counted open after Close", st.Open)
	}
	if n := openFDs(t) - before; n > 0 {
		t.Fatalf("%d descriptors left open after Close", n)
	}
}

// Logs sharing one cache share its bound.
func TestLogsShareTheFileCache(t *testing.T) {
	files := NewFileCache(4)
	var logs []*Log
	for i := range 5 {
		e := newEnv(t, Config{SegmentBytes: 1024})
		e.files = files
		l := e.open()
		newWriter(t, l).appendMany(40, 4, 100)
		logs = append(logs, l)
		if st := files.Stats(); st.Open > 4 {
			t.Fatalf("after log %d: %d sealed files open, bound 4", i, st.Open)
		}
	}
	for _, l := range logs {
		readAll(t, l, 0, 1<<20)
		if st := files.Stats(); st.Open > 4 {
			t.Fatalf("%d sealed files open, bound 4", st.Open)
		}
	}
}

// A file a reader holds is not closed under it, however many others are
// opened meanwhile; it is closed when the reader lets go and the cache is
// over its bound.
func TestFileHeldByAReaderIsNotEvicted(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 1024})
	e.files = NewFileCache(1)
	l := e.open()
	newWriter(t, l).appendMany(60, 4, 100)
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	held := l.segs[0]
	f, err := held.acquire()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range l.segs[1 : len(l.segs)-1] {
		g, err := s.acquire()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.ReadAt(make([]byte, 1), 0); err != nil {
			t.Fatalf("segment %s: %v", s.name(), err)
		}
		s.release()
	}
	if _, err := f.ReadAt(make([]byte, 1), 0); err != nil {
		t.Fatalf("the held file was closed under its reader: %v", err)
	}
	held.release()
	// Now the most recently used: the next file opened takes its place.
	other := l.segs[1]
	if _, err := other.acquire(); err != nil {
		t.Fatal(err)
	}
	other.release()
	if _, err := f.ReadAt(make([]byte, 1), 0); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("read after release and eviction: %v, want the file closed", err)
	}
	if st := e.files.Stats(); st.Open > 1 {
		t.Fatalf("%d files open after every reader let go, bound 1", st.Open)
	}
}

// A segment removed while a reader holds its file stays readable to that
// reader, is closed when it lets go, and is never opened again.
func TestRemovedSegmentIsClosedByItsLastReader(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 1024})
	l := e.open()
	newWriter(t, l).appendMany(20, 4, 100)
	// Sealed now, so that the sealer holds no segment's file.
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	l.segMu.RLock()
	s := l.segs[0]
	l.segMu.RUnlock()
	f, err := s.acquire()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.closeFile(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadAt(make([]byte, 1), 0); err != nil {
		t.Fatalf("read by the reader that held it: %v", err)
	}
	s.release()
	if _, err := f.ReadAt(make([]byte, 1), 0); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("read after the last reader let go: %v, want the file closed", err)
	}
	if _, err := s.acquire(); !errors.Is(err, errSegmentGone) {
		t.Fatalf("acquire after removal: %v, want errSegmentGone", err)
	}
}

// Readers, retention, truncation and compaction race on a log whose cache
// keeps one file open: every read returns the records written, or says the
// offset is gone, and no file is read after it was closed or replaced.
func TestFileCacheUnderConcurrentChanges(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 2048, IndexIntervalBytes: 256})
	e.files = NewFileCache(1)
	l := e.open()
	w := newWriter(t, l)
	w.appendMany(100, 4, 100)

	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for r := range 4 {
		rng := rand.New(rand.NewPCG(uint64(r), 1))
		wg.Go(func() {
			for !stop.Load() {
				start, end := l.LogStartOffset(), l.LogEndOffset()
				if end <= start {
					continue
				}
				off := start + rng.Int64N(end-start)
				res, err := l.Read(off, 1+rng.IntN(8192), end)
				var oor *OffsetOutOfRangeError
				switch {
				case errors.As(err, &oor):
					continue // deleted or truncated meanwhile
				case err != nil:
					errs <- fmt.Errorf("Read(%d): %w", off, err)
					return
				}
				if len(res.Data) > 0 {
					if err := recordsAt(res.Data, res.FirstOffset); err != nil {
						errs <- fmt.Errorf("Read(%d): %w", off, err)
						return
					}
				}
			}
		})
	}
	for round := range 30 {
		w.appendMany(20, 4, 100)
		switch round % 3 {
		case 0:
			segs := l.Segments()
			if _, err := l.DeleteSegmentsBelow(segs[1].BaseOffset); err != nil {
				t.Fatal(err)
			}
		case 1:
			if err := l.TruncateTo(l.LogEndOffset() - 10); err != nil {
				t.Fatal(err)
			}
		case 2:
			compactFirstSegments(t, l)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := e.files.Stats(); st.Evictions == 0 {
		t.Fatalf("stats %+v: the test should have evicted files", st)
	}
}

// compactFirstSegments replaces the first two sealed segments with one
// holding the same batches, as the cleaner would with nothing to drop.
func compactFirstSegments(t *testing.T, l *Log) {
	t.Helper()
	segs := l.Segments()
	if len(segs) < 4 || !segs[0].Durable || !segs[1].Durable {
		return
	}
	base, end := segs[0].BaseOffset, segs[1].NextOffset
	c, err := l.BeginClean(base, end)
	if errors.Is(err, ErrCleanStale) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	for off := base; off < end; {
		res, err := l.Read(off, 1<<20, end)
		if err != nil {
			c.Abort()
			t.Fatal(err)
		}
		if err := c.Append(res.Data); err != nil {
			c.Abort()
			t.Fatal(err)
		}
		off = res.NextOffset
	}
	if err := l.CommitClean(c, end); err != nil && !errors.Is(err, ErrCleanStale) {
		t.Fatal(err)
	}
}

// recordsAt checks that data holds the writer's records, dense from first:
// checkRecords for goroutines other than the test's.
func recordsAt(data []byte, first int64) error {
	next := first
	it := record.NewBatches(data)
	for it.Next() {
		if h := it.Header(); h.BaseOffset != next {
			return fmt.Errorf("batch base offset %d, want %d", h.BaseOffset, next)
		}
		err := record.ForEach(it.Bytes(), func(r *record.Record) error {
			if r.Offset != next || !bytes.Equal(r.Key, key(next)) || !bytes.HasPrefix(r.Value, fmt.Appendf(nil, "value-%d-", next)) {
				return fmt.Errorf("record at %d: offset %d, key %q, value %.20q", next, r.Offset, r.Key, r.Value)
			}
			next++
			return nil
		})
		if err != nil {
			return err
		}
	}
	return it.Err()
}
