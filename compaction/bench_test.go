package compaction

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
)

// The log one compaction pass is timed over: 64 MiB of records (keys and
// 1 KiB values, before compression) over 20,000 keys, each key written
// about three times, in batches of 16 records and 8 MiB segments. Every
// codec holds the same records, so its input is smaller when compressed.
const (
	benchLogBytes     = 64 << 20
	benchKeys         = 20_000
	benchValueBytes   = 1024
	benchBatchRecords = 16
	benchSegmentBytes = 8 << 20
)

// BenchmarkCompaction times one full cleaning pass (offset map, rewrite of
// every sealed segment, the crash-safe swaps and their fsyncs) over a dirty
// log freshly copied from a prebuilt one, on the real disk (b.TempDir, so
// TMPDIR decides). Only the pass is timed: copying the log, fsyncing the
// copy and opening it are not. MB/s is input: the bytes of the segments
// cleaned. records/s counts records read; kept/read is records kept per
// record read; out/in is bytes after per bytes before.
func BenchmarkCompaction(b *testing.B) {
	for _, codec := range []record.Compression{record.None, record.LZ4, record.ZSTD} {
		b.Run("codec="+codec.String(), func(b *testing.B) {
			template := filepath.Join(b.TempDir(), "template")
			rawBytes := buildBenchLog(b, template, codec)
			p := Policy{MinCleanableDirtyRatio: 0.5, DeleteRetention: 24 * time.Hour, SegmentBytes: benchSegmentBytes}

			// The input: what Inspect finds dirty in the template.
			l := openBenchLog(b, template)
			d := Inspect(l.Segments(), l.LogStartOffset(), l.CleanerOffset(), l.LogEndOffset(), p, time.Now())
			if err := l.Close(); err != nil {
				b.Fatal(err)
			}
			if d.DirtyBytes == 0 || !d.Due(p) {
				b.Fatalf("template log not dirty: %+v", d)
			}
			b.Logf("input %.1f MiB on disk in %s (%.2f of the uncompressed record bytes)",
				float64(d.DirtyBytes)/(1<<20), codec, float64(d.DirtyBytes)/float64(rawBytes))
			b.SetBytes(d.DirtyBytes)

			// One cleaner, as a broker has: its map's memory is faulted in
			// here, not in the first timed pass.
			cleaner := &Cleaner{Map: NewOffsetMap(128 << 20), Now: time.Now}
			cleaner.Map.Reset()
			var total Stats
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				dir := filepath.Join(b.TempDir(), "log")
				if err := copyDir(template, dir); err != nil {
					b.Fatal(err)
				}
				l := openBenchLog(b, dir)
				b.StartTimer()

				d := Inspect(l.Segments(), l.LogStartOffset(), l.CleanerOffset(), l.LogEndOffset(), p, time.Now())
				st, err := cleaner.Clean(ctx, Local(l), d, p)

				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				if st.BytesRead != d.DirtyBytes || st.CleanedTo != d.FirstUncleanable {
					b.Fatalf("pass cleaned %d bytes up to %d, want %d up to %d", st.BytesRead, st.CleanedTo, d.DirtyBytes, d.FirstUncleanable)
				}
				total.BytesRead += st.BytesRead
				total.BytesWritten += st.BytesWritten
				total.RecordsRead += st.RecordsRead
				total.RecordsKept += st.RecordsKept
				if err := l.Close(); err != nil {
					b.Fatal(err)
				}
				if err := os.RemoveAll(dir); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.StopTimer()
			b.ReportMetric(float64(total.BytesRead)/(1<<20)/b.Elapsed().Seconds(), "MiB/s")
			b.ReportMetric(float64(total.RecordsRead)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(total.RecordsKept)/float64(total.RecordsRead), "kept/read")
			b.ReportMetric(float64(total.BytesWritten)/float64(total.BytesRead), "out/in")
		})
	}
}

// buildBenchLog writes the benchmark's log into dir and closes it. Keys are
// drawn at random (fixed seed); each value is half random hex, half a
// repeated pattern, so compressed batches shrink about as much as typical
// text payloads. It returns the records' uncompressed size.
func buildBenchLog(b *testing.B, dir string, codec record.Compression) int64 {
	b.Helper()
	l, err := partlog.Open(partlog.Options{Dir: dir, Config: partlog.Config{SegmentBytes: benchSegmentBytes}})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	noise := make([]byte, 1<<16)
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	hexNoise := make([]byte, hex.EncodedLen(len(noise)))
	hex.Encode(hexNoise, noise)
	pattern := []byte(`,"status":"active","region":"eu-west-1","tier":"standard"`)

	ts := time.Now().Add(-time.Hour).UnixMilli()
	bld := record.NewBuilder(ts, benchBatchRecords*(benchValueBytes+64))
	value := make([]byte, benchValueBytes)
	var raw int64
	for raw < benchLogBytes {
		bld.Reset(ts, benchBatchRecords*(benchValueBytes+64))
		for range benchBatchRecords {
			key := fmt.Appendf(nil, "key-%06d", rng.IntN(benchKeys))
			at := rng.IntN(len(hexNoise) - benchValueBytes/2)
			n := copy(value, hexNoise[at:at+benchValueBytes/2])
			for n < len(value) {
				n += copy(value[n:], pattern)
			}
			r := record.Record{Timestamp: ts, Key: key, Value: value}
			bld.Append(&r)
			raw += int64(len(key) + len(value))
		}
		batch, err := bld.Build(codec)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := l.Append(batch, 0); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	return raw
}

func openBenchLog(b *testing.B, dir string) *partlog.Log {
	b.Helper()
	l, err := partlog.Open(partlog.Options{Dir: dir, Config: partlog.Config{SegmentBytes: benchSegmentBytes}})
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// copyDir copies the files of src into a new directory dst and fsyncs them
// and dst, so the pass that follows starts with no dirty pages of the copy
// left for writeback to flush under it.
func copyDir(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return err
		}
	}
	d, err := os.Open(dst)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
