package partlog

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/strata-broker/strata/record"
)

// load reads the partition directory and recovers the log (see Open).
//
// After a clean shutdown nothing is scanned: every segment's indexes are
// loaded and sanity-checked against the log (and rebuilt if they do not
// match). Otherwise every segment from the one holding the recovery point
// onwards is scanned batch by batch, CRCs included; at the first torn or
// corrupt batch the segment is truncated and later segments are deleted,
// which is safe because everything there was never fsynced as far as the
// recovery point says. Segments wholly below the recovery point get only
// the index check.
//
// Each pass relies on the ones before it: the directory must be free of
// half-finished swaps and temporary files before segments are listed, the
// segments' ends must be known before the log start can be checked against
// them, and the recovery point may move to the log end only once everything
// below it is durable.
func (l *Log) load() (err error) {
	ld := &loader{l: l, now: l.now()}
	defer func() {
		if err != nil {
			ld.closeSegments()
		}
	}()
	entries, err := ld.completeSwaps()
	if err != nil {
		return err
	}
	if err := ld.collectSegmentFiles(entries); err != nil {
		return err
	}
	ld.readCheckpoints()
	if err := ld.openSegments(); err != nil {
		return err
	}
	if err := ld.loadBelowRecoveryPoint(); err != nil {
		return err
	}
	if err := ld.recoverFromRecoveryPoint(); err != nil {
		return err
	}
	ld.linkSegments()
	ld.keepRP = ld.keepRecoveryPoint()
	if err := ld.makeDurable(); err != nil {
		return err
	}
	if err := ld.reconcileLogStart(); err != nil {
		return err
	}
	if err := ld.loadTransactions(); err != nil {
		return err
	}
	if err := ld.removeCleanMarker(); err != nil {
		return err
	}
	// The leader epochs first: the recovery point vouches for the epoch
	// checkpoint below it, so it moves only once the checkpoint is durable.
	if err := ld.install(); err != nil {
		return err
	}
	return ld.writeCheckpoints()
}

// loader carries what one load learns from pass to pass.
type loader struct {
	l   *Log
	now time.Time

	// bases are the base offsets of the segment files found, ascending.
	bases []int64

	rp, ls       int64 // recovery point and log start checkpoints
	rpErr, lsErr error // why a checkpoint could not be read
	// clean is a clean shutdown with a readable recovery point: nothing
	// needs scanning.
	clean bool
	// trustedEpochs is the offset below which the leader epoch checkpoint
	// can be trusted.
	trustedEpochs int64

	// segs are the open segments; on error they are closed.
	segs []*segment
	// scanFrom is the first segment recovered by a full scan; those below
	// only get their indexes checked.
	scanFrom int
	// tailUnknown marks segments below scanFrom whose end damage hides.
	tailUnknown []bool
	// scanned marks segments recovered by a full scan: they are fsynced
	// before the recovery point moves past them.
	scanned []bool
	// start is the reconciled log start offset.
	start int64
	// txns are the transactions open at the log end.
	txns *txnState
	// txnIndexes are the .txnindex files read while deferring the load of
	// sealed segments, for loadTransactions not to read them again.
	txnIndexes map[*segment]txnIndex
	// keepRP: the recovery point stays where it was (keepRecoveryPoint).
	keepRP bool
}

// keepRecoveryPointBytes bounds what a recovery may leave unsynced behind
// the recovery point it keeps (keepRecoveryPoint).
const keepRecoveryPointBytes = scanChunk

// keepRecoveryPoint reports a recovery after a crash that scanned only the
// active segment, and a small one. Moving the recovery point past what was
// scanned would first cost an fsync of the segment, the leader epoch
// checkpoint's and a new checkpoint file; left where it was, a crash makes
// the next open scan the same few bytes again, which costs less. With
// thousands of small partitions this is most of a restart after kill -9.
// The first flush moves it as usual.
func (ld *loader) keepRecoveryPoint() bool {
	n := len(ld.segs)
	return !ld.clean && ld.scanFrom == n-1 && ld.scanned[n-1] && ld.segs[n-1].size.Load() <= keepRecoveryPointBytes
}

func (ld *loader) closeSegments() {
	for _, s := range ld.segs {
		s.closeFile()
	}
}

