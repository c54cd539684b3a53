package partlog

import (
	"bytes"
	"container/list"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-broker/strata/record"
)

// File names.
const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
	tmpSuffix       = ".tmp"

	recoveryPointFile = "recovery-point.checkpoint"
	logStartFile      = "log-start-offset.checkpoint"
	cleanShutdownFile = "clean-shutdown"
	// brokerMetaFile is written beside the log by the broker (Kafka keeps a
	// file of the same name in its partition directories); not a stray.
	brokerMetaFile = "partition.metadata"
)

// Index file layout: entries, big endian, then a trailer of magic (4 bytes),
// entry count (uint32) and the CRC-32C of the entries (uint32).
const (
	offsetEntrySize  = 8  // relative offset uint32, position uint32
	timeEntrySize    = 12 // timestamp int64, relative offset uint32
	indexTrailerSize = 12
)

var (
	offsetIndexMagic = [4]byte{'S', 'O', 'X', '1'}
	timeIndexMagic   = [4]byte{'S', 'T', 'X', '1'}
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// noTimestamp is the max timestamp of a segment without batches. (Kafka's
// NO_TIMESTAMP, -1, is also a value a client may put in a batch.)
const noTimestamp = math.MinInt64

type offsetEntry struct {
	rel uint32 // base offset of a batch, relative to the segment's base
	pos uint32 // the batch's byte position in the .log file
}

type timeEntry struct {
	ts  int64  // largest timestamp in the segment up to and including rel
	rel uint32 // relative offset of the last record of the batch that reached ts
}

// segment is one .log file and its indexes.
type segment struct {
	dir  string
	base int64

	// The .log file, managed by files (see filecache.go): readers take it
	// with acquire and give it back with release. While the segment is
	// pinned (the active segment) f stays open and the writer uses it
	// directly; otherwise f may be nil (closed to stay within the cache's
	// bound) and is guarded by files.mu, as are refs, pinned, gone and
	// idle.
	files  *FileCache
	f      *os.File
	refs   int           // readers holding f
	pinned bool          // f stays open and is not counted in the bound
	gone   bool          // removed or replaced: never opened again
	idle   *list.Element // in files.idle while open, unpinned and unused

	// Published to readers. size only ever covers whole batches.
	size       atomic.Int64
	next       atomic.Int64 // offset after the last batch
	maxTS      atomic.Int64 // largest batch max timestamp, noTimestamp if none
	syncedNext atomic.Int64 // offsets below this are fsynced
	sealed     atomic.Bool  // no longer the active segment
	durable    atomic.Bool  // sealed, fsynced and index files written

	idxMu      sync.RWMutex
	offIdx     []offsetEntry
	timeIdx    []timeEntry
	idxVersion int64 // bumped on every change to the entries

	// lazy marks a sealed segment opened after a clean shutdown whose
	// indexes (and max timestamp) are loaded on first use, by load, once:
	// a restart then costs per partition, not per segment.
	lazy     atomic.Bool
	lazyOnce sync.Once
	load     func()
	// loadErr is why load failed, set by it: the segment's indexes and
	// max timestamp are then missing, not empty.
	loadErr error

	// Writer state, guarded by Log.mu (or owned by Open before publication).
	created         time.Time
	bytesSinceIndex int64
	offsetOfMaxTS   int64

	// Transactions (see txn.go): those open at the segment's start and, once
	// it is sealed, at its end (writer state, guarded by Log.mu, fixed once
	// sealed), and the aborted transactions whose markers it holds
	// (guarded by Log.abortMu).
	txnStart, txnEnd []OpenTxn
	aborted          []AbortedTxn
	// txnIndexNext is, for the active segment, where the .txnindex a clean
	// shutdown wrote of it ends (0: none written); writer state.
	txnIndexNext int64

	// sealMu serialises fsyncs and index file writes of this segment with its
	// truncation and removal.
	sealMu         sync.Mutex
	removed        bool
	writtenVersion int64 // idxVersion of the index files on disk, -1 if none
}

func segmentName(base int64, suffix string) string { return fmt.Sprintf("%020d%s", base, suffix) }

func (s *segment) path(suffix string) string {
	return filepath.Join(s.dir, segmentName(s.base, suffix))
}

func (s *segment) name() string { return segmentName(s.base, logSuffix) }

// parseSegmentName splits "<20 digits><suffix>" for the three segment files.
func parseSegmentName(name string) (int64, string, bool) {
	for _, suffix := range []string{timeIndexSuffix, txnIndexSuffix, indexSuffix, logSuffix} {
		stem, ok := bytes.CutSuffix([]byte(name), []byte(suffix))
		if !ok || len(stem) != 20 {
			continue
		}
		var v uint64
		for _, c := range stem {
			if c < '0' || c > '9' {
				return 0, "", false
			}
			v = v*10 + uint64(c-'0')
		}
		if v > math.MaxInt64 {
			return 0, "", false
		}
		return int64(v), suffix, true
	}
	return 0, "", false
}

func newSegment(dir string, base int64, files *FileCache, now time.Time) *segment {
	s := &segment{dir: dir, base: base, files: files, created: now, writtenVersion: -1}
	s.next.Store(base)
	s.maxTS.Store(noTimestamp)
	s.syncedNext.Store(base)
	s.offsetOfMaxTS = base
	return s
}

// createSegment creates an empty segment file (replacing a stale one),
// pinned open as the active segment, and removes stale index files of the
// same base.
func createSegment(dir string, base int64, files *FileCache, now time.Time) (*segment, error) {
	s := newSegment(dir, base, files, now)
	f, err := os.OpenFile(s.path(logSuffix), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log: create segment: %w", err)
	}
	s.f, s.pinned = f, true
	for _, suffix := range []string{indexSuffix, timeIndexSuffix, txnIndexSuffix} {
		if err := os.Remove(s.path(suffix)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			f.Close()
			return nil, fmt.Errorf("log: create segment: %w", err)
		}
	}
	return s, nil
}

// openSegment finds an existing segment file; the caller loads its
// indexes. The file is opened when it is used (see acquire).
func openSegment(dir string, base int64, files *FileCache, now time.Time) (*segment, error) {
	s := newSegment(dir, base, files, now)
	st, err := os.Stat(s.path(logSuffix))
	if err != nil {
		return nil, fmt.Errorf("log: open segment: %w", err)
	}
	s.size.Store(st.Size())
	return s, nil
}

// removeFiles closes the segment and deletes its files. Log.mu must be held
// and the segment must no longer be in the list.
func (s *segment) removeFiles() error {
	s.sealMu.Lock()
	defer s.sealMu.Unlock()
	s.removed = true
	err := s.closeFile()
	for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix, txnIndexSuffix} {
		if rerr := os.Remove(s.path(suffix)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
			err = rerr
		}
	}
	if err != nil {
		return fmt.Errorf("log: remove segment %s: %w", s.name(), err)
	}
	return nil
}

