package partlog

import (
	"errors"
	"fmt"
	"math"

	"github.com/strata-broker/strata/record"
)

// AppendResult describes what an Append wrote.
type AppendResult struct {
	FirstOffset  int64 // base offset of the first batch
	LastOffset   int64 // last offset of the last batch
	MaxTimestamp int64 // largest batch max timestamp
	Records      int
	Batches      int
}

// Append validates every batch in batches (one or more concatenated v2
// batches: header, CRC-32C, size at most MaxMessageBytes), then stamps base
// offsets (dense, from LogEndOffset) and leaderEpoch into the caller's buffer
// and writes the batches to the active segment, all of them in one segment.
//
// Validation is all or nothing: if any batch is invalid nothing is written,
// and the error names the batch and the reason: a *RecordTooLargeError, or a
// wrapped *record.CorruptError (a truncated batch also matches
// record.ErrShortBuffer). After a failed write or fsync the log refuses all
// further appends (ErrLogFailed). See Config for when data is fsynced.
func (l *Log) Append(batches []byte, leaderEpoch int32) (AppendResult, error) {
	return l.appendLeader(batches, leaderEpoch, true)
}

// AppendChecked is Append for batches whose CRCs the caller checked
// (record.Validate) and has not changed since: a producer's batches are
// checked before the broker decides to append them, and a CRC-32C is a pass
// over every byte. Everything else Append checks is checked.
func (l *Log) AppendChecked(batches []byte, leaderEpoch int32) (AppendResult, error) {
	return l.appendLeader(batches, leaderEpoch, false)
}

func (l *Log) appendLeader(batches []byte, leaderEpoch int32, checkCRC bool) (AppendResult, error) {
	cfg := l.cfg.Load()
	res, offsets, err := validate(batches, cfg.MaxMessageBytes, checkCRC)
	if err != nil {
		return AppendResult{}, err
	}
	return l.write(batches, res, offsets, leaderEpoch, false)
}

// AppendReplicated appends batches copied from the partition's leader as they
// are: their base offsets must continue the log exactly (the first at
// LogEndOffset, each next where the previous ends) and their leader epochs are
// kept, extending the epoch cache. CRCs are checked; max.message.bytes is not,
// since the leader accepted the batches.
func (l *Log) AppendReplicated(batches []byte) (AppendResult, error) {
	res, offsets, err := validate(batches, math.MaxInt, true)
	if err != nil {
		return AppendResult{}, err
	}
	return l.write(batches, res, offsets, 0, true)
}

// write appends validated batches. A leader's batches are stamped with dense
// offsets and its epoch; a follower's keep theirs, which must be dense from
// the log end.
func (l *Log) write(batches []byte, res AppendResult, offsets int64, leaderEpoch int32, replicated bool) (AppendResult, error) {
	cfg := l.cfg.Load()

	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writable(); err != nil {
		return AppendResult{}, err
	}
	now := l.now()
	a := l.active()
	if l.shouldRoll(a, cfg, int64(len(batches)), offsets) {
		if err := l.rollLocked(); err != nil {
			return AppendResult{}, l.fail(fmt.Errorf("log: roll: %w", err))
		}
		a = l.active()
	}
	pos0 := a.size.Load()
	if pos0+int64(len(batches)) > math.MaxUint32 {
		return AppendResult{}, fmt.Errorf("log: append: %d bytes do not fit in a segment", len(batches))
	}
	if pos0 == 0 {
		// Age a segment from its first batch, not from an idle wait.
		a.created = now
	}

	first := l.leo.Load()
	next := first
	if replicated {
		for pos := 0; pos < len(batches); {
			h, _ := record.ParseHeader(batches[pos:]) // validated above
			if h.BaseOffset != next {
				return AppendResult{}, fmt.Errorf("log: replicated batch %d has base offset %d, expected %d: %w",
					pos, h.BaseOffset, next, ErrOffsetMismatch)
			}
			l.assignEpochLocked(h.PartitionLeaderEpoch, next)
			next += int64(h.LastOffsetDelta) + 1
			pos += h.Size()
		}
	} else {
		l.assignEpochLocked(leaderEpoch, first)
		for pos := 0; pos < len(batches); {
			b := batches[pos:]
			h, _ := record.ParseHeader(b) // validated above
			record.SetBaseOffset(b, next)
			record.SetPartitionLeaderEpoch(b, leaderEpoch)
			next += int64(h.LastOffsetDelta) + 1
			pos += h.Size()
		}
	}
	if _, err := a.f.WriteAt(batches, pos0); err != nil {
		return AppendResult{}, l.fail(fmt.Errorf("log: append to %s: %w", a.name(), err))
	}
	interval := int64(cfg.IndexIntervalBytes)
	transactional := false
	for pos := 0; pos < len(batches); {
		h, _ := record.ParseHeader(batches[pos:])
		a.indexBatch(pos0+int64(pos), &h, interval)
		transactional = transactional || h.Transactional()
		pos += h.Size()
	}
	// Only transactional batches (data and markers) change the open
	// transactions: most appends hold none and skip another header walk.
	if transactional {
		l.trackTxnsLocked(a, batches)
	}
	// Publish: size before next before the log end offset, so a reader that
	// sees an offset also sees its bytes.
	a.size.Store(pos0 + int64(len(batches)))
	a.next.Store(next)
	l.leo.Store(next)

	res.FirstOffset, res.LastOffset = first, next-1
	l.unflushed += int64(res.Records)
	if cfg.FlushMessages > 0 && l.unflushed >= cfg.FlushMessages {
		if err := l.syncLocked(); err != nil {
			return AppendResult{}, err
		}
	}
	return res, nil
}

