package partlog

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/strata-broker/strata/record"
)

// TruncateTo drops everything at and above offset, for a replica that must
// match its leader. Batches are never split: if offset falls inside a batch,
// the whole batch goes and the log end offset becomes its base offset.
// Offsets at or above LogEndOffset change nothing; an offset below
// LogStartOffset is an *OffsetOutOfRangeError. If offset falls inside the
// batch holding the log start (a start moved into the middle of a batch),
// the log is left empty and its start moves down to its new end. The
// recovery point moves back with the log end, before any new data can be
// appended.
func (l *Log) TruncateTo(offset int64) error {
	l.swapMu.Lock()
	defer l.swapMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writable(); err != nil {
		return err
	}
	start, end := l.logStart.Load(), l.leo.Load()
	if offset >= end {
		return nil
	}
	if offset < start {
		return &OffsetOutOfRangeError{Offset: offset, Start: start, End: end}
	}
	i := l.segmentFor(offset)
	s := l.segs[i]
	size := s.size.Load()
	pos, newEnd := int64(0), s.base
	if offset > s.base {
		p, base, err := l.locate(s, size, offset)
		if err != nil {
			return fmt.Errorf("log: truncate to %d: %w", offset, err)
		}
		pos, newEnd = p, base
		if p >= size {
			newEnd = s.next.Load()
		}
	}

	l.ckMu.Lock()
	defer l.ckMu.Unlock()
	l.segMu.Lock()
	removed := slices.Clone(l.segs[i+1:])
	l.segs = slices.Clone(l.segs[:i+1])
	err := l.truncateSegment(s, pos, newEnd)
	l.leo.Store(newEnd)
	l.segMu.Unlock()

	for _, r := range removed {
		if rerr := r.removeFiles(); rerr != nil && err == nil {
			err = rerr
		}
	}
	if err == nil {
		err = syncDir(l.dir)
	}
	if err == nil {
		err = l.retrackTxnsLocked(s)
	}
	if err == nil {
		// Before anything is appended past the cut again.
		err = l.removeProducerSnapshotsOutside(0, newEnd)
	}
	if err != nil {
		return l.fail(fmt.Errorf("log: truncate to %d: %w", offset, err))
	}
	if newEnd < start {
		// The batch holding the log start is gone: the log is empty and
		// starts where it now ends. Checkpointed only now that the cut is
		// on disk, so that a crash in between cannot serve what lay below
		// the old start.
		if err := writeCheckpoint(l.dir, logStartFile, newEnd); err != nil {
			return l.fail(err)
		}
		l.logStart.Store(newEnd)
	}
	l.logger.Info("log: truncated", "dir", l.dir, "offset", offset, "log_end", newEnd, "segment", s.name(), "position", pos, "segments_removed", len(removed))
	l.truncateEpochsLocked(newEnd)
	if err := l.lowerCleanerOffsetLocked(newEnd); err != nil {
		return err
	}
	return l.checkpointRecoveryPointLocked(min(l.ckRP, newEnd), true)
}

// truncateSegment cuts s at pos (the start of the batch with base offset
// next) and makes it the active segment. mu and segMu must be held.
func (l *Log) truncateSegment(s *segment, pos, next int64) error {
	s.ensureIndexes() // before its index files go
	s.sealMu.Lock()
	defer s.sealMu.Unlock()
	// The active segment from now on: its file stays open for appends.
	if err := s.pin(); err != nil {
		return err
	}
	s.sealed.Store(false)
	s.durable.Store(false)
	// Its index files on disk describe the old content.
	if err := s.removeIndexFiles(); err != nil {
		return err
	}
	if pos < s.size.Load() {
		if err := s.f.Truncate(pos); err != nil {
			return err
		}
		if err := s.f.Sync(); err != nil {
			return err
		}
	}
	s.size.Store(pos)
	s.next.Store(next)
	s.syncedNext.Store(min(s.syncedNext.Load(), next))
	s.truncateIndexes(next)

	// The max timestamp up to the last remaining offset entry is the last
	// time entry's; walk the batches after it for the rest.
	entOff, entPos, te, hasTime := s.lastEntries()
	s.maxTS.Store(noTimestamp)
	s.offsetOfMaxTS = s.base
	if hasTime {
		s.maxTS.Store(te.ts)
		s.offsetOfMaxTS = s.base + int64(te.rel)
	}
	s.bytesSinceIndex = pos - entPos
	sc := newScanner(s.f, pos, walkChunk)
	_, _, dmg, err := sc.walk(entPos, entOff, false, func(_ int64, h *record.Header) {
		if h.MaxTimestamp > s.maxTS.Load() {
			s.maxTS.Store(h.MaxTimestamp)
			s.offsetOfMaxTS = h.LastOffset()
		}
	})
	if err == nil && dmg != nil {
		l.logger.Warn("log: damaged batch below the truncation point", "dir", l.dir, "segment", s.name(), "position", dmg.pos, "err", dmg.err)
	}
	return err
}

// AdvanceLogStart moves the log start offset forward to offset, as Kafka's
// DeleteRecords does: reads below it fail with *OffsetOutOfRangeError, and
// the segments that lie entirely below it are deleted (the one holding it
// stays; see DeleteSegmentsBelow). The new start is checkpointed before any
// file is deleted, and Open finishes a deletion a crash interrupted. An
// offset at or below LogStartOffset changes nothing; one above LogEndOffset
// is an *OffsetOutOfRangeError. Leader epochs that end at or below the new
// start are forgotten, except the one holding it.
func (l *Log) AdvanceLogStart(offset int64) error {
	_, err := l.DeleteSegmentsBelow(offset)
	return err
}

