package partlog

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/strata-broker/strata/record"
)

// benchBatch is one batch of 1000 records of 1 KiB (just under 1 MiB).
func benchBatch(b *testing.B) []byte {
	b.Helper()
	value := bytes.Repeat([]byte("x"), 1024)
	bb := record.NewBuilder(tsBase, 1000*1100)
	for i := range 1000 {
		bb.Append(&record.Record{Timestamp: tsBase + int64(i), Key: fmt.Appendf(nil, "k%d", i), Value: value})
	}
	out, err := bb.Build(record.None)
	if err != nil {
		b.Fatal(err)
	}
	return bytes.Clone(out)
}

func benchLog(b *testing.B, cfg Config) *Log {
	b.Helper()
	l, err := Open(Options{Dir: b.TempDir(), Config: cfg})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return l
}

// BenchmarkAppend appends ~1 MiB batches (validation, CRC, stamping, write
// to the page cache). The default policy does not fsync appends.
func BenchmarkAppend(b *testing.B) {
	batch := benchBatch(b)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"segment=1GiB", Config{}},
		{"segment=64MiB", Config{SegmentBytes: 64 << 20}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			l := benchLog(b, tc.cfg)
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := l.Append(batch, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRead reads ~1 MiB batches sequentially from the page cache, as a
// consumer following the log would (one ReadAt per call, CRC checked).
func BenchmarkRead(b *testing.B) {
	batch := benchBatch(b)
	for _, maxBytes := range []int{1 << 20, 8 << 20} {
		b.Run(fmt.Sprintf("maxBytes=%dMiB", maxBytes>>20), func(b *testing.B) {
			l := benchLog(b, Config{SegmentBytes: 256 << 20})
			for range 128 { // 128 MiB, spread over a few segments
				if _, err := l.Append(batch, 1); err != nil {
					b.Fatal(err)
				}
			}
			end := l.LogEndOffset()
			var off, n int64
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				res, err := l.Read(off, maxBytes, end)
				if err != nil {
					b.Fatal(err)
				}
				n += int64(len(res.Data))
				off = res.NextOffset
				if off >= end {
					off = 0
				}
			}
			b.SetBytes(n / int64(b.N))
		})
	}
}

// BenchmarkReadSealed reads 64 sealed segments of 1 MiB sequentially from
// the page cache, as a consumer catching up would, into a reused buffer:
// with every file kept open, and with a file cache of 8, which must reopen
// the file of every segment it moves to (its worst case). One batch of
// ~1 MiB per segment makes every read a move to the next segment; batches
// of 16 KiB read 64 KiB at a time make it one read in sixteen.
func BenchmarkReadSealed(b *testing.B) {
	for _, shape := range []struct {
		name     string
		records  int // of 1 KiB, per batch
		maxBytes int
	}{
		{"batch=1MiB", 1000, 1 << 20},
		{"batch=16KiB", 15, 64 << 10},
	} {
		for _, cache := range []struct {
			name    string
			maxOpen int
		}{
			{"cache=unbounded", 0},
			{"cache=8", 8},
		} {
			b.Run(shape.name+"/"+cache.name, func(b *testing.B) {
				benchReadSealed(b, NewFileCache(cache.maxOpen), shape.records, shape.maxBytes)
			})
		}
	}
}

func benchReadSealed(b *testing.B, files *FileCache, records, maxBytes int) {
	value := bytes.Repeat([]byte("x"), 1024)
	bb := record.NewBuilder(tsBase, records*1100)
	for i := range records {
		bb.Append(&record.Record{Timestamp: tsBase + int64(i), Key: fmt.Appendf(nil, "k%d", i), Value: value})
	}
	batch, err := bb.Build(record.None)
	if err != nil {
		b.Fatal(err)
	}
	l, err := Open(Options{Dir: b.TempDir(), Config: Config{SegmentBytes: 1 << 20}, Files: files})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	for len(l.Segments()) <= 64 {
		if _, err := l.Append(bytes.Clone(batch), 1); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Flush(); err != nil {
		b.Fatal(err)
	}
	segs := l.Segments()
	end := segs[len(segs)-1].BaseOffset // sealed segments only
	buf := make([]byte, 2<<20)
	alloc := func(n int) []byte { return buf[:n] }
	var off, n int64
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res, err := l.ReadInto(off, maxBytes, end, alloc)
		if err != nil {
			b.Fatal(err)
		}
		n += int64(len(res.Data))
		off = res.NextOffset
		if off >= end {
			off = 0
		}
	}
	b.SetBytes(n / int64(b.N))
}

// BenchmarkReopenLogs closes 1,000 small logs and opens them again, eight
// at a time, as a broker's clean restart does: with a SyncBatch (the
// broker's way) and with every log syncing on its own. Per op: one close
// and one open of all of them.
func BenchmarkReopenLogs(b *testing.B) {
	const n, workers = 1000, 8
	for _, batched := range []bool{true, false} {
		b.Run(fmt.Sprintf("batched=%v", batched), func(b *testing.B) {
			root := b.TempDir()
			dirs := make([]string, n)
			logs := make([]*Log, n)
			bb := record.NewBuilder(tsBase, 0)
			bb.Append(&record.Record{Timestamp: tsBase, Value: bytes.Repeat([]byte("v"), 1024)})
			one, err := bb.Build(record.None)
			if err != nil {
				b.Fatal(err)
			}
			files := NewFileCache(0)
			parallel(n, workers, func(i int) {
				dirs[i] = filepath.Join(root, fmt.Sprintf("t-%d", i))
				l, err := Open(Options{Dir: dirs[i], Files: files})
				if err == nil {
					_, err = l.Append(bytes.Clone(one), 1)
				}
				if err != nil {
					b.Error(err)
				}
				logs[i] = l
			})
			closeAll := func() {
				var batch *SyncBatch
				if batched {
					batch = NewSyncBatch()
				}
				marks := make([]*Closing, n)
				parallel(n, workers, func(i int) {
					ps := NewProducerStates(ProducerStateConfig{})
					if _, err := logs[i].WriteProducerSnapshotTo(batch, ps, time.Now()); err != nil {
						b.Error(err)
					}
					var err error
					if marks[i], err = logs[i].CloseBatched(batch); err != nil {
						b.Error(err)
					}
				})
				if err := batch.Sync(); err != nil {
					b.Fatal(err)
				}
				for _, step := range []func(*Closing) error{(*Closing).Checkpoint, (*Closing).MarkClean} {
					parallel(n, workers, func(i int) {
						if err := step(marks[i]); err != nil {
							b.Error(err)
						}
					})
					if err := batch.Sync(); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.Cleanup(func() {
				for _, l := range logs {
					l.Close()
				}
			})
			for b.Loop() {
				closeAll()
				var batch *SyncBatch
				if batched {
					batch = NewSyncBatch()
				}
				parallel(n, workers, func(i int) {
					l, err := Open(Options{Dir: dirs[i], Files: files, Sync: batch})
					if err != nil {
						b.Error(err)
					}
					logs[i] = l
				})
				if err := batch.Sync(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// parallel calls fn(0..n-1), workers at a time.
func parallel(n, workers int, fn func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// BenchmarkReopenLargeActiveSegment opens, after a clean shutdown, a log
// whose active segment holds 256 MiB: with the active segment's
// transaction index the clean shutdown wrote (index), and without it, when
// the open walks the whole segment for its transactions (walk), as every
// open did before that index existed. The page cache holds the segment in
// both, so the walk's cost here is CPU and memory bandwidth, not the disk.
func BenchmarkReopenLargeActiveSegment(b *testing.B) {
	for _, mode := range []string{"index", "walk"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			l, err := Open(Options{Dir: dir})
			if err != nil {
				b.Fatal(err)
			}
			batch := benchBatch(b)
			for range 256 {
				if _, err := l.Append(bytes.Clone(batch), 1); err != nil {
					b.Fatal(err)
				}
			}
			if err := l.Close(); err != nil {
				b.Fatal(err)
			}
			index := filepath.Join(dir, segmentName(0, txnIndexSuffix))
			for b.Loop() {
				if mode == "walk" {
					if err := os.Remove(index); err != nil && !os.IsNotExist(err) {
						b.Fatal(err)
					}
				}
				l, err := Open(Options{Dir: dir})
				if err != nil {
					b.Fatal(err)
				}
				if err := l.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReopenManySegments opens, after a clean shutdown, a log of 200
// sealed segments: the open alone (open), whose sealed segments' indexes
// wait for their first use, and the open followed by a use of every
// segment's max timestamp (open+load), which loads them all as every open
// did before they were loaded lazily.
func BenchmarkReopenManySegments(b *testing.B) {
	for _, mode := range []string{"open", "open+load"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			cfg := Config{SegmentBytes: 64 << 10}
			l, err := Open(Options{Dir: dir, Config: cfg})
			if err != nil {
				b.Fatal(err)
			}
			bb := record.NewBuilder(tsBase, 0)
			bb.Append(&record.Record{Timestamp: tsBase, Value: bytes.Repeat([]byte("v"), 16<<10)})
			one, err := bb.Build(record.None)
			if err != nil {
				b.Fatal(err)
			}
			for len(l.Segments()) <= 200 {
				if _, err := l.Append(bytes.Clone(one), 1); err != nil {
					b.Fatal(err)
				}
			}
			if err := l.Close(); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				l, err := Open(Options{Dir: dir, Config: cfg})
				if err != nil {
					b.Fatal(err)
				}
				if mode == "open+load" {
					l.Segments()
				}
				if err := l.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
