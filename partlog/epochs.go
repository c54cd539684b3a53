package partlog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/strata-broker/strata/record"
)

// leaderEpochFile records, for every leader epoch in the log, the offset of
// its first batch. It is what lets a replica that comes back after a failover
// find where its log diverged from the new leader's, and truncate the
// uncommitted tail it wrote as the old leader.
const leaderEpochFile = "leader-epoch.checkpoint"

// UndefinedEpoch is the epoch of an empty log, or of an offset before every
// epoch the log knows.
const UndefinedEpoch int32 = -1

// EpochEntry is the first offset written in a leader epoch.
type EpochEntry struct {
	Epoch       int32
	StartOffset int64
}

// Epochs returns the log's leader epochs in order.
func (l *Log) Epochs() []EpochEntry {
	l.epMu.RLock()
	defer l.epMu.RUnlock()
	return slices.Clone(l.epochs)
}

// LatestEpoch is the epoch of the last batch in the log, UndefinedEpoch if the
// log holds none.
func (l *Log) LatestEpoch() int32 {
	l.epMu.RLock()
	defer l.epMu.RUnlock()
	if len(l.epochs) == 0 {
		return UndefinedEpoch
	}
	return l.epochs[len(l.epochs)-1].Epoch
}

// EndOffsetForEpoch answers a replica asking where epoch ends in this log: it
// returns the largest epoch in the log that is at most epoch, and the offset
// after its last batch (the start of the next epoch, or the log end offset for
// the latest one). For an epoch older than every epoch the log knows it
// returns (epoch, start of the first known epoch); for an empty log
// (UndefinedEpoch, LogEndOffset).
func (l *Log) EndOffsetForEpoch(epoch int32) (int32, int64) {
	l.epMu.RLock()
	defer l.epMu.RUnlock()
	i, found := slices.BinarySearchFunc(l.epochs, epoch, func(e EpochEntry, t int32) int {
		return int(e.Epoch) - int(t)
	})
	if !found {
		i-- // the largest epoch below
	}
	switch {
	case len(l.epochs) == 0:
		return UndefinedEpoch, l.leo.Load()
	case i < 0:
		return epoch, l.epochs[0].StartOffset
	case i == len(l.epochs)-1:
		return l.epochs[i].Epoch, l.leo.Load()
	default:
		return l.epochs[i].Epoch, l.epochs[i+1].StartOffset
	}
}

// assignEpochLocked records that epoch starts at offset if it is newer than
// the latest epoch. The checkpoint file is not written here: an fsync on the
// produce path stalls for hundreds of milliseconds behind a busy disk. It is
// written before the recovery point checkpoint moves (see
// persistEpochsLocked), and recovery rebuilds the epochs of everything past
// the recovery point from the batches themselves, which carry their epoch.
// mu must be held.
func (l *Log) assignEpochLocked(epoch int32, offset int64) {
	l.epMu.Lock()
	defer l.epMu.Unlock()
	if n := len(l.epochs); n > 0 && epoch <= l.epochs[n-1].Epoch {
		return
	}
	l.epochs = append(l.epochs, EpochEntry{Epoch: epoch, StartOffset: offset})
	l.epochsDirty = true
}

// truncateEpochsLocked forgets epochs that start at or after end, after a
// truncation of the log to end. mu must be held.
func (l *Log) truncateEpochsLocked(end int64) {
	l.epMu.Lock()
	defer l.epMu.Unlock()
	n := len(l.epochs)
	l.epochs = slices.DeleteFunc(l.epochs, func(e EpochEntry) bool { return e.StartOffset >= end })
	if len(l.epochs) != n {
		l.epochsDirty = true
	}
}

// truncateEpochsFromStartLocked forgets the epochs that end at or below
// start, the new log start offset, as Kafka's truncateFromStart does. The
// epoch holding start stays, its start moved up to start: the log's latest
// epoch must survive even a log emptied up to its end (followers fetch
// with it, and divergence is judged by it), and an epoch older than every
// remaining one then ends at the log start, below which the log answers
// nothing anyway. mu must be held.
func (l *Log) truncateEpochsFromStartLocked(start int64) {
	l.epMu.Lock()
	defer l.epMu.Unlock()
	if next := epochsFromStart(l.epochs, start); !slices.Equal(next, l.epochs) {
		l.epochs = next
		l.epochsDirty = true
	}
}

// epochsFromStart returns entries without the epochs that end at or below
// start, and with the epoch holding start starting there (see
// truncateEpochsFromStartLocked). entries is not modified.
func epochsFromStart(entries []EpochEntry, start int64) []EpochEntry {
	holder := -1
	for i, e := range entries {
		if e.StartOffset <= start {
			holder = i
		}
	}
	if holder < 0 || (holder == 0 && entries[0].StartOffset == start) {
		return entries
	}
	out := slices.Clone(entries[holder:])
	out[0].StartOffset = start
	return out
}

// persistEpochsLocked writes the epoch checkpoint durably if it changed. It
// runs before every recovery point checkpoint, so that every epoch starting
// below the recovery point is on disk. ckMu must be held.
func (l *Log) persistEpochsLocked() error { return l.persistEpochsTo(nil) }

