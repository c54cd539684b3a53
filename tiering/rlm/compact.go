package rlm

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"sort"
	"time"

	"github.com/strata-broker/strata/compaction"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/tiering"
	"github.com/strata-broker/strata/topicconfig"
)

// A compacted topic with remote storage is compacted in the bucket too, by
// the partition's leader in its tiering round: the same cleaning pass as on
// local disk, over the manifest's segments. Cleaned segments are uploaded
// as new objects, a manifest naming them in place of the segments they
// replace is written, and only then are the old objects deleted (a crash
// in between leaves them to garbage collection). The manifest's CompactedTo
// plays the local cleaner offset's part.

// compactTask compacts a partition's remote segments.
type compactTask struct {
	*env
	tp     TopicPartition
	layout tiering.Layout
	leader leadership
	state  *remoteState
}

// compact runs a cleaning pass over the remote segments when they are due,
// and returns the manifest in effect afterwards.
func (c *compactTask) compact(ctx context.Context, m *tiering.PartitionManifest, epoch int32, cfg topicconfig.Topic) *tiering.PartitionManifest {
	if !cfg.CompactEnabled() || len(m.Segments) == 0 {
		return m
	}
	rl := &remoteLog{ctx: ctx, task: c, m: m, epoch: epoch, dir: c.compactDir, indexInterval: int(cfg.IndexIntervalBytes),
		txns: map[string]partlog.TxnIndex{}}
	pol := compaction.TopicPolicy(cfg)
	// Measured to the bucket's end first: most rounds stop here, without
	// reading an index.
	if d := compaction.Inspect(rl.Segments(), rl.LogStartOffset(), rl.CleanerOffset(), m.EndOffset(), pol, c.now()); !d.Due(pol) {
		return m
	}
	upper, err := rl.stableEnd()
	if err != nil {
		c.metrics.failed(stepCompact)
		c.logger.Warn("tiering: remote compaction failed", "topic", c.tp.Topic, "partition", c.tp.Partition, "err", err)
		return m
	}
	d := compaction.Inspect(rl.Segments(), rl.LogStartOffset(), rl.CleanerOffset(), upper, pol, c.now())
	if !d.Due(pol) {
		return m
	}
	if err := os.RemoveAll(rl.dir); err != nil {
		c.logger.Warn("tiering: cannot empty the remote compaction directory", "dir", rl.dir, "err", err)
		return m
	}
	if err := os.MkdirAll(rl.dir, 0o755); err != nil {
		c.logger.Warn("tiering: cannot create the remote compaction directory", "dir", rl.dir, "err", err)
		return m
	}
	defer func() {
		rl.closeSegment()
		os.RemoveAll(rl.dir)
	}()
	if c.compactor == nil {
		// The tiering loop's own map: the local cleaner runs beside it.
		c.compactor = &compaction.Cleaner{Map: compaction.NewOffsetMap(c.mapBytes), Limiter: c.limiter, Now: c.now}
	}
	started := c.now()
	st, err := c.compactor.Clean(ctx, rl, d, pol)
	if err != nil {
		c.metrics.failed(stepCompact)
		c.logger.Warn("tiering: remote compaction failed", "topic", c.tp.Topic, "partition", c.tp.Partition, "err", err)
		return rl.m
	}
	c.logger.Info("tiering: compacted remote segments", "topic", c.tp.Topic, "partition", c.tp.Partition,
		"cleaned_to", st.CleanedTo, "segments", st.Segments, "bytes_before", st.BytesRead, "bytes_after", st.BytesWritten,
		"records_read", st.RecordsRead, "records_kept", st.RecordsKept, "took", c.now().Sub(started).Round(time.Millisecond))
	return rl.m
}