// readDir lists the partition directory.
func (ld *loader) readDir() ([]os.DirEntry, error) {
	entries, err := os.ReadDir(ld.l.dir)
	if err != nil {
		return nil, fmt.Errorf("log: open %s: %w", ld.l.dir, err)
	}
	return entries, nil
}

// completeSwaps finishes the compaction swaps a crash interrupted, so that
// the segments listed afterwards are either all old or all new, and returns
// the directory as it is then.
func (ld *loader) completeSwaps() ([]os.DirEntry, error) {
	entries, err := ld.readDir()
	if err != nil {
		return nil, err
	}
	changed, err := ld.l.finishCleaning(entries)
	if err != nil {
		return nil, err
	}
	if changed {
		return ld.readDir()
	}
	return entries, nil
}

// collectSegmentFiles finds the segments in entries. Temporary files of
// atomic writes that a crash cut short are removed (the file they were
// replacing is intact), and so are index files whose segment is gone (a
// crash in the middle of deleting it); files this package does not know are
// left alone.
func (ld *loader) collectSegmentFiles(entries []os.DirEntry) error {
	l := ld.l
	hasLog := map[int64]bool{}
	var derived []string
	for _, e := range entries {
		name := e.Name()
		switch name {
		case recoveryPointFile, logStartFile, cleanShutdownFile, brokerMetaFile, leaderEpochFile, cleanerOffsetFile:
			continue
		}
		if stem, ok := strings.CutSuffix(name, tmpSuffix); ok && e.Type().IsRegular() && ownFile(stem) {
			if err := os.Remove(filepath.Join(l.dir, name)); err != nil {
				return fmt.Errorf("log: open: %w", err)
			}
			l.logger.Warn("log: removed leftover temporary file", "dir", l.dir, "file", name)
			continue
		}
		if _, ok := parseSnapshotName(name); ok {
			continue // not a segment's; Open weeds them out
		}
		base, suffix, ok := parseSegmentName(name)
		if !ok || !e.Type().IsRegular() {
			l.logger.Warn("log: ignoring unknown file in partition directory", "dir", l.dir, "file", name)
			continue
		}
		if suffix == logSuffix {
			ld.bases = append(ld.bases, base)
			hasLog[base] = true
		} else {
			derived = append(derived, name)
		}
	}
	slices.Sort(ld.bases)
	for _, name := range derived {
		if base, _, _ := parseSegmentName(name); !hasLog[base] {
			if err := os.Remove(filepath.Join(l.dir, name)); err != nil {
				return fmt.Errorf("log: open: %w", err)
			}
			l.logger.Warn("log: removed index file without a segment", "dir", l.dir, "file", name)
		}
	}
	return nil
}

// readCheckpoints reads the recovery point, the log start and the clean
// shutdown marker. An unreadable checkpoint is not fatal: it only makes
// recovery scan more.
func (ld *loader) readCheckpoints() {
	l := ld.l
	ld.rp, ld.rpErr = readCheckpoint(l.dir, recoveryPointFile)
	if ld.rpErr != nil && !errors.Is(ld.rpErr, fs.ErrNotExist) {
		l.logger.Warn("log: unreadable recovery point checkpoint; scanning every segment", "dir", l.dir, "err", ld.rpErr)
	}
	ld.ls, ld.lsErr = readCheckpoint(l.dir, logStartFile)
	if ld.lsErr != nil && !errors.Is(ld.lsErr, fs.ErrNotExist) {
		l.logger.Warn("log: unreadable log start checkpoint; starting at the first segment", "dir", l.dir, "err", ld.lsErr)
	}
	_, cleanErr := os.Stat(filepath.Join(l.dir, cleanShutdownFile))
	ld.clean = cleanErr == nil && ld.rpErr == nil
	// Leader epochs are checkpointed before the recovery point moves, and at a
	// clean shutdown; past that they are read back from the batches.
	switch {
	case ld.clean:
		ld.trustedEpochs = math.MaxInt64
	case ld.rpErr == nil:
		ld.trustedEpochs = ld.rp
	}
}