// validate checks every batch of an Append (their CRCs with checkCRC) and
// returns what they hold and how many offsets they take.
func validate(batches []byte, maxBytes int, checkCRC bool) (AppendResult, int64, error) {
	res := AppendResult{MaxTimestamp: -1}
	if len(batches) == 0 {
		return res, 0, fmt.Errorf("log: append: %w", corruptf("no record batches"))
	}
	var offsets int64
	for pos := 0; pos < len(batches); {
		h, err := record.ParseHeader(batches[pos:])
		if err == nil && h.Size() > maxBytes {
			return res, 0, &RecordTooLargeError{Batch: res.Batches, Size: h.Size(), Max: maxBytes}
		}
		switch {
		case err != nil:
		case checkCRC:
			h, err = record.Validate(batches[pos:])
		default:
			h, err = record.ValidateFraming(batches[pos:])
		}
		if err != nil {
			if errors.Is(err, record.ErrShortBuffer) {
				err = fmt.Errorf("%w: %w", corruptf("batch ends after %d of its bytes", len(batches)-pos), err)
			}
			return res, 0, fmt.Errorf("log: append: batch %d at byte %d: %w", res.Batches, pos, err)
		}
		res.Batches++
		res.Records += int(h.RecordCount)
		res.MaxTimestamp = max(res.MaxTimestamp, h.MaxTimestamp)
		offsets += int64(h.LastOffsetDelta) + 1
		pos += h.Size()
	}
	return res, offsets, nil
}

// shouldRoll reports whether an append of n bytes taking offsets offsets
// must go to a new segment. An empty segment is never rolled. mu must be held.
func (l *Log) shouldRoll(a *segment, cfg *Config, n, offsets int64) bool {
	size := a.size.Load()
	if size == 0 {
		return false
	}
	switch {
	case size+n > cfg.SegmentBytes:
		return true
	case l.now().Sub(a.created) > cfg.SegmentMs:
		return true
	case l.leo.Load()+offsets-1-a.base > math.MaxInt32:
		// Relative offsets in the indexes are 32-bit (signed, as in Kafka).
		return true
	}
	return false
}