// remoteLog is a partition's remote segments as the cleaner sees them. It
// reads one downloaded segment at a time, sequentially, as a pass does.
type remoteLog struct {
	ctx           context.Context
	task          *compactTask
	m             *tiering.PartitionManifest
	epoch         int32
	dir           string
	indexInterval int

	// txns are the segments' transaction indexes read in this pass (and
	// those of the segments it uploaded), by object key.
	txns map[string]partlog.TxnIndex

	seg  tiering.SegmentMeta // the downloaded segment, if f is not nil
	f    *os.File
	size int64
	// pos and at: the position of the batch starting at offset at, where a
	// sequential read goes on.
	pos, at int64
}

// Segments are the manifest's, all sealed and durable, followed by an empty
// one at the remote end that stands for the active segment Inspect leaves
// alone.
func (r *remoteLog) Segments() []partlog.SegmentInfo {
	out := make([]partlog.SegmentInfo, 0, len(r.m.Segments)+1)
	for _, s := range r.m.Segments {
		out = append(out, partlog.SegmentInfo{BaseOffset: s.BaseOffset, NextOffset: s.NextOffset, Size: s.Size,
			MaxTimestamp: s.MaxTimestamp, Sealed: true, Durable: true})
	}
	end := r.m.EndOffset()
	return append(out, partlog.SegmentInfo{BaseOffset: end, NextOffset: end, MaxTimestamp: -1})
}

func (r *remoteLog) LogStartOffset() int64 { return r.m.LogStartOffset }

func (r *remoteLog) CleanerOffset() int64 { return max(r.m.CompactedTo, r.m.LogStartOffset) }

// txnIndex returns seg's transaction index, read once per pass.
func (r *remoteLog) txnIndex(ctx context.Context, seg tiering.SegmentMeta) (partlog.TxnIndex, error) {
	if seg.TxnIndexKey == "" {
		return partlog.TxnIndex{}, nil
	}
	if x, ok := r.txns[seg.TxnIndexKey]; ok {
		return x, nil
	}
	x, err := tiering.ReadTxnIndex(ctx, r.task.store, seg)
	if err != nil {
		return partlog.TxnIndex{}, err
	}
	r.txns[seg.TxnIndexKey] = x
	return x, nil
}

// stableEnd is where the pass must stop: the bucket's end, or the first
// offset of the earliest transaction open there. Such a transaction's
// marker is not in the bucket yet (only on the leader's disk), so the
// bucket cannot tell whether its records are aborted; the pass waits for
// the marker's upload, as the local cleaner waits below the last stable
// offset.
func (r *remoteLog) stableEnd() (int64, error) {
	end := r.m.EndOffset()
	if len(r.m.Segments) == 0 {
		return end, nil
	}
	x, err := r.txnIndex(r.ctx, r.m.Segments[len(r.m.Segments)-1])
	if err != nil {
		return 0, fmt.Errorf("remote compaction: %w", err)
	}
	for _, o := range x.End {
		end = min(end, o.FirstOffset)
	}
	return end, nil
}

// AbortedTransactions reads the aborted transactions with a record or a
// marker in [from, upTo) from the indexes of the segments from the one
// holding from on, as far as their markers lie (tiering.CollectAborted).
func (r *remoteLog) AbortedTransactions(from, upTo int64) ([]partlog.AbortedTxn, error) {
	segs := r.m.Segments
	i := sort.Search(len(segs), func(k int) bool { return segs[k].NextOffset > from })
	found, err := tiering.CollectAborted(r.ctx, segs, i, from, upTo, r.txnIndex)
	if err != nil {
		return nil, fmt.Errorf("remote compaction: %w", err)
	}
	if len(found.Open) > 0 {
		// stableEnd keeps passes below these: reaching one is a bug, and
		// guessing its outcome could drop committed records.
		return nil, fmt.Errorf("remote compaction: the transaction of producer %d from offset %d has no marker in the bucket",
			found.Open[0].ProducerID, found.Open[0].FirstOffset)
	}
	return found.Aborted, nil
}

