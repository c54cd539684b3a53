package partlog

import (
	"errors"
	"fmt"
	"os"
)

// SealedSegment is a sealed segment's files, open for reading: an uploader
// copies them to an object store. The files stay readable until Close even
// if the log deletes the segment meanwhile.
type SealedSegment struct {
	Info                  SegmentInfo
	Log, Index, TimeIndex *os.File
	// TxnIndex is its .txnindex (see DecodeTxnIndex); nil for a segment
	// written outside a log (SegmentWriter), which has none.
	TxnIndex *os.File
	// Epochs are the leader epochs of the segment's records: the one in
	// effect at its base offset, and every one starting inside it.
	Epochs []EpochEntry
}

// ErrNotSealed: the segment is still being written, or its index files
// are not on disk yet; try again later.
var ErrNotSealed = errors.New("segment not sealed yet")

// OpenSealed opens the segment starting at base, if it is sealed and
// durable (fsynced, index files written, its .txnindex among them: seal
// writes it before the segment counts as durable, and Open rebuilds one
// that is missing).
func (l *Log) OpenSealed(base int64) (*SealedSegment, error) {
	l.segMu.RLock()
	var seg *segment
	for _, s := range l.segs {
		if s.base == base {
			seg = s
			break
		}
	}
	l.segMu.RUnlock()
	if seg == nil {
		return nil, fmt.Errorf("segment %d of %s: %w", base, l.dir, os.ErrNotExist)
	}
	// Before sealMu: the load takes it when a rebuild writes index files.
	// A segment whose load failed has no max timestamp to hand out.
	if err := seg.ensureIndexes(); errors.Is(err, errSegmentGone) {
		return nil, fmt.Errorf("segment %d of %s: %w", base, l.dir, os.ErrNotExist)
	} else if err != nil {
		return nil, fmt.Errorf("segment %d of %s: %w", base, l.dir, err)
	}
	seg.sealMu.Lock()
	defer seg.sealMu.Unlock()
	if seg.removed {
		return nil, fmt.Errorf("segment %d of %s: %w", base, l.dir, os.ErrNotExist)
	}
	if !seg.sealed.Load() || !seg.durable.Load() {
		return nil, fmt.Errorf("segment %d of %s: %w", base, l.dir, ErrNotSealed)
	}
	out := &SealedSegment{Info: SegmentInfo{
		BaseOffset: seg.base, NextOffset: seg.next.Load(), Size: seg.size.Load(),
		MaxTimestamp: seg.maxTimestamp(), Sealed: true,
	}}
	if out.Info.MaxTimestamp == noTimestamp {
		out.Info.MaxTimestamp = -1
	}
	var err error
	for _, f := range []struct {
		dst    **os.File
		suffix string
	}{{&out.Log, logSuffix}, {&out.Index, indexSuffix}, {&out.TimeIndex, timeIndexSuffix}, {&out.TxnIndex, txnIndexSuffix}} {
		if *f.dst, err = os.Open(seg.path(f.suffix)); err != nil {
			out.Close()
			return nil, fmt.Errorf("open segment %d of %s for upload: %w", base, l.dir, err)
		}
	}
	for _, e := range l.Epochs() {
		switch {
		case e.StartOffset <= out.Info.BaseOffset:
			out.Epochs = []EpochEntry{{Epoch: e.Epoch, StartOffset: out.Info.BaseOffset}}
		case e.StartOffset < out.Info.NextOffset:
			out.Epochs = append(out.Epochs, e)
		}
	}
	return out, nil
}

// Close closes the files.
func (s *SealedSegment) Close() error {
	var errs []error
	for _, f := range []*os.File{s.Log, s.Index, s.TimeIndex, s.TxnIndex} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
}

// IndexEntry is an offset index entry of an uploaded segment: the batch
// starting at Offset is at byte Position of the .log object.
type IndexEntry struct {
	Offset   int64
	Position int64
}

// TimeEntry is a time index entry: the first batch whose max timestamp
// reached Timestamp starts at Offset.
type TimeEntry struct {
	Timestamp int64
	Offset    int64
}

// DecodeOffsetIndex checks and decodes an .index file of the segment at
// base of size bytes (as uploaded by OpenSealed's reader).
func DecodeOffsetIndex(raw []byte, base, size int64) ([]IndexEntry, error) {
	entries, err := decodeOffsetEntries(raw)
	if err != nil {
		return nil, err
	}
	if err := checkOffsetIndex(entries, size); err != nil {
		return nil, err
	}
	out := make([]IndexEntry, len(entries))
	for i, e := range entries {
		out[i] = IndexEntry{Offset: base + int64(e.rel), Position: int64(e.pos)}
	}
	return out, nil
}

// DecodeTimeIndex checks and decodes a .timeindex file of the segment
// holding offsets [base, next).
func DecodeTimeIndex(raw []byte, base, next int64) ([]TimeEntry, error) {
	entries, err := decodeTimeEntries(raw)
	if err != nil {
		return nil, err
	}
	if err := checkTimeIndex(entries, base, next); err != nil {
		return nil, err
	}
	out := make([]TimeEntry, len(entries))
	for i, e := range entries {
		out[i] = TimeEntry{Timestamp: e.ts, Offset: base + int64(e.rel)}
	}
	return out, nil
}
