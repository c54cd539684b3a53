package partlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/strata-broker/strata/record"
)

// Producer-state snapshots: <offset>.snapshot (20 digits, like a segment
// name) holds a ProducerStates as it was once every producer batch below
// offset had been recorded, so that reopening or truncating a log replays
// only the batch headers after offset instead of scanning the log's tail.
// They are Kafka's producer snapshots in Strata's own layout (big endian):
//
//	magic "SPS1", version uint16 = 1, offset int64, entry count uint32,
//	entries, least recently used first:
//	  producer id int64, epoch int16, coordinator epoch int32,
//	  flags uint8 (1: has a marker, 2: the marker commits),
//	  marker offset int64, last seen (Unix ms) int64,
//	  batch count uint8, then per batch (oldest first): first sequence
//	  int32, last sequence int32, first offset int64, last offset int64,
//	then the CRC-32C of everything before it.
//
// The recency order is the LRU order, so a restored state evicts the same
// producers the written one would have. A snapshot is derived data: one
// that does not decode, or whose offset is beyond the log end, is ignored
// (the state is rebuilt from the log instead).
const (
	producerSnapshotSuffix  = ".snapshot"
	producerSnapshotVersion = 1
	// producerSnapshotsKept is how many snapshots a log keeps, the newest:
	// the one before the newest still serves after a truncation below the
	// newest (a follower cutting its diverged tail).
	producerSnapshotsKept = 2

	snapHeaderSize = 4 + 2 + 8 + 4
	snapEntrySize  = 8 + 2 + 4 + 1 + 8 + 8 + 1
	snapBatchSize  = 4 + 4 + 8 + 8
)

var producerSnapshotMagic = [4]byte{'S', 'P', 'S', '1'}

const (
	snapHasMarker = 1 << iota
	snapCommit
)

