package rlm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/tiering"
	"github.com/strata-broker/strata/tiering/objstore"
)

// BufferPool supplies read buffers; the broker's fetch buffers have this
// shape.
type BufferPool interface {
	Get(n int) *[]byte
	Put(*[]byte)
}

// Read serves a fetch below the local log start from the bucket, and
// reports whether the bucket holds offset (if not, nothing was read: the
// local log has it, or nothing does). With a pool, the bytes are gathered
// in one of its buffers, returned as the second result when the data is a
// slice of it (the caller gives it back once the data is sent), or given
// back at once.
func (p *Partition) Read(ctx context.Context, offset int64, maxBytes int, pool BufferPool) (tiering.ReadResult, *[]byte, bool, error) {
	var res tiering.ReadResult
	var buf *[]byte
	remote, err := p.withSegment(offset, func(segs []tiering.SegmentMeta, i int) error {
		var window []byte
		if pool != nil {
			buf = pool.Get(maxBytes)
			window = *buf
		}
		var err error
		res, err = p.m.reader.Read(ctx, segs, i, offset, maxBytes, window)
		if buf != nil && (err != nil || !res.InBuf) {
			// The data is not in buf (it lacked room, or nothing was read).
			pool.Put(buf)
			buf = nil
		}
		return err
	})
	return res, buf, remote, p.readFailed(ctx, offset, err)
}

// ReadPieces is Read returning the batches where they lie in the reader's
// cache (see tiering.Reader.ReadPieces), for a caller that writes them out
// from there.
func (p *Partition) ReadPieces(ctx context.Context, offset int64, maxBytes int) (tiering.Pieces, bool, error) {
	var pc tiering.Pieces
	remote, err := p.withSegment(offset, func(segs []tiering.SegmentMeta, i int) error {
		var err error
		pc, err = p.m.reader.ReadPieces(ctx, segs, i, offset, maxBytes)
		return err
	})
	return pc, remote, p.readFailed(ctx, offset, err)
}

// withSegment calls read with the partition's remote segments and the one
// holding offset, and reports whether the bucket holds offset (if not,
// read is not called).
//
// A read races with compaction and retention, which write a new manifest
// and then delete the objects the old one named: an object gone under a
// manifest that has since been replaced is read again through the new one.
func (p *Partition) withSegment(offset int64, read func(segs []tiering.SegmentMeta, i int) error) (bool, error) {
	if p.m.reader == nil {
		return false, nil
	}
	m, _ := p.state.get()
	for attempt := 0; ; attempt++ {
		if m == nil {
			return false, nil
		}
		if offset < m.LogStartOffset {
			return true, &partlog.OffsetOutOfRangeError{Offset: offset, Start: m.LogStartOffset, End: p.replica.HighWatermark()}
		}
		i := m.SegmentFor(offset)
		if i < 0 || offset >= m.EndOffset() {
			return false, nil
		}
		err := read(m.Segments, i)
		if errors.Is(err, objstore.ErrNotFound) && attempt < 3 {
			if now, _ := p.state.get(); now != m {
				m = now
				continue
			}
		}
		return true, err
	}
}

// OffsetForTimestamp finds the first offset below the local log start
// whose record timestamp is at least ts: in the first remote segment whose
// largest timestamp reaches ts, from the batch its time index points to,
// decoding records. found is false when no remote record qualifies.
func (p *Partition) OffsetForTimestamp(ctx context.Context, ts int64) (offset, timestamp int64, found bool, err error) {
	r := p.m.reader
	if r == nil {
		return 0, 0, false, nil
	}
	m, _ := p.state.get()
	if m == nil {
		return 0, 0, false, nil
	}
	localStart := p.log.LogStartOffset()
	for i, seg := range m.Segments {
		if seg.BaseOffset >= localStart {
			break // the local log has it
		}
		if seg.MaxTimestamp < ts {
			continue
		}
		start, err := r.TimeIndexStart(ctx, seg, ts)
		if err != nil {
			return 0, 0, false, p.readFailed(ctx, seg.BaseOffset, err)
		}
		for start < min(seg.NextOffset, localStart) {
			res, err := r.Read(ctx, m.Segments, i, start, 1<<20, nil)
			if err != nil {
				return 0, 0, false, p.readFailed(ctx, start, err)
			}
			if len(res.Data) == 0 {
				break
			}
			it := record.NewBatches(res.Data)
			for it.Next() {
				err := p.m.cfg.Decompress(ctx, func() error {
					return record.ScanStored(it.Bytes(), func(r *record.RecordInfo) error {
						if !found && r.Offset >= start && r.Timestamp >= ts {
							offset, timestamp, found = r.Offset, r.Timestamp, true
						}
						return nil
					})
				})
				if err != nil {
					return 0, 0, false, fmt.Errorf("%w: %v", tiering.ErrCorrupt, err)
				}
				if found {
					return offset, timestamp, true, nil
				}
			}
			start = res.NextOffset
		}
	}
	return 0, 0, false, nil
}

// AbortedTransactions returns the aborted transactions a read of [from,
// upTo) from the bucket must report, ordered by marker offset, and the end
// of that read a read_committed consumer may have: upTo, or less when a
// transaction started in the range is not known to be decided. The
// entries are the remote segments' transaction indexes', and the local
// log's when a transaction that started in the range was still open at
// the end of the bucket (its marker is in a segment not uploaded yet).
//
// Such a transaction is undecided when the local log has it open, or it is
// not below the replica's last stable offset (its marker is not
// replicated): uploads stop at the last stable offset, so this happens
// only to a bucket written under another view of the log (a leader that
// lost its marker in a failover, a start state lost). Its records are not
// served as committed: the read ends at its first offset, as replay and
// remote compaction stop there.
func (p *Partition) AbortedTransactions(ctx context.Context, from, upTo int64) ([]partlog.AbortedTxn, int64, error) {
	var found tiering.AbortedSearch
	_, err := p.withSegment(from, func(segs []tiering.SegmentMeta, i int) error {
		var err error
		found, err = p.m.reader.AbortedTransactions(ctx, segs, i, from, upTo)
		return err
	})
	if err != nil {
		return nil, 0, p.readFailed(ctx, from, err)
	}
	out := found.Aborted
	if len(found.Open) == 0 {
		return out, upTo, nil
	}
	seen := make(map[int64]bool, len(out))
	for _, e := range out {
		seen[e.LastOffset] = true
	}
	local := p.log.AbortedTransactions(from, upTo)
	for _, e := range local {
		if !seen[e.LastOffset] {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b partlog.AbortedTxn) int { return cmp.Compare(a.LastOffset, b.LastOffset) })
	end := upTo
	open := p.log.OpenTransactions()
	lso := p.replica.LastStableOffset()
	for _, o := range found.Open {
		aborted := slices.ContainsFunc(local, func(e partlog.AbortedTxn) bool {
			return e.ProducerID == o.ProducerID && e.FirstOffset == o.FirstOffset
		})
		stillOpen := slices.ContainsFunc(open, func(l partlog.OpenTxn) bool {
			return l.ProducerID == o.ProducerID && l.FirstOffset <= o.FirstOffset
		})
		if !aborted && (stillOpen || o.FirstOffset >= lso) {
			end = min(end, max(o.FirstOffset, from))
		}
	}
	return out, end, nil
}
