package rlm

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"

	"github.com/strata-broker/strata/compaction"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/tiering"
	"github.com/strata-broker/strata/topicconfig"
)

// segmentsPerManifest is how many uploaded segments one manifest write
// names at most.
const segmentsPerManifest = 8

// copyTask copies a partition's sealed segments to the object store and
// deletes the local ones the bucket holds past local retention (Kafka's
// RLMCopyTask). Partition 0's also records the topic's definition.
type copyTask struct {
	*env
	tp      TopicPartition
	layout  tiering.Layout
	log     Log
	replica Replica
	leader  leadership
	state   *remoteState
	labels  []string

	// topicWritten is what the topic manifest last written said.
	topicWritten string
}

// upload copies the sealed segments below the last stable offset that the
// manifest does not have yet, naming them in a new manifest every few
// segments, and returns the manifest in effect afterwards.
//
// Below the last stable offset (Kafka's copy task's bound too), not only
// the high watermark: every transaction with records in an uploaded
// segment is then decided, so a read from the bucket never returns an
// open transaction's records, and local retention, which deletes only
// uploaded segments, never deletes an open transaction's records.
func (c *copyTask) upload(ctx context.Context, m *tiering.PartitionManifest, epoch int32) *tiering.PartitionManifest {
	stable := min(c.replica.HighWatermark(), c.replica.LastStableOffset())
	var pending []partlog.SegmentInfo
	backlog := int64(0)
	for _, s := range c.log.Segments() {
		if !s.Sealed || s.NextOffset <= m.EndOffset() {
			continue
		}
		backlog += s.Size
		if s.NextOffset <= stable {
			pending = append(pending, s)
		}
	}
	defer func() { c.metrics.backlog.WithLabelValues(c.labels...).Set(float64(backlog)) }()
	// Segments are uploaded one by one and named in a manifest every few
	// of them: a manifest lists every segment, so writing one per segment
	// would cost a partition with a long backlog quadratic bytes.
	var uploaded []tiering.SegmentMeta
	var uploadedBytes int64
	started := c.now()
	flush := func() {
		if len(uploaded) == 0 || !c.leader.still(epoch) {
			return
		}
		next := nextManifest(m, epoch)
		next.Segments = append(next.Segments, uploaded...)
		if _, err := tiering.WriteManifest(ctx, c.store, c.layout, &next, c.now()); err != nil {
			c.metrics.failed(stepWriteManifest)
			c.logger.Warn("tiering: manifest write failed; retrying next round", "topic", c.tp.Topic, "partition", c.tp.Partition, "err", err)
			uploaded, uploadedBytes = nil, 0 // uploaded again next round; these become garbage
			return
		}
		m = &next
		c.state.set(m, epoch)
		backlog -= uploadedBytes
		c.metrics.uploadSeconds.Observe(c.now().Sub(started).Seconds() / float64(len(uploaded)))
		c.metrics.uploadBytes.Add(float64(uploadedBytes))
		uploaded, uploadedBytes, started = nil, 0, c.now()
	}
	for _, s := range pending {
		if ctx.Err() != nil || !c.leader.still(epoch) {
			break
		}
		meta, err := c.uploadOne(ctx, s, epoch)
		if err != nil {
			break
		}
		uploaded = append(uploaded, meta)
		uploadedBytes += s.Size
		if len(uploaded) == segmentsPerManifest {
			flush()
		}
	}
	flush()
	return m
}

// errLater stops an upload round without a failure to report.
var errLater = errors.New("not uploadable yet")

// uploadOne uploads one sealed segment with its indexes.
func (c *copyTask) uploadOne(ctx context.Context, s partlog.SegmentInfo, epoch int32) (tiering.SegmentMeta, error) {
	seg, err := c.log.OpenSealed(s.BaseOffset)
	if errors.Is(err, partlog.ErrNotSealed) || errors.Is(err, os.ErrNotExist) {
		return tiering.SegmentMeta{}, errLater // not durable yet, or deleted meanwhile: next round
	}
	if err != nil {
		c.metrics.failed(stepOpenSegment)
		c.logger.Warn("tiering: cannot open segment", "topic", c.tp.Topic, "partition", c.tp.Partition, "base", s.BaseOffset, "err", err)
		return tiering.SegmentMeta{}, err
	}
	meta, err := tiering.UploadSegment(ctx, c.store, c.layout, c.tp.Partition, seg, epoch, c.now())
	seg.Close()
	if err != nil {
		c.metrics.failed(stepUpload)
		c.logger.Warn("tiering: upload failed; retrying next round", "topic", c.tp.Topic, "partition", c.tp.Partition, "base", s.BaseOffset, "err", err)
		return tiering.SegmentMeta{}, err
	}
	return meta, nil
}

// localRetention deletes local segments that are safe in the bucket (named
// by the manifest) and past local.retention.ms or local.retention.bytes
// (see compaction.TieredLocalRetention).
func (c *copyTask) localRetention(m *tiering.PartitionManifest, cfg topicconfig.Topic) {
	before := c.log.Segments()
	d := compaction.TieredLocalRetention(cfg, compaction.LocalSegments(before), c.replica.HighWatermark(), m.EndOffset(), c.now())
	if d.None() {
		return
	}
	if _, err := c.log.DeleteSegmentsBelow(d.StartOffset); err != nil {
		c.metrics.failed(stepLocalRetention)
		c.logger.Warn("tiering: local retention failed", "topic", c.tp.Topic, "partition", c.tp.Partition, "err", err)
		return
	}
	c.reclaimed(c.tp.Topic, before, c.log.Segments())
}

// reclaimed counts the local segments of before that after no longer has
// (the log deletes from its start only).
func (e *env) reclaimed(topic string, before, after []partlog.SegmentInfo) {
	if n, bytes := compaction.Deleted(before, after); n > 0 {
		e.countRetention(topic, TierLocal, n, bytes)
	}
}

// writeTopicManifest records the topic's definition in the bucket, so that
// it can be restored from there: by partition 0's leader, before its first
// upload and whenever the definition changes.
func (c *copyTask) writeTopicManifest(ctx context.Context) {
	tm, ok := c.replica.TopicManifest()
	if !ok {
		return
	}
	tm.Configs = maps.Clone(tm.Configs)
	fp := fmt.Sprint(tm.Partitions, tm.ReplicationFactor, tm.Configs) // maps print sorted
	if c.topicWritten == fp {
		return
	}
	if err := tiering.WriteTopicManifest(ctx, c.store, tm, c.now()); err != nil {
		c.metrics.failed(stepWriteTopicManifest)
		return
	}
	c.topicWritten = fp
}

// RemoteSegments describes a manifest's segments for the retention policy.
func RemoteSegments(segs []tiering.SegmentMeta) []compaction.Segment {
	out := make([]compaction.Segment, len(segs))
	for i, s := range segs {
		out[i] = compaction.Segment{BaseOffset: s.BaseOffset, NextOffset: s.NextOffset, Size: s.Size, MaxTimestamp: s.MaxTimestamp}
	}
	return out
}
