package partlog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Log compaction replaces a run of sealed segments by one cleaned segment
// holding the same offsets: the cleaner writes the batches it keeps through
// a Cleaned, and CommitClean swaps it in. The swap is crash safe:
//
//  1. <base>.log.cleaned and its .index.cleaned, .timeindex.cleaned and
//     .txnindex.cleaned are written and fsynced (the last carries the
//     transactions open at the run's start, which for the log's first
//     segment are known from segments deleted long ago: no rebuild after
//     a crash could find them again);
//  2. the marker <base>.swap, a checkpoint holding the end offset of the
//     replaced run, is written and fsynced: from here the swap is decided;
//  3. the cleaned files are renamed over <base>'s and the other replaced
//     segments are deleted;
//  4. the marker is deleted and the cleaner offset checkpointed.
//
// Open finishes a swap whose marker it finds (steps 3 and 4 are idempotent)
// and deletes cleaned files without a marker, so a crash at any point leaves
// either the old segments or the new one, never a mix.
const (
	cleanedSuffix     = ".cleaned"
	swapSuffix        = ".swap"
	cleanerOffsetFile = "cleaner-offset.checkpoint"
)

// ErrCleanStale means the segments a Cleaned was to replace changed while it
// was written (deleted by retention, truncated): nothing was swapped.
var ErrCleanStale = errors.New("log: the segments being cleaned changed")

// Cleaned is a replacement being written for the sealed segments holding
// the offsets [Base, End).
type Cleaned struct {
	*SegmentWriter
	l *Log
}

// TransactionsOpenAt lists the transactions open at the start of the
// segment starting at base; ok is false when no segment starts there.
func (l *Log) TransactionsOpenAt(base int64) (open []OpenTxn, ok bool) {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if len(l.segs) == 0 {
		return nil, false
	}
	s := l.segs[l.segmentFor(base)]
	if s.base != base {
		return nil, false
	}
	// Fixed once the segment is in the list (set by the roll, or by a swap
	// under segMu).
	return slices.Clone(s.txnStart), true
}

// CleanerOffset is the first offset the cleaner has not yet deduplicated
// (Kafka's cleaner checkpoint, the start of the dirty section), within the
// log's current bounds.
func (l *Log) CleanerOffset() int64 {
	return min(max(l.cleanerOffset.Load(), l.logStart.Load()), l.leo.Load())
}

// BeginClean starts a cleaned replacement for the segments holding [base,
// end): they must be sealed and durable, the first must start at base and
// the last end at end.
func (l *Log) BeginClean(base, end int64) (*Cleaned, error) {
	if _, _, err := l.cleanRange(base, end); err != nil {
		return nil, err
	}
	w, err := newSegmentWriter(l.dir, base, end, cleanedSuffix, l.Config().IndexIntervalBytes, l.now())
	if err != nil {
		return nil, fmt.Errorf("log: begin clean: %w", err)
	}
	return &Cleaned{SegmentWriter: w, l: l}, nil
}

// cleanRange finds the segments [i, j) holding exactly [base, end), all
// sealed and durable; the answer stays true while swapMu is held.
func (l *Log) cleanRange(base, end int64) (int, int, error) {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	i := l.segmentFor(base)
	if len(l.segs) == 0 || l.segs[i].base != base {
		return 0, 0, fmt.Errorf("%w: no segment starts at %d", ErrCleanStale, base)
	}
	j := i
	for j < len(l.segs)-1 && l.segs[j].next.Load() < end {
		if !l.segs[j].durable.Load() {
			return 0, 0, fmt.Errorf("%w: segment %s is not sealed", ErrCleanStale, l.segs[j].name())
		}
		j++
	}
	last := l.segs[j]
	if j == len(l.segs)-1 || !last.durable.Load() || last.next.Load() != end {
		return 0, 0, fmt.Errorf("%w: no run of sealed segments holds %d..%d", ErrCleanStale, base, end)
	}
	return i, j + 1, nil
}