// rollLocked seals the active segment and starts a new one at the log end
// offset. The sealed segment is fsynced and its index files written by the
// sealer goroutine, so the producer that triggered the roll does not wait
// for a whole segment's fsync; a flush (by Flush, by flush.messages or
// Close) waits for it. mu must be held.
func (l *Log) rollLocked() error {
	old := l.active()
	s, err := createSegment(l.dir, l.leo.Load(), l.files, l.now())
	if err != nil {
		return err
	}
	old.sealTimeIndex()
	old.txnEnd = l.txns.snapshot()
	s.txnStart = old.txnEnd
	old.sealed.Store(true)
	l.segMu.Lock()
	l.segs = append(l.segs, s)
	l.segMu.Unlock()
	// Nothing appends to it any more: its file may be closed when unused,
	// even before the sealer has fsynced it, so that a producer rolling
	// faster than the disk syncs does not hold a file per segment.
	old.unpin()
	l.dirDirty = true
	l.logger.Debug("log: rolled segment", "dir", l.dir, "sealed", old.name(), "size", old.size.Load(), "new", s.name())
	select {
	case l.sealKick <- struct{}{}:
	default:
	}
	return nil
}

// Roll seals the active segment, if it holds any batch, and starts a new
// one: the cleaner rolls an idle active segment of a compacted topic once
// max.compaction.lag.ms has passed, since the active segment is never
// compacted and a topic nobody writes to would otherwise never roll.
func (l *Log) Roll() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writable(); err != nil {
		return err
	}
	if l.active().size.Load() == 0 {
		return nil
	}
	if err := l.rollLocked(); err != nil {
		return l.fail(fmt.Errorf("log: roll: %w", err))
	}
	return nil
}

// Flush makes everything appended so far durable: it fsyncs the segments,
// writes the active segment's index files and advances the recovery point
// checkpoint to the log end offset.
func (l *Log) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writable(); err != nil {
		return err
	}
	return l.flushLocked()
}

// MaybeFlush flushes if FlushInterval is set, has passed since the last
// flush, and there is data that is not yet fsynced. The owner calls it
// periodically.
func (l *Log) MaybeFlush() error {
	interval := l.cfg.Load().FlushInterval
	if interval <= 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writable(); err != nil {
		return err
	}
	if l.now().Sub(l.lastFlush) < interval || l.RecoveryPoint() >= l.leo.Load() {
		return nil
	}
	return l.flushLocked()
}

// flushLocked is Flush with mu held: sync, index files, checkpoint.
func (l *Log) flushLocked() error {
	if err := l.syncLocked(); err != nil {
		return err
	}
	a := l.active()
	a.sealMu.Lock()
	wrote, err := a.writeIndexes()
	a.sealMu.Unlock()
	if err == nil && wrote {
		err = syncDir(l.dir)
	}
	if err != nil {
		return l.fail(err)
	}
	l.ckMu.Lock()
	defer l.ckMu.Unlock()
	return l.checkpointRecoveryPointLocked(l.RecoveryPoint(), false)
}

// flushDataTo is flushLocked for a closing log with a SyncBatch: the
// active segment's data, its index files and the leader epoch checkpoint
// are written with their fsyncs left to batch, and the recovery point the
// checkpoint is to say is returned (-1: unchanged) for Closing.Checkpoint
// to write once batch has synced them. Sealed segments the sealer has not
// finished are sealed at once, as ever. mu must be held; nothing is
// appended after it.
func (l *Log) flushDataTo(batch *SyncBatch) (int64, error) {
	if !batch.deferDir(l.dir) {
		return -1, l.flushLocked()
	}
	if err := l.sealPendingLocked(); err != nil {
		return -1, err
	}
	a := l.active()
	// Synced by the batch before the checkpoint says so.
	a.syncedNext.Store(a.next.Load())
	l.dirDirty = false
	l.unflushed = 0
	a.sealMu.Lock()
	_, err := a.writeIndexesSynced(false)
	a.sealMu.Unlock()
	if err != nil {
		return -1, l.fail(err)
	}
	l.ckMu.Lock()
	defer l.ckMu.Unlock()
	if err := l.persistEpochsTo(batch); err != nil {
		return -1, err
	}
	if rp := l.recoveryPointLocked(); rp > l.ckRP {
		return rp, nil
	}
	return -1, nil
}