// persistEpochsTo is persistEpochsLocked with the fsyncs left to batch
// (nil: at once).
func (l *Log) persistEpochsTo(batch *SyncBatch) error {
	l.epMu.Lock()
	if !l.epochsDirty {
		l.epMu.Unlock()
		return nil
	}
	entries := slices.Clone(l.epochs)
	l.epochsDirty = false
	l.epMu.Unlock()
	if err := batch.PublishFile(l.dir, leaderEpochFile, encodeEpochs(entries)); err != nil {
		err = fmt.Errorf("log: leader epochs: %w", err)
		l.epMu.Lock()
		l.epochsDirty = true
		l.epMu.Unlock()
		return l.fail(err)
	}
	return nil
}

func (l *Log) writeEpochs(entries []EpochEntry) error {
	if err := PublishFile(l.dir, leaderEpochFile, encodeEpochs(entries)); err != nil {
		return fmt.Errorf("log: leader epochs: %w", err)
	}
	return nil
}

// encodeEpochs writes a version line, a count line and "epoch offset" lines,
// the layout Kafka uses for the same file.
func encodeEpochs(entries []EpochEntry) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "0\n%d\n", len(entries))
	for _, e := range entries {
		fmt.Fprintf(&b, "%d %d\n", e.Epoch, e.StartOffset)
	}
	return b.Bytes()
}

func decodeEpochs(raw []byte) ([]EpochEntry, error) {
	sc := bufio.NewScanner(bytes.NewReader(raw))
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) < 2 || lines[0] != "0" {
		return nil, errors.New("not a version 0 leader epoch checkpoint")
	}
	n, err := strconv.Atoi(lines[1])
	if err != nil || n != len(lines)-2 {
		return nil, fmt.Errorf("count %q does not match %d entries", lines[1], len(lines)-2)
	}
	entries := make([]EpochEntry, 0, n)
	for _, line := range lines[2:] {
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("bad entry %q", line)
		}
		e, err1 := strconv.ParseInt(f[0], 10, 32)
		o, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil || e < 0 || o < 0 {
			return nil, fmt.Errorf("bad entry %q", line)
		}
		if k := len(entries); k > 0 && (int32(e) <= entries[k-1].Epoch || o < entries[k-1].StartOffset) {
			return nil, fmt.Errorf("entry %q out of order", line)
		}
		entries = append(entries, EpochEntry{Epoch: int32(e), StartOffset: o})
	}
	return entries, nil
}

// loadEpochs sets up the epoch cache after recovery has settled the log's
// extent. Entries of the checkpoint that start below trusted (the recovery
// point the log was opened with, or its end after a clean shutdown) are
// taken as they are; the epochs of the log from there on are read from the
// batch headers, since the checkpoint may not have caught up with them. A
// missing or unreadable checkpoint is rebuilt from every batch.
//
// With later, a changed checkpoint is left to the next flush
// (persistEpochsLocked): the recovery point it must be durable before has
// not moved.
func (l *Log) loadEpochs(trusted int64, later bool) error {
	raw, err := os.ReadFile(filepath.Join(l.dir, leaderEpochFile))
	var entries []EpochEntry
	if err == nil {
		entries, err = decodeEpochs(raw)
		if err != nil {
			l.logger.Warn("log: unreadable leader epoch checkpoint; rebuilding it from the log", "dir", l.dir, "err", err)
		}
	}
	if err != nil {
		entries, trusted = nil, 0
	}
	start := l.logStart.Load()
	from := max(min(trusted, l.leo.Load()), start)
	// The entry holding the log start is kept even at from: after records
	// were deleted up to the log end, no batch is left to read it back from.
	holder := -1
	for i, e := range entries {
		if e.StartOffset <= start {
			holder = i
		}
	}
	var kept []EpochEntry
	for i, e := range entries {
		if e.StartOffset < from || i == holder {
			kept = append(kept, e)
		}
	}
	scanned, err := l.scanEpochs(from, kept)
	if err != nil {
		return err
	}
	scanned = epochsFromStart(scanned, start)
	// Readers may be looking already: Recover loads a log in use.
	l.epMu.Lock()
	l.epochs = scanned
	l.epMu.Unlock()
	if !slices.Equal(scanned, entries) {
		if later {
			l.epMu.Lock()
			l.epochsDirty = true
			l.epMu.Unlock()
			return nil
		}
		return l.writeEpochs(scanned)
	}
	return nil
}

// scanEpochs extends entries with the epochs of the batches from offset from
// on, read from their headers.
func (l *Log) scanEpochs(from int64, entries []EpochEntry) ([]EpochEntry, error) {
	for _, s := range l.segs {
		size := s.size.Load()
		if s.next.Load() <= from || size == 0 {
			continue
		}
		pos, base := int64(0), s.base
		if from > s.base {
			p, b, err := l.locate(s, size, from)
			if err != nil {
				return nil, fmt.Errorf("log: rebuild leader epochs from %s: %w", s.name(), err)
			}
			pos, base = p, b
		}
		f, err := s.acquire()
		if err != nil {
			return nil, fmt.Errorf("log: rebuild leader epochs from %s: %w", s.name(), err)
		}
		sc := newScanner(f, size, walkChunk)
		_, _, _, err = sc.walk(pos, base, false, func(_ int64, h *record.Header) {
			if n := len(entries); n == 0 || h.PartitionLeaderEpoch > entries[n-1].Epoch {
				entries = append(entries, EpochEntry{Epoch: h.PartitionLeaderEpoch, StartOffset: h.BaseOffset})
			}
		})
		s.release()
		if err != nil {
			return nil, fmt.Errorf("log: rebuild leader epochs from %s: %w", s.name(), err)
		}
	}
	return entries, nil
}
