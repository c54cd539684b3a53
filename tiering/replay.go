package tiering

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
)

// ReplayOptions select the records a replay reads. The zero value reads
// every committed record of every partition.
type ReplayOptions struct {
	// Partitions are read one after the other, in this order; nil means all
	// of the topic's partitions, in order.
	Partitions []int32
	// From is the first offset read in each partition; below the remote
	// log start, reading starts there.
	From int64
	// FromTime, when not zero, starts each partition at its first record
	// (at or after From) whose timestamp is at or after FromTime, as
	// Kafka's ListOffsets by timestamp does; the records after that one are
	// all read, whatever their timestamps.
	FromTime time.Time
	// To is the offset to stop before in each partition; zero means the end
	// of the remote log.
	To int64
	// ReadUncommitted reads the records of aborted transactions too, and
	// those of transactions the bucket does not know the outcome of, as a
	// read_uncommitted consumer. Otherwise only committed records are read
	// (and those outside any transaction): see PartitionReplay.Aborted.
	ReadUncommitted bool
	// OnSegment, when not nil, is called after each planned segment was read
	// (or skipped, when records before it covered it): for progress.
	OnSegment func(partition int32, seg SegmentMeta)
}

// ReplayPlan is what a replay reads: the topic incarnation and, per
// partition, the segments of its newest manifest that hold the range.
type ReplayPlan struct {
	Topic      TopicManifest
	Partitions []PartitionReplay
	opts       ReplayOptions
}

// PartitionReplay is one partition's part of a plan.
type PartitionReplay struct {
	Partition int32
	// Manifest is the partition's newest manifest; its key is empty when
	// the partition has none (nothing was tiered yet).
	Manifest    PartitionManifest
	ManifestKey string
	// Segments are read in this order; they may overlap.
	Segments []SegmentMeta
	// From and To bound the offsets yielded: [From, To). For a committed
	// read, To is at most the bucket's last stable offset: the first
	// offset of the earliest transaction still open at the end of the last
	// remote segment (its marker is not in the bucket, so its outcome is
	// not known there).
	From, To int64
	// Aborted are the aborted transactions of the range, from the
	// segments' transaction indexes; their records are not yielded (nil
	// for a read_uncommitted replay).
	Aborted []partlog.AbortedTxn
}

// LastOffset is the partition's last offset in the bucket, by its newest
// manifest, whatever range the replay reads; ok is false when the bucket
// holds none of its records: none uploaded yet (only sealed segments are),
// or retention removed them all.
func (pr *PartitionReplay) LastOffset() (last int64, ok bool) {
	if pr.ManifestKey == "" || len(pr.Manifest.Segments) == 0 {
		return 0, false
	}
	return pr.Manifest.EndOffset() - 1, true
}

// Bytes is the size of the segments the partition's replay reads.
func (pr *PartitionReplay) Bytes() int64 {
	var n int64
	for _, s := range pr.Segments {
		n += s.Size
	}
	return n
}

// Offsets bounds the number of records the partition's replay yields: the
// offsets in its range that its segments hold. Compaction gaps, control
// batches and a --from-time start make the real number smaller.
func (pr *PartitionReplay) Offsets() int64 {
	if len(pr.Segments) == 0 {
		return 0
	}
	return max(0, pr.To-max(pr.From, pr.Segments[0].BaseOffset))
}

// Bytes is the size of all segments the plan reads.
func (p *ReplayPlan) Bytes() int64 {
	var n int64
	for i := range p.Partitions {
		n += p.Partitions[i].Bytes()
	}
	return n
}

// Offsets bounds the number of records the plan yields (see
// PartitionReplay.Offsets).
func (p *ReplayPlan) Offsets() int64 {
	var n int64
	for i := range p.Partitions {
		n += p.Partitions[i].Offsets()
	}
	return n
}

