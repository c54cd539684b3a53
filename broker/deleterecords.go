package broker

import (
	"context"
	"fmt"
	"slices"

	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/tiering"
)

// DeleteRecords moves a partition's log start offset forward to offset, as
// Kafka's DeleteRecords: records below it are no longer served (fetches
// there are OffsetOutOfRange) and the segments wholly below it are deleted.
// offset -1 means the high watermark; an offset beyond the high watermark is
// an *OffsetOutOfRangeError, so records not yet committed are never deleted.
// An offset at or below the log start changes nothing.
//
// Only the leader deletes (ErrNotLeader elsewhere); followers move their own
// log start when their next replica fetch brings the leader's. On a tiered
// topic the bucket's manifest moves too. It returns the leader's new log
// start offset. Unlike Kafka it does not wait for the followers to have
// moved theirs.
func (b *Broker) DeleteRecords(ctx context.Context, topic string, partition int32, offset int64) (lowWatermark int64, err error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	p, err := b.leaderPartition(topic, partition)
	if err != nil {
		return 0, err
	}
	target, err := p.deleteRecords(offset, b.leaseOK, b.registered())
	if err != nil {
		return 0, err
	}
	if err := b.deleteRemoteRecords(ctx, p, target); err != nil {
		return 0, fmt.Errorf("%s-%d: delete records below %d in the object store: %w", topic, partition, target, err)
	}
	start := p.LogStartOffset()
	b.logger.Info("records deleted", "topic", topic, "partition", partition, "below", target, "log_start", start)
	return start, nil
}

// deleteRemoteRecords moves the log start of a tiered partition's manifest
// up to offset: the manifest that leaves out the segments wholly below it
// is written, then their objects are deleted (as retention does). Without
// it, records only the bucket holds would stay readable.
func (b *Broker) deleteRemoteRecords(ctx context.Context, p *Partition, offset int64) error {
	if b.cfg.ObjectStore == nil {
		return nil
	}
	cfg, err := b.TopicConfig(p.Topic)
	if err != nil || !cfg.RemoteStorageEnable {
		return err
	}
	p.remote.writeMu.Lock()
	defer p.remote.writeMu.Unlock()
	st, _ := p.State()
	epoch := st.LeaderEpoch
	l := tiering.Layout{Topic: p.Topic, TopicID: p.topicID}
	m, err := b.leaderManifest(ctx, p, l, epoch)
	if err != nil {
		return err
	}
	if offset <= m.LogStartOffset {
		return nil
	}
	if !b.stillLeader(p, epoch) {
		return fmt.Errorf("%s-%d: %w", p.Topic, p.Index, ErrNotLeader)
	}
	next := nextManifest(m, epoch)
	keep := slices.IndexFunc(next.Segments, func(s tiering.SegmentMeta) bool { return s.NextOffset > offset })
	if keep < 0 {
		keep = len(next.Segments)
	}
	dropped := next.Segments[:keep]
	next.Segments = slices.Clone(next.Segments[keep:])
	next.LogStartOffset = offset
	if _, err := tiering.WriteManifest(ctx, b.cfg.ObjectStore, l, &next); err != nil {
		b.tieringMetrics.errors.WithLabelValues("write_manifest").Inc()
		return err
	}
	p.setRemoteManifest(&next, epoch)
	p.wake() // long polls below the new start end with OffsetOutOfRange
	var keys []string
	var bytes int64
	for _, s := range dropped {
		keys = append(keys, s.Key, s.IndexKey, s.TimeIndexKey)
		bytes += s.Size
	}
	if err := b.cfg.ObjectStore.Delete(ctx, keys...); err != nil {
		// collectGarbage deletes them later.
		b.tieringMetrics.errors.WithLabelValues("delete_segments").Inc()
	}
	b.logger.Info("tiering: remote segments deleted by DeleteRecords", "topic", p.Topic, "partition", p.Index,
		"segments", len(dropped), "bytes", bytes, "log_start_offset", offset)
	return nil
}

// deleteRecords advances the local log start as the leader (see
// DeleteRecords) and returns the offset records are deleted below (offset,
// or the high watermark for -1). The role is held for the whole call, as for
// an append, so that no deposed leader deletes after another broker took
// over.
func (p *Partition) deleteRecords(offset int64, leaseOK func() bool, registered int64) (int64, error) {
	p.roleMu.RLock()
	defer p.roleMu.RUnlock()
	p.mu.Lock()
	err := p.leaderErrLocked()
	if err == nil && p.predatesLocked(registered) {
		err = fmt.Errorf("%s-%d: leadership predates this broker's registration: %w", p.Topic, p.Index, ErrLeaderNotAvailable)
	}
	p.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if !leaseOK() {
		return 0, fmt.Errorf("%s-%d: cannot confirm leadership: broker lease not renewed: %w", p.Topic, p.Index, ErrNotLeader)
	}
	hw := p.HighWatermark()
	if offset == -1 {
		offset = hw
	}
	if offset < 0 || offset > hw {
		return 0, fmt.Errorf("%s-%d: delete records below %d: beyond the high watermark %d: %w", p.Topic, p.Index, offset, hw,
			&partlog.OffsetOutOfRangeError{Offset: offset, Start: p.LogStartOffset(), End: hw})
	}
	if err := p.log.AdvanceLogStart(offset); err != nil {
		return 0, fmt.Errorf("%s-%d: delete records below %d: %w", p.Topic, p.Index, offset, err)
	}
	// Long polls below the new start end now with OffsetOutOfRange.
	p.wake()
	return offset, nil
}
