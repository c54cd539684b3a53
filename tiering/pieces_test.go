package tiering

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/tiering/objstore"
)

// primeIndex gives r a segment's offset index without its object: the
// reader then starts at the index entry below the offset asked for.
func primeIndex(r *Reader, seg SegmentMeta, entries []partlog.IndexEntry) {
	r.idxMu.Lock()
	defer r.idxMu.Unlock()
	r.indexes[seg.IndexKey] = entries
	r.idxElems[seg.IndexKey] = r.idxOrder.PushFront(seg.IndexKey)
}

// ReadPieces returns, for any offset and byte bound, exactly the batches a
// reader of the whole segment would, as slices of chunks that batches
// straddle, and Read the same joined; a batch
// damaged in the part of it in its second chunk is refused; and the
// chunks are reused once the pieces are released.
func TestReadPiecesAndReadReturnTheBatchesAsked(t *testing.T) {
	ctx := context.Background()
	b := newTestBucket(t, "t", 1)
	var batches [][]int64
	next := int64(0)
	for i := range 40 {
		n := int64(1 + (i*7)%13)
		batches = append(batches, span(next, next+n))
		next += n
	}
	seg := b.segment(0, record.None, batches...)
	// Index entries every few batches, as the log writes them.
	var entries []partlog.IndexEntry
	raw, err := ReadSegment(ctx, b.st, seg)
	if err != nil {
		t.Fatal(err)
	}
	it := record.NewBatches(raw)
	pos := int64(0)
	for k := 0; it.Next(); k++ {
		if k%5 == 0 {
			entries = append(entries, partlog.IndexEntry{Offset: it.Header().BaseOffset, Position: pos})
		}
		pos += int64(len(it.Bytes()))
	}
	r, err := NewReader(b.st, ReaderConfig{CacheDir: filepath.Join(t.TempDir(), "cache"), CacheBytes: 1 << 20,
		MemoryBytes: 2048, ChunkSize: 256, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	primeIndex(r, seg, entries)
	segs := []SegmentMeta{seg}
	for _, offset := range []int64{0, 1, 13, 77, next / 2, next - 1} {
		for _, maxBytes := range []int{1, 300, 1000, 1 << 20} {
			want := expectRead(t, raw, offset, maxBytes)
			got, err := r.ReadPieces(ctx, segs, 0, offset, maxBytes)
			if err != nil {
				t.Fatalf("offset %d, %d bytes: %v", offset, maxBytes, err)
			}
			if joined := bytes.Join(got.Data, nil); !bytes.Equal(joined, want.Data) || got.Len != len(want.Data) ||
				got.NextOffset != want.NextOffset {
				t.Fatalf("offset %d, %d bytes: %d bytes in %d pieces to %d, want %d bytes to %d",
					offset, maxBytes, got.Len, len(got.Data), got.NextOffset, len(want.Data), want.NextOffset)
			}
			if len(want.Data) > 512 && len(got.Data) < 2 {
				t.Fatalf("offset %d, %d bytes: one piece; the test wants batches across chunks", offset, maxBytes)
			}
			got.Release()
			joined, err := r.Read(ctx, segs, 0, offset, maxBytes, make([]byte, 0, 64))
			if err != nil || !bytes.Equal(joined.Data, want.Data) || joined.NextOffset != want.NextOffset ||
				joined.InBuf != (len(want.Data) > 0 && len(want.Data) <= 64) {
				t.Fatalf("offset %d, %d bytes: Read gave %d bytes to %d (in buf %v), %v", offset, maxBytes,
					len(joined.Data), joined.NextOffset, joined.InBuf, err)
			}
		}
	}
	// A reader going through the segment a few chunks at a time: the
	// chunks of released pieces are reused, not allocated anew.
	before := r.cache.allocated
	for offset := int64(0); offset < next; {
		got, err := r.ReadPieces(ctx, segs, 0, offset, 600)
		if err != nil {
			t.Fatal(err)
		}
		offset = got.NextOffset
		got.Release()
	}
	if n := r.cache.allocated - before; n > 4 {
		t.Fatalf("%d chunk buffers allocated for a sequential read: released pieces' chunks were not reused", n)
	}

	// The same segment with one byte flipped just past a chunk boundary,
	// inside a batch that began in the chunk before.
	bad := bytes.Clone(raw)
	at := int64(-1)
	it = record.NewBatches(raw)
	pos = 0
	for it.Next() {
		end := pos + int64(len(it.Bytes()))
		if c := (pos/256 + 1) * 256; c+1 < end && pos > 0 && c-pos > record.HeaderSize {
			at = c + 1
			break
		}
		pos = end
	}
	if at < 0 {
		t.Fatal("no batch straddles a chunk boundary")
	}
	bad[at] ^= 0x40
	badSeg := seg
	badSeg.Key += "-bad"
	if err := b.st.Put(ctx, badSeg.Key, bytes.NewReader(bad), int64(len(bad))); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadPieces(ctx, []SegmentMeta{badSeg}, 0, 0, 1<<20); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("reading a damaged batch: %v, want ErrCorrupt", err)
	}
}

// expectRead is what a read of the segment raw at offset, bounded by
// maxBytes, returns: the batches from the one holding offset on, the first
// whole, the others while they fit.
func expectRead(t *testing.T, raw []byte, offset int64, maxBytes int) ReadResult {
	t.Helper()
	res := ReadResult{NextOffset: offset}
	it := record.NewBatches(raw)
	for it.Next() {
		h := it.Header()
		if h.LastOffset() < offset {
			continue
		}
		if len(res.Data) > 0 && len(res.Data)+len(it.Bytes()) > maxBytes {
			break
		}
		res.Data = append(res.Data, it.Bytes()...)
		res.NextOffset = h.NextOffset()
		if len(res.Data) >= maxBytes {
			break
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return res
}

// A reader going through a segment from its first offset, each read
// starting where the last stopped, needs no offset index (the bucket here
// has none); a read starting anywhere else still looks in the index.
func TestSequentialReadsNeedNoOffsetIndex(t *testing.T) {
	ctx := context.Background()
	b := newTestBucket(t, "t", 1)
	var batches [][]int64
	next := int64(100)
	for i := range 30 {
		n := int64(1 + (i*5)%11)
		batches = append(batches, span(next, next+n))
		next += n
	}
	seg := b.segment(0, record.None, batches...)
	raw, err := ReadSegment(ctx, b.st, seg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(b.st, ReaderConfig{CacheDir: filepath.Join(t.TempDir(), "cache"), CacheBytes: 1 << 20,
		MemoryBytes: 2048, ChunkSize: 256, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	segs := []SegmentMeta{seg}
	var got []byte
	reads := 0
	for offset := seg.BaseOffset; offset < seg.NextOffset; reads++ {
		pc, err := r.ReadPieces(ctx, segs, 0, offset, 700)
		if err != nil {
			t.Fatalf("read %d, at offset %d: %v", reads, offset, err)
		}
		got = append(got, bytes.Join(pc.Data, nil)...)
		offset = pc.NextOffset
		pc.Release()
	}
	if !bytes.Equal(got, raw) || reads < 3 {
		t.Fatalf("%d reads gave %d bytes, want the segment's %d in several reads", reads, len(got), len(raw))
	}

	// Inside a batch no read stopped before: the index is wanted, and the
	// bucket has none.
	mid := batches[len(batches)/2][1]
	if _, err := r.ReadPieces(ctx, segs, 0, mid, 700); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("a read at offset %d, no read stopped before it, without an index: %v, want not found", mid, err)
	}
	primeIndex(r, seg, []partlog.IndexEntry{{Offset: seg.BaseOffset, Position: 0}})
	pc, err := r.ReadPieces(ctx, segs, 0, mid, 700)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Release()
	if want := expectRead(t, raw, mid, 700); !bytes.Equal(bytes.Join(pc.Data, nil), want.Data) || pc.NextOffset != want.NextOffset {
		t.Fatalf("offset %d with an index: %d bytes to %d, want %d to %d", mid, pc.Len, pc.NextOffset, len(want.Data), want.NextOffset)
	}
}