// TransactionsOpenAt lists the transactions open at the start of the
// remote segment starting at base, from its index.
func (r *remoteLog) TransactionsOpenAt(base int64) ([]partlog.OpenTxn, bool, error) {
	k := slices.IndexFunc(r.m.Segments, func(s tiering.SegmentMeta) bool { return s.BaseOffset == base })
	if k < 0 {
		return nil, false, nil
	}
	x, err := r.txnIndex(r.ctx, r.m.Segments[k])
	if err != nil {
		return nil, false, fmt.Errorf("remote compaction: %w", err)
	}
	return x.Start, true, nil
}

// Read returns whole batches from the one holding offset, within one
// segment, each checked against its CRC.
func (r *remoteLog) Read(offset int64, maxBytes int, maxOffset int64) (partlog.ReadResult, error) {
	i := r.m.SegmentFor(offset)
	if i < 0 || offset >= maxOffset {
		return partlog.ReadResult{FirstOffset: offset, NextOffset: offset}, nil
	}
	if err := r.download(r.m.Segments[i]); err != nil {
		return partlog.ReadResult{}, err
	}
	if offset < r.at {
		r.pos, r.at = 0, r.seg.BaseOffset
	}
	var hdr [record.HeaderSize]byte
	// Walk batch headers to the one holding offset.
	for r.pos < r.size {
		if _, err := r.f.ReadAt(hdr[:], r.pos); err != nil {
			return partlog.ReadResult{}, fmt.Errorf("remote segment %s at %d: %w", r.seg.Key, r.pos, err)
		}
		h, err := record.ParseHeader(hdr[:])
		if err != nil {
			return partlog.ReadResult{}, fmt.Errorf("%w: remote segment %s at byte %d: %w", tiering.ErrCorrupt, r.seg.Key, r.pos, err)
		}
		if h.NextOffset() > offset {
			break
		}
		r.pos += int64(h.Size())
		r.at = h.NextOffset()
	}
	res := partlog.ReadResult{FirstOffset: r.at, NextOffset: r.at}
	var data []byte
	pos := r.pos
	for pos < r.size && len(data) < maxBytes {
		if _, err := r.f.ReadAt(hdr[:], pos); err != nil {
			return partlog.ReadResult{}, fmt.Errorf("remote segment %s at %d: %w", r.seg.Key, pos, err)
		}
		h, err := record.ParseHeader(hdr[:])
		if err != nil {
			return partlog.ReadResult{}, fmt.Errorf("%w: remote segment %s at byte %d: %w", tiering.ErrCorrupt, r.seg.Key, pos, err)
		}
		if h.BaseOffset >= maxOffset || (len(data) > 0 && len(data)+h.Size() > maxBytes) {
			break
		}
		at := len(data)
		data = append(data, make([]byte, h.Size())...)
		if _, err := r.f.ReadAt(data[at:], pos); err != nil {
			return partlog.ReadResult{}, fmt.Errorf("remote segment %s at %d: %w", r.seg.Key, pos, err)
		}
		if _, err := record.Validate(data[at:]); err != nil {
			return partlog.ReadResult{}, fmt.Errorf("%w: remote segment %s at byte %d: %w", tiering.ErrCorrupt, r.seg.Key, pos, err)
		}
		pos += int64(h.Size())
		res.NextOffset = h.NextOffset()
	}
	res.Data = data
	return res, nil
}

// download fetches a whole segment object into the scratch directory,
// checking its size and CRC-32C against the manifest.
func (r *remoteLog) download(s tiering.SegmentMeta) error {
	if r.f != nil && r.seg.Key == s.Key {
		return nil
	}
	r.closeSegment()
	rc, err := r.task.store.Get(r.ctx, s.Key)
	if err != nil {
		return fmt.Errorf("download %s: %w", s.Key, err)
	}
	defer rc.Close()
	f, err := os.CreateTemp(r.dir, "download-*.log")
	if err != nil {
		return fmt.Errorf("download %s: %w", s.Key, err)
	}
	os.Remove(f.Name()) // the open file is all a pass needs
	crc := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	n, err := io.Copy(io.MultiWriter(f, crc), io.LimitReader(rc, s.Size+1))
	if err != nil {
		f.Close()
		return fmt.Errorf("download %s: %w", s.Key, err)
	}
	if n != s.Size || crc.Sum32() != s.CRC32C {
		f.Close()
		return fmt.Errorf("%w: %s holds %d bytes with CRC-32C %#08x, the manifest says %d and %#08x",
			tiering.ErrCorrupt, s.Key, n, crc.Sum32(), s.Size, s.CRC32C)
	}
	r.seg, r.f, r.size, r.pos, r.at = s, f, n, 0, s.BaseOffset
	return nil
}