// CommitClean swaps the cleaned segment in for the segments it replaces and
// records cleanerOffset as the end of the cleaned section. If those segments
// changed meanwhile it aborts with ErrCleanStale. A failure once the swap is
// decided marks the log failed; Open finishes the swap.
func (l *Log) CommitClean(c *Cleaned, cleanerOffset int64) error {
	if err := c.finish(); err != nil {
		return fmt.Errorf("log: commit clean: %w", err)
	}
	s := c.seg

	// swapMu, not mu: producers keep appending to the active segment while
	// the marker is written and the files are swapped; only deletions and
	// truncations, which could change the segments replaced, wait.
	l.swapMu.Lock()
	defer l.swapMu.Unlock()
	if l.closed.Load() {
		c.Abort()
		return ErrLogClosed
	}
	if err := l.failure(); err != nil {
		c.Abort()
		return err
	}
	i, j, err := l.cleanRange(c.Base(), c.end)
	if err != nil {
		c.Abort()
		return err
	}
	// The transactions open at the run's ends are those open at the
	// cleaned segment's: the cleaner drops a marker only together with
	// every record of its transaction, and only of a transaction that
	// began inside the run, so no boundary state changes. An aborted
	// transaction stays in the index while its marker is in the file.
	// Sealed segments' transaction fields do not change, and swapMu keeps
	// the run in the log.
	l.segMu.RLock()
	old := slices.Clone(l.segs[i:j])
	l.segMu.RUnlock()
	x := txnIndex{next: c.end, start: old[0].txnStart, end: old[len(old)-1].txnEnd}
	l.abortMu.RLock()
	for _, o := range old {
		x.aborted = append(x.aborted, c.KeptAborted(o.aborted)...)
	}
	l.abortMu.RUnlock()
	if err := writeFileAtomic(l.dir, segmentName(s.base, txnIndexSuffix+cleanedSuffix), encodeTxnIndex(x)); err != nil {
		c.Abort()
		return fmt.Errorf("log: commit clean: %w", err)
	}
	if l.crashed("before-swap-marker") {
		return errCrashed
	}
	c.closed = true
	if err := writeCheckpoint(l.dir, segmentName(c.Base(), swapSuffix), c.end); err != nil {
		c.closed = false
		c.Abort()
		return fmt.Errorf("log: commit clean: %w", err)
	}
	if l.crashed("after-swap-marker") {
		return errCrashed
	}

	s.sealed.Store(true)
	s.syncedNext.Store(s.next.Load())
	s.durable.Store(true)
	s.created = l.now()

	// mu too, for the file renames and the list change only: writers read
	// the segment list under mu alone. Appends may have rolled meanwhile,
	// which only adds segments at the end: the replaced ones are where
	// cleanRange found them.
	l.mu.Lock()
	l.segMu.Lock()
	var errs []error
	for _, o := range old {
		o.sealMu.Lock()
		o.removed = true // OpenSealed no longer hands it out
		errs = append(errs, o.closeFile())
		if o.base != s.base {
			for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix, txnIndexSuffix} {
				if rerr := os.Remove(o.path(suffix)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
					errs = append(errs, rerr)
				}
			}
		}
		o.sealMu.Unlock()
	}
	if l.crashed("after-old-removed") {
		l.segMu.Unlock()
		l.mu.Unlock()
		return errCrashed
	}
	errs = append(errs, renameCleaned(l.dir, s.base))
	// Only now: reopened by path, the file must be the cleaned one.
	l.files.adopt(s)
	l.segs = slices.Concat(l.segs[:i], []*segment{s}, l.segs[j:])
	s.txnStart, s.txnEnd = x.start, x.end
	l.abortMu.Lock()
	s.aborted = x.aborted
	l.abortMu.Unlock()
	l.segMu.Unlock()
	l.mu.Unlock()

	errs = append(errs, syncDir(l.dir))
	if err := errors.Join(errs...); err != nil {
		return l.fail(fmt.Errorf("log: commit clean of %s: %w", s.name(), err))
	}
	if l.crashed("after-rename") {
		return errCrashed
	}
	if err := os.Remove(filepath.Join(l.dir, segmentName(s.base, swapSuffix))); err != nil {
		return l.fail(fmt.Errorf("log: commit clean of %s: %w", s.name(), err))
	}
	if l.crashed("after-swap-marker-removed") {
		return errCrashed
	}
	if cleanerOffset > l.cleanerOffset.Load() {
		if err := writeCheckpoint(l.dir, cleanerOffsetFile, cleanerOffset); err != nil {
			return l.fail(fmt.Errorf("log: commit clean of %s: %w", s.name(), err))
		}
		l.cleanerOffset.Store(cleanerOffset)
	}
	l.logger.Debug("log: swapped in cleaned segment", "dir", l.dir, "segment", s.name(),
		"end", c.end, "replaced", len(old), "bytes", s.size.Load())
	return nil
}

// errCrashed is what CommitClean returns when Options.CrashAt stopped it.
var errCrashed = errors.New("log: stopped by a simulated crash")

