package partlog

import (
	"bytes"
	"fmt"
	"testing"

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