// PlanReplay finds the newest incarnation of topic in the bucket (an error
// wrapping ErrNoTopic when there is none), reads the newest manifest of
// each partition asked for and picks the segments that hold the range.
func PlanReplay(ctx context.Context, st Store, topic string, opts ReplayOptions) (*ReplayPlan, error) {
	if opts.From < 0 || opts.To < 0 {
		return nil, fmt.Errorf("replay %s: negative offset (from %d, to %d)", topic, opts.From, opts.To)
	}
	tm, err := FindTopic(ctx, st, topic)
	if err != nil {
		return nil, err
	}
	parts := opts.Partitions
	if parts == nil {
		for p := range tm.Partitions {
			parts = append(parts, p)
		}
	}
	plan := &ReplayPlan{Topic: tm, opts: opts}
	l := Layout{Topic: tm.Name, TopicID: tm.ID}
	for _, p := range parts {
		if p < 0 || p >= tm.Partitions {
			return nil, fmt.Errorf("topic %s has no partition %d (it has %d)", topic, p, tm.Partitions)
		}
		m, key, found, err := LatestManifest(ctx, st, l, p)
		if err != nil {
			return nil, err
		}
		pr := PartitionReplay{Partition: p}
		if found {
			pr.Manifest, pr.ManifestKey = m, key
			pr.Segments, pr.From, pr.To = m.segmentsFor(opts)
			if !opts.ReadUncommitted && len(pr.Segments) > 0 {
				if err := pr.committedOnly(ctx, st); err != nil {
					return nil, fmt.Errorf("replay %s-%d: %w", tm.Name, p, err)
				}
			}
		}
		plan.Partitions = append(plan.Partitions, pr)
	}
	return plan, nil
}

// segmentsFor returns the segments holding the options' range and the
// range clamped to the manifest.
func (m *PartitionManifest) segmentsFor(opts ReplayOptions) (segs []SegmentMeta, from, to int64) {
	from, to = max(opts.From, m.LogStartOffset), m.EndOffset()
	if opts.To > 0 {
		to = min(to, opts.To)
	}
	i := m.SegmentFor(from)
	if from >= to || i < 0 {
		return nil, from, from
	}
	if !opts.FromTime.IsZero() {
		// A segment whose newest record is older than FromTime holds no
		// record to start at.
		ts := opts.FromTime.UnixMilli()
		for i < len(m.Segments) && m.Segments[i].MaxTimestamp < ts {
			i++
		}
	}
	for ; i < len(m.Segments) && m.Segments[i].BaseOffset < to; i++ {
		segs = append(segs, m.Segments[i])
	}
	return segs, from, to
}

// committedOnly finds the range's aborted transactions and stops the range
// at the bucket's last stable offset.
func (pr *PartitionReplay) committedOnly(ctx context.Context, st Store) error {
	m := &pr.Manifest
	found, err := CollectAborted(ctx, m.Segments, m.SegmentFor(pr.From), pr.From, pr.To,
		func(ctx context.Context, seg SegmentMeta) (partlog.TxnIndex, error) {
			return ReadTxnIndex(ctx, st, seg)
		})
	if err != nil {
		return err
	}
	pr.Aborted = found.Aborted
	for _, o := range found.Open {
		pr.To = max(pr.From, min(pr.To, o.FirstOffset))
	}
	if pr.To <= pr.From {
		pr.Segments = nil
	}
	for len(pr.Segments) > 0 && pr.Segments[len(pr.Segments)-1].BaseOffset >= pr.To {
		pr.Segments = pr.Segments[:len(pr.Segments)-1]
	}
	return nil
}

// Replay reads records of topic straight from the bucket, with no broker:
// PlanReplay, then Run.
func Replay(ctx context.Context, st Store, topic string, opts ReplayOptions, fn func(partition int32, r *record.Record) error) error {
	plan, err := PlanReplay(ctx, st, topic, opts)
	if err != nil {
		return err
	}
	return plan.Run(ctx, st, fn)
}