// indexBatch records the batch h, written at pos, in the in-memory indexes:
// an offset entry for the segment's first batch and whenever interval bytes
// have been written since the last entry; a time entry at the same moments
// if the max timestamp grew. Writers only.
func (s *segment) indexBatch(pos int64, h *record.Header, interval int64) {
	if h.MaxTimestamp > s.maxTS.Load() {
		s.maxTS.Store(h.MaxTimestamp)
		s.offsetOfMaxTS = h.LastOffset()
	}
	if pos == 0 || s.bytesSinceIndex >= interval {
		s.idxMu.Lock()
		s.offIdx = append(s.offIdx, offsetEntry{rel: uint32(h.BaseOffset - s.base), pos: uint32(pos)})
		s.appendTimeEntryLocked()
		s.idxVersion++
		s.idxMu.Unlock()
		s.bytesSinceIndex = 0
	}
	s.bytesSinceIndex += int64(h.Size())
}

// sealTimeIndex adds a last time entry, so that a sealed segment's time
// index ends with its max timestamp. Writers only.
func (s *segment) sealTimeIndex() {
	s.idxMu.Lock()
	if s.appendTimeEntryLocked() {
		s.idxVersion++
	}
	s.idxMu.Unlock()
}

// appendTimeEntryLocked adds (maxTS, offsetOfMaxTS) if maxTS grew past the
// last entry. idxMu must be held.
func (s *segment) appendTimeEntryLocked() bool {
	ts := s.maxTS.Load()
	if ts == noTimestamp {
		return false
	}
	if n := len(s.timeIdx); n > 0 && ts <= s.timeIdx[n-1].ts {
		return false
	}
	s.timeIdx = append(s.timeIdx, timeEntry{ts: ts, rel: uint32(s.offsetOfMaxTS - s.base)})
	return true
}

