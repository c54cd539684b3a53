package broker

import (
	"context"
	"fmt"
	"slices"

	"github.com/strata-broker/strata/tiering"
	"github.com/strata-broker/strata/topicconfig"
)

// PartitionTiering is a partition's tiering state as its leader sees it:
// `strata tiering status`. Offsets are -1 where there is nothing to report.
type PartitionTiering struct {
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

// TieringStatus returns the tiering state of the partitions of topic that
// this broker leads, in partition order: only the leader uploads, so only
// it knows the backlog. Ask every partition's leader for the whole topic.
// A tiered partition whose manifest this broker has not read yet has it
// read from the object store first.
func (b *Broker) TieringStatus(ctx context.Context, topic string) ([]PartitionTiering, error) {
	b.mu.RLock()
	t, closed := b.topics[topic], b.closed
	var (
		parts []*Partition
		cfg   topicconfig.Topic
	)
	if t != nil {
		parts = slices.DeleteFunc(slices.Clone(t.partitions), func(p *Partition) bool { return p == nil })
		cfg = t.cfg
	}
	b.mu.RUnlock()
	switch {
	case closed:
		return nil, ErrBrokerClosed
	case t == nil:
		return nil, fmt.Errorf("topic %q: %w", topic, ErrUnknownTopicOrPartition)
	}

	out := []PartitionTiering{}
	for _, p := range parts {
		st, role := p.State()
		if role != roleLeader {
			continue
		}
		pt := PartitionTiering{
			Topic: p.Topic, Partition: p.Index, Leader: b.cfg.NodeID, LeaderEpoch: st.LeaderEpoch,
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
			if m, _ = p.remoteManifest(); m == nil {
				b.ensureRemote(ctx, p)
				m, _ = p.remoteManifest()
			}
		}
		switch {
		case m != nil:
			pt.RemoteBytes, pt.RemoteSegments = m.Bytes(), int64(len(m.Segments))
			if len(m.Segments) > 0 {
				pt.RemoteStart, pt.RemoteEnd = m.LogStartOffset, m.EndOffset()
			}
			pt.Backlog = uploadBacklog(p, m)
		case cfg.RemoteStorageEnable:
			pt.Backlog = -1
		}
		// Read last, so that they are not older than the log and manifest
		// above.
		pt.HighWatermark = p.HighWatermark()
		pt.LogStartOffset = p.LogStartOffset()
		out = append(out, pt)
	}
	return out, nil
}

// uploadBacklog is the bytes of p's sealed segments that m does not hold,
// counted as upload counts them.
func uploadBacklog(p *Partition, m *tiering.PartitionManifest) int64 {
	end := m.EndOffset()
	var n int64
	for _, s := range p.log.Segments() {
		if s.Sealed && s.NextOffset > end {
			n += s.Size
		}
	}
	return n
}
