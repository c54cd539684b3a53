package partlog

import (
	"errors"
	"fmt"

	"github.com/strata-broker/strata/record"
)

// WalkTailHeaders calls fn, in offset order, with the header of every batch
// in about the last maxBytes of the log: it starts at a batch boundary (the
// start of a segment, or an offset-index entry) at most maxBytes before the
// end, so it may visit a little less than maxBytes, never more. Only headers
// are read and CRCs are not checked; a damaged batch ends the walk of its
// segment (the next one is still walked) and is reported as a
// *CorruptionError. It is for rebuilding state derived from the tail of
// the log (the broker's idempotent-producer state) at a bounded cost.
//
// The header passed to fn is reused between calls. WalkTailHeaders runs
// concurrently with Append, seeing what was published when it reached each
// segment; it holds off truncation and segment deletion until it returns.
func (l *Log) WalkTailHeaders(maxBytes int64, fn func(h *record.Header)) error {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if l.closed.Load() {
		return ErrLogClosed
	}
	// Find the first segment to walk, and where in it to start.
	first, startPos, startOff := len(l.segs), int64(0), int64(0)
	budget := maxBytes
	for i := len(l.segs) - 1; i >= 0 && budget > 0; i-- {
		s := l.segs[i]
		size := s.size.Load()
		if size <= budget {
			first, startPos, startOff = i, 0, s.base
			budget -= size
			continue
		}
		// Only part of this segment fits: start at the first indexed batch
		// inside the budget, if there is one.
		if off, at, ok := s.entryAfter(size-budget-1, size); ok {
			first, startPos, startOff = i, at, off
		}
		break
	}
	var damaged []error
	for i := first; i < len(l.segs); i++ {
		s := l.segs[i]
		pos, off := int64(0), s.base
		if i == first {
			pos, off = startPos, startOff
		}
		f, err := s.acquire()
		if err != nil {
			return err
		}
		sc := newScanner(f, s.size.Load(), scanChunk)
		_, _, dmg, err := sc.walk(pos, off, false, func(_ int64, h *record.Header) { fn(h) })
		s.release()
		if err != nil {
			return l.ioError(s, err)
		}
		if dmg != nil {
			damaged = append(damaged, fmt.Errorf("log: walk batch headers: %w", l.corruption(s, dmg.pos, dmg.offset, s.next.Load(), dmg.err)))
		}
	}
	return errors.Join(damaged...)
}
