package partlog

import (
	"errors"
	"fmt"
	"io"

	"github.com/strata-broker/strata/record"
)

// ReadResult is a run of whole batches, exactly as stored.
type ReadResult struct {
	Data        []byte
	FirstOffset int64 // base offset of the first batch
	NextOffset  int64 // offset after the last batch
}

// Read returns whole batches starting with the one that contains offset: at
// most maxBytes, but always the whole first batch even if it is larger, and
// no batch whose base offset is maxOffset or more (the high watermark; pass
// LogEndOffset when there is none). A read stays within one segment.
//
// offset == LogEndOffset, or offset >= maxOffset, gives an empty result.
// An offset outside [LogStartOffset, LogEndOffset] is an
// *OffsetOutOfRangeError.
//
// Every returned batch has passed its checks (header, CRC-32C, offset
// continuity). If the first batch fails them, Read returns a
// *CorruptionError whose NextOffset is where a reader can continue; a later
// damaged batch just ends the read before it.
//
// Read runs concurrently with Append: it reads only bytes that are already
// written. In the common case (offset at an indexed batch) it does one
// ReadAt of min(maxBytes, available) bytes.
func (l *Log) Read(offset int64, maxBytes int, maxOffset int64) (ReadResult, error) {
	return l.ReadInto(offset, maxBytes, maxOffset, nil)
}

// ReadInto is Read with the read buffers supplied by the caller: alloc(n)
// returns a slice of length n, whose contents need not be zeroed (ReadInto
// overwrites every byte it returns). A nil alloc allocates with make.
//
// ReadInto may call alloc more than once (when the first batch is larger
// than the first buffer, or a damaged batch makes it read again). Data, when
// not empty, is a prefix of the buffer returned by the last call; no other
// buffer alloc returned is referenced once ReadInto has returned, so the
// caller may reuse them at once.
func (l *Log) ReadInto(offset int64, maxBytes int, maxOffset int64, alloc func(n int) []byte) (ReadResult, error) {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if l.closed.Load() {
		return ReadResult{}, ErrLogClosed
	}
	if err := l.failure(); err != nil {
		// After a failed write or fsync the page cache may hold what the disk
		// does not: serving it could show consumers records a restart loses.
		return ReadResult{}, err
	}
	start, end := l.logStart.Load(), l.leo.Load()
	if offset < start || offset > end {
		return ReadResult{}, &OffsetOutOfRangeError{Offset: offset, Start: start, End: end}
	}
	empty := ReadResult{FirstOffset: offset, NextOffset: offset}
	for i := l.segmentFor(offset); i < len(l.segs) && offset < maxOffset; i++ {
		s := l.segs[i]
		// next before size: a reader that sees an offset sees its bytes.
		next := s.next.Load()
		size := s.size.Load()
		if offset < next {
			res, found, err := l.readSegment(s, size, offset, maxBytes, maxOffset, alloc)
			if err != nil || found {
				return res, err
			}
		}
		// Not in this segment (empty, or a gap): the next one starts later.
		if i+1 < len(l.segs) {
			offset = max(offset, l.segs[i+1].base)
		}
	}
	return empty, nil
}

// readSegment reads from the batch of s containing offset; found is false if
// the segment's data ends before offset.
func (l *Log) readSegment(s *segment, size, offset int64, maxBytes int, maxOffset int64, alloc func(int) []byte) (ReadResult, bool, error) {
	f, err := s.acquire()
	if err != nil {
		return ReadResult{}, false, err
	}
	defer s.release()
	base, pos := s.lookup(offset, size)
	var sc *scanner
	for {
		if base != offset { // else the indexed batch is the one; readBatches checks it
			if sc == nil {
				sc = newScanner(f, size, walkChunk)
			}
			var err error
			if pos, base, err = l.walkTo(s, sc, offset, pos, base); err != nil || pos >= size {
				return ReadResult{}, false, err
			}
		}
		res, dmg, err := l.readBatches(s, f, size, pos, base, maxBytes, maxOffset, alloc)
		if err != nil || dmg == nil {
			return res, err == nil, err
		}
		if sc == nil {
			sc = newScanner(f, size, walkChunk)
		}
		nextPos, nextOff := l.resume(s, sc, size, pos, base)
		if offset < nextOff {
			return ReadResult{}, false, l.corruption(s, pos, base, nextOff, dmg.err)
		}
		// The damaged header claimed offset, but reading resumes at or
		// before it: go on from there.
		if nextPos >= size {
			return ReadResult{}, false, nil
		}
		pos, base = nextPos, nextOff
	}
}