// encodeProducerSnapshot encodes the producers of ps not expired at now as
// of offset.
func encodeProducerSnapshot(ps *ProducerStates, offset int64, now time.Time) []byte {
	b := make([]byte, 0, snapHeaderSize+len(ps.entries)*(snapEntrySize+2*snapBatchSize)+4)
	b = append(b, producerSnapshotMagic[:]...)
	b = binary.BigEndian.AppendUint16(b, producerSnapshotVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(offset))
	countAt := len(b)
	b = binary.BigEndian.AppendUint32(b, 0)
	n := uint32(0)
	for e := ps.lru.prev; e != &ps.lru; e = e.prev {
		if ps.expired(e, now) {
			continue
		}
		n++
		b = binary.BigEndian.AppendUint64(b, uint64(e.id))
		b = binary.BigEndian.AppendUint16(b, uint16(e.Epoch))
		b = binary.BigEndian.AppendUint32(b, uint32(e.CoordinatorEpoch))
		var flags byte
		if e.HasMarker {
			flags |= snapHasMarker
			if e.Marker.Commit {
				flags |= snapCommit
			}
		}
		b = append(b, flags)
		b = binary.BigEndian.AppendUint64(b, uint64(e.Marker.Offset))
		b = binary.BigEndian.AppendUint64(b, uint64(e.lastSeen.UnixMilli()))
		b = append(b, byte(len(e.Batches)))
		for _, m := range e.Batches {
			b = binary.BigEndian.AppendUint32(b, uint32(m.FirstSeq))
			b = binary.BigEndian.AppendUint32(b, uint32(m.LastSeq))
			b = binary.BigEndian.AppendUint64(b, uint64(m.FirstOffset))
			b = binary.BigEndian.AppendUint64(b, uint64(m.LastOffset))
		}
	}
	binary.BigEndian.PutUint32(b[countAt:], n)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// snapshotOffset checks a snapshot's frame (size, magic, version, CRC) and
// returns its offset.
func snapshotOffset(raw []byte) (int64, error) {
	if len(raw) < snapHeaderSize+4 {
		return 0, corruptf("producer snapshot of %d bytes", len(raw))
	}
	body, sum := raw[:len(raw)-4], binary.BigEndian.Uint32(raw[len(raw)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return 0, corruptf("producer snapshot checksum mismatch")
	}
	if [4]byte(raw[:4]) != producerSnapshotMagic {
		return 0, corruptf("producer snapshot magic %q", raw[:4])
	}
	if v := binary.BigEndian.Uint16(raw[4:]); v != producerSnapshotVersion {
		return 0, corruptf("producer snapshot version %d, this broker reads %d", v, producerSnapshotVersion)
	}
	off := int64(binary.BigEndian.Uint64(raw[6:]))
	if off < 0 {
		return 0, corruptf("producer snapshot offset %d", off)
	}
	return off, nil
}

// restoreSnapshot replaces the state with the snapshot raw, its producers
// seen when the snapshot says or at now, whichever is earlier (a clock that
// stepped back must not extend their lives). On error the state is empty.
func (ps *ProducerStates) restoreSnapshot(raw []byte, now time.Time) (int64, error) {
	ps.Reset()
	off, err := snapshotOffset(raw)
	if err != nil {
		return 0, err
	}
	if err := ps.decodeEntries(raw[snapHeaderSize-4:len(raw)-4], off, now); err != nil {
		ps.Reset()
		return 0, err
	}
	return off, nil
}

func (ps *ProducerStates) decodeEntries(b []byte, off int64, now time.Time) error {
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	if uint64(n)*snapEntrySize > uint64(len(b)) {
		return corruptf("producer snapshot: %d entries in %d bytes", n, len(b))
	}
	seen := make(map[int64]bool, n)
	for i := range n {
		if len(b) < snapEntrySize {
			return corruptf("producer snapshot: entry %d cut short", i)
		}
		id := int64(binary.BigEndian.Uint64(b))
		epoch := int16(binary.BigEndian.Uint16(b[8:]))
		coordEpoch := int32(binary.BigEndian.Uint32(b[10:]))
		flags := b[14]
		markerOff := int64(binary.BigEndian.Uint64(b[15:]))
		lastSeen := time.UnixMilli(int64(binary.BigEndian.Uint64(b[23:])))
		nb := int(b[31])
		b = b[snapEntrySize:]
		switch {
		case id < 0 || epoch < 0 || seen[id]:
			return corruptf("producer snapshot: entry %d: producer %d epoch %d", i, id, epoch)
		case nb > MaxProducerBatches || len(b) < nb*snapBatchSize:
			return corruptf("producer snapshot: entry %d: %d batches", i, nb)
		case flags&snapHasMarker != 0 && (markerOff < 0 || markerOff >= off):
			return corruptf("producer snapshot: entry %d: marker at %d, snapshot at %d", i, markerOff, off)
		}
		seen[id] = true
		if lastSeen.After(now) {
			lastSeen = now
		}
		e := ps.touch(id, epoch, lastSeen)
		// touch does not return nil here: the producer is new.
		e.CoordinatorEpoch = coordEpoch
		if flags&snapHasMarker != 0 {
			e.Marker, e.HasMarker = ProducerMarker{Commit: flags&snapCommit != 0, Offset: markerOff}, true
		}
		for j := range nb {
			m := ProducerBatch{
				FirstSeq:    int32(binary.BigEndian.Uint32(b)),
				LastSeq:     int32(binary.BigEndian.Uint32(b[4:])),
				FirstOffset: int64(binary.BigEndian.Uint64(b[8:])),
				LastOffset:  int64(binary.BigEndian.Uint64(b[16:])),
			}
			b = b[snapBatchSize:]
			if m.FirstOffset < 0 || m.FirstOffset > m.LastOffset || m.LastOffset >= off {
				return corruptf("producer snapshot: entry %d batch %d: offsets %d..%d, snapshot at %d", i, j, m.FirstOffset, m.LastOffset, off)
			}
			e.Batches = append(e.Batches, m)
		}
	}
	if len(b) != 0 {
		return corruptf("producer snapshot: %d bytes after the entries", len(b))
	}
	return nil
}

// ProducerLoad tells how a ProducerStates was loaded.
type ProducerLoad struct {
	// SnapshotOffset is the offset of the snapshot the state started from,
	// -1 when none served and the log's tail was scanned instead.
	SnapshotOffset int64
	// Segments and Bytes are the segment files and the bytes of batches
	// whose headers were read.
	Segments int
	Bytes    int64
}

// Load replaces the state with the log's, the way a partition rebuilds it
// when its log is opened or truncated: from the newest producer snapshot
// at or below the log end (see WriteProducerSnapshot), then the batch
// headers after it. Without a usable snapshot it scans the batch headers of
// the last maxBytes or so of l (see WalkTailHeaders): producers whose
// latest batch lies further back are then unknown. Producers found in the
// log are taken as seen at now: batch timestamps are the clients' and may
// be old (mirrored data). The bound holds while loading: more producers
// than MaxEntries leave the most recent ones, as if they had just been
// appended. Damaged batches end the walk of their segment and are
// reported, with the state loaded from everything else. An end-transaction
// marker read from the log gives its producer's epoch only: its
// coordinator epoch is in its record, which the walk does not read (a
// snapshot keeps both).
func (ps *ProducerStates) Load(l *Log, maxBytes int64, now time.Time) (ProducerLoad, error) {
	info := ProducerLoad{SnapshotOffset: -1}
	visit := func(h *record.Header) {
		info.Bytes += int64(h.Size())
		switch {
		case h.ProducerID < 0:
		case h.Control():
			ps.RecordMarker(h, nil, now)
		default:
			ps.Record(h, now)
		}
	}
	if off, ok := l.restoreProducerSnapshot(ps, now); ok {
		info.SnapshotOffset = off
		n, err := l.WalkHeadersFrom(off, visit)
		info.Segments = n
		return info, err
	}
	ps.Reset()
	n, err := l.walkTailHeaders(maxBytes, visit)
	info.Segments = n
	return info, err
}

// producerSnapshots lists the offsets of the snapshot files in dir,
// ascending.
func producerSnapshots(dir string) ([]int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("log: list producer snapshots: %w", err)
	}
	var offs []int64
	for _, e := range entries {
		if off, ok := parseSnapshotName(e.Name()); ok && e.Type().IsRegular() {
			offs = append(offs, off)
		}
	}
	slices.Sort(offs)
	return offs, nil
}

func parseSnapshotName(name string) (int64, bool) {
	stem, ok := strings.CutSuffix(name, producerSnapshotSuffix)
	if !ok || len(stem) != 20 || strings.IndexFunc(stem, func(c rune) bool { return c < '0' || c > '9' }) >= 0 {
		return 0, false
	}
	off, err := strconv.ParseInt(stem, 10, 64)
	return off, err == nil
}

// restoreProducerSnapshot loads ps from the newest snapshot that decodes
// and lies within the log (between its start and end), reporting its
// offset; false, with ps empty, when there is none. Damaged snapshots and
// those beyond the log end are removed as they are met, so that a later
// write cannot be shadowed by them.
func (l *Log) restoreProducerSnapshot(ps *ProducerStates, now time.Time) (int64, bool) {
	offs, err := producerSnapshots(l.dir)
	if err != nil {
		l.logger.Warn("log: cannot list producer snapshots; scanning the log instead", "dir", l.dir, "err", err)
		return 0, false
	}
	for i := len(offs) - 1; i >= 0; i-- {
		name := segmentName(offs[i], producerSnapshotSuffix)
		path := filepath.Join(l.dir, name)
		raw, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile (a truncation)
		}
		var off int64
		if err == nil {
			off, err = ps.restoreSnapshot(raw, now)
		}
		if err == nil && off != offs[i] {
			err = corruptf("producer snapshot of offset %d named %s", off, name)
		}
		if err == nil {
			start, end := l.LogStartOffset(), l.LogEndOffset()
			if off >= start && off <= end {
				return off, true
			}
			err = fmt.Errorf("producer snapshot at %d outside the log [%d, %d]", off, start, end)
		}
		ps.Reset()
		l.logger.Warn("log: discarding producer snapshot", "dir", l.dir, "file", name, "err", err)
		if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			l.logger.Warn("log: cannot remove producer snapshot", "dir", l.dir, "file", name, "err", rerr)
		}
	}
	return 0, false
}

