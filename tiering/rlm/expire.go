package rlm

import (
	"context"
	"slices"

	"github.com/strata-broker/strata/compaction"
	"github.com/strata-broker/strata/tiering"
	"github.com/strata-broker/strata/topicconfig"
)

// expirationTask deletes a partition's remote segments past retention and
// the objects no manifest names (Kafka's RLMExpirationTask).
type expirationTask struct {
	*env
	tp     TopicPartition
	layout tiering.Layout
	log    Log
	hw     func() int64
	leader leadership
	state  *remoteState
}

// retention drops remote segments past retention.ms or beyond
// retention.bytes (counted over the whole log; see
// compaction.RemoteRetention): the manifest that leaves them out is written
// first, then their objects are deleted. Objects a crash left between the
// two are found by collectGarbage.
func (x *expirationTask) retention(ctx context.Context, m *tiering.PartitionManifest, epoch int32, cfg topicconfig.Topic) *tiering.PartitionManifest {
	if len(m.Segments) == 0 {
		return m
	}
	localOnly := compaction.LocalOnlyBytes(compaction.LocalSegments(x.log.Segments()), m.EndOffset())
	d := compaction.RemoteRetention(cfg, RemoteSegments(m.Segments), localOnly, x.hw(), x.now())
	if d.None() || !x.leader.still(epoch) {
		return m
	}
	next := nextManifest(m, epoch)
	dropped := next.Segments[:d.Segments]
	next.Segments = slices.Clone(next.Segments[d.Segments:])
	next.LogStartOffset = d.StartOffset
	if _, err := tiering.WriteManifest(ctx, x.store, x.layout, &next, x.now()); err != nil {
		x.metrics.failed(stepWriteManifest)
		return m
	}
	x.state.set(&next, epoch)
	// The whole log's start moved: nothing below it may stay readable
	// locally either.
	if x.log.LogStartOffset() < next.LogStartOffset {
		before := x.log.Segments()
		if _, err := x.log.DeleteSegmentsBelow(min(next.LogStartOffset, x.log.LogEndOffset())); err != nil {
			x.logger.Warn("tiering: cannot advance the local log start", "topic", x.tp.Topic, "partition", x.tp.Partition, "err", err)
		} else {
			x.reclaimed(x.tp.Topic, before, x.log.Segments())
		}
	}
	if err := x.store.Delete(ctx, segmentKeys(dropped)...); err != nil {
		// collectGarbage deletes them later.
		x.metrics.failed(stepDeleteSegments)
	} else if d.Segments > 0 {
		x.countRetention(x.tp.Topic, TierRemote, d.Segments, d.Bytes)
	}
	x.logger.Info("tiering: remote segments deleted by retention", "topic", x.tp.Topic, "partition", x.tp.Partition,
		"segments", d.Segments, "bytes", d.Bytes, "log_start_offset", next.LogStartOffset, "by_size", d.BySize, "by_time", d.ByTime)
	return &next
}

// pruneManifests deletes all but the newest manifests.
func (x *expirationTask) pruneManifests(ctx context.Context) {
	if err := tiering.PruneManifests(ctx, x.store, x.layout, x.tp.Partition); err != nil {
		x.metrics.failed(stepPruneManifests)
	}
}

// collectGarbage deletes segment objects no manifest names: uploads of a
// crashed or deposed leader, deletions a crash interrupted.
func (x *expirationTask) collectGarbage(ctx context.Context, m *tiering.PartitionManifest) {
	keys, err := tiering.Garbage(ctx, x.store, x.layout, x.tp.Partition, m, x.now(), garbageGrace)
	if err != nil || len(keys) == 0 {
		return
	}
	if err := x.store.Delete(ctx, keys...); err != nil {
		x.metrics.failed(stepCollectGarbage)
		return
	}
	x.logger.Info("tiering: deleted objects no manifest names", "topic", x.tp.Topic, "partition", x.tp.Partition, "objects", len(keys))
}

// segmentKeys are the objects of segs: each one's log and indexes.
func segmentKeys(segs []tiering.SegmentMeta) []string {
	keys := make([]string, 0, 3*len(segs))
	for _, s := range segs {
		keys = append(keys, s.ObjectKeys()...)
	}
	return keys
}
