package record

import (
	"bytes"
	"fmt"
	"testing"
)

func TestRetainKeepsChosenRecordsAtTheirOffsets(t *testing.T) {
	for _, codec := range []Compression{None, GZIP, Snappy, LZ4, ZSTD} {
		t.Run(codec.String(), func(t *testing.T) {
			batch, all := buildBatch(t, codec, 40)
			SetBaseOffset(batch, 1000)
			SetPartitionLeaderEpoch(batch, 9)
			binaryProducer(batch, 77, 3, 500)
			var want []Record
			for _, r := range all {
				if r.Offset%3 == 1 {
					r.Offset += 1000
					want = append(want, r)
				}
			}
			keep := func(r *Record) bool { return (r.Offset-1000)%3 == 1 }

			// Spanning its own offsets: the producer fields survive.
			out, n, err := Retain(nil, batch, 1000, 1039, keep)
			if err != nil {
				t.Fatal(err)
			}
			checkRetained(t, out, n, want, codec, 1000, 1039, 9)
			if h, _ := ParseHeader(out); h.ProducerID != 77 || h.ProducerEpoch != 3 || h.BaseSequence != 500 {
				t.Fatalf("producer fields %d/%d/%d, want 77/3/500", h.ProducerID, h.ProducerEpoch, h.BaseSequence)
			}

			// Absorbing dropped offsets on both sides: records keep their
			// offsets, the producer fields go.
			prefix := []byte("prefix")
			out, n, err = Retain(prefix, batch, 990, 1050, keep)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(out, prefix) {
				t.Fatal("dst was not appended to")
			}
			checkRetained(t, out[len(prefix):], n, want, codec, 990, 1050, 9)
			if h, _ := ParseHeader(out[len(prefix):]); h.ProducerID != -1 || h.ProducerEpoch != -1 || h.BaseSequence != -1 {
				t.Fatalf("producer fields %d/%d/%d after re-spanning, want -1", h.ProducerID, h.ProducerEpoch, h.BaseSequence)
			}
		})
	}
}

func binaryProducer(batch []byte, id int64, epoch int16, seq int32) {
	h, _ := ParseHeader(batch)
	h.ProducerID, h.ProducerEpoch, h.BaseSequence = id, epoch, seq
	out, _ := appendBatch(nil, &h, batch[HeaderSize:h.Size()])
	copy(batch, out)
}

func checkRetained(t *testing.T, out []byte, n int, want []Record, codec Compression, base, last int64, epoch int32) {
	t.Helper()
	h, err := Validate(out)
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if n != len(want) || int(h.RecordCount) != n || h.Size() != len(out) {
		t.Fatalf("kept %d, header count %d, size %d of %d; want %d records", n, h.RecordCount, h.Size(), len(out), len(want))
	}
	if h.BaseOffset != base || h.LastOffset() != last || h.PartitionLeaderEpoch != epoch || h.Compression() != codec {
		t.Fatalf("header %+v, want offsets %d..%d epoch %d codec %s", h, base, last, epoch, codec)
	}
	var maxTS int64
	for _, r := range want {
		maxTS = max(maxTS, r.Timestamp)
	}
	if h.MaxTimestamp != maxTS {
		t.Fatalf("max timestamp %d, want %d (of the kept records)", h.MaxTimestamp, maxTS)
	}
	got, err := Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Offset != w.Offset || g.Timestamp != w.Timestamp || !bytes.Equal(g.Key, w.Key) || (g.Key == nil) != (w.Key == nil) ||
			!bytes.Equal(g.Value, w.Value) || (g.Value == nil) != (w.Value == nil) || len(g.Headers) != len(w.Headers) {
			t.Fatalf("record %d: got %+v, want %+v", i, g, w)
		}
		for j := range w.Headers {
			if g.Headers[j].Key != w.Headers[j].Key || !bytes.Equal(g.Headers[j].Value, w.Headers[j].Value) {
				t.Fatalf("record %d header %d: got %+v, want %+v", i, j, g.Headers[j], w.Headers[j])
			}
		}
	}
}

