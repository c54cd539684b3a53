package broker

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/strata-broker/strata/compaction"
	"github.com/strata-broker/strata/tiering/rlm"
	"github.com/strata-broker/strata/topicconfig"
)

// TierRetention is what retention would delete from one tier of a
// partition: its oldest Segments segments, Bytes in all, moving the tier's
// start from StartOffset to NewStartOffset. Offsets are -1 when the tier is
// empty.
type TierRetention struct {
	Segments                    int64
	Bytes                       int64
	StartOffset, NewStartOffset int64
}

// PartitionRetention is a partition's retention preview, as its leader
// decides it: `strata retention preview`.
type PartitionRetention struct {
	Topic       string
	Partition   int32
	Leader      int32 // this broker
	LeaderEpoch int32
	// HighWatermark bounds what retention deletes (locally, the last stable
	// offset does: the high watermark while no transaction is open).
	HighWatermark int64
	Local         TierRetention
	// Tiered is the proposed remote.storage.enable; Remote applies only
	// then. RemoteErr is why the remote tier (and so the local one, which
	// depends on it) is unknown: the manifest could not be read.
	Tiered    bool
	Remote    TierRetention
	RemoteErr error
}

// PreviewRetention reports what retention would delete, now, from the
// partitions of topic that this broker leads if the topic's config
// overrides were changed by set and del (as AlterTopicConfigs would change
// them), without changing or deleting anything. Only a partition's leader
// applies retention, so ask every partition's leader for the whole topic.
// The proposed overrides are validated as AlterTopicConfigs validates them;
// the effective config they give is returned with the partitions.
func (b *Broker) PreviewRetention(ctx context.Context, topic string, set map[string]string, del []string) ([]PartitionRetention, []topicconfig.Entry, error) {
	for _, k := range del {
		if !slices.Contains(topicconfig.Names(), k) {
			return nil, nil, fmt.Errorf("%w: cannot delete unknown topic config %q", ErrInvalidConfig, k)
		}
	}
	parts, overrides, err := b.hosted.hostedOf(topic)
	if err != nil {
		return nil, nil, err
	}
	if overrides == nil {
		overrides = map[string]string{}
	}
	maps.Copy(overrides, set)
	for _, k := range del {
		delete(overrides, k)
	}
	if err := b.validateConfigs(overrides); err != nil {
		return nil, nil, err
	}
	cfg, entries, err := topicconfig.Resolve(overrides, b.brokerDefaults)
	if err != nil {
		return nil, nil, fmt.Errorf("preview retention of topic %q: %w: %v", topic, ErrInvalidConfig, err)
	}

	now := b.now()
	out := []PartitionRetention{}
	for _, p := range parts {
		st, role := p.State()
		if role != roleLeader {
			continue
		}
		pr := PartitionRetention{
			Topic: p.Topic, Partition: p.Index, Leader: b.cfg.NodeID, LeaderEpoch: st.LeaderEpoch,
			HighWatermark: p.HighWatermark(), Tiered: cfg.RemoteStorageEnable,
		}
		local := p.log.Segments()
		localStart := p.log.LogStartOffset()
		if !cfg.RemoteStorageEnable {
			// The worker's bound: the last stable offset.
			d := compaction.LocalRetention(cfg, compaction.LocalSegments(local), p.LastStableOffset(), now)
			pr.Local = tierRetention(d, localStart)
			out = append(out, pr)
			continue
		}
		m, _ := p.remote.Manifest()
		var readErr error
		if m == nil {
			readErr = p.remote.EnsureManifest(ctx)
			m, _ = p.remote.Manifest()
		}
		if m == nil {
			// No manifest, no retention on either tier: the tiering task
			// would not run either.
			pr.RemoteErr = fmt.Errorf("%s-%d: the partition's manifest could not be read from the object store", p.Topic, p.Index)
			if readErr != nil {
				pr.RemoteErr = fmt.Errorf("%s-%d: %w", p.Topic, p.Index, readErr)
			}
			pr.Local = TierRetention{StartOffset: -1, NewStartOffset: -1}
			pr.Remote = TierRetention{StartOffset: -1, NewStartOffset: -1}
			out = append(out, pr)
			continue
		}
		remoteStart := int64(-1)
		if len(m.Segments) > 0 {
			remoteStart = m.LogStartOffset
		}
		ld, rd := compaction.Tiered(cfg, compaction.TieredLog{
			Local: compaction.LocalSegments(local), LocalStart: localStart,
			Remote: rlm.RemoteSegments(m.Segments), RemoteEnd: m.EndOffset(),
			HighWatermark: pr.HighWatermark,
		}, now)
		pr.Local = tierRetention(ld, localStart)
		pr.Remote = tierRetention(rd, remoteStart)
		out = append(out, pr)
	}
	return out, entries, nil
}

// tierRetention reports d on a tier starting at start (-1: empty).
func tierRetention(d compaction.Deletion, start int64) TierRetention {
	tr := TierRetention{Segments: int64(d.Segments), Bytes: d.Bytes, StartOffset: start, NewStartOffset: start}
	if start >= 0 {
		tr.NewStartOffset = d.NewStart(start)
	}
	return tr
}