// openSegments opens every segment found. A directory without segments
// gets one at the checkpointed log start, so offsets never go back.
func (ld *loader) openSegments() error {
	l := ld.l
	for _, b := range ld.bases {
		s, err := openSegment(l.dir, b, l.files, ld.now)
		if err != nil {
			return err
		}
		ld.segs = append(ld.segs, s)
	}
	if len(ld.segs) > 0 {
		return nil
	}
	base := int64(0)
	if ld.lsErr == nil {
		base = ld.ls
	}
	s, err := createSegment(l.dir, base, l.files, ld.now)
	if err != nil {
		return err
	}
	ld.segs = append(ld.segs, s)
	return nil
}

// loadBelowRecoveryPoint loads the segments that need no scan: all of them
// after a clean shutdown, else those below the one holding the recovery
// point. Their indexes are checked against the log and rebuilt if they do
// not match.
func (ld *loader) loadBelowRecoveryPoint() error {
	segs := ld.segs
	ld.scanFrom = len(segs)
	if !ld.clean {
		ld.scanFrom = 0
		for i, s := range segs {
			if ld.rpErr == nil && s.base <= ld.rp {
				ld.scanFrom = i
			}
		}
	}
	ld.tailUnknown = make([]bool, len(segs))
	for i := 0; i < ld.scanFrom; i++ {
		// Offsets of a segment stay below the next segment's base, and
		// relative offsets fit in 31 bits.
		limit := segs[i].base + math.MaxInt32 + 1
		if i+1 < len(segs) {
			limit = min(limit, segs[i+1].base)
		}
		if ld.clean && i < len(segs)-1 && ld.deferIndexes(segs[i], limit, segs[i+1].base) {
			continue
		}
		ok, err := ld.l.loadSegment(segs[i], limit)
		if err != nil {
			return err
		}
		if !ok {
			if i == len(segs)-1 {
				ld.scanFrom = i // the active segment's end must be known: recover it
			} else {
				ld.tailUnknown[i] = true
			}
		}
	}
	return nil
}

// deferIndexes makes a sealed segment of a cleanly shut down log lazy: its
// indexes are loaded on first use (segment.ensureIndexes), as loadSegment
// would load them now. What the open needs of it, where it ends, comes
// from its .txnindex, which sealing wrote with the index files; without a
// sound one the segment is loaded now.
func (ld *loader) deferIndexes(s *segment, limit, nextBase int64) bool {
	x, err := readTxnIndex(s)
	if err != nil || x.next <= s.base || x.next > limit || s.size.Load() == 0 {
		return false
	}
	if ld.txnIndexes == nil {
		ld.txnIndexes = map[*segment]txnIndex{}
	}
	ld.txnIndexes[s] = x
	s.next.Store(x.next)
	s.writtenVersion = s.idxVersion // the index files are the segment's
	l := ld.l
	s.load = func() {
		defer s.lazy.Store(false)
		ok, err := l.loadSegment(s, limit)
		if err != nil {
			s.loadErr = fmt.Errorf("log: load indexes of %s: %w", s.name(), err)
			s.sealMu.Lock()
			removed := s.removed
			s.sealMu.Unlock()
			// Deleted, replaced or closed meanwhile (retention,
			// compaction, Recover, Close): nothing needs it, and its file
			// may have been closed under the load.
			if !removed && !errors.Is(err, errSegmentGone) {
				l.fail(s.loadErr)
			}
			return
		}
		if !ok {
			// As linkSegments does for a segment loaded at open.
			s.next.Store(nextBase)
		}
		s.syncedNext.Store(s.next.Load()) // durable as the clean shutdown left it
		// Rebuilt indexes end with the max timestamp and replace the
		// files that did not check out, as makeDurable would have at
		// open. The load is the segment's only writer.
		s.sealTimeIndex()
		s.sealMu.Lock()
		wrote, err := false, error(nil)
		if !s.removed {
			wrote, err = s.writeIndexes()
		}
		s.sealMu.Unlock()
		if err == nil && wrote {
			err = syncDir(l.dir)
		}
		if err != nil {
			l.logger.Warn("log: cannot write a sealed segment's rebuilt indexes; the next start rebuilds them again", "dir", l.dir, "segment", s.name(), "err", err)
		}
	}
	s.lazy.Store(true)
	return true
}

