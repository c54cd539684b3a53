package rlm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/tiering"
)

// ErrNotLeader is returned by a write to the bucket on behalf of a
// partition this broker does not lead (any more).
var ErrNotLeader = errors.New("not the leader for partition")

// DeleteRecords moves the log start of a tiered partition's manifest up to
// offset: the manifest that leaves out the segments wholly below it is
// written, then their objects are deleted (as retention does). Without it,
// records only the bucket holds would stay readable. An untiered topic has
// nothing in the bucket: nil.
func (p *Partition) DeleteRecords(ctx context.Context, offset int64) error {
	if p.m.store == nil {
		return nil
	}
	cfg, err := p.replica.Config()
	if err != nil || !cfg.RemoteStorageEnable {
		return err
	}
	unlock := p.LockWrites()
	defer unlock()
	epoch, _ := p.replica.Leadership()
	m, err := p.leaderManifest(ctx, epoch)
	if err != nil {
		return err
	}
	if offset <= m.LogStartOffset {
		return nil
	}
	if !p.copier.leader.still(epoch) {
		return fmt.Errorf("%s-%d: %w", p.tp.Topic, p.tp.Partition, ErrNotLeader)
	}
	next := nextManifest(m, epoch)
	keep := slices.IndexFunc(next.Segments, func(s tiering.SegmentMeta) bool { return s.NextOffset > offset })
	if keep < 0 {
		keep = len(next.Segments)
	}
	dropped := next.Segments[:keep]
	next.Segments = slices.Clone(next.Segments[keep:])
	next.LogStartOffset = offset
	if _, err := tiering.WriteManifest(ctx, p.m.store, p.layout, &next, p.m.env.now()); err != nil {
		p.m.metrics.failed(stepWriteManifest)
		return err
	}
	p.state.set(&next, epoch)
	var bytes int64
	for _, s := range dropped {
		bytes += s.Size
	}
	if err := p.m.store.Delete(ctx, segmentKeys(dropped)...); err != nil {
		// Garbage collection deletes them later.
		p.m.metrics.failed(stepDeleteSegments)
	}
	p.m.env.logger.Info("tiering: remote segments deleted by DeleteRecords", "topic", p.tp.Topic, "partition", p.tp.Partition,
		"segments", len(dropped), "bytes", bytes, "log_start_offset", offset)
	return nil
}

// Status is a partition's tiering state as its leader sees it: `strata
// tiering status`. Offsets are -1 where there is nothing to report.
type Status struct {
	Topic       string
	Partition   int32
	Leader      int32 // this broker
	LeaderEpoch int32
	// RemoteEnabled is the topic's remote.storage.enable.
	RemoteEnabled bool

	// The local log: first offset, log end offset and bytes on disk.
	LocalStart, LocalEnd, LocalBytes int64

	// From the partition's latest manifest: the remote log start, the offset
	// after the last remote segment (both -1 without remote segments), and
	// the segments' bytes and number. All four are -1 when the manifest is
	// unknown: the topic is not tiered, or the object store could not be
	// read (or this broker has none).
	RemoteStart, RemoteEnd, RemoteBytes, RemoteSegments int64

	// Backlog is the bytes of sealed local segments not in the manifest yet,
	// as the uploader counts them (strata_tiering_upload_backlog_bytes): 0
	// when the topic is not tiered, -1 when the manifest is unknown.
	Backlog int64

	HighWatermark int64
	// LogStartOffset is the whole log's: the remote start when the oldest
	// records are only in the object store.
	LogStartOffset int64
}

// Status returns the partition's tiering state, and false when this broker
// does not lead it: only the leader uploads, so only it knows the backlog.
// A tiered partition whose manifest is not known yet has it read from the
// object store first.
func (p *Partition) Status(ctx context.Context) (Status, bool) {
	epoch, leader := p.replica.Leadership()
	if !leader {
		return Status{}, false
	}
	cfg, _ := p.replica.Config()
	st := Status{
		Topic: p.tp.Topic, Partition: p.tp.Partition, Leader: p.m.cfg.NodeID, LeaderEpoch: epoch,
		RemoteEnabled:  cfg.RemoteStorageEnable,
		LocalStart:     p.log.LogStartOffset(),
		LocalEnd:       p.log.LogEndOffset(),
		LocalBytes:     p.log.Size(),
		RemoteStart:    -1,
		RemoteEnd:      -1,
		RemoteBytes:    -1,
		RemoteSegments: -1,
	}
	var m *tiering.PartitionManifest
	if cfg.RemoteStorageEnable {
		if m, _ = p.state.get(); m == nil {
			// Unreadable, it is reported as unknown (-1) below.
			_ = p.EnsureManifest(ctx)
			m, _ = p.state.get()
		}
	}
	switch {
	case m != nil:
		st.RemoteBytes, st.RemoteSegments = m.Bytes(), int64(len(m.Segments))
		if len(m.Segments) > 0 {
			st.RemoteStart, st.RemoteEnd = m.LogStartOffset, m.EndOffset()
		}
		st.Backlog = p.uploadBacklog(m)
	case cfg.RemoteStorageEnable:
		st.Backlog = -1
	}
	// Read last, so that they are not older than the log and manifest
	// above.
	st.HighWatermark = p.replica.HighWatermark()
	st.LogStartOffset = p.LogStartOffset()
	return st, true
}