// resetIndexes drops all entries before a rebuild. Writers only.
func (s *segment) resetIndexes() {
	s.idxMu.Lock()
	s.offIdx, s.timeIdx = nil, nil
	s.idxVersion++
	s.idxMu.Unlock()
	s.maxTS.Store(noTimestamp)
	s.offsetOfMaxTS = s.base
	s.bytesSinceIndex = 0
}

// ensureIndexes loads a lazy segment's indexes; every use of the indexes or
// of the max timestamp goes through it. It returns why the load failed
// (errSegmentGone: the segment was deleted, replaced or closed first); the
// log is then offline, or done with the segment, and the indexes are
// missing. A use that hands the segment out must not ignore it.
func (s *segment) ensureIndexes() error {
	if s.lazy.Load() {
		s.lazyOnce.Do(s.load)
	}
	return s.loadErr
}

// maxTimestamp is the segment's largest batch max timestamp, noTimestamp if
// none.
func (s *segment) maxTimestamp() int64 {
	s.ensureIndexes()
	return s.maxTS.Load()
}

// lookup returns the base offset and position of the last indexed batch at
// or before offset, considering only entries below size. A walk of batch
// headers from there reaches the batch containing offset.
func (s *segment) lookup(offset, size int64) (int64, int64) {
	s.ensureIndexes()
	s.idxMu.RLock()
	defer s.idxMu.RUnlock()
	rel := offset - s.base
	i := sort.Search(len(s.offIdx), func(i int) bool { return int64(s.offIdx[i].rel) > rel }) - 1
	for i >= 0 && int64(s.offIdx[i].pos) >= size {
		i--
	}
	if i < 0 {
		return s.base, 0
	}
	return s.base + int64(s.offIdx[i].rel), int64(s.offIdx[i].pos)
}

// entryAfter returns the first offset-index entry positioned after pos and
// below size.
func (s *segment) entryAfter(pos, size int64) (offset, at int64, ok bool) {
	s.ensureIndexes()
	s.idxMu.RLock()
	defer s.idxMu.RUnlock()
	i := sort.Search(len(s.offIdx), func(i int) bool { return int64(s.offIdx[i].pos) > pos })
	if i == len(s.offIdx) || int64(s.offIdx[i].pos) >= size {
		return 0, 0, false
	}
	return s.base + int64(s.offIdx[i].rel), int64(s.offIdx[i].pos), true
}

// timeLookup returns an offset before which every record of the segment has
// a timestamp below ts: just after the last time entry whose timestamp is
// below ts, or the segment's base.
func (s *segment) timeLookup(ts int64) int64 {
	s.ensureIndexes()
	s.idxMu.RLock()
	defer s.idxMu.RUnlock()
	i := sort.Search(len(s.timeIdx), func(i int) bool { return s.timeIdx[i].ts >= ts }) - 1
	if i < 0 {
		return s.base
	}
	return s.base + int64(s.timeIdx[i].rel) + 1
}

// truncateIndexes drops the entries at or after offset next.
func (s *segment) truncateIndexes(next int64) {
	s.ensureIndexes()
	rel := next - s.base
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	i := sort.Search(len(s.offIdx), func(i int) bool { return int64(s.offIdx[i].rel) >= rel })
	j := sort.Search(len(s.timeIdx), func(j int) bool { return int64(s.timeIdx[j].rel) >= rel })
	// Fresh slices: a reader holding the old ones must never see them
	// overwritten by later appends.
	s.offIdx = slices.Clone(s.offIdx[:i])
	s.timeIdx = slices.Clone(s.timeIdx[:j])
	s.idxVersion++
}

