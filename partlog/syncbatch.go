package partlog

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// A SyncBatch lets many logs be opened at once with the fsyncs of their
// opening shared. Opening a log writes a few small files (the checkpoints,
// and for a new log its first segment) and makes each durable with an fsync
// of the file and of its directory: several fsyncs per log, which for
// thousands of empty partitions cost far more than the writes. Logs opened
// with a batch (Options.Sync) write those files without fsyncing them, and
// Sync then makes everything written durable at once, with one syncfs per
// filesystem.
//
// What a crash before Sync may leave is what an fsynced open may leave if
// it crashed half-way, and every Open already recovers that: a checkpoint is
// torn or old (its checksum sends recovery to scan), a new segment file is
// missing or empty. Writes that order durability inside recovery (a
// truncated tail is fsynced before the recovery point moves past it) keep
// their own fsyncs.
//
// The contract: a log opened with a batch must not be appended to, nor its
// contents served as durable, until Sync has returned nil. After a failed
// Sync the logs must be closed and opened again: closing them does not mark
// their clean shutdown, since what their opening wrote may be lost.
//
// syncfs reports the write-back errors of its filesystem that happened
// since the descriptor it is given was opened (Linux 5.8 and later): the
// kernel may write a deferred file back, and fail, long before Sync when
// thousands of logs open. So the batch opens each filesystem when it
// defers the first write to it, and holds it until Sync.
type SyncBatch struct {
	mu   sync.Mutex
	dirs map[string]struct{} // directories holding deferred writes
	fss  map[uint64]*os.File // per filesystem, held from its first deferred write
	// failed is set by a Sync that failed: what it was to sync may be lost
	// for good (the kernel drops the pages it could not write back).
	failed bool
	// synced is set by a Sync that succeeded, if none failed.
	synced atomic.Bool
}

// NewSyncBatch returns an empty batch.
func NewSyncBatch() *SyncBatch {
	return &SyncBatch{dirs: map[string]struct{}{}, fss: map[uint64]*os.File{}}
}

// deferDir notes that dir holds writes waiting for Sync. It reports false when
// the batch cannot defer them (on this system, or dir's filesystem cannot be
// held open): the caller then syncs at once.
func (b *SyncBatch) deferDir(dir string) bool {
	if b == nil || !syncfsAvailable {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.dirs[dir]; ok {
		return true
	}
	dev, err := deviceOf(dir)
	if err != nil {
		return false
	}
	if _, ok := b.fss[dev]; !ok {
		f, err := os.Open(dir)
		if err != nil {
			return false
		}
		b.fss[dev] = f
	}
	b.dirs[dir] = struct{}{}
	return true
}

// deferring reports whether writes are deferred to the batch.
func (b *SyncBatch) deferring() bool { return b != nil && syncfsAvailable }

// Sync makes every write deferred to the batch durable: one syncfs for each
// filesystem holding one of its directories. It releases what the batch
// held; the batch can be used again.
func (b *SyncBatch) Sync() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	fss := b.fss
	b.dirs = map[string]struct{}{}
	b.fss = map[uint64]*os.File{}
	b.mu.Unlock()
	var errs []error
	for _, f := range fss {
		if err := syncFilesystem(f); err != nil {
			errs = append(errs, fmt.Errorf("log: sync %s: %w", f.Name(), err))
		}
		f.Close() // read-only: its close says nothing the syncfs did not
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(errs) > 0 {
		b.failed = true
		b.synced.Store(false)
		return errors.Join(errs...)
	}
	if !b.failed {
		b.synced.Store(true)
	}
	return nil
}

// durable reports whether what was deferred to the batch is known to be
// durable: a nil batch or one that defers nothing, or one whose Sync
// succeeded with none failing. A log opened with a batch that is not is
// closed without a clean shutdown marker (see CloseBatched).
func (b *SyncBatch) durable() bool {
	return !b.deferring() || b.synced.Load()
}

// PublishFile is the package's PublishFile with the fsyncs deferred to the
// batch (a nil batch publishes at once).
func (b *SyncBatch) PublishFile(dir, name string, data []byte) error {
	if !b.deferDir(dir) {
		return PublishFile(dir, name, data)
	}
	return writeFileRenamed(dir, name, data, false)
}

// HoldsRecords reports whether the log directory dir holds any record: a
// non-empty segment file. A directory that holds none can be created again
// without losing anything.
func HoldsRecords(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("log: %w", err)
	}
	for _, e := range entries {
		if _, suffix, ok := parseSegmentName(e.Name()); !ok || suffix != logSuffix {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return false, fmt.Errorf("log: %w", err)
		}
		if info.Size() > 0 {
			return true, nil
		}
	}
	return false, nil
}
