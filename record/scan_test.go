package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

var allCodecs = []Compression{None, GZIP, Snappy, LZ4, ZSTD}

// scanAll collects what Scan reports of every record.
func scanAll(batch []byte, limit int) ([]RecordInfo, error) {
	var out []RecordInfo
	err := Scan(batch, limit, func(r *RecordInfo) error {
		out = append(out, *r)
		return nil
	})
	return out, err
}

func TestScanReportsWhatForEachDecodes(t *testing.T) {
	for _, codec := range allCodecs {
		t.Run(codec.String(), func(t *testing.T) {
			batch, _ := buildBatch(t, codec, 200)
			SetBaseOffset(batch, 5000)
			batches := [][]byte{batch}
			if codec == Snappy {
				batches = append(batches, xerialBatch(t, batch))
			}
			for _, b := range batches {
				var want []RecordInfo
				err := ForEach(b, func(r *Record) error {
					want = append(want, RecordInfo{Offset: r.Offset, Timestamp: r.Timestamp,
						KeySize: fieldSize(r.Key), ValueSize: fieldSize(r.Value), Headers: len(r.Headers)})
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				got, err := scanAll(b, MaxInflated)
				if err != nil {
					t.Fatalf("Scan: %v", err)
				}
				if len(got) != len(want) {
					t.Fatalf("Scan reported %d records, ForEach decoded %d", len(got), len(want))
				}
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("record %d: Scan %+v, ForEach %+v", i, got[i], want[i])
					}
				}
			}
		})
	}
}

// The limit is on the decompressed records: exactly their size passes, a
// byte less is refused.
func TestScanLimitIsTheInflatedSize(t *testing.T) {
	for _, codec := range allCodecs {
		t.Run(codec.String(), func(t *testing.T) {
			batch, _ := buildBatch(t, codec, 100)
			h, _ := ParseHeader(batch)
			plain := h.Size() - HeaderSize
			if codec != None {
				body, err := decompress(codec, batch[HeaderSize:])
				if err != nil {
					t.Fatal(err)
				}
				plain = len(body)
			}
			if _, err := scanAll(batch, plain); err != nil {
				t.Fatalf("limit %d, the records' size: %v", plain, err)
			}
			_, err := scanAll(batch, plain-1)
			var tooLarge *InflatedTooLargeError
			if !errors.As(err, &tooLarge) || tooLarge.Limit != plain-1 || tooLarge.Codec != codec {
				t.Fatalf("limit %d, a byte under the records' size: %v, want an InflatedTooLargeError", plain-1, err)
			}
			if IsCorrupt(err) {
				t.Fatalf("a batch over the limit is reported as corrupt: %v", err)
			}
		})
	}
}