// crashed asks the test hook whether to stop at step; if so the log is
// marked failed, as a crashed process would write nothing more.
func (l *Log) crashed(step string) bool {
	if l.crash == nil || !l.crash(step) {
		return false
	}
	l.fail(fmt.Errorf("%w at %s", errCrashed, step))
	return true
}

// lowerCleanerOffsetLocked moves the cleaner offset down to offset after a
// truncation: what is appended from there on is dirty again. mu must be
// held.
func (l *Log) lowerCleanerOffsetLocked(offset int64) error {
	if l.cleanerOffset.Load() <= offset {
		return nil
	}
	if err := writeCheckpoint(l.dir, cleanerOffsetFile, offset); err != nil {
		return l.fail(err)
	}
	l.cleanerOffset.Store(offset)
	return nil
}

// writeIndexesSuffixed writes both index files under their names plus
// suffix. sealMu must be held.
func (s *segment) writeIndexesSuffixed(suffix string) error {
	off, tim, version := s.encodeIndexes()
	if err := writeFileAtomic(s.dir, segmentName(s.base, indexSuffix+suffix), off); err != nil {
		return err
	}
	if err := writeFileAtomic(s.dir, segmentName(s.base, timeIndexSuffix+suffix), tim); err != nil {
		return err
	}
	s.writtenVersion = version
	return nil
}

// renameCleaned moves whichever cleaned files of base are still there over
// the segment's files, the index files before the log.
func renameCleaned(dir string, base int64) error {
	for _, suffix := range []string{indexSuffix, timeIndexSuffix, txnIndexSuffix, logSuffix} {
		name := filepath.Join(dir, segmentName(base, suffix))
		if err := os.Rename(name+cleanedSuffix, name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// finishCleaning completes the swaps a crash interrupted and removes the
// leftovers of cleanings that never reached their swap, before Open lists
// the segments. It also loads the cleaner offset.
func (l *Log) finishCleaning(entries []os.DirEntry) (bool, error) {
	changed := false
	var logBases []int64
	for _, e := range entries {
		if base, suffix, ok := parseSegmentName(e.Name()); ok && suffix == logSuffix {
			logBases = append(logBases, base)
		}
	}
	for _, e := range entries {
		stem, ok := strings.CutSuffix(e.Name(), swapSuffix)
		if !ok {
			continue
		}
		base, _, ok := parseSegmentName(stem + logSuffix)
		if !ok {
			continue
		}
		end, err := readCheckpoint(l.dir, e.Name())
		if err != nil {
			// Written atomically, so unreadable means damaged: the swap
			// cannot be completed safely, and the old segments are
			// intact only if no rename happened. Keep what is there.
			l.logger.Error("log: unreadable swap marker; leaving the segments as they are", "dir", l.dir, "file", e.Name(), "err", err)
			continue
		}
		// The cleaned .txnindex, written before the marker, replaces the
		// first replaced segment's with the rest: it keeps the
		// transactions open at the run's start.
		if err := renameCleaned(l.dir, base); err != nil {
			return false, fmt.Errorf("log: open: finish swap of %s: %w", stem, err)
		}
		for _, b := range logBases {
			if b <= base || b >= end {
				continue
			}
			for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix, txnIndexSuffix} {
				if err := os.Remove(filepath.Join(l.dir, segmentName(b, suffix))); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return false, fmt.Errorf("log: open: finish swap of %s: %w", stem, err)
				}
			}
		}
		if err := syncDir(l.dir); err != nil {
			return false, err
		}
		if err := os.Remove(filepath.Join(l.dir, e.Name())); err != nil {
			return false, fmt.Errorf("log: open: %w", err)
		}
		l.logger.Warn("log: finished a compaction swap a crash interrupted", "dir", l.dir, "segment", stem, "end", end)
		changed = true
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, cleanedSuffix) && !strings.HasSuffix(name, cleanedSuffix+tmpSuffix) &&
			!strings.HasSuffix(name, swapSuffix+tmpSuffix) {
			continue
		}
		if err := os.Remove(filepath.Join(l.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("log: open: %w", err)
		}
		changed = true
	}
	if co, err := readCheckpoint(l.dir, cleanerOffsetFile); err == nil {
		l.cleanerOffset.Store(co)
	} else if !errors.Is(err, fs.ErrNotExist) {
		l.logger.Warn("log: unreadable cleaner offset; the whole log counts as dirty", "dir", l.dir, "err", err)
	}
	return changed, nil
}
