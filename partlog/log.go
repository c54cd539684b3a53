// Package log is the partition log: a directory of segments holding Kafka
// record batches (v2) exactly as received, with a sparse offset index and a
// time index beside each segment, crash recovery and an explicit flush policy.
//
// A partition directory holds:
//
//	00000000000000000000.log        batches, base offsets and leader epoch stamped
//	00000000000000000000.index      offset index (relative offset, file position)
//	00000000000000000000.timeindex  time index (max timestamp so far, relative offset)
//	00000000000000000000.txnindex   aborted transactions, open ones at both ends (see txn.go)
//	00000000000000001234.snapshot   producer state as of offset 1234 (see snapshot.go)
//	recovery-point.checkpoint       everything below this offset is fsynced
//	log-start-offset.checkpoint     first offset the log serves
//	cleaner-offset.checkpoint       end of the compacted section (see clean.go)
//	clean-shutdown                  present between Close and the next Open
//
// Segments are named by their 20-digit base offset so that ls sorts them.
// Batches are never split across segments, so a segment can be truncated or
// deleted whole. The index files are derived data: they carry a CRC-32C, are
// written (tmp, fsync, rename, fsync dir) when a segment is sealed, on Flush
// and on Close, and are rebuilt from the .log file whenever they are missing,
// damaged or do not match it. Lookups use in-memory copies of the entries.
//
// Concurrency: writers (Append, Flush, TruncateTo, DeleteSegmentsBelow,
// AdvanceLogStart, TruncateFullyAndStartAt, WriteProducerSnapshot, Close) are serialised by a mutex. Readers (Read, OffsetForTimestamp, Segments, ...)
// never take it: they hold a read lock on the segment list, read only the
// byte range of whole batches published through atomics, and read files with
// ReadAt. Sealed segments are fsynced and their indexes written by a
// background goroutine owned by the Log, so rolling does not stall producers
// for the fsync of a whole segment.
package partlog

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults, as in Kafka.
const (
	DefaultSegmentBytes       = 1 << 30 // segment.bytes
	DefaultSegmentMs          = 7 * 24 * time.Hour
	DefaultIndexIntervalBytes = 4096    // index.interval.bytes
	DefaultMaxMessageBytes    = 1048588 // max.message.bytes: 1 MiB + the record overhead Kafka allows

	// maxSegmentBytes bounds segment.bytes: index entries store positions as
	// uint32, and Kafka's segment.bytes is an int32.
	maxSegmentBytes = math.MaxInt32
)

// Config is a topic's log configuration. A zero field means its default.
//
// Durability (the flush policy). Append returns once the batches are written
// to the segment file, that is, into the operating system's page cache. An
// acknowledged write therefore survives a crash of the broker process (the
// kernel still writes the page cache back), but only data that has been
// fsynced survives a power loss or a kernel crash:
//
//   - FlushMessages = 1: every Append is fsynced before it returns, so an
//     acknowledged write survives power loss. One fsync per append.
//   - FlushMessages = N > 1: the log is fsynced once N records have been
//     appended since the last flush; a power loss can lose up to N-1
//     acknowledged records.
//   - FlushInterval = d: MaybeFlush, called periodically by the owner,
//     fsyncs when d has passed since the last flush; a power loss can lose
//     about d worth of acknowledged records.
//   - Neither (the default, as in Kafka): durability comes from replication.
//     The log is fsynced only when a segment is sealed, on Flush and on Close;
//     losing power on every replica at once can lose acknowledged records.
//
// Whatever the policy, recovery after a crash keeps a dense prefix of the
// log: it truncates at the first torn or corrupt batch and never serves part
// of a batch.
type Config struct {
	// SegmentBytes (segment.bytes): roll when the active segment would
	// exceed it. Default 1 GiB, at most 2 GiB - 1.
	SegmentBytes int64
	// SegmentMs (segment.ms): roll a non-empty active segment older than
	// this, measured on the injected clock from the segment's creation (or
	// from its first append, if it sat empty). Default 7 days.
	SegmentMs time.Duration
	// IndexIntervalBytes (index.interval.bytes): bytes of batches between
	// offset-index entries. Default 4096.
	IndexIntervalBytes int
	// FlushMessages (flush.messages): fsync after this many records since the
	// last flush. <= 0: never by count; 1: every append.
	FlushMessages int64
	// FlushInterval (flush.ms): MaybeFlush flushes when this much time has
	// passed since the last flush. <= 0: never by time.
	FlushInterval time.Duration
	// MaxMessageBytes (max.message.bytes): the largest batch Append accepts.
	// Default 1048588.
	MaxMessageBytes int
}

