package broker

import (
	"context"
	"errors"
	"fmt"

	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/tiering/rlm"
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
	p, err := b.hosted.leaderPartition(topic, partition)
	if err != nil {
		return 0, err
	}
	target, err := p.deleteRecords(offset, b.leaseOK, b.registered())
	if err != nil {
		return 0, err
	}
	if err := p.remote.DeleteRecords(ctx, target); err != nil {
		if errors.Is(err, rlm.ErrNotLeader) {
			err = ErrNotLeader // as the frontends classify it
		}
		return 0, fmt.Errorf("%s-%d: delete records below %d in the object store: %w", topic, partition, target, err)
	}
	// Long polls below the bucket's new start end with OffsetOutOfRange.
	p.wake()
	start := p.LogStartOffset()
	b.logger.Info("records deleted", "topic", topic, "partition", partition, "below", target, "log_start", start)
	return start, nil
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
