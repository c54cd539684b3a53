package partlog

import "fmt"

// Recover brings a log that a storage failure took offline back online,
// without closing it: the segment files are closed and the directory is
// loaded again as Open loads it. From the recovery point on every batch is
// checked, and at the first torn or corrupt one (the part of a batch a full
// disk let through, pages a failed fsync lost) the log is cut, so it ends at
// its last valid batch. What was cut was never acknowledged as durable; a
// replica gets it back from its leader.
//
// Nothing is read or written while it runs (reads are refused, appends
// wait). On success the log serves reads
// and writes again; on failure (the disk is still full, say) it stays
// offline with the new failure and Recover may be called again. A log that
// is online is left as it is.
func (l *Log) Recover() error {
	l.swapMu.Lock()
	defer l.swapMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return ErrLogClosed
	}
	failed := l.failure()
	if failed == nil {
		return nil
	}
	l.ckMu.Lock()
	defer l.ckMu.Unlock()
	// segMu only while the list changes: the load scans the log, and
	// whoever lists the segments meanwhile (a metrics scrape) finds none
	// rather than waiting for it.
	l.segMu.Lock()
	for _, s := range l.segs {
		s.sealMu.Lock()
		s.removed = true // OpenSealed no longer hands it out
		s.f.Close()      // its error says nothing more than the failure did
		s.sealMu.Unlock()
	}
	l.segs = nil
	l.segMu.Unlock()
	l.epMu.Lock()
	l.epochs, l.epochsDirty = nil, false
	l.epMu.Unlock()
	l.unflushed, l.dirDirty = 0, false

	if err := l.load(); err != nil {
		// load closed what it opened; the log stays without segments, which
		// every reader and writer checks the failure before looking at.
		l.segMu.Lock()
		l.segs = nil
		l.segMu.Unlock()
		se := &StorageError{Dir: l.dir, Err: fmt.Errorf("log: recover: %w", err)}
		l.errMu.Lock()
		l.err = se
		l.errMu.Unlock()
		return se
	}
	l.errMu.Lock()
	l.err = nil
	l.errMu.Unlock()
	l.lastFlush = l.now()
	l.logger.Info("log: recovered from a storage failure; online again", "dir", l.dir,
		"log_start", l.logStart.Load(), "log_end", l.leo.Load(), "failure", failed)
	return nil
}