// lastEntries returns the last offset-index entry (base offset and position)
// and the last time entry, if any.
func (s *segment) lastEntries() (off, pos int64, te timeEntry, hasTime bool) {
	s.ensureIndexes()
	s.idxMu.RLock()
	defer s.idxMu.RUnlock()
	off = s.base
	if n := len(s.offIdx); n > 0 {
		off, pos = s.base+int64(s.offIdx[n-1].rel), int64(s.offIdx[n-1].pos)
	}
	if n := len(s.timeIdx); n > 0 {
		te, hasTime = s.timeIdx[n-1], true
	}
	return off, pos, te, hasTime
}

// writeIndexes writes both index files if the entries changed since they
// were last written (tmp, fsync, rename; the caller fsyncs the directory).
// sealMu must be held.
func (s *segment) writeIndexes() (bool, error) { return s.writeIndexesSynced(true) }

// writeIndexesSynced is writeIndexes with the files' fsyncs left to a
// SyncBatch when sync is false.
func (s *segment) writeIndexesSynced(sync bool) (bool, error) {
	s.idxMu.RLock()
	unchanged := s.idxVersion == s.writtenVersion
	s.idxMu.RUnlock()
	if unchanged {
		return false, nil
	}
	off, tim, version := s.encodeIndexes()
	if err := writeFileRenamed(s.dir, segmentName(s.base, indexSuffix), off, sync); err != nil {
		return false, err
	}
	if err := writeFileRenamed(s.dir, segmentName(s.base, timeIndexSuffix), tim, sync); err != nil {
		return false, err
	}
	s.writtenVersion = version
	return true, nil
}

// encodeIndexes returns the contents of both index files and the version of
// the entries they hold.
func (s *segment) encodeIndexes() (off, tim []byte, version int64) {
	// No ensureIndexes: a lazy segment's files are its indexes, and the
	// lazy load itself writes rebuilt ones through here.
	s.idxMu.RLock()
	defer s.idxMu.RUnlock()
	off = make([]byte, 0, len(s.offIdx)*offsetEntrySize+indexTrailerSize)
	for _, e := range s.offIdx {
		off = binary.BigEndian.AppendUint32(off, e.rel)
		off = binary.BigEndian.AppendUint32(off, e.pos)
	}
	off = appendIndexTrailer(off, offsetIndexMagic, len(s.offIdx))
	tim = make([]byte, 0, len(s.timeIdx)*timeEntrySize+indexTrailerSize)
	for _, e := range s.timeIdx {
		tim = binary.BigEndian.AppendUint64(tim, uint64(e.ts))
		tim = binary.BigEndian.AppendUint32(tim, e.rel)
	}
	tim = appendIndexTrailer(tim, timeIndexMagic, len(s.timeIdx))
	return off, tim, s.idxVersion
}

