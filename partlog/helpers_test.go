package partlog

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/strata-broker/strata/internal/fakeclock"
	"github.com/strata-broker/strata/record"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tsBase is the timestamp of offset 0 in logs written by a writer: record
// at offset o has timestamp tsBase+o.
const tsBase = 1_700_000_000_000

// logBuffer collects the log's slog output for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (lb *logBuffer) Write(p []byte) (int, error) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return lb.b.Write(p)
}

func (lb *logBuffer) String() string {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return lb.b.String()
}

func (lb *logBuffer) Reset() {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	lb.b.Reset()
}

// env is a log directory with its clock and captured log output.
type env struct {
	t     testing.TB
	dir   string
	cfg   Config
	clock *fakeclock.Clock
	logs  *logBuffer
	// files is the log's file cache. It keeps only two sealed segments
	// open, so that every test also runs the logs with their files closed
	// and reopened underneath them.
	files *FileCache
	// crashAt is the logs' Options.CrashAt.
	crashAt func(step string) bool
}

// envOpenFiles is the bound of every env's file cache.
const envOpenFiles = 2

func newEnv(t testing.TB, cfg Config) *env {
	t.Helper()
	return &env{t: t, dir: t.TempDir(), cfg: cfg, clock: fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), logs: &logBuffer{},
		files: NewFileCache(envOpenFiles)}
}

// open opens the log; it is closed at cleanup if the test does not.
func (e *env) open() *Log {
	e.t.Helper()
	l, err := Open(Options{
		Dir:     e.dir,
		Config:  e.cfg,
		Logger:  slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:     e.clock.Now,
		Files:   e.files,
		CrashAt: e.crashAt,
	})
	if err != nil {
		e.t.Fatalf("Open(%s): %v", e.dir, err)
	}
	e.t.Cleanup(func() { l.Close() })
	return l
}

func (e *env) reopen(l *Log) *Log {
	e.t.Helper()
	if err := l.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	return e.open()
}

func (e *env) segPath(base int64, suffix string) string {
	return filepath.Join(e.dir, segmentName(base, suffix))
}

// value is the deterministic value of the record at offset off.
func value(off int64, size int) []byte {
	v := fmt.Appendf(nil, "value-%d-", off)
	for len(v) < size {
		v = append(v, byte('a'+off%26))
	}
	return v
}

func key(off int64) []byte { return fmt.Appendf(nil, "key-%d", off) }

// buildBatch encodes records for offsets [first, first+n) with the writer's
// conventions (key, value, timestamp tsBase+offset).
func buildBatch(t testing.TB, first int64, n, valueSize int) []byte {
	t.Helper()
	b := record.NewBuilder(tsBase+first, n*(valueSize+24))
	for i := range n {
		off := first + int64(i)
		b.Append(&record.Record{Timestamp: tsBase + off, Key: key(off), Value: value(off, valueSize)})
	}
	out, err := b.Build(record.None)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(out)
}

type batchInfo struct {
	first, next int64
	size        int
}

// writer appends batches following the conventions checkRecords verifies.
type writer struct {
	t       testing.TB
	l       *Log
	batches []batchInfo
}

func newWriter(t testing.TB, l *Log) *writer { return &writer{t: t, l: l} }

func (w *writer) append(n, valueSize int) batchInfo {
	w.t.Helper()
	first := w.l.LogEndOffset()
	buf := buildBatch(w.t, first, n, valueSize)
	res, err := w.l.Append(buf, 7)
	if err != nil {
		w.t.Fatalf("Append: %v", err)
	}
	if res.FirstOffset != first || res.LastOffset != first+int64(n)-1 || res.Records != n || res.Batches != 1 {
		w.t.Fatalf("Append = %+v, want offsets [%d, %d]", res, first, first+int64(n)-1)
	}
	if res.MaxTimestamp != tsBase+res.LastOffset {
		w.t.Fatalf("Append MaxTimestamp = %d, want %d", res.MaxTimestamp, tsBase+res.LastOffset)
	}
	bi := batchInfo{first: first, next: first + int64(n), size: len(buf)}
	w.batches = append(w.batches, bi)
	return bi
}

