package broker

import (
	"context"
	"fmt"

	"github.com/strata-broker/strata/partlog"
)

// The OffsetSpec values of newer ListOffsets versions, as in Kafka.
const (
	// MaxTimestamp (v7+, KIP-734) finds the record with the largest
	// timestamp.
	MaxTimestamp int64 = -3
	// EarliestLocalTimestamp (v8+, KIP-405) is the first offset on the
	// leader's disk: above the log start once tiering deleted local
	// segments.
	EarliestLocalTimestamp int64 = -4
	// LatestTieredTimestamp (v9+, KIP-1005) is the last offset in the
	// bucket, -1 when none is.
	LatestTieredTimestamp int64 = -5
)

// ListedOffset is one ListOffsets answer: the offset and its record's
// timestamp (-1 for the special specs), and the leader epoch of the offset
// (-1 when unknown). Found is false when no offset matches.
type ListedOffset struct {
	Offset, Timestamp int64
	LeaderEpoch       int32
	Found             bool
}

// ListOffsetsAt is ListOffset for Kafka's ListOffsets: it fences a
// client's current leader epoch (-1 for none), serves the newer specs
// (MaxTimestamp, EarliestLocalTimestamp, LatestTieredTimestamp) and tells
// the leader epoch of each offset found, from the partition's epoch
// history, as Kafka's leader answers from its epoch cache.
func (b *Broker) ListOffsetsAt(ctx context.Context, topicName string, partition, currentEpoch int32, ts int64, iso IsolationLevel) (ListedOffset, error) {
	if b.virtualTopic(topicName) {
		return b.listVirtual(topicName, partition, ts, iso)
	}
	p, err := b.hosted.leaderPartition(topicName, partition)
	if err != nil {
		return ListedOffset{}, err
	}
	if err := p.checkCurrentEpoch(currentEpoch); err != nil {
		return ListedOffset{}, err
	}
	switch ts {
	case EarliestLocalTimestamp:
		// A crash may leave the local start below the bucket's.
		off := max(p.log.LogStartOffset(), p.LogStartOffset())
		return ListedOffset{Offset: off, Timestamp: -1, LeaderEpoch: epochAt(p.epochHistory(), off), Found: true}, nil
	case LatestTieredTimestamp:
		return p.latestTiered(ctx)
	case MaxTimestamp:
		maxTS, ok := p.maxTimestamp()
		if !ok || maxTS < 0 {
			// No record, or none with a timestamp.
			return ListedOffset{}, nil
		}
		ts = maxTS
	}
	if ts < EarliestTimestamp {
		return ListedOffset{}, fmt.Errorf("%w: timestamp %d", ErrInvalidRequest, ts)
	}
	off, got, found, err := b.ListOffset(topicName, partition, ts, iso)
	if err != nil || !found {
		return ListedOffset{}, err
	}
	res := ListedOffset{Offset: off, Timestamp: got, Found: true}
	if ts == LatestTimestamp {
		// Kafka's leader names its own epoch for the end.
		p.mu.Lock()
		res.LeaderEpoch = p.leaderEpoch
		p.mu.Unlock()
	} else {
		res.LeaderEpoch = epochAt(p.epochHistory(), off)
	}
	return res, nil
}

// listVirtual answers ListOffsets of the internal topic, which is empty.
func (b *Broker) listVirtual(topicName string, partition int32, ts int64, iso IsolationLevel) (ListedOffset, error) {
	switch ts {
	case MaxTimestamp:
		ts = 0 // no record: not found, as a lookup by time
	case EarliestLocalTimestamp:
		ts = EarliestTimestamp
	case LatestTieredTimestamp:
		if partition < 0 || partition >= b.offsetsPartitions {
			return ListedOffset{}, fmt.Errorf("%s-%d: %w", topicName, partition, ErrUnknownTopicOrPartition)
		}
		return ListedOffset{Offset: -1, Timestamp: -1, LeaderEpoch: -1, Found: true}, nil
	}
	off, got, found, err := b.ListOffset(topicName, partition, ts, iso)
	if err != nil || !found {
		return ListedOffset{}, err
	}
	return ListedOffset{Offset: off, Timestamp: got, LeaderEpoch: -1, Found: true}, nil
}

// latestTiered is the last offset the bucket holds, as Kafka's highest
// offset in remote storage: -1 when the partition is not tiered or nothing
// is uploaded yet.
func (p *Partition) latestTiered(ctx context.Context) (ListedOffset, error) {
	none := ListedOffset{Offset: -1, Timestamp: -1, LeaderEpoch: -1, Found: true}
	if p.remote == nil {
		return none, nil
	}
	if err := p.remote.EnsureManifest(ctx); err != nil {
		return ListedOffset{}, fmt.Errorf("list offsets %s-%d: %w", p.Topic, p.Index, err)
	}
	m, _ := p.remote.Manifest()
	if m == nil || len(m.Segments) == 0 {
		return none, nil
	}
	off := m.EndOffset() - 1
	return ListedOffset{Offset: off, Timestamp: -1, LeaderEpoch: epochAt(p.epochHistory(), off), Found: true}, nil
}

// maxTimestamp is the largest record timestamp of the partition, in the
// bucket or on disk.
func (p *Partition) maxTimestamp() (int64, bool) {
	ts, ok := p.log.MaxTimestamp()
	if p.remote == nil {
		return ts, ok
	}
	m, _ := p.remote.Manifest()
	if m == nil {
		return ts, ok
	}
	start := p.LogStartOffset()
	for _, s := range m.Segments {
		if s.NextOffset <= start {
			continue
		}
		if !ok || s.MaxTimestamp > ts {
			ts, ok = s.MaxTimestamp, true
		}
	}
	return ts, ok
}

// epochAt is the leader epoch of the batch holding offset: the last epoch
// starting at or before it; -1 when the history does not reach it.
func epochAt(entries []partlog.EpochEntry, offset int64) int32 {
	epoch := partlog.UndefinedEpoch
	for _, e := range entries {
		if e.StartOffset > offset {
			break
		}
		epoch = e.Epoch
	}
	return epoch
}