// Run reads the planned segments whole (each checked against the CRC its
// manifest recorded: a damaged object is an ErrCorrupt error naming its key,
// and none of its records are yielded) and calls fn for every record in
// range, partition by partition, in offset order within each. An offset is
// yielded once even where segments overlap. Control batches (transaction
// markers) are skipped, and so are the records of aborted transactions
// unless ReadUncommitted was asked for.
//
// The record passed to fn, with its key, value and headers, is valid only
// during the call. An error from fn stops Run and is returned unwrapped.
func (p *ReplayPlan) Run(ctx context.Context, st Store, fn func(partition int32, r *record.Record) error) error {
	for i := range p.Partitions {
		if err := p.runPartition(ctx, st, &p.Partitions[i], fn); err != nil {
			return err
		}
	}
	return nil
}

// errStop ends a partition's replay at its To offset.
var errStop = errors.New("replay: past the end of the range")

func (p *ReplayPlan) runPartition(ctx context.Context, st Store, pr *PartitionReplay, fn func(int32, *record.Record) error) error {
	next := pr.From // the next offset that may be yielded
	aborted := NewAbortedFilter(pr.Aborted)
	started := p.opts.FromTime.IsZero()
	fromTS := p.opts.FromTime.UnixMilli()
	for _, seg := range pr.Segments {
		if seg.BaseOffset >= pr.To {
			break
		}
		if seg.NextOffset > next {
			var err error
			next, started, err = p.replaySegment(ctx, st, pr, seg, aborted, next, started, fromTS, fn)
			if errors.Is(err, errStop) {
				p.segmentDone(pr.Partition, seg)
				return nil
			}
			if err != nil {
				return err
			}
		}
		p.segmentDone(pr.Partition, seg)
	}
	return nil
}

func (p *ReplayPlan) segmentDone(partition int32, seg SegmentMeta) {
	if p.opts.OnSegment != nil {
		p.opts.OnSegment(partition, seg)
	}
}

// replaySegment yields the records of one segment from next on and returns
// the next offset to yield.
func (p *ReplayPlan) replaySegment(ctx context.Context, st Store, pr *PartitionReplay, seg SegmentMeta,
	aborted AbortedFilter, next int64, started bool, fromTS int64, fn func(int32, *record.Record) error) (int64, bool, error) {
	where := fmt.Sprintf("%s-%d", p.Topic.Name, pr.Partition)
	raw, err := ReadSegment(ctx, st, seg)
	if err != nil {
		return next, started, fmt.Errorf("replay %s: %w", where, err)
	}
	var fnErr error
	it := record.NewBatches(raw)
	for it.Next() {
		h := it.Header()
		if h.BaseOffset >= pr.To {
			return next, started, errStop
		}
		if h.BaseOffset < seg.BaseOffset || h.NextOffset() > seg.NextOffset {
			return next, started, fmt.Errorf("replay %s: %w: %s: batch %d-%d is outside the segment's range %d-%d",
				where, ErrCorrupt, seg.Key, h.BaseOffset, h.LastOffset(), seg.BaseOffset, seg.NextOffset-1)
		}
		if h.NextOffset() <= next || h.Control() || aborted.Aborted(&h) {
			continue
		}
		err := record.ForEach(it.Bytes(), func(r *record.Record) error {
			if r.Offset < next || r.Offset >= pr.To {
				return nil
			}
			if !started {
				if r.Timestamp < fromTS {
					return nil
				}
				started = true
			}
			next = r.Offset + 1
			if err := fn(pr.Partition, r); err != nil {
				fnErr = err
				return err
			}
			return nil
		})
		if fnErr != nil {
			return next, started, fnErr
		}
		if err != nil {
			return next, started, fmt.Errorf("replay %s: %w: %s: batch at offset %d: %v", where, ErrCorrupt, seg.Key, h.BaseOffset, err)
		}
		// Offsets of the batch that held no record (compacted away, or
		// skipped for their timestamps) are past too.
		next = max(next, min(h.NextOffset(), pr.To))
	}
	if err := it.Err(); err != nil {
		pos := it.Position()
		return next, started, fmt.Errorf("replay %s: %w: %s at byte %d: %v", where, ErrCorrupt, seg.Key, pos, err)
	}
	return next, started, nil
}