// walkTo finds the batch of s that contains offset, walking batch headers
// from pos, where a batch with base offset base starts. It returns the
// batch's position and base offset, or pos == sc.size if the segment's data
// ends before offset. Damage on the way is skipped if offset lies beyond it;
// otherwise it is a *CorruptionError.
func (l *Log) walkTo(s *segment, sc *scanner, offset, pos, base int64) (int64, int64, error) {
	prevPos, prevBase := int64(-1), int64(0)
	for pos < sc.size {
		h, err := sc.batch(pos, base, false)
		if err != nil {
			if !isDamage(err) {
				return 0, 0, l.ioError(s, err)
			}
			// The walk stepped over the previous batch on its header alone;
			// if that batch is damaged, its header may be what misled us.
			if prevPos >= 0 {
				if _, perr := sc.batch(prevPos, prevBase, true); perr != nil {
					if !isDamage(perr) {
						return 0, 0, l.ioError(s, perr)
					}
					pos, base, err = prevPos, prevBase, perr
				}
			}
			nextPos, nextOff := l.resume(s, sc, sc.size, pos, base)
			if offset < nextOff {
				return 0, 0, l.corruption(s, pos, base, nextOff, err)
			}
			pos, base, prevPos = nextPos, nextOff, -1
			continue
		}
		if h.NextOffset() > offset {
			return pos, base, nil
		}
		prevPos, prevBase = pos, base
		pos += int64(h.Size())
		base = h.NextOffset()
	}
	return sc.size, base, nil
}

// locate finds the batch of s that contains offset (see walkTo).
func (l *Log) locate(s *segment, size, offset int64) (int64, int64, error) {
	base, pos := s.lookup(offset, size)
	if base == offset {
		return pos, base, nil
	}
	f, err := s.acquire()
	if err != nil {
		return 0, 0, err
	}
	defer s.release()
	return l.walkTo(s, newScanner(f, size, walkChunk), offset, pos, base)
}

// readBatches reads batches of s, from its file f, from pos, where the
// batch with base offset base starts: one ReadAt of min(maxBytes,
// available) bytes (a second one if the first batch is larger), then
// trimmed to whole, sound batches. If the first batch is damaged it returns
// the damage. Buffers come from alloc (see ReadInto).
func (l *Log) readBatches(s *segment, f io.ReaderAt, size, pos, base int64, maxBytes int, maxOffset int64, alloc func(int) []byte) (ReadResult, *damage, error) {
	buf := newBuffer(alloc, int(min(size-pos, int64(max(maxBytes, record.HeaderSize)))))
	if err := readFull(f, buf, pos); err != nil {
		return ReadResult{}, nil, l.ioError(s, err)
	}
	h, err := record.ParseHeader(buf)
	if err == nil && int64(h.Size()) > size-pos {
		err = record.ErrShortBuffer
	}
	if err == nil && h.Size() > len(buf) {
		whole := newBuffer(alloc, h.Size())
		copy(whole, buf)
		if err := readFull(f, whole[len(buf):], pos+int64(len(buf))); err != nil {
			return ReadResult{}, nil, l.ioError(s, err)
		}
		buf = whole
	}
	if err == nil {
		_, err = record.Validate(buf)
	}
	if err == nil && h.BaseOffset != base {
		err = corruptf("base offset %d, expected %d", h.BaseOffset, base)
	}
	if err != nil {
		if !isDamage(err) {
			return ReadResult{}, nil, l.ioError(s, err)
		}
		return ReadResult{}, &damage{pos: pos, offset: base, err: err}, nil
	}
	n, next := h.Size(), h.NextOffset()
	for n < len(buf) {
		h, err := record.Validate(buf[n:])
		if err != nil || h.BaseOffset != next || h.BaseOffset >= maxOffset || n+h.Size() > maxBytes {
			break // a damaged batch is reported when a read starts at it
		}
		n += h.Size()
		next = h.NextOffset()
	}
	return ReadResult{Data: buf[:n:n], FirstOffset: base, NextOffset: next}, nil, nil
}

// newBuffer returns n bytes from alloc, or from make if alloc is nil.
func newBuffer(alloc func(int) []byte, n int) []byte {
	if alloc == nil {
		return make([]byte, n)
	}
	return alloc(n)[:n]
}