// recoverFromRecoveryPoint scans the segments from scanFrom on, verifying
// every batch and rebuilding their indexes. At the first damaged batch the
// segment is truncated and every later segment deleted: none of it was
// acknowledged as durable.
func (ld *loader) recoverFromRecoveryPoint() error {
	l := ld.l
	ld.scanned = make([]bool, len(ld.segs))
	for i := ld.scanFrom; i < len(ld.segs); i++ {
		s := ld.segs[i]
		ld.scanned[i] = true
		dmg, err := l.scanSegment(s)
		if err != nil {
			return err
		}
		if dmg == nil {
			continue
		}
		if err := l.cutTail(s, dmg); err != nil {
			return err
		}
		for _, r := range ld.segs[i+1:] {
			l.logger.Warn("log recovery: removing segment after the truncation point", "dir", l.dir, "segment", r.name(), "bytes", r.size.Load())
			if err := r.removeFiles(); err != nil {
				return err
			}
		}
		ld.segs = ld.segs[:i+1]
		return nil
	}
	return nil
}

// linkSegments ends each segment whose end damage hid where the next one
// begins, and warns of gaps between segments.
func (ld *loader) linkSegments() {
	l, segs := ld.l, ld.segs
	for i, s := range segs[:len(segs)-1] {
		if ld.tailUnknown[i] {
			s.next.Store(segs[i+1].base)
		}
		if next, b := s.next.Load(), segs[i+1].base; next != b {
			l.logger.Warn("log: segments are not contiguous", "dir", l.dir, "segment", s.name(), "next_offset", next, "next_segment", segs[i+1].name())
		}
	}
}

// makeDurable fsyncs what recovery changed and seals every segment but the
// active one, writing its indexes, so that the recovery point can move to
// the log end.
func (ld *loader) makeDurable() error {
	segs := ld.segs
	for i, s := range segs {
		if ld.keepRP && i == len(segs)-1 {
			// Durable only as far as the recovery point kept says (the
			// next flush fsyncs the rest).
			durable := s.base
			if ld.rpErr == nil {
				durable = min(max(ld.rp, s.base), s.next.Load())
			}
			s.syncedNext.Store(durable)
			break
		}
		// An empty file holds nothing to make durable; a truncation to
		// empty was fsynced by cutTail.
		if ld.scanned[i] && s.size.Load() > 0 {
			if err := syncSegment(s); err != nil {
				return fmt.Errorf("log: open: %w", err)
			}
		}
		s.syncedNext.Store(s.next.Load())
		if i == len(segs)-1 {
			break
		}
		if s.lazy.Load() {
			// Sealed and durable as the clean shutdown left it.
			s.sealed.Store(true)
			s.durable.Store(true)
			continue
		}
		s.sealTimeIndex()
		s.sealed.Store(true)
		s.sealMu.Lock()
		_, err := s.writeIndexes()
		s.sealMu.Unlock()
		if err != nil {
			return err
		}
		s.durable.Store(true)
	}
	return nil
}

// reconcileLogStart settles the log start offset against the recovered
// segments: a log start past the log end (the tail it pointed into was lost)
// starts an empty log there, and segments wholly below the log start are
// deleted, finishing a DeleteSegmentsBelow that a crash interrupted.
func (ld *loader) reconcileLogStart() error {
	l := ld.l
	start := ld.segs[0].base
	if ld.lsErr == nil && ld.ls > start {
		start = ld.ls
	}
	ld.start = start
	if end := ld.segs[len(ld.segs)-1].next.Load(); start > end {
		l.logger.Warn("log recovery: log start offset is beyond the recovered log end; starting an empty log at the log start",
			"dir", l.dir, "log_start", start, "log_end", end)
		for _, s := range ld.segs {
			if err := s.removeFiles(); err != nil {
				return err
			}
		}
		ld.segs = nil
		s, err := createSegment(l.dir, start, l.files, ld.now)
		if err != nil {
			return err
		}
		ld.segs = append(ld.segs, s)
	}
	for len(ld.segs) > 1 && ld.segs[0].next.Load() <= start {
		l.logger.Info("log: deleting segment below the log start offset", "dir", l.dir, "segment", ld.segs[0].name(), "log_start", start)
		if err := ld.segs[0].removeFiles(); err != nil {
			return err
		}
		ld.segs = ld.segs[1:]
	}
	return nil
}

