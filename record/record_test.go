package record

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func buildBatch(t testing.TB, codec Compression, n int) ([]byte, []Record) {
	t.Helper()
	b := NewBuilder(1_700_000_000_000, 0)
	var want []Record
	for i := 0; i < n; i++ {
		r := Record{
			Timestamp: 1_700_000_000_000 + int64(i),
			Key:       []byte(fmt.Sprintf("key-%d", i)),
			Value:     bytes.Repeat([]byte{byte('a' + i%26)}, i*7),
		}
		if i%3 == 0 {
			r.Headers = []RecordHeader{{Key: "h", Value: []byte(fmt.Sprint(i))}, {Key: "nil", Value: nil}}
		}
		if i%5 == 4 {
			r.Key = nil
		}
		if i%7 == 6 {
			r.Value = nil
		}
		b.Append(&r)
		r.Offset = int64(i)
		want = append(want, r)
	}
	out, err := b.Build(codec)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), out...), want
}

func TestBuildDecodeRoundTrip(t *testing.T) {
	for _, codec := range []Compression{None, GZIP, Snappy, LZ4, ZSTD} {
		t.Run(codec.String(), func(t *testing.T) {
			batch, want := buildBatch(t, codec, 50)
			h, err := Validate(batch)
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if h.Compression() != codec || h.RecordCount != 50 || h.LastOffsetDelta != 49 || h.Size() != len(batch) {
				t.Fatalf("header %+v", h)
			}
			if h.MaxTimestamp != 1_700_000_000_049 {
				t.Fatalf("max timestamp %d", h.MaxTimestamp)
			}
			SetBaseOffset(batch, 1000)
			SetPartitionLeaderEpoch(batch, 7)
			if _, err := Validate(batch); err != nil {
				t.Fatalf("stamping offset and epoch must not break the CRC: %v", err)
			}
			got, err := Decode(batch)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("got %d records, want %d", len(got), len(want))
			}
			for i := range want {
				g, w := got[i], want[i]
				if g.Offset != 1000+w.Offset || g.Timestamp != w.Timestamp || !bytes.Equal(g.Key, w.Key) ||
					!bytes.Equal(g.Value, w.Value) || (g.Key == nil) != (w.Key == nil) || (g.Value == nil) != (w.Value == nil) {
					t.Fatalf("record %d: got %+v want %+v", i, g, w)
				}
				if len(g.Headers) != len(w.Headers) {
					t.Fatalf("record %d headers: got %v want %v", i, g.Headers, w.Headers)
				}
				for j := range w.Headers {
					if g.Headers[j].Key != w.Headers[j].Key || !bytes.Equal(g.Headers[j].Value, w.Headers[j].Value) ||
						(g.Headers[j].Value == nil) != (w.Headers[j].Value == nil) {
						t.Fatalf("record %d header %d: got %v want %v", i, j, g.Headers[j], w.Headers[j])
					}
				}
			}
		})
	}
}

func TestRecordSizeMatchesEncoding(t *testing.T) {
	b := NewBuilder(100, 0)
	r := Record{Timestamp: 150, Key: []byte("k"), Value: make([]byte, 300), Headers: []RecordHeader{{Key: "a", Value: []byte("b")}}}
	before := b.Size()
	want := RecordSize(&r, 50, 0)
	b.Append(&r)
	if got := b.Size() - before; got != want {
		t.Fatalf("RecordSize = %d, encoded %d bytes", want, got)
	}
}

func TestValidateDetectsEveryBitFlipInCRCRange(t *testing.T) {
	batch, _ := buildBatch(t, None, 5)
	for i := offAttributes; i < len(batch); i++ {
		for bit := 0; bit < 8; bit++ {
			batch[i] ^= 1 << bit
			_, err := Validate(batch)
			batch[i] ^= 1 << bit
			if err == nil {
				t.Fatalf("flip of bit %d in byte %d not detected", bit, i)
			}
			if !IsCorrupt(err) && !errors.Is(err, ErrShortBuffer) {
				t.Fatalf("flip at %d: unexpected error type %T: %v", i, err, err)
			}
		}
	}
}