func (r *remoteLog) closeSegment() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

// BeginClean writes the replacement in the scratch directory.
func (r *remoteLog) BeginClean(base, end int64) (compaction.Output, error) {
	w, err := partlog.NewSegmentWriter(r.dir, base, end, ".compacted", r.indexInterval)
	if err != nil {
		return nil, fmt.Errorf("remote compaction: %w", err)
	}
	return w, nil
}

// CommitClean uploads the cleaned segment, writes the manifest naming it in
// place of the segments it replaces, then deletes their objects.
func (r *remoteLog) CommitClean(out compaction.Output, cleanerOffset int64) error {
	w, ok := out.(*partlog.SegmentWriter)
	if !ok {
		return fmt.Errorf("remote compaction: commit of a %T", out)
	}
	defer w.Abort()
	i := slices.IndexFunc(r.m.Segments, func(s tiering.SegmentMeta) bool { return s.BaseOffset == w.Base() })
	j := slices.IndexFunc(r.m.Segments, func(s tiering.SegmentMeta) bool { return s.NextOffset == w.End() })
	if i < 0 || j < i {
		return fmt.Errorf("remote compaction: the manifest has no segments holding exactly %d..%d", w.Base(), w.End())
	}
	seg, err := w.Finish()
	if err != nil {
		return fmt.Errorf("remote compaction: %w", err)
	}
	defer w.Remove()
	defer seg.Close()
	t := r.task
	// As the local swap: the transactions open at the run's ends stay (a
	// marker goes only with every record of a transaction begun inside
	// the run), and an aborted transaction stays in the index while its
	// marker is in the cleaned segment.
	txns, err := tiering.MergeTxnIndexes(r.ctx, r.m.Segments[i:j+1], r.txnIndex)
	if err != nil {
		return fmt.Errorf("remote compaction: %w", err)
	}
	txns.Aborted = w.KeptAborted(txns.Aborted)
	meta, err := tiering.UploadSegment(r.ctx, t.store, t.layout, t.tp.Partition, seg, r.epoch, t.now())
	if err != nil {
		return fmt.Errorf("remote compaction: %w", err)
	}
	if err := tiering.UploadTxnIndex(r.ctx, t.store, &meta, txns); err != nil {
		t.store.Delete(r.ctx, meta.ObjectKeys()...)
		return fmt.Errorf("remote compaction: %w", err)
	}
	if meta.TxnIndexKey != "" {
		r.txns[meta.TxnIndexKey] = txns
	}
	newKeys := meta.ObjectKeys()
	if !t.leader.still(r.epoch) {
		t.store.Delete(r.ctx, newKeys...)
		return errors.New("remote compaction: no longer the leader")
	}
	next := nextManifest(r.m, r.epoch)
	replaced := slices.Clone(next.Segments[i : j+1])
	next.Segments = slices.Concat(next.Segments[:i], []tiering.SegmentMeta{meta}, next.Segments[j+1:])
	if cleanerOffset > next.CompactedTo {
		next.CompactedTo = cleanerOffset
	}
	if _, err := tiering.WriteManifest(r.ctx, t.store, t.layout, &next, t.now()); err != nil {
		t.store.Delete(r.ctx, newKeys...)
		return fmt.Errorf("remote compaction: %w", err)
	}
	r.m = &next
	t.state.set(&next, r.epoch)
	if err := t.store.Delete(r.ctx, segmentKeys(replaced)...); err != nil {
		// Garbage collection finds them later.
		t.metrics.failed(stepDeleteSegments)
	}
	return nil
}
