package log

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/strata-broker/strata/broker/record"
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
// the latest epoch, and makes the record durable before the batch that
// carries it is written: a checkpoint that runs ahead of the log is trimmed at
// load, one that lags could not be repaired without a scan. mu must be held.
func (l *Log) assignEpochLocked(epoch int32, offset int64) error {
	l.epMu.RLock()
	latest := UndefinedEpoch
	if n := len(l.epochs); n > 0 {
		latest = l.epochs[n-1].Epoch
	}
	l.epMu.RUnlock()
	if epoch <= latest {
		return nil
	}
	next := append(l.Epochs(), EpochEntry{Epoch: epoch, StartOffset: offset})
	if err := l.writeEpochs(next); err != nil {
		return l.fail(err)
	}
	l.epMu.Lock()
	l.epochs = next
	l.epMu.Unlock()
	return nil
}

// truncateEpochsLocked forgets epochs that start at or after end, after a
// truncation of the log to end. mu must be held.
func (l *Log) truncateEpochsLocked(end int64) error {
	cur := l.Epochs()
	keep := slices.DeleteFunc(slices.Clone(cur), func(e EpochEntry) bool { return e.StartOffset >= end })
	if len(keep) == len(cur) {
		return nil
	}
	if err := l.writeEpochs(keep); err != nil {
		return l.fail(err)
	}
	l.epMu.Lock()
	l.epochs = keep
	l.epMu.Unlock()
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

// loadEpochs reads the leader epoch checkpoint after recovery has settled the
// log's extent. Entries at or past the log end (written before a batch that a
// crash lost) are dropped. A missing or unreadable checkpoint is rebuilt from
// the batch headers, which carry their leader epoch.
func (l *Log) loadEpochs() error {
	leo, start := l.leo.Load(), l.logStart.Load()
	raw, err := os.ReadFile(filepath.Join(l.dir, leaderEpochFile))
	var entries []EpochEntry
	if err == nil {
		entries, err = decodeEpochs(raw)
		if err != nil {
			l.logger.Warn("log: unreadable leader epoch checkpoint; rebuilding it from the log", "dir", l.dir, "err", err)
		}
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrNotExist) && leo > start {
		if entries, err = l.scanEpochs(); err != nil {
			return err
		}
		l.epochs = entries
		return l.writeEpochs(entries)
	}
	kept := slices.DeleteFunc(entries, func(e EpochEntry) bool { return e.StartOffset >= leo })
	l.epochs = kept
	if len(kept) != len(entries) {
		return l.writeEpochs(kept)
	}
	return nil
}

// scanEpochs reads every batch header to find where each epoch starts.
func (l *Log) scanEpochs() ([]EpochEntry, error) {
	var entries []EpochEntry
	for _, s := range l.segs {
		size := s.size.Load()
		sc := newScanner(s.f, size, 1<<16)
		_, _, _, err := sc.walk(0, s.base, false, func(_ int64, h *record.Header) {
			if h.BaseOffset < l.logStart.Load() {
				return
			}
			if n := len(entries); n == 0 || h.PartitionLeaderEpoch > entries[n-1].Epoch {
				entries = append(entries, EpochEntry{Epoch: h.PartitionLeaderEpoch, StartOffset: h.BaseOffset})
			}
		})
		if err != nil {
			return nil, fmt.Errorf("log: rebuild leader epochs from %s: %w", s.name(), err)
		}
	}
	return entries, nil
}