// WithDefaults returns c with zero (or out-of-range) fields replaced by their
// defaults or bounds.
func (c Config) WithDefaults() Config {
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	c.SegmentBytes = min(c.SegmentBytes, maxSegmentBytes)
	if c.SegmentMs <= 0 {
		c.SegmentMs = DefaultSegmentMs
	}
	if c.IndexIntervalBytes <= 0 {
		c.IndexIntervalBytes = DefaultIndexIntervalBytes
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	return c
}

// Options are the dependencies of a Log.
type Options struct {
	Dir    string
	Config Config
	Logger *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now
	// Files keeps the sealed segments' files open, within its bound; a
	// broker shares one among all its logs. Nil: a cache of this log's own
	// that keeps every sealed segment open.
	Files *FileCache
	// CrashAt, for tests, is asked at each step of a compaction swap
	// (see clean.go), and by Open once it has written the recovery point
	// ("open-after-recovery-point"); true stops there as a crash would: the
	// log refuses further writes (Open fails) and the files stay as they
	// are for the next Open to recover.
	CrashAt func(step string) bool
	// Sync, when set, takes the fsyncs of opening the log (see SyncBatch):
	// the log must not be written to until Sync.Sync has returned.
	Sync *SyncBatch
}

// Log is one partition's log. All methods are safe for concurrent use.
type Log struct {
	dir    string
	logger *slog.Logger
	now    func() time.Time
	cfg    atomic.Pointer[Config]
	crash  func(step string) bool
	files  *FileCache

	// swapMu serialises the changes to sealed segments: a compaction swap
	// (CommitClean) against deletions, truncations and Close, without
	// holding mu, so that appends do not wait for a swap's file work.
	// Lock order: swapMu, mu, ckMu, segMu, segment.sealMu, segment.idxMu,
	// abortMu, FileCache.mu.
	swapMu sync.Mutex
	// mu serialises writers.
	mu        sync.Mutex
	unflushed int64     // records appended since the last flush
	lastFlush time.Time // for MaybeFlush
	dirDirty  bool      // a segment file was created since the directory was fsynced

	// segMu guards segs and the lifetime of segment files: readers hold it
	// shared for as long as they use a segment; changing the list or closing
	// a file needs it exclusively (and mu).
	segMu    sync.RWMutex
	segs     []*segment // by base offset; the last one is active
	leo      atomic.Int64
	logStart atomic.Int64
	closed   atomic.Bool
	// cleanerOffset is the checkpointed end of the compacted section.
	cleanerOffset atomic.Int64

	// epMu guards epochs, the leader epoch cache (see epochs.go); changing it
	// also needs mu.
	epMu        sync.RWMutex
	epochs      []EpochEntry
	epochsDirty bool // epochs differ from the checkpoint file

	// txns are the transactions open in the log (see txn.go), guarded by
	// mu; firstUnstable publishes the earliest one's first offset (-1:
	// none) to readers, ended the transactions closed by markers not yet
	// known replicated. abortMu guards the segments' aborted-transaction
	// entries, which readers (AbortedTransactions) read while writers add.
	txns          *txnState
	firstUnstable atomic.Int64
	ended         endedTxns
	abortMu       sync.RWMutex

	// ckMu guards the recovery-point checkpoint file and ckRP, its content.
	ckMu sync.Mutex
	ckRP int64

	errMu sync.Mutex
	err   *StorageError // first storage failure; sticky until Recover

	sealKick chan struct{} // wakes the sealer (capacity 1)
	sealStop chan struct{} // closed by Close
	sealDone chan struct{} // closed by the sealer when it exits

	// openSync is Options.Sync while Open runs, nil after.
	openSync *SyncBatch
	// openedWith is Options.Sync: until it has synced, what opening wrote
	// may not be durable, and closing marks no clean shutdown.
	openedWith *SyncBatch
}

// Open opens the log in opts.Dir, creating the directory if needed, and
// recovers it: segments from the one holding the recovery point onwards are
// scanned and a torn or corrupt tail is truncated; indexes that do not check
// out are rebuilt. Damaged files never make it fail; I/O errors do.
func Open(opts Options) (*Log, error) {
	if opts.Dir == "" {
		return nil, errors.New("log: open: no directory")
	}
	l := &Log{
		dir:        opts.Dir,
		logger:     opts.Logger,
		now:        opts.Now,
		crash:      opts.CrashAt,
		files:      opts.Files,
		openSync:   opts.Sync,
		openedWith: opts.Sync,
		sealKick:   make(chan struct{}, 1),
		sealStop:   make(chan struct{}),
		sealDone:   make(chan struct{}),
	}
	if l.logger == nil {
		l.logger = slog.New(slog.DiscardHandler)
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.files == nil {
		l.files = NewFileCache(0)
	}
	cfg := opts.Config.WithDefaults()
	l.cfg.Store(&cfg)
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		return nil, fmt.Errorf("log: open: %w", err)
	}
	if err := l.load(); err != nil {
		return nil, err
	}
	// Snapshots beyond a crash's cut, or below a log start a crash left
	// deleting segments, describe records the log does not hold.
	if err := l.removeProducerSnapshotsOutside(l.logStart.Load(), l.leo.Load()); err != nil {
		l.logger.Warn("log: cannot remove stale producer snapshots; loading skips them", "dir", l.dir, "err", err)
	}
	l.openSync = nil // what the log writes from now on is synced as it goes
	l.lastFlush = l.now()
	go l.sealLoop()
	return l, nil
}

// Close seals the log: it waits for background sealing, fsyncs the active
// segment, writes its indexes and the checkpoints, marks a clean shutdown and
// closes the files. After a write failure it closes without marking a clean
// shutdown, so the next Open recovers. Calling Close again returns nil.
func (l *Log) Close() error {
	c, err := l.CloseBatched(nil)
	if err != nil || c == nil {
		return err
	}
	if err := c.Checkpoint(); err != nil {
		return err
	}
	return c.MarkClean()
}

// A Closing is what is left of closing a log with a SyncBatch once its data
// is written: Checkpoint after the batch's first sync, MarkClean after its
// second (see CloseBatched).
type Closing struct {
	l     *Log
	batch *SyncBatch
	// rp is the recovery point to write (-1: nothing to write).
	rp    int64
	clean bool
}

// Checkpoint writes the recovery point, its fsync the batch's: the batch
// must have synced the data it vouches for.
func (c *Closing) Checkpoint() error {
	if c.rp < 0 {
		return nil
	}
	l := c.l
	sync := !c.batch.deferDir(l.dir)
	if err := writeFileRenamed(l.dir, recoveryPointFile, encodeCheckpoint(c.rp), sync); err != nil {
		return err
	}
	if sync {
		return syncDir(l.dir)
	}
	return nil
}

// MarkClean writes the clean shutdown marker, its fsync the batch's: the
// batch must have synced the checkpoint. It does nothing for a log whose
// shutdown is not clean (closed before the batch it was opened with had
// synced).
func (c *Closing) MarkClean() error {
	if !c.clean {
		return nil
	}
	if err := c.batch.PublishFile(c.l.dir, cleanShutdownFile, nil); err != nil {
		return fmt.Errorf("log: mark clean shutdown: %w", err)
	}
	return nil
}

// CloseBatched is Close for closing many logs at once, in three steps
// that share their fsyncs. It closes the log as Close does, writing its
// data (the active segment, its index files and transaction index, the
// leader epochs; and the producer snapshots the caller wrote to batch with
// WriteProducerSnapshotTo) with the fsyncs left to batch. Once batch has
// synced, Closing.Checkpoint writes the recovery point that vouches for that
// data; once it has synced again, Closing.MarkClean writes the clean
// shutdown marker; a last sync makes that durable. No step's file may be
// durable before the one it vouches for. The Closing is nil when the log
// was closed already; its MarkClean does nothing when the shutdown is not
// clean (the log was opened with a SyncBatch whose Sync did not succeed).
// A nil batch syncs at once, each step as it goes.
func (l *Log) CloseBatched(batch *SyncBatch) (c *Closing, err error) {
	l.swapMu.Lock()
	defer l.swapMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return nil, nil
	}
	l.closed.Store(true)
	close(l.sealStop)
	<-l.sealDone

	c = &Closing{l: l, batch: batch, rp: -1}
	err = l.failure()
	if err == nil {
		if batch.deferring() {
			c.rp, err = l.flushDataTo(batch)
		} else {
			err = l.flushLocked()
		}
	}
	if err == nil {
		err = l.writeActiveTxnIndex(batch)
	}
	if err == nil && !l.openedWith.durable() {
		// The next open must recover what the batch may have lost.
		l.logger.Warn("log: closed before the writes of its opening were synced; not marking a clean shutdown", "dir", l.dir)
	} else if err == nil {
		c.clean = true
	}
	l.segMu.Lock()
	for _, s := range l.segs {
		if cerr := s.closeFile(); cerr != nil && err == nil {
			err = fmt.Errorf("log: close %s: %w", s.name(), cerr)
		}
	}
	l.segs = nil
	l.segMu.Unlock()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// SetConfig changes the configuration of an open log (a topic config was
// altered). It takes effect from the next call that uses it: a smaller
// SegmentBytes rolls at the next Append, a new IndexIntervalBytes applies to
// batches appended from then on.
func (l *Log) SetConfig(c Config) {
	c = c.WithDefaults()
	l.cfg.Store(&c)
}

// Config returns the configuration in effect, defaults applied.
func (l *Log) Config() Config { return *l.cfg.Load() }

// Dir is the partition directory.
func (l *Log) Dir() string { return l.dir }

// LogStartOffset is the first offset the log serves.
func (l *Log) LogStartOffset() int64 { return l.logStart.Load() }

// LogEndOffset is the offset the next appended record will get.
func (l *Log) LogEndOffset() int64 { return l.leo.Load() }

// RecoveryPoint is the offset below which everything is fsynced (and so
// survives a power loss).
func (l *Log) RecoveryPoint() int64 {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	return l.recoveryPointLocked()
}

// Size is the number of bytes of the .log files.
func (l *Log) Size() int64 {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	var n int64
	for _, s := range l.segs {
		n += s.size.Load()
	}
	return n
}

// SegmentInfo describes one segment.
type SegmentInfo struct {
	BaseOffset   int64
	NextOffset   int64 // offset after the segment's last batch
	Size         int64 // bytes of the .log file
	MaxTimestamp int64 // largest batch max timestamp; -1 when empty
	Sealed       bool  // no longer appended to
	Durable      bool  // sealed, fsynced and its index files written
}

// ActiveSegmentBase is the base offset of the segment appends go to: it
// changes when the log rolls (or is truncated into an earlier segment).
func (l *Log) ActiveSegmentBase() int64 {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if len(l.segs) == 0 {
		return -1
	}
	return l.segs[len(l.segs)-1].base
}

// Segments lists the segments in offset order; the last one is active.
func (l *Log) Segments() []SegmentInfo {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	out := make([]SegmentInfo, 0, len(l.segs))
	for _, s := range l.segs {
		ts := s.maxTimestamp()
		if ts == noTimestamp {
			ts = -1
		}
		out = append(out, SegmentInfo{
			BaseOffset:   s.base,
			NextOffset:   s.next.Load(),
			Size:         s.size.Load(),
			MaxTimestamp: ts,
			Sealed:       s.sealed.Load(),
			Durable:      s.durable.Load(),
		})
	}
	return out
}

// segmentFor returns the index of the last segment whose base offset is at
// most offset (0 if none). segMu must be held.
func (l *Log) segmentFor(offset int64) int {
	i, found := slices.BinarySearchFunc(l.segs, offset, func(s *segment, off int64) int {
		switch {
		case s.base < off:
			return -1
		case s.base > off:
			return 1
		}
		return 0
	})
	if !found {
		i--
	}
	return max(i, 0)
}

// active returns the segment appends go to. mu must be held.
func (l *Log) active() *segment { return l.segs[len(l.segs)-1] }

// fail records the first storage failure, which takes the log offline:
// later reads and writes are refused until Recover. It returns err as a
// *StorageError.
func (l *Log) fail(err error) error {
	se, ok := err.(*StorageError)
	if !ok {
		se = &StorageError{Dir: l.dir, Err: err}
	}
	l.errMu.Lock()
	defer l.errMu.Unlock()
	if l.err == nil {
		l.err = se
		l.logger.Error("log: storage failure; the log is offline until recovered", "dir", l.dir, "err", err)
	}
	return se
}

// Failed returns why the log is offline (ErrLogFailed wrapping the
// *StorageError that took it offline), or nil while it is online.
func (l *Log) Failed() error { return l.failure() }

// failure returns the sticky storage failure, wrapped in ErrLogFailed.
func (l *Log) failure() error {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	if l.err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrLogFailed, l.err)
}

// writable reports why writes are refused, if they are. mu must be held.
func (l *Log) writable() error {
	if l.closed.Load() {
		return ErrLogClosed
	}
	return l.failure()
}
