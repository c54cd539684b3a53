package tiering

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/strata-broker/strata/record"
)

// Pieces is a remote read's batches where they lie in the chunk cache:
// slices of chunks, in order, cut at chunk boundaries (a batch may span
// two). The chunks stay held, their buffers not reused, until Release.
type Pieces struct {
	Data       [][]byte
	Len        int   // the bytes in Data
	NextOffset int64 // the offset after the last batch
	held       []*chunk
	cache      *chunkCache
}

// Release gives back the chunks the pieces hold. Nothing may use Data
// afterwards.
func (p *Pieces) Release() {
	for _, ch := range p.held {
		p.cache.release(ch)
	}
	p.held, p.Data = nil, nil
}

// ReadPieces is Read without gathering the batches into one buffer: a
// caller that writes them out from where they lie (a vectored write) saves
// copying every byte read from the store once more. The same checks apply:
// every batch's CRC (computed across the chunks it spans), offsets inside
// the segment and increasing.
func (r *Reader) ReadPieces(ctx context.Context, segs []SegmentMeta, i int, offset int64, maxBytes int) (Pieces, error) {
	seg := segs[i]
	pos, err := r.startPosition(ctx, seg, offset)
	if err != nil {
		return Pieces{}, err
	}
	cs := r.cfg.ChunkSize
	w := window{first: pos / cs, cs: cs}
	defer func() { r.releaseAll(w.chunks) }() // the ones not handed to the result
	ensure := func(end int64) error {
		end = min(end, seg.Size)
		if end <= w.end() {
			return nil
		}
		// Read at least to the end of the chunk holding end: the next
		// batches are likely wanted too.
		more, err := r.chunks(ctx, seg.Key, seg.Size, w.first+int64(len(w.chunks)), (end-1)/cs)
		if err != nil {
			return err
		}
		w.chunks = append(w.chunks, more...)
		return nil
	}
	if err := ensure(pos + int64(maxBytes) + record.HeaderSize); err != nil {
		return Pieces{}, err
	}
	res := Pieces{NextOffset: offset, cache: r.cache}
	prevNext := seg.BaseOffset
	dataStart, dataEnd := int64(-1), int64(-1)
	var head [record.HeaderSize]byte
	var parts [][]byte
	for pos < seg.Size {
		if err := ensure(pos + record.HeaderSize); err != nil {
			return Pieces{}, err
		}
		n := 0
		parts = w.slices(pos, min(pos+record.HeaderSize, seg.Size), parts[:0])
		for _, p := range parts {
			n += copy(head[n:], p)
		}
		h, err := record.ParseHeader(head[:n])
		if err != nil {
			r.corrupt.Inc()
			return Pieces{}, fmt.Errorf("%w: %s at byte %d: %v", ErrCorrupt, seg.Key, pos, err)
		}
		size := int64(h.Size())
		if pos+size > seg.Size {
			r.corrupt.Inc()
			return Pieces{}, fmt.Errorf("%w: %s: batch at byte %d runs past the object's end", ErrCorrupt, seg.Key, pos)
		}
		if h.LastOffset() < offset {
			pos += size // before the offset asked for: skipped
			prevNext = h.NextOffset()
			continue
		}
		if res.Len > 0 && res.Len+int(size) > maxBytes {
			break
		}
		if err := ensure(pos + size); err != nil {
			return Pieces{}, err
		}
		parts = w.slices(pos, pos+size, parts[:0])
		if _, err := record.ValidateParts(parts); err != nil {
			r.corrupt.Inc()
			return Pieces{}, fmt.Errorf("%w: %s: batch at byte %d: %v", ErrCorrupt, seg.Key, pos, err)
		}
		if h.BaseOffset < prevNext || h.NextOffset() > seg.NextOffset {
			r.corrupt.Inc()
			return Pieces{}, fmt.Errorf("%w: %s: batch %d-%d is outside the segment's range %d-%d or out of order",
				ErrCorrupt, seg.Key, h.BaseOffset, h.LastOffset(), seg.BaseOffset, seg.NextOffset-1)
		}
		prevNext = h.NextOffset()
		if dataStart < 0 {
			dataStart = pos
		}
		dataEnd = pos + size
		res.Len += int(size)
		res.NextOffset = h.NextOffset()
		pos += size
		if res.Len >= maxBytes {
			break
		}
	}
	r.scheduleAhead(segs, i, pos)
	if dataStart < 0 {
		return res, nil
	}
	if pos < seg.Size {
		r.resume.put(seg.Key, res.NextOffset, pos)
	}
	res.Data = w.slices(dataStart, dataEnd, nil)
	// The result holds the chunks its slices are in; the deferred release
	// gives back the others.
	from, to := dataStart/cs-w.first, (dataEnd-1)/cs-w.first
	res.held = append([]*chunk(nil), w.chunks[from:to+1]...)
	for k := from; k <= to; k++ {
		w.chunks[k] = nil
	}
	return res, nil
}

// startPosition is where in seg to start looking for the batch holding
// offset: a batch boundary at or before it. A read from the segment's
// first offset, or from where a read of it ended, needs no offset index:
// a sequential reader (a replay) then never fetches one, which was a third
// of the GETs of a cold read and their per-request cost in the broker.
func (r *Reader) startPosition(ctx context.Context, seg SegmentMeta, offset int64) (int64, error) {
	if offset <= seg.BaseOffset {
		return 0, nil
	}
	if pos, ok := r.resume.get(seg.Key, offset); ok {
		return pos, nil
	}
	idx, err := r.index(ctx, seg)
	if err != nil {
		return 0, err
	}
	if j := sort.Search(len(idx), func(j int) bool { return idx[j].Offset > offset }); j > 0 {
		return idx[j-1].Position, nil
	}
	return 0, nil
}

// resumePoints remembers, for the last reads, the offset each stopped
// before and the byte of the segment where that offset's batch begins, so
// that the read continuing there starts without the offset index. Bounded
// by maxResumePoints, oldest forgotten first.
type resumePoints struct {
	mu     sync.Mutex
	points *fifoMap[resumeKey, int64] // nil until the first put
}

type resumeKey struct {
	key    string
	offset int64
}

// maxResumePoints is a few per partition being read from the bucket at
// once; a reader whose point was forgotten reads the index instead.
const maxResumePoints = 1024

func (p *resumePoints) get(key string, offset int64) (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.points == nil {
		return 0, false
	}
	return p.points.get(resumeKey{key, offset})
}

// put remembers pos for the batch at offset; a point put again is the same
// batch boundary (objects are immutable).
func (p *resumePoints) put(key string, offset, pos int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.points == nil {
		p.points = newFIFOMap[resumeKey, int64](maxResumePoints)
	}
	p.points.put(resumeKey{key, offset}, pos)
}

// window is consecutive chunks of an object, from chunk first on.
type window struct {
	first  int64
	cs     int64
	chunks []*chunk
}

// end is the object byte after the window.
func (w *window) end() int64 {
	if len(w.chunks) == 0 {
		return w.first * w.cs
	}
	return (w.first+int64(len(w.chunks))-1)*w.cs + int64(len(w.chunks[len(w.chunks)-1].data))
}

// slices appends to dst the slices of the window's chunks that hold object
// bytes [from, to), which the window must hold.
func (w *window) slices(from, to int64, dst [][]byte) [][]byte {
	for from < to {
		c := from / w.cs
		ch := w.chunks[c-w.first]
		lo, hi := from-c*w.cs, min(to-c*w.cs, int64(len(ch.data)))
		dst = append(dst, ch.data[lo:hi])
		from += hi - lo
	}
	return dst
}