// A bomb (64 MiB of zeros compressed to a few kilobytes) is refused at the
// limit, and scanning it allocates at most DecoderMemory: ForEach would
// allocate the whole 64 MiB.
func TestScanRefusesABombWithinDecoderMemory(t *testing.T) {
	const inflated, limit = 64 << 20, 1 << 20
	for _, codec := range []Compression{GZIP, LZ4, ZSTD, Snappy} {
		t.Run(codec.String(), func(t *testing.T) {
			batch := bomb(t, codec, inflated)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := scanAll(batch, limit)
			runtime.ReadMemStats(&after)
			var tooLarge *InflatedTooLargeError
			if !errors.As(err, &tooLarge) {
				t.Fatalf("Scan of a %d-byte batch inflating to %d: %v, want an InflatedTooLargeError", len(batch), inflated, err)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > DecoderMemory {
				t.Fatalf("Scan allocated %d bytes, more than DecoderMemory (%d)", alloc, DecoderMemory)
			}
		})
	}
}

// Batches whose decoding needs more than DecoderMemory are refused by name,
// and ScanStored, for batches a log already holds, decodes them whole.
func TestScanRefusesWhatItsDecoderMemoryCannotHold(t *testing.T) {
	var plain bytes.Buffer
	if _, err := io.Copy(&plain, bombRecords(1<<20)); err != nil {
		t.Fatal(err)
	}
	compress := map[string]func() []byte{
		"zstd window over 8 MiB": func() []byte {
			var packed bytes.Buffer
			w, err := zstd.NewWriter(&packed, zstd.WithWindowSize(16<<20), zstd.WithEncoderConcurrency(1))
			if err != nil {
				t.Fatal(err)
			}
			w.Write(plain.Bytes())
			w.Close()
			return batchOf(t, ZSTD, packed.Bytes())
		},
		"zstd content over 8 MiB in one segment": func() []byte {
			big := append(bytes.Clone(plain.Bytes()), make([]byte, 8<<20)...) // trailing bytes, ignored
			enc, _ := zstd.NewWriter(nil, zstd.WithSingleSegment(true), zstd.WithEncoderConcurrency(1))
			return batchOf(t, ZSTD, enc.EncodeAll(big, nil))
		},
		"lz4 legacy frame": func() []byte {
			var packed bytes.Buffer
			w := lz4.NewWriter(nil)
			if err := w.Apply(lz4.LegacyOption(true)); err != nil {
				t.Fatal(err)
			}
			w.Reset(&packed)
			w.Write(plain.Bytes())
			w.Close()
			return batchOf(t, LZ4, packed.Bytes())
		},
		"snappy block over 8 MiB": func() []byte {
			big := append(bytes.Clone(plain.Bytes()), make([]byte, maxSnappyBlock)...)
			return batchOf(t, Snappy, snappy.Encode(nil, big))
		},
	}
	for name, build := range compress {
		t.Run(name, func(t *testing.T) {
			batch := build()
			_, err := scanAll(batch, MaxInflated)
			var limit *DecoderLimitError
			if !errors.As(err, &limit) {
				t.Fatalf("Scan: %v, want a DecoderLimitError", err)
			}
			var got []RecordInfo
			err = ScanStored(batch, func(r *RecordInfo) error {
				got = append(got, *r)
				return nil
			})
			if err != nil || len(got) != 1 || got[0].ValueSize != 1<<20 || got[0].KeySize != -1 {
				t.Fatalf("ScanStored: %+v, %v; want the one record of a 1 MiB value", got, err)
			}
		})
	}
}

func TestScanRefusesDamagedCompressedRecords(t *testing.T) {
	for _, codec := range []Compression{GZIP, Snappy, LZ4, ZSTD} {
		t.Run(codec.String(), func(t *testing.T) {
			batch, _ := buildBatch(t, codec, 50)
			body := batch[HeaderSize:]
			for _, cut := range []int{1, len(body) / 2, len(body) - 1} {
				damaged := batchOf(t, codec, body[:cut])
				if _, err := scanAll(damaged, MaxInflated); !IsCorrupt(err) {
					t.Fatalf("records cut to %d of %d bytes: %v, want corrupt", cut, len(body), err)
				}
			}
		})
	}
}

// batchOf wraps compressed records in a one-record batch with a valid CRC.
func batchOf(t testing.TB, codec Compression, packed []byte) []byte {
	t.Helper()
	b := make([]byte, HeaderSize, HeaderSize+len(packed))
	putHeader(b, &Header{Length: int32(HeaderSize - LogOverhead + len(packed)), PartitionLeaderEpoch: -1,
		Attributes: int16(codec), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, RecordCount: 1})
	b = append(b, packed...)
	binary.BigEndian.PutUint32(b[offCRC:], Checksum(b))
	return b
}

// bombRecords is a record section of one record whose value is n zeros, as
// a stream.
func bombRecords(n int) io.Reader {
	value := binary.AppendVarint(nil, int64(n))
	var head []byte
	head = binary.AppendVarint(head, int64(4+len(value)+n+1))
	head = append(head, 0)                    // attributes
	head = binary.AppendVarint(head, 0)       // timestamp delta
	head = binary.AppendVarint(head, 0)       // offset delta
	head = binary.AppendVarint(head, -1)      // null key
	head = append(head, value...)             // value length
	zeros := bytes.NewReader(make([]byte, n)) // the test holds them; Scan must not
	return io.MultiReader(bytes.NewReader(head), zeros, bytes.NewReader([]byte{0}))
}

// bomb is a batch of one record of inflated zero bytes, compressed as
// tightly as codec allows.
func bomb(t testing.TB, codec Compression, inflated int) []byte {
	t.Helper()
	var packed bytes.Buffer
	var w io.WriteCloser
	switch codec {
	case GZIP:
		w, _ = gzip.NewWriterLevel(&packed, gzip.BestCompression)
	case LZ4:
		lw := lz4.NewWriter(nil)
		_ = lw.Apply(lz4.BlockSizeOption(lz4.Block64Kb))
		lw.Reset(&packed)
		w = lw
	case ZSTD:
		w, _ = zstd.NewWriter(&packed, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	case Snappy:
		// snappy-java's framing: 32 KiB chunks.
		var plain bytes.Buffer
		io.Copy(&plain, bombRecords(inflated))
		packed.Write(xerialHeader)
		packed.Write(make([]byte, xerialHeaderLen-len(xerialHeader)))
		for p := plain.Bytes(); len(p) > 0; {
			chunk := p[:min(len(p), 32<<10)]
			p = p[len(chunk):]
			enc := snappy.Encode(nil, chunk)
			packed.Write(binary.BigEndian.AppendUint32(nil, uint32(len(enc))))
			packed.Write(enc)
		}
		return batchOf(t, codec, packed.Bytes())
	}
	if _, err := io.Copy(struct{ io.Writer }{w}, bombRecords(inflated)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return batchOf(t, codec, packed.Bytes())
}

// xerialBatch re-frames a raw snappy batch as snappy-java writes it:
// chunks of at most 32 KiB of the decoded records, each a snappy block.
func xerialBatch(t testing.TB, batch []byte) []byte {
	t.Helper()
	plain, err := decompress(Snappy, batch[HeaderSize:])
	if err != nil {
		t.Fatal(err)
	}
	out := append([]byte(nil), xerialHeader...)
	out = append(out, make([]byte, xerialHeaderLen-len(xerialHeader))...)
	for len(plain) > 0 {
		chunk := plain[:min(len(plain), 32<<10)]
		plain = plain[len(chunk):]
		enc := snappy.Encode(nil, chunk)
		out = binary.BigEndian.AppendUint32(out, uint32(len(enc)))
		out = append(out, enc...)
	}
	b := append(append([]byte(nil), batch[:HeaderSize]...), out...)
	binary.BigEndian.PutUint32(b[offLength:], uint32(len(b)-LogOverhead))
	binary.BigEndian.PutUint32(b[offCRC:], Checksum(b))
	return b
}

// Scan against ForEach on a batch as producers send them (1,000 records of
// 1 KiB of text-like values), per codec: what validating a produced batch
// costs now (Scan) and before (ForEach, decompressing whole).
func BenchmarkScanAndForEach(b *testing.B) {
	for _, codec := range allCodecs {
		bld := NewBuilder(1_700_000_000_000, 0)
		for i := range 1000 {
			v := bytes.Repeat([]byte(strings.Repeat("field-", 8)+strconv.Itoa(i)), 32)[:1024]
			bld.Append(&Record{Key: []byte(strconv.Itoa(i)), Value: v})
		}
		batch, err := bld.Build(codec)
		if err != nil {
			b.Fatal(err)
		}
		batch = bytes.Clone(batch)
		b.Run(codec.String()+"/scan", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := Scan(batch, MaxInflated, func(*RecordInfo) error { return nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(codec.String()+"/foreach", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := ForEach(batch, func(*Record) error { return nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
