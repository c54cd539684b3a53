package partlog

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/strata-broker/strata/record"
)

// SegmentWriter writes a segment outside any log, with the same files and
// indexes a log's segments have: the cleaner writes the replacement of a
// run of segments through one, for the local log (Cleaned) or for the
// object store. Its files are named <base><suffix>.log and so on, in dir.
type SegmentWriter struct {
	seg      *segment
	end      int64
	suffix   string
	interval int64
	epochs   []EpochEntry
	closed   bool
	// markers are the offsets of the end-transaction markers written, in
	// order: an aborted-transaction entry of the replaced segments stays
	// in the index only while its marker does (the cleaner drops both
	// once the transaction's records are gone and delete.retention.ms has
	// passed).
	markers []int64
}

// NewSegmentWriter creates the files of a segment starting at base, which
// may hold offsets up to end (exclusive), in dir; suffix follows each file
// name (".log" + suffix).
func NewSegmentWriter(dir string, base, end int64, suffix string, indexIntervalBytes int) (*SegmentWriter, error) {
	if indexIntervalBytes <= 0 {
		indexIntervalBytes = DefaultIndexIntervalBytes
	}
	return newSegmentWriter(dir, base, end, suffix, indexIntervalBytes, time.Now())
}

func newSegmentWriter(dir string, base, end int64, suffix string, interval int, now time.Time) (*SegmentWriter, error) {
	s := newSegment(dir, base, nil, now)
	f, err := os.OpenFile(s.path(logSuffix+suffix), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	s.f = f
	return &SegmentWriter{seg: s, end: end, suffix: suffix, interval: int64(interval)}, nil
}

// Base is the segment's first offset.
func (w *SegmentWriter) Base() int64 { return w.seg.base }

// End is the offset the segment must reach, and not pass.
func (w *SegmentWriter) End() int64 { return w.end }

// Next is the offset the next appended batch must start at.
func (w *SegmentWriter) Next() int64 { return w.seg.next.Load() }

// Size is the number of bytes written so far.
func (w *SegmentWriter) Size() int64 { return w.seg.size.Load() }

// Append writes whole batches, which must continue exactly where the
// segment ends (offsets are never renumbered) and stay below End.
func (w *SegmentWriter) Append(batches []byte) error {
	if w.closed {
		return errors.New("log: segment writer already finished or aborted")
	}
	s := w.seg
	for pos := 0; pos < len(batches); {
		h, err := record.ParseHeader(batches[pos:])
		if err != nil {
			return fmt.Errorf("log: write segment: %w", err)
		}
		if h.BaseOffset != s.next.Load() || h.NextOffset() > w.end {
			return fmt.Errorf("log: write segment: batch %d..%d does not continue the segment at %d below %d",
				h.BaseOffset, h.LastOffset(), s.next.Load(), w.end)
		}
		if s.size.Load()+int64(h.Size()) > maxSegmentBytes {
			return fmt.Errorf("log: write segment: would exceed %d bytes", maxSegmentBytes)
		}
		if n := len(w.epochs); n == 0 || w.epochs[n-1].Epoch != h.PartitionLeaderEpoch {
			w.epochs = append(w.epochs, EpochEntry{Epoch: h.PartitionLeaderEpoch, StartOffset: h.BaseOffset})
		}
		if h.Control() && h.Transactional() && h.ProducerID >= 0 {
			w.markers = append(w.markers, h.BaseOffset)
		}
		s.indexBatch(s.size.Load(), &h, w.interval)
		s.size.Add(int64(h.Size()))
		s.next.Store(h.NextOffset())
		pos += h.Size()
	}
	if _, err := s.f.Write(batches); err != nil {
		return fmt.Errorf("log: write segment: %w", err)
	}
	return nil
}

// KeptAborted returns the entries of entries whose marker the segment
// holds: those the replacement of a run of segments keeps in its index
// (the run's entries whose marker the cleaner dropped go with it).
func (w *SegmentWriter) KeptAborted(entries []AbortedTxn) []AbortedTxn {
	var out []AbortedTxn
	for _, e := range entries {
		if _, kept := slices.BinarySearch(w.markers, e.LastOffset); kept {
			out = append(out, e)
		}
	}
	return out
}

// finish checks that the segment reached End and makes it durable: the
// .log file fsynced, both index files written, the directory fsynced. The
// files stay open. On failure the writer is aborted.
func (w *SegmentWriter) finish() error {
	if w.closed {
		return errors.New("log: segment writer already finished or aborted")
	}
	s := w.seg
	if s.next.Load() != w.end {
		w.Abort()
		return fmt.Errorf("segment ends at %d, not %d", s.next.Load(), w.end)
	}
	s.sealTimeIndex()
	err := s.f.Sync()
	if err == nil {
		s.sealMu.Lock()
		err = s.writeIndexesSuffixed(w.suffix)
		s.sealMu.Unlock()
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		w.Abort()
		return err
	}
	return nil
}

// Finish makes the segment durable and returns its files, open for
// reading, as an uploader takes them. The caller closes them; the files
// stay in the directory until Remove.
func (w *SegmentWriter) Finish() (*SealedSegment, error) {
	if err := w.finish(); err != nil {
		return nil, fmt.Errorf("log: finish segment: %w", err)
	}
	w.closed = true
	s := w.seg
	out := &SealedSegment{Info: SegmentInfo{BaseOffset: s.base, NextOffset: s.next.Load(), Size: s.size.Load(),
		MaxTimestamp: s.maxTS.Load(), Sealed: true, Durable: true}, Log: s.f, Epochs: w.epochs}
	if out.Info.MaxTimestamp == noTimestamp {
		out.Info.MaxTimestamp = -1
	}
	var err error
	if out.Index, err = os.Open(s.path(indexSuffix + w.suffix)); err == nil {
		out.TimeIndex, err = os.Open(s.path(timeIndexSuffix + w.suffix))
	}
	if err != nil {
		out.Close()
		w.Remove()
		return nil, fmt.Errorf("log: finish segment: %w", err)
	}
	return out, nil
}

// Abort closes and deletes the segment's files. It does nothing once the
// segment was committed.
func (w *SegmentWriter) Abort() {
	if w.closed {
		return
	}
	w.closed = true
	w.seg.f.Close()
	w.Remove()
}

// Remove deletes the segment's files.
func (w *SegmentWriter) Remove() {
	for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		os.Remove(w.seg.path(suffix + w.suffix))
	}
}