// ValidateFraming checks what Validate does but the CRC.
func TestValidateFramingSkipsOnlyTheCRC(t *testing.T) {
	batch, _ := buildBatch(t, None, 5)
	batch[len(batch)-1] ^= 0xff
	if _, err := Validate(batch); !IsCorrupt(err) {
		t.Fatalf("Validate of a flipped byte: %v", err)
	}
	h, err := ValidateFraming(batch)
	if err != nil || h.RecordCount != 5 || h.Size() != len(batch) {
		t.Fatalf("ValidateFraming of a flipped byte: %+v, %v; want the header and no error", h, err)
	}
	for cut := 0; cut < len(batch); cut++ {
		if _, err := ValidateFraming(batch[:cut]); !errors.Is(err, ErrShortBuffer) {
			t.Fatalf("cut at %d: got %v, want ErrShortBuffer", cut, err)
		}
	}
	for name, spoil := range map[string]func(b []byte){
		"magic 1":           func(b []byte) { b[offMagic] = 1 },
		"count above delta": func(b []byte) { b[offRecordCount+3] = 9 },
		"negative delta":    func(b []byte) { b[offLastOffsetDelta] = 0xff },
	} {
		b := bytes.Clone(batch)
		spoil(b)
		if _, err := ValidateFraming(b); !IsCorrupt(err) {
			t.Errorf("%s: got %v, want a corrupt batch", name, err)
		}
	}
}

func TestTruncatedBatchIsShortNotCorrupt(t *testing.T) {
	batch, _ := buildBatch(t, None, 5)
	for cut := 0; cut < len(batch); cut++ {
		_, err := Validate(batch[:cut])
		if !errors.Is(err, ErrShortBuffer) {
			t.Fatalf("cut at %d: got %v, want ErrShortBuffer", cut, err)
		}
	}
}

func TestParseHeaderRejects(t *testing.T) {
	good, _ := buildBatch(t, None, 2)
	cases := map[string]func(b []byte){
		"magic 1":        func(b []byte) { b[offMagic] = 1 },
		"negative len":   func(b []byte) { b[offLength] = 0xff },
		"huge len":       func(b []byte) { b[offLength] = 0x7f },
		"codec 7":        func(b []byte) { b[offAttributes+1] |= 7 },
		"unknown attr":   func(b []byte) { b[offAttributes] |= 0x80 },
		"negative count": func(b []byte) { b[offRecordCount] = 0xff },
	}
	for name, mutate := range cases {
		b := append([]byte(nil), good...)
		mutate(b)
		if _, err := ParseHeader(b); !IsCorrupt(err) {
			t.Errorf("%s: got %v, want a corruption error", name, err)
		}
	}
}

func TestBatchesIterator(t *testing.T) {
	var all []byte
	for i := 0; i < 4; i++ {
		b, _ := buildBatch(t, None, i+1)
		SetBaseOffset(b, int64(i*10))
		all = append(all, b...)
	}
	it := NewBatches(all)
	var bases []int64
	for it.Next() {
		bases = append(bases, it.Header().BaseOffset)
		if _, err := Validate(it.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	if it.Err() != nil || fmt.Sprint(bases) != "[0 10 20 30]" {
		t.Fatalf("bases %v err %v", bases, it.Err())
	}
	it = NewBatches(all[:len(all)-1])
	n := 0
	for it.Next() {
		n++
	}
	if n != 3 || !errors.Is(it.Err(), ErrShortBuffer) {
		t.Fatalf("torn tail: %d batches, err %v", n, it.Err())
	}
}

func TestSetLogAppendTime(t *testing.T) {
	batch, _ := buildBatch(t, None, 3)
	SetLogAppendTime(batch, 42)
	h, err := Validate(batch)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := Decode(batch)
	if err != nil {
		t.Fatal(err)
	}
	if !h.LogAppendTime() || recs[2].Timestamp != 42 {
		t.Fatalf("log append time not applied: %+v %d", h, recs[2].Timestamp)
	}
}

// FuzzParseBatches feeds arbitrary bytes to every decoding entry point: they
// must return errors, never panic or allocate without bound.
func FuzzParseBatches(f *testing.F) {
	for _, codec := range []Compression{None, GZIP, Snappy, LZ4, ZSTD} {
		b, _ := buildBatch(f, codec, 3)
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	two, _ := buildBatch(f, None, 1)
	f.Add(append(append([]byte(nil), two...), two...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		it := NewBatches(data)
		for it.Next() {
			b := it.Bytes()
			h := it.Header()
			if h.Size() != len(b) {
				t.Fatalf("iterator returned %d bytes for a batch of %d", len(b), h.Size())
			}
			_, _ = Validate(b)
			_ = ForEach(b, func(r *Record) error {
				if r.Offset < h.BaseOffset {
					t.Fatalf("record offset %d below base %d", r.Offset, h.BaseOffset)
				}
				return nil
			})
			_ = Scan(b, 1<<20, func(r *RecordInfo) error {
				if r.Offset < h.BaseOffset || r.KeySize > 1<<20 || r.ValueSize > 1<<20 {
					t.Fatalf("scanned record %+v of a batch at base %d, limited to 1 MiB", r, h.BaseOffset)
				}
				return nil
			})
		}
		_, _ = Validate(data)
		_, _ = Decode(data)
	})
}