func TestRetainNothingKept(t *testing.T) {
	batch, _ := buildBatch(t, LZ4, 5)
	out, n, err := Retain([]byte("x"), batch, 0, 4, func(*Record) bool { return false })
	if err != nil || n != 0 || string(out) != "x" {
		t.Fatalf("got %q, %d, %v; want dst unchanged, 0, nil", out, n, err)
	}
}

func TestRetainRefusesASpanThatLosesOffsets(t *testing.T) {
	batch, _ := buildBatch(t, None, 5)
	SetBaseOffset(batch, 100)
	for _, span := range [][2]int64{{101, 104}, {100, 103}, {0, 1 << 40}, {105, 104}} {
		if _, _, err := Retain(nil, batch, span[0], span[1], func(*Record) bool { return true }); err == nil {
			t.Errorf("span %v of a batch holding 100..104 accepted", span)
		}
	}
}

func TestEmptyBatch(t *testing.T) {
	out, err := EmptyBatch(nil, 50, 59, 4, 1000, 2000)
	if err != nil {
		t.Fatal(err)
	}
	h, err := Validate(out)
	if err != nil {
		t.Fatalf("an empty batch must be valid in a log: %v", err)
	}
	if h.BaseOffset != 50 || h.NextOffset() != 60 || h.RecordCount != 0 || h.PartitionLeaderEpoch != 4 || h.MaxTimestamp != 2000 || h.ProducerID != -1 {
		t.Fatalf("header %+v", h)
	}
	if recs, err := Decode(out); err != nil || len(recs) != 0 {
		t.Fatalf("Decode: %d records, %v", len(recs), err)
	}
	if _, err := EmptyBatch(nil, 10, 9, 0, 0, 0); err == nil {
		t.Fatal("an empty batch spanning no offsets was built")
	}
}

func TestRetainTheTailOfABatch(t *testing.T) {
	batch, all := buildBatch(t, ZSTD, 10)
	SetBaseOffset(batch, 100)
	var want []Record
	for _, r := range all[6:] {
		r.Offset += 100
		want = append(want, r)
	}
	out, n, err := Retain(nil, batch, 106, 120, func(r *Record) bool { return r.Offset >= 106 })
	if err != nil {
		t.Fatal(err)
	}
	checkRetained(t, out, n, want, ZSTD, 106, 120, -1)
}

// A batch split into parts anywhere validates as it does whole, and a
// flipped byte in any part is caught.
func TestValidatePartsMatchesValidate(t *testing.T) {
	b := NewBuilder(1700000000000, 0)
	for i := range 20 {
		b.Append(&Record{Key: fmt.Appendf(nil, "k%d", i), Value: bytes.Repeat([]byte{byte(i)}, 50)})
	}
	batch, err := b.Build(None)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Validate(batch)
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{1, 20, 21, 22, 60, 61, 62, 300, len(batch) - 1} {
		for _, cut2 := range []int{cut, min(cut+5, len(batch)), len(batch)} {
			parts := [][]byte{batch[:cut], batch[cut:cut2], batch[cut2:]}
			got, err := ValidateParts(parts)
			if err != nil || got != want {
				t.Fatalf("split at %d and %d: %+v, %v", cut, cut2, got, err)
			}
			bad := bytes.Clone(batch)
			bad[len(bad)-1-cut%40] ^= 0x10
			if _, err := ValidateParts([][]byte{bad[:cut], bad[cut:cut2], bad[cut2:]}); err == nil {
				t.Fatalf("split at %d and %d: a flipped byte passed", cut, cut2)
			}
		}
	}
	if _, err := ValidateParts([][]byte{batch[:100], batch[100 : len(batch)-1]}); err == nil {
		t.Fatal("a batch missing its last byte passed")
	}
}