// appendMany appends count batches of 1..maxRecords records.
func (w *writer) appendMany(count, maxRecords, valueSize int) {
	w.t.Helper()
	for i := range count {
		w.append(1+i%maxRecords, valueSize)
	}
}

// checkRecords decodes data (whole batches) and checks that the records are
// the writer's, dense from first. It returns the offset after the last one.
func checkRecords(t testing.TB, data []byte, first int64) int64 {
	t.Helper()
	next := first
	it := record.NewBatches(data)
	for it.Next() {
		h := it.Header()
		if h.BaseOffset != next {
			t.Fatalf("batch base offset %d, want %d", h.BaseOffset, next)
		}
		if h.PartitionLeaderEpoch != 7 {
			t.Fatalf("batch leader epoch %d, want 7", h.PartitionLeaderEpoch)
		}
		if _, err := record.Validate(it.Bytes()); err != nil {
			t.Fatalf("batch at %d: %v", h.BaseOffset, err)
		}
		err := record.ForEach(it.Bytes(), func(r *record.Record) error {
			if r.Offset != next {
				return fmt.Errorf("record offset %d, want %d", r.Offset, next)
			}
			if !bytes.Equal(r.Key, key(next)) || !bytes.HasPrefix(r.Value, fmt.Appendf(nil, "value-%d-", next)) {
				return fmt.Errorf("record %d: key %q value %.20q", next, r.Key, r.Value)
			}
			if r.Timestamp != tsBase+next {
				return fmt.Errorf("record %d: timestamp %d", next, r.Timestamp)
			}
			next++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if it.Err() != nil {
		t.Fatalf("batches after offset %d: %v", next, it.Err())
	}
	return next
}

// readAll reads [from, LogEndOffset) with reads of maxBytes and checks every
// record.
func readAll(t testing.TB, l *Log, from int64, maxBytes int) {
	t.Helper()
	end := l.LogEndOffset()
	for off := from; off < end; {
		res, err := l.Read(off, maxBytes, end)
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		if len(res.Data) == 0 {
			t.Fatalf("Read(%d) returned nothing before the log end %d", off, end)
		}
		if res.FirstOffset > off {
			t.Fatalf("Read(%d) starts at %d", off, res.FirstOffset)
		}
		next := checkRecords(t, res.Data, res.FirstOffset)
		if next != res.NextOffset || next <= off {
			t.Fatalf("Read(%d): records end at %d, NextOffset %d", off, next, res.NextOffset)
		}
		off = next
	}
}

// copyDir copies the regular files of src to a new directory, as a crash
// would leave them: whatever is in the page cache, no Close.
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // a temporary file renamed meanwhile
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func flipBit(t testing.TB, path string, pos int64, bit uint) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, pos); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 1 << bit
	if _, err := f.WriteAt(b, pos); err != nil {
		t.Fatal(err)
	}
}

func appendToFile(t testing.TB, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
}

// batchPositions lists the byte positions of the batches in a .log file.
func batchPositions(t testing.TB, path string) []int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	it := record.NewBatches(b)
	for it.Next() {
		h := it.Header()
		out = append(out, int64(it.Position()-h.Size()))
	}
	if it.Err() != nil {
		t.Fatalf("%s: %v", path, it.Err())
	}
	return out
}

func wantLogged(t testing.TB, logs *logBuffer, substr string) {
	t.Helper()
	if !strings.Contains(logs.String(), substr) {
		t.Fatalf("log output lacks %q:\n%s", substr, logs.String())
	}
}

func wantNotLogged(t testing.TB, logs *logBuffer, substr string) {
	t.Helper()
	if strings.Contains(logs.String(), substr) {
		t.Fatalf("log output has %q:\n%s", substr, logs.String())
	}
}

// shape is segs without Durable, which depends on whether the background
// sealer has run yet.
func shape(segs []SegmentInfo) []SegmentInfo {
	out := slices.Clone(segs)
	for i := range out {
		out[i].Durable = false
	}
	return out
}