// resume finds where reading can continue after the damaged batch at pos,
// which should start at offset: after the batch, if its length leads to a
// sound batch or to the end of the segment; else at the next offset-index
// entry beyond pos; else at the end of the segment (the next segment).
func (l *Log) resume(s *segment, sc *scanner, size, pos, offset int64) (int64, int64) {
	if q, next, found, atEnd := sc.pastDamage(pos, offset, s.next.Load()); found {
		return q, next
	} else if atEnd {
		return size, s.next.Load()
	}
	if off, at, ok := s.entryAfter(pos, size); ok && off > offset && off < s.next.Load() {
		return at, off
	}
	return size, max(s.next.Load(), offset+1)
}

func (l *Log) corruption(s *segment, pos, first, next int64, err error) error {
	return &CorruptionError{Dir: l.dir, Segment: s.base, Position: pos, FirstOffset: first, NextOffset: next, Err: err}
}

// ioError takes the log offline after a read failed for another reason than
// damaged data: the device or filesystem under the log failed, and what else
// it would serve cannot be trusted either.
func (l *Log) ioError(s *segment, err error) error {
	return l.fail(fmt.Errorf("log: read %s: %w", s.path(logSuffix), err))
}

// errFound stops record.Scan once the record is found.
var errFound = errors.New("found")

// OffsetForTimestamp returns the first offset whose record timestamp is at
// least ts, and that timestamp; found is false when no record qualifies. The
// time index narrows the search to a few batches, whose records are decoded
// to find the exact one. Every batch on the way is checked (a damaged header
// could otherwise hide the answer); a damaged one is a *CorruptionError.
func (l *Log) OffsetForTimestamp(ts int64) (offset int64, timestamp int64, found bool, err error) {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if l.closed.Load() {
		return 0, 0, false, ErrLogClosed
	}
	if err := l.failure(); err != nil {
		return 0, 0, false, err // as ReadInto: nothing of an offline log is served
	}
	start := l.logStart.Load()
	for _, s := range l.segs {
		next := s.next.Load()
		size := s.size.Load()
		if next <= start || size == 0 {
			continue
		}
		// A lazy segment whose load failed has no max timestamp: skipping
		// it would answer from a later segment.
		if err := s.ensureIndexes(); err != nil {
			return 0, 0, false, l.fail(err)
		}
		if s.maxTimestamp() < ts {
			continue
		}
		offset, timestamp, found, err = l.offsetForTimestampIn(s, size, max(s.timeLookup(ts), start), ts)
		if err != nil || found {
			return offset, timestamp, found, err
		}
	}
	return 0, 0, false, nil
}

// MaxTimestamp is the largest record timestamp of the log's segments from
// the log start (a segment holding the log start counts whole, as
// Kafka's max-timestamp lookup takes segments whole); ok is false for a
// log holding no record.
func (l *Log) MaxTimestamp() (ts int64, ok bool) {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	start := l.logStart.Load()
	for _, s := range l.segs {
		if s.next.Load() <= start || s.size.Load() == 0 {
			continue
		}
		if m := s.maxTimestamp(); !ok || m > ts {
			ts, ok = m, true
		}
	}
	return ts, ok
}

// offsetForTimestampIn is OffsetForTimestamp within segment s, from offset
// from on.
func (l *Log) offsetForTimestampIn(s *segment, size, from, ts int64) (offset int64, timestamp int64, found bool, err error) {
	f, err := s.acquire()
	if err != nil {
		return 0, 0, false, err
	}
	defer s.release()
	base, pos := s.lookup(from, size)
	sc := newScanner(f, size, walkChunk)
	for pos < size {
		h, err := sc.batch(pos, base, true)
		if err == nil && h.NextOffset() > from && h.MaxTimestamp >= ts {
			b, _ := sc.read(pos, h.Size()) // buffered by the check
			// Scanned, not decoded: the batch's records are never held
			// whole, however far they inflate.
			err = record.ScanStored(b, func(r *record.RecordInfo) error {
				if r.Offset >= from && r.Timestamp >= ts {
					offset, timestamp, found = r.Offset, r.Timestamp, true
					return errFound
				}
				return nil
			})
			if found {
				return offset, timestamp, true, nil
			}
		}
		if err != nil {
			if !isDamage(err) {
				return 0, 0, false, l.ioError(s, err)
			}
			_, nextOff := l.resume(s, sc, size, pos, base)
			return 0, 0, false, l.corruption(s, pos, base, nextOff, err)
		}
		pos += int64(h.Size())
		base = h.NextOffset()
	}
	return 0, 0, false, nil
}