// WriteProducerSnapshot writes ps as of the log end (tmp, fsync, rename,
// fsync dir) and keeps only the newest snapshots, returning the snapshot's
// offset. The caller guarantees that ps has recorded every producer batch
// below the log end and holds off changes to ps meanwhile; batches
// without a producer may be appended concurrently. It takes the writer
// lock, so it is ordered with truncations, which remove the snapshots
// beyond their cut. A partition writes one when a segment was rolled and
// before it closes its log.
func (l *Log) WriteProducerSnapshot(ps *ProducerStates, now time.Time) (int64, error) {
	return l.WriteProducerSnapshotTo(nil, ps, now)
}

// WriteProducerSnapshotTo is WriteProducerSnapshot with the fsyncs left to
// batch (see CloseBatched); a nil batch syncs at once.
func (l *Log) WriteProducerSnapshotTo(batch *SyncBatch, ps *ProducerStates, now time.Time) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writable(); err != nil {
		return 0, err
	}
	off := l.leo.Load()
	name := segmentName(off, producerSnapshotSuffix)
	if err := batch.PublishFile(l.dir, name, encodeProducerSnapshot(ps, off, now)); err != nil {
		return 0, fmt.Errorf("log: write producer snapshot: %w", err)
	}
	offs, err := producerSnapshots(l.dir)
	if err != nil {
		return off, err
	}
	if len(offs) > producerSnapshotsKept {
		if err := l.removeProducerSnapshots(offs[:len(offs)-producerSnapshotsKept]); err != nil {
			return off, err
		}
	}
	return off, nil
}

// removeProducerSnapshotsOutside removes the snapshots below start or
// above end (Kafka's deleteSnapshotsBefore and the cut of
// truncateAndReload): a truncation or a retention deletion made them
// describe records the log no longer holds. mu must be held.
func (l *Log) removeProducerSnapshotsOutside(start, end int64) error {
	offs, err := producerSnapshots(l.dir)
	if err != nil {
		return err
	}
	var gone []int64
	for _, off := range offs {
		if off < start || off > end {
			gone = append(gone, off)
		}
	}
	return l.removeProducerSnapshots(gone)
}

func (l *Log) removeProducerSnapshots(offs []int64) error {
	if len(offs) == 0 {
		return nil
	}
	var errs []error
	for _, off := range offs {
		if err := os.Remove(filepath.Join(l.dir, segmentName(off, producerSnapshotSuffix))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("log: remove producer snapshot: %w", err))
		}
	}
	errs = append(errs, syncDir(l.dir))
	return errors.Join(errs...)
}