// removeIndexFiles deletes index files that no longer match the log (after a
// truncation). sealMu must be held.
func (s *segment) removeIndexFiles() error {
	for _, suffix := range []string{indexSuffix, timeIndexSuffix, txnIndexSuffix} {
		if err := os.Remove(s.path(suffix)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	s.writtenVersion = -1
	s.txnIndexNext = 0
	return nil
}

func appendIndexTrailer(b []byte, magic [4]byte, n int) []byte {
	sum := crc32.Checksum(b, castagnoli)
	b = append(b, magic[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	return binary.BigEndian.AppendUint32(b, sum)
}

// indexBody checks an index file's trailer and returns its entries' bytes.
func indexBody(b []byte, magic [4]byte, entrySize int) ([]byte, error) {
	if len(b) < indexTrailerSize {
		return nil, fmt.Errorf("%d bytes, shorter than the trailer", len(b))
	}
	body, tr := b[:len(b)-indexTrailerSize], b[len(b)-indexTrailerSize:]
	if !bytes.Equal(tr[:4], magic[:]) {
		return nil, fmt.Errorf("bad magic %q", tr[:4])
	}
	if n := int64(binary.BigEndian.Uint32(tr[4:])); n*int64(entrySize) != int64(len(body)) {
		return nil, fmt.Errorf("trailer says %d entries, file holds %d bytes of entries", n, len(body))
	}
	if got, want := crc32.Checksum(body, castagnoli), binary.BigEndian.Uint32(tr[8:]); got != want {
		return nil, fmt.Errorf("checksum %#08x, computed %#08x", want, got)
	}
	return body, nil
}

// readIndexFiles loads both index files of s and checks their checksums.
func (s *segment) readIndexFiles() ([]offsetEntry, []timeEntry, error) {
	raw, err := os.ReadFile(s.path(indexSuffix))
	if err != nil {
		return nil, nil, err
	}
	off, err := decodeOffsetEntries(raw)
	if err != nil {
		return nil, nil, err
	}
	raw, err = os.ReadFile(s.path(timeIndexSuffix))
	if err != nil {
		return nil, nil, err
	}
	tim, err := decodeTimeEntries(raw)
	if err != nil {
		return nil, nil, err
	}
	return off, tim, nil
}

// decodeOffsetEntries checks an .index file's trailer and decodes it.
func decodeOffsetEntries(raw []byte) ([]offsetEntry, error) {
	body, err := indexBody(raw, offsetIndexMagic, offsetEntrySize)
	if err != nil {
		return nil, fmt.Errorf("offset index: %w", err)
	}
	off := make([]offsetEntry, len(body)/offsetEntrySize)
	for i := range off {
		b := body[i*offsetEntrySize:]
		off[i] = offsetEntry{rel: binary.BigEndian.Uint32(b), pos: binary.BigEndian.Uint32(b[4:])}
	}
	return off, nil
}

// decodeTimeEntries checks a .timeindex file's trailer and decodes it.
func decodeTimeEntries(raw []byte) ([]timeEntry, error) {
	body, err := indexBody(raw, timeIndexMagic, timeEntrySize)
	if err != nil {
		return nil, fmt.Errorf("time index: %w", err)
	}
	tim := make([]timeEntry, len(body)/timeEntrySize)
	for i := range tim {
		b := body[i*timeEntrySize:]
		tim[i] = timeEntry{ts: int64(binary.BigEndian.Uint64(b)), rel: binary.BigEndian.Uint32(b[8:])}
	}
	return tim, nil
}

// checkOffsetIndex checks what an offset index can say about itself against
// a log of size bytes: the first batch is indexed, entries increase, none
// points past the end.
func checkOffsetIndex(entries []offsetEntry, size int64) error {
	if size == 0 {
		if len(entries) > 0 {
			return fmt.Errorf("offset index has %d entries for an empty log", len(entries))
		}
		return nil
	}
	if len(entries) == 0 || entries[0] != (offsetEntry{}) {
		return errors.New("offset index does not start with the first batch")
	}
	for i := 1; i < len(entries); i++ {
		if entries[i].rel <= entries[i-1].rel || entries[i].pos <= entries[i-1].pos {
			return fmt.Errorf("offset index entry %d does not increase", i)
		}
	}
	if last := entries[len(entries)-1]; int64(last.pos) >= size {
		return fmt.Errorf("offset index entry points to byte %d, past the end of the log (%d bytes)", last.pos, size)
	}
	return nil
}

// checkTimeIndex checks a time index against a segment with offsets [base, next).
func checkTimeIndex(entries []timeEntry, base, next int64) error {
	for i, e := range entries {
		if base+int64(e.rel) >= next {
			return fmt.Errorf("time index entry %d points to offset %d, past the log end %d", i, base+int64(e.rel), next)
		}
		if i > 0 && (e.ts <= entries[i-1].ts || e.rel < entries[i-1].rel) {
			return fmt.Errorf("time index entry %d does not increase", i)
		}
	}
	return nil
}