// removeCleanMarker removes the clean shutdown marker before anything else
// is written, so that a crash from here on is recovered rather than
// trusted. With a SyncBatch the removal is made durable by the batch: it
// only matters once the log is written to, which waits for the batch.
func (ld *loader) removeCleanMarker() error {
	if err := os.Remove(filepath.Join(ld.l.dir, cleanShutdownFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("log: open: %w", err)
	}
	return nil
}

// writeCheckpoints records the recovered state: the recovery point moves to
// the log end and the log start is rewritten if recovery changed it; a
// checkpoint that already says so (a clean shutdown) is left alone. It runs
// after install, which made the leader epoch checkpoint durable: the next
// open trusts that checkpoint below the recovery point.
//
// With a SyncBatch the fsyncs wait for the batch: what they would order is
// already durable (makeDurable, install) or recovered either way (a lost
// checkpoint is old or torn, and recovery scans more).
func (ld *loader) writeCheckpoints() error {
	l := ld.l
	leo := ld.activeSegment().next.Load()
	// Whether the batch takes this directory's fsyncs; it may not even
	// with a batch (see SyncBatch.deferDir).
	deferred := l.openSync.deferDir(l.dir)
	if ld.created() {
		// Without checkpoints the log starts at 0 and recovery scans it
		// all, which is what they would say; the first flush or log start
		// change writes them. Each file created costs more than the rest
		// of opening an empty log. The new segment's directory entry is
		// synced with the batch, or else before the first flush.
		if !deferred {
			l.dirDirty = true
		}
		return nil
	}
	sync := !deferred
	if !ld.keepRP && (ld.rpErr != nil || ld.rp != leo) {
		if err := writeFileRenamed(l.dir, recoveryPointFile, encodeCheckpoint(leo), sync); err != nil {
			return err
		}
		if l.crashed("open-after-recovery-point") {
			return errCrashed
		}
	}
	// Without the file the log starts at its first segment, as it does
	// now; writing that down would cost every recovered log a new file.
	missing := errors.Is(ld.lsErr, fs.ErrNotExist) && ld.start == ld.segs[0].base
	if !missing && (ld.lsErr != nil || ld.ls != ld.start) {
		if err := writeFileRenamed(l.dir, logStartFile, encodeCheckpoint(ld.start), sync); err != nil {
			return err
		}
	}
	// The directory sync also makes durable what recovery removed or
	// created in it.
	if deferred {
		return nil
	}
	return syncDir(l.dir)
}

// install hands the recovered segments to the log and loads the leader
// epochs, trusting their checkpoint only as far as recovery allows; a
// checkpoint that changed is written durably, never left to a SyncBatch.
func (ld *loader) install() error {
	l := ld.l
	a := ld.activeSegment()
	if err := a.pin(); err != nil {
		return err
	}
	a.created = ld.now
	leo := a.next.Load()
	// Readers may be looking already: Recover loads a log in use.
	l.segMu.Lock()
	l.segs = ld.segs
	l.leo.Store(leo)
	l.logStart.Store(ld.start)
	l.segMu.Unlock()
	l.txns = ld.txns
	l.publishTxnsLocked(ld.txns, -1)
	l.ckRP = leo
	if ld.keepRP {
		// What the checkpoint file says (-1: none), for the first flush
		// to move it.
		l.ckRP = -1
		if ld.rpErr == nil {
			l.ckRP = ld.rp
		}
	}
	return l.loadEpochs(ld.trustedEpochs, ld.keepRP)
}

func (ld *loader) activeSegment() *segment { return ld.segs[len(ld.segs)-1] }

// created reports a log created by this load: a directory with no segment
// and no checkpoint, which now holds one empty segment at 0.
func (ld *loader) created() bool {
	return len(ld.bases) == 0 && errors.Is(ld.rpErr, fs.ErrNotExist) && errors.Is(ld.lsErr, fs.ErrNotExist) &&
		len(ld.segs) == 1 && ld.segs[0].base == 0 && ld.start == 0
}

// ownFile reports whether name is a file this package writes atomically.
func ownFile(name string) bool {
	switch name {
	case recoveryPointFile, logStartFile, cleanShutdownFile, leaderEpochFile, cleanerOffsetFile:
		return true
	}
	if _, ok := parseSnapshotName(name); ok {
		return true
	}
	_, _, ok := parseSegmentName(name)
	return ok
}

// loadSegment loads a segment that is not scanned: its index files if they
// check out against the log, else indexes rebuilt from the log's batch
// headers. It reports false if damage hides where the segment ends.
func (l *Log) loadSegment(s *segment, limit int64) (bool, error) {
	f, err := s.acquire()
	if err != nil {
		return false, err
	}
	defer s.release()
	sc := newScanner(f, s.size.Load(), scanChunk)
	ok, problem, err := l.loadIndexes(s, sc)
	if err != nil || problem == nil {
		return ok, err
	}
	if s.size.Load() > 0 || !errors.Is(problem, fs.ErrNotExist) {
		l.logger.Warn("log: rebuilding segment index", "dir", l.dir, "segment", s.name(), "reason", problem)
	}
	return l.rebuildIndexes(s, sc, limit)
}

// loadIndexes installs s's index files if they match the log: checksums,
// ordering, entries spot-checked against the batches they point to, and a
// walk from the last entry to the end of the log (which also yields the
// segment's next offset and max timestamp). problem says why they do not
// match. A damaged batch in the log is not the index's fault: the index is
// kept, and if the damage is in the tail, ok is false (the segment's end is
// unknown). err is an I/O error on the log.
func (l *Log) loadIndexes(s *segment, sc *scanner) (ok bool, problem, err error) {
	off, tim, problem := s.readIndexFiles()
	if problem != nil {
		return false, problem, nil
	}
	if problem := checkOffsetIndex(off, sc.size); problem != nil {
		return false, problem, nil
	}
	if sc.size > 0 && len(tim) == 0 {
		return false, errors.New("time index is empty"), nil
	}
	for _, i := range spotChecks(len(off)) {
		e := off[i]
		want := s.base + int64(e.rel)
		h, err := sc.header(int64(e.pos))
		if err == nil && h.BaseOffset != want {
			return false, fmt.Errorf("offset index entry %d says offset %d at byte %d, the log has %d", i, want, e.pos, h.BaseOffset), nil
		}
		if err != nil && !isDamage(err) {
			return false, nil, err
		}
		if err != nil && i > 0 {
			// No sound batch there: a damaged batch, or an entry that is not
			// at a batch at all. Walk from the previous entry to tell: the
			// walk must stop exactly there, expecting that offset.
			prev := off[i-1]
			_, _, dmg, err := sc.walk(int64(prev.pos), s.base+int64(prev.rel), false, nil)
			if err != nil {
				return false, nil, err
			}
			if dmg == nil || dmg.pos > int64(e.pos) || (dmg.pos == int64(e.pos) && dmg.offset != want) {
				return false, fmt.Errorf("offset index entry %d (offset %d at byte %d) is not at a batch", i, want, e.pos), nil
			}
			// The batch there is damaged (or damage before it hides it): the
			// entry is not at fault; reads report the damage.
		}
	}
	lastOff, lastPos := s.base, int64(0)
	if n := len(off); n > 0 {
		lastOff, lastPos = s.base+int64(off[n-1].rel), int64(off[n-1].pos)
	}
	maxTS, maxOff := int64(noTimestamp), s.base
	if n := len(tim); n > 0 {
		maxTS, maxOff = tim[n-1].ts, s.base+int64(tim[n-1].rel)
	}
	// CRCs are checked on the tail: a damaged header there must not decide
	// where the segment ends.
	_, next, dmg, err := sc.walk(lastPos, lastOff, true, func(_ int64, h *record.Header) {
		if h.MaxTimestamp > maxTS {
			maxTS, maxOff = h.MaxTimestamp, h.LastOffset()
		}
	})
	if err != nil {
		return false, nil, err
	}
	limit := next
	if dmg != nil {
		l.logger.Warn("log: damaged batch in segment; reads of its offsets will fail",
			"dir", l.dir, "segment", s.name(), "position", dmg.pos, "offset", dmg.offset, "err", dmg.err)
		limit = math.MaxInt64
	}
	if problem := checkTimeIndex(tim, s.base, limit); problem != nil {
		return false, problem, nil
	}
	s.idxMu.Lock()
	s.offIdx, s.timeIdx = off, tim
	s.idxVersion++
	s.writtenVersion = s.idxVersion
	s.idxMu.Unlock()
	if dmg == nil || !s.lazy.Load() {
		// A lazy segment read meanwhile keeps the end its .txnindex gave
		// until the load settles it: never an end short of records.
		s.next.Store(next)
	}
	s.maxTS.Store(maxTS)
	s.offsetOfMaxTS = maxOff
	s.bytesSinceIndex = sc.size - lastPos
	return dmg == nil, nil, nil
}

// spotChecks picks the offset-index entries checked against the log at
// Open: first, middle and last.
func spotChecks(n int) []int {
	switch n {
	case 0:
		return nil
	case 1:
		return []int{0}
	case 2:
		return []int{0, 1}
	}
	return []int{0, n / 2, n - 1}
}

// rebuildIndexes rebuilds s's indexes from its batches. Damage is
// skipped when the damaged batch's length leads to a sound batch below
// limit; otherwise indexing stops there and it reports false (the segment's
// end is unknown).
func (l *Log) rebuildIndexes(s *segment, sc *scanner, limit int64) (bool, error) {
	interval := int64(l.cfg.Load().IndexIntervalBytes)
	s.resetIndexes()
	pos, expected := int64(0), s.base
	for {
		// The walk reads every byte anyway; checking CRCs costs only CPU and
		// keeps a damaged header from misplacing the rest of the index.
		_, next, dmg, err := sc.walk(pos, expected, true, func(p int64, h *record.Header) {
			s.indexBatch(p, h, interval)
		})
		if err != nil {
			return false, err
		}
		if dmg == nil {
			s.next.Store(next)
			return true, nil
		}
		q, resume, found, _ := sc.pastDamage(dmg.pos, dmg.offset, limit)
		if !found {
			l.logger.Warn("log: damaged batch in segment; the rest of the segment cannot be indexed or read",
				"dir", l.dir, "segment", s.name(), "position", dmg.pos, "offset", dmg.offset, "bytes", sc.size-dmg.pos, "err", dmg.err)
			if !s.lazy.Load() { // as in loadIndexes
				s.next.Store(dmg.offset)
			}
			return false, nil
		}
		l.logger.Warn("log: damaged batch in segment; indexing past it",
			"dir", l.dir, "segment", s.name(), "position", dmg.pos, "offset", dmg.offset, "resume_offset", resume, "err", dmg.err)
		pos, expected = q, resume
		s.bytesSinceIndex = interval // index the first batch after the damage
	}
}

// scanSegment verifies every batch of s (header, CRC, offset continuity),
// rebuilding its indexes on the way, and returns the first damage.
func (l *Log) scanSegment(s *segment) (*damage, error) {
	interval := int64(l.cfg.Load().IndexIntervalBytes)
	s.resetIndexes()
	f, err := s.acquire()
	if err != nil {
		return nil, err
	}
	defer s.release()
	sc := newScanner(f, s.size.Load(), scanChunk)
	_, next, dmg, err := sc.walk(0, s.base, true, func(p int64, h *record.Header) {
		s.indexBatch(p, h, interval)
	})
	if err != nil {
		return nil, fmt.Errorf("log: recover %s: %w", s.name(), err)
	}
	s.next.Store(next)
	return dmg, nil
}

// cutTail truncates s at a damaged batch found by recovery.
func (l *Log) cutTail(s *segment, dmg *damage) error {
	size := s.size.Load()
	cause := "corrupt batch"
	if dmg.torn() {
		cause = "torn write"
	}
	l.logger.Warn("log recovery: truncating segment at the first bad batch",
		"dir", l.dir, "segment", s.name(), "position", dmg.pos, "bytes", size-dmg.pos, "offset", dmg.offset, "cause", cause, "err", dmg.err)
	f, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.release()
	if err := f.Truncate(dmg.pos); err != nil {
		return fmt.Errorf("log: recover %s: %w", s.name(), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("log: recover %s: %w", s.name(), err)
	}
	s.size.Store(dmg.pos)
	return nil
}

// syncSegment fsyncs s's file, opening it if it was closed.
func syncSegment(s *segment) error {
	f, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.release()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", s.name(), err)
	}
	return nil
}