// sealPendingLocked seals the sealed segments the sealer has not finished
// yet. Durable segments form a prefix of the sealed ones; the rest are
// sealed in order. mu must be held.
func (l *Log) sealPendingLocked() error {
	i := len(l.segs) - 1
	for i > 0 && !l.segs[i-1].durable.Load() {
		i--
	}
	for _, s := range l.segs[i : len(l.segs)-1] {
		if err := l.seal(s); err != nil {
			return err
		}
	}
	return nil
}

// syncLocked fsyncs everything appended so far: sealed segments the sealer
// has not finished yet, then the active segment. mu must be held.
func (l *Log) syncLocked() error {
	if err := l.sealPendingLocked(); err != nil {
		return err
	}
	a := l.active()
	if next := a.next.Load(); a.syncedNext.Load() < next {
		if err := a.f.Sync(); err != nil {
			return l.fail(fmt.Errorf("log: fsync %s: %w", a.name(), err))
		}
		a.syncedNext.Store(next)
	}
	if l.dirDirty {
		if err := syncDir(l.dir); err != nil {
			return l.fail(err)
		}
		l.dirDirty = false
	}
	l.unflushed = 0
	l.lastFlush = l.now()
	return nil
}

// seal makes a sealed segment durable: fsync, index files, directory. It is
// idempotent and safe to race with the sealer goroutine.
func (l *Log) seal(s *segment) error {
	s.sealMu.Lock()
	defer s.sealMu.Unlock()
	if s.durable.Load() || s.removed || !s.sealed.Load() {
		return nil
	}
	if err := l.failure(); err != nil {
		return err
	}
	if next := s.next.Load(); s.syncedNext.Load() < next {
		// The file may have been closed since the roll and is then opened
		// again: fsync writes back the file's data, whichever descriptor
		// wrote it.
		if err := syncSegment(s); err != nil {
			return l.fail(fmt.Errorf("log: %w", err))
		}
		s.syncedNext.Store(next)
	}
	if _, err := s.writeIndexes(); err != nil {
		return l.fail(err)
	}
	if err := l.writeTxnIndex(s); err != nil {
		return l.fail(err)
	}
	// Makes the index renames and the segment's own directory entry durable.
	if err := syncDir(l.dir); err != nil {
		return l.fail(err)
	}
	s.durable.Store(true)
	return nil
}

// sealLoop is the sealer goroutine: it makes rolled segments durable and
// advances the recovery point checkpoint past them. Close stops it.
func (l *Log) sealLoop() {
	defer close(l.sealDone)
	for {
		select {
		case <-l.sealStop:
			return
		case <-l.sealKick:
		}
		for {
			s := l.nextToSeal()
			if s == nil || l.seal(s) != nil {
				break
			}
			l.ckMu.Lock()
			_ = l.checkpointRecoveryPointLocked(l.RecoveryPoint(), false) // a failure is sticky; Append reports it
			l.ckMu.Unlock()
		}
	}
}

// nextToSeal returns the first sealed segment that is not yet durable.
func (l *Log) nextToSeal() *segment {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if l.failure() != nil || len(l.segs) == 0 {
		return nil
	}
	for _, s := range l.segs[:len(l.segs)-1] {
		if !s.durable.Load() {
			return s
		}
	}
	return nil
}

// recoveryPointLocked computes the offset below which everything is
// fsynced. segMu must be held (shared is enough).
func (l *Log) recoveryPointLocked() int64 {
	for _, s := range l.segs {
		if synced := s.syncedNext.Load(); synced < s.next.Load() {
			return synced
		}
	}
	if len(l.segs) == 0 {
		return l.leo.Load()
	}
	return l.segs[len(l.segs)-1].next.Load()
}

// checkpointRecoveryPointLocked writes the recovery point checkpoint if rp
// moves it forward (or, with lower, backward). ckMu must be held.
func (l *Log) checkpointRecoveryPointLocked(rp int64, lower bool) error {
	if err := l.persistEpochsLocked(); err != nil {
		return err
	}
	if rp == l.ckRP || (rp < l.ckRP && !lower) {
		return nil
	}
	if err := writeCheckpoint(l.dir, recoveryPointFile, rp); err != nil {
		return l.fail(err)
	}
	l.ckRP = rp
	return nil
}