// uploadBacklog is the bytes of the sealed segments that m does not hold,
// counted as upload counts them.
func (p *Partition) uploadBacklog(m *tiering.PartitionManifest) int64 {
	end := m.EndOffset()
	var n int64
	for _, s := range p.log.Segments() {
		if s.Sealed && s.NextOffset > end {
			n += s.Size
		}
	}
	return n
}

// EmptyLog is a partition's local log as StartAtRemoteEnd uses it;
// *partlog.Log has it.
type EmptyLog interface {
	LogEndOffset() int64
	TruncateFullyAndStartAt(offset int64) error
}

// startAtRemoteEndTimeout bounds the manifest read of StartAtRemoteEnd,
// which holds up the opening of the partition.
const startAtRemoteEndTimeout = 30 * time.Second

// StartAtRemoteEnd starts an empty local log of a tiered partition where
// the object store's copy ends: the partition of a topic restored from the
// bucket, or a replica whose disk was replaced. Its history is served from
// the bucket; a log starting at 0 instead would hand out offsets again.
// It does nothing to a log that is not empty or of a topic that is not
// tiered.
func (m *Manager) StartAtRemoteEnd(ctx context.Context, tp TopicPartition, tiered bool, l EmptyLog) error {
	if m.store == nil || !tiered || l.LogEndOffset() != 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, startAtRemoteEndTimeout)
	defer cancel()
	pm, _, found, err := tiering.LatestManifest(ctx, m.store, tp.layout(), tp.Partition)
	if err != nil {
		return fmt.Errorf("partition %s-%d: an empty log of a tiered topic needs the object store's manifest: %w", tp.Topic, tp.Partition, err)
	}
	if !found || pm.EndOffset() == 0 {
		return nil
	}
	m.env.logger.Info("tiering: empty local log starts where the object store's copy ends", "topic", tp.Topic, "partition", tp.Partition, "offset", pm.EndOffset())
	if err := l.TruncateFullyAndStartAt(pm.EndOffset()); err != nil {
		return fmt.Errorf("partition %s-%d: start at the object store's end %d: %w", tp.Topic, tp.Partition, pm.EndOffset(), err)
	}
	return nil
}

// PendingDeletionError refuses to bring back a topic incarnation whose
// objects are being deleted.
type PendingDeletionError struct {
	Topic metastore.DeletedTopic
}

func (e *PendingDeletionError) Error() string {
	return fmt.Sprintf("topic %q (id %s) was deleted at %s and its objects are being deleted from the object store; it cannot be restored",
		e.Topic.Name, e.Topic.ID, e.Topic.DeletedAt.Format(time.RFC3339))
}

// Restorable returns the newest incarnation of topic name in the object
// store, to be created again with the same id, partition count,
// replication factor and configs, and for each partition a leader epoch
// above the ones its remote segments were written in (0 for a partition
// with no manifest). An incarnation whose deletion is pending is a
// *PendingDeletionError; a topic the bucket does not have is
// tiering.ErrNoTopic.
func (m *Manager) Restorable(ctx context.Context, name string) (tiering.TopicManifest, []int32, error) {
	if m.store == nil {
		return tiering.TopicManifest{}, nil, errors.New("no object store")
	}
	tm, err := tiering.FindTopic(ctx, m.store, name)
	if err != nil {
		return tiering.TopicManifest{}, nil, err // FindTopic names the topic
	}
	if m.cfg.DeletedTopics != nil {
		dt, found, err := m.cfg.DeletedTopics.DeletedTopic(ctx, tm.ID)
		if err != nil {
			return tiering.TopicManifest{}, nil, fmt.Errorf("topic %q (id %s): %w", tm.Name, tm.ID, err)
		}
		if found {
			return tiering.TopicManifest{}, nil, &PendingDeletionError{Topic: dt}
		}
	}
	l := tiering.Layout{Topic: tm.Name, TopicID: tm.ID}
	epochs := make([]int32, tm.Partitions)
	for p := range tm.Partitions {
		pm, _, found, err := tiering.LatestManifest(ctx, m.store, l, p)
		if err != nil {
			return tiering.TopicManifest{}, nil, fmt.Errorf("topic %q partition %d: %w", name, p, err)
		}
		if found {
			top := pm.LeaderEpoch
			for _, s := range pm.Segments {
				top = max(top, s.LeaderEpoch)
				for _, e := range s.Epochs {
					top = max(top, e.Epoch)
				}
			}
			epochs[p] = top + 1
		}
	}
	return tm, epochs, nil
}