// TruncateFullyAndStartAt empties the log and starts it again, empty, at
// offset, which becomes both its start and its end. It is for a replica
// whose log ends before its leader's log start (nothing it holds is still
// served) or that must drop records below its own log start. The leader
// epoch cache is emptied with the log.
//
// Crash safety: a start moving up is checkpointed before any file is
// deleted, and Open acts on it (a start beyond the recovered end empties
// the log there, segments below it are deleted). A start moving down is
// checkpointed only after the files are gone, so that a crash never
// exposes records below the old start.
func (l *Log) TruncateFullyAndStartAt(offset int64) error {
	l.swapMu.Lock()
	defer l.swapMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writable(); err != nil {
		return err
	}
	if offset < 0 {
		return fmt.Errorf("log: truncate fully and start at %d: negative offset", offset)
	}
	lowering := offset < l.logStart.Load()
	if !lowering {
		if err := writeCheckpoint(l.dir, logStartFile, offset); err != nil {
			return l.fail(err)
		}
	}
	l.ckMu.Lock()
	defer l.ckMu.Unlock()
	// Readers are held off for the whole swap: the new segment may reuse the
	// base (the file name) of one being removed.
	l.segMu.Lock()
	removed := l.segs
	var errs []error
	for _, s := range removed {
		errs = append(errs, s.removeFiles())
	}
	s, err := createSegment(l.dir, offset, l.files, l.now())
	if err != nil {
		l.segs = nil
		l.segMu.Unlock()
		return l.fail(fmt.Errorf("log: truncate fully and start at %d: %w", offset, errors.Join(append(errs, err)...)))
	}
	l.segs = []*segment{s}
	l.leo.Store(offset)
	l.logStart.Store(offset)
	l.segMu.Unlock()
	// Nothing is left of any transaction.
	l.txns = newTxnState(nil)
	l.publishTxnsLocked(l.txns, -1)
	l.dirDirty = false
	l.unflushed = 0
	// Every producer snapshot describes what was removed, even one at offset.
	errs = append(errs, l.removeProducerSnapshotsOutside(math.MaxInt64, -1))
	errs = append(errs, syncDir(l.dir))
	if lowering {
		errs = append(errs, writeCheckpoint(l.dir, logStartFile, offset))
	}
	if err := errors.Join(errs...); err != nil {
		return l.fail(fmt.Errorf("log: truncate fully and start at %d: %w", offset, err))
	}
	l.epMu.Lock()
	l.epochs, l.epochsDirty = nil, true
	l.epMu.Unlock()
	l.logger.Info("log: truncated fully", "dir", l.dir, "start", offset, "segments_removed", len(removed))
	if err := l.lowerCleanerOffsetLocked(offset); err != nil {
		return err
	}
	return l.checkpointRecoveryPointLocked(offset, true)
}

// DeleteSegmentsBelow deletes the segments that lie entirely below offset
// and advances the log start offset to offset (persisted before any file is
// deleted). The active segment is never deleted: if it lies entirely below
// offset, the log rolls first. It returns how many segments it deleted. An
// offset above LogEndOffset is an *OffsetOutOfRangeError; one at or below
// LogStartOffset changes nothing.
func (l *Log) DeleteSegmentsBelow(offset int64) (int, error) {
	l.swapMu.Lock()
	defer l.swapMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writable(); err != nil {
		return 0, err
	}
	start, end := l.logStart.Load(), l.leo.Load()
	if offset > end {
		return 0, &OffsetOutOfRangeError{Offset: offset, Start: start, End: end}
	}
	if offset <= start {
		return 0, nil
	}
	if a := l.active(); a.size.Load() > 0 && a.next.Load() <= offset {
		if err := l.rollLocked(); err != nil {
			return 0, err
		}
	}
	if err := writeCheckpoint(l.dir, logStartFile, offset); err != nil {
		return 0, l.fail(err)
	}
	l.logStart.Store(offset)
	l.truncateEpochsFromStartLocked(offset)

	l.segMu.Lock()
	k := 0
	for k < len(l.segs)-1 && l.segs[k].next.Load() <= offset {
		k++
	}
	removed := slices.Clone(l.segs[:k])
	l.segs = slices.Clone(l.segs[k:])
	l.segMu.Unlock()

	var errs []error
	if len(removed) > 0 {
		// Before the segments that knew them go.
		errs = append(errs, l.keepTxnStart(l.segs[0]))
	}
	for _, s := range removed {
		errs = append(errs, s.removeFiles())
	}
	errs = append(errs, l.removeProducerSnapshotsOutside(offset, math.MaxInt64))
	if len(removed) > 0 {
		errs = append(errs, syncDir(l.dir))
		l.logger.Info("log: deleted segments", "dir", l.dir, "below", offset, "segments", len(removed), "first", removed[0].name(), "last", removed[len(removed)-1].name())
	}
	if err := errors.Join(errs...); err != nil {
		// The log start is persisted, so the next Open finishes the job.
		return len(removed), fmt.Errorf("log: delete segments below %d: %w", offset, err)
	}
	return len(removed), nil
}
