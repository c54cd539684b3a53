package broker

import (
	"fmt"
	"slices"

	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/tiering"
)

// OffsetForLeaderEpoch answers where leader epoch epoch ends (the largest
// known epoch at most epoch, and its end; both -1 when the log knows no
// epoch) in a partition
// this broker leads, as Kafka's leader does for consumers checking for
// truncation after a leader change (KIP-320). currentEpoch, when not -1,
// is the leader epoch the client knows: an older one is
// ErrFencedLeaderEpoch, a newer one ErrUnknownLeaderEpoch. The history is
// the bucket's (for a tiered partition) followed by the local log's, from
// the log start: Kafka's leader epoch cache keeps everything from the log
// start offset, also what is only in remote storage.
func (b *Broker) OffsetForLeaderEpoch(topicName string, partition, currentEpoch, epoch int32) (EpochEndOffset, error) {
	if b.virtualTopic(topicName) {
		if partition < 0 || partition >= b.offsetsPartitions {
			return EpochEndOffset{}, fmt.Errorf("%s-%d: %w", topicName, partition, ErrUnknownTopicOrPartition)
		}
		if err := checkCurrentEpoch(topicName, partition, currentEpoch, 0); err != nil {
			return EpochEndOffset{}, err
		}
		// Empty: no epoch has a batch.
		return EpochEndOffset{Epoch: partlog.UndefinedEpoch, EndOffset: -1}, nil
	}
	p, err := b.hosted.partition(topicName, partition)
	if err == nil {
		err = p.checkCurrentEpoch(currentEpoch)
	}
	if err != nil {
		// Not hosted here: leaderPartition tells a partition led elsewhere.
		if _, lerr := b.hosted.leaderPartition(topicName, partition); lerr != nil {
			return EpochEndOffset{}, lerr
		}
		return EpochEndOffset{}, err
	}
	if err := p.checkLeader(); err != nil {
		return EpochEndOffset{}, err
	}
	return endOffsetForEpoch(p.epochHistory(), epoch, p.LogEndOffset()), nil
}

// checkCurrentEpoch fences a client's idea of the leader epoch, as Kafka's
// leader does before answering.
func (p *Partition) checkCurrentEpoch(current int32) error {
	p.mu.Lock()
	epoch := p.leaderEpoch
	p.mu.Unlock()
	return checkCurrentEpoch(p.Topic, p.Index, current, epoch)
}

func checkCurrentEpoch(topic string, partition, current, epoch int32) error {
	switch {
	case current < 0:
		return nil
	case current < epoch:
		return fmt.Errorf("%s-%d: epoch %d, leader is at %d: %w", topic, partition, current, epoch, ErrFencedLeaderEpoch)
	case current > epoch:
		return fmt.Errorf("%s-%d: epoch %d, leader is at %d: %w", topic, partition, current, epoch, ErrUnknownLeaderEpoch)
	}
	return nil
}

// epochHistory is the partition's leader epochs from its log start: those
// of the bucket's segments, then the local log's newer ones. The local log
// forgets the epochs below its own start once tiering deletes the segments
// holding them, and the first one it keeps starts at its local start, not
// where the epoch began; the bucket's segments record where each began.
func (p *Partition) epochHistory() []partlog.EpochEntry {
	local := p.log.Epochs()
	if p.remote == nil {
		return local
	}
	m, _ := p.remote.Manifest()
	return epochHistory(m, local, p.LogStartOffset())
}

// epochHistory merges the epochs of the manifest's segments (nil when
// there is none) with the local log's, from the log start.
func epochHistory(m *tiering.PartitionManifest, local []partlog.EpochEntry, start int64) []partlog.EpochEntry {
	if m == nil {
		return local
	}
	var out []partlog.EpochEntry
	add := func(e partlog.EpochEntry) {
		// An epoch is where it first appears; an entry of an epoch not
		// newer than the last one kept adds nothing.
		if n := len(out); n > 0 && out[n-1].Epoch >= e.Epoch {
			return
		}
		out = append(out, e)
	}
	for _, s := range m.Segments {
		for _, e := range s.Epochs {
			add(partlog.EpochEntry{Epoch: e.Epoch, StartOffset: e.StartOffset})
		}
	}
	for _, e := range local {
		add(e)
	}
	return truncateEpochsFromStart(out, start)
}

// truncateEpochsFromStart drops the epochs that end at or below start, and
// moves the one holding start to start, as Kafka's cache does when the log
// start moves up.
func truncateEpochsFromStart(entries []partlog.EpochEntry, start int64) []partlog.EpochEntry {
	holder := -1
	for i, e := range entries {
		if e.StartOffset <= start {
			holder = i
		}
	}
	if holder < 0 {
		return entries
	}
	out := slices.Clone(entries[holder:])
	out[0].StartOffset = start
	return out
}

// endOffsetForEpoch is Kafka's leader epoch cache lookup: the latest epoch
// ends at the log end; an older one at the start of the next epoch, with
// the largest known epoch at most the one asked for; one older than every
// known epoch at the first known epoch's start (what is below was deleted).
// An epoch newer than every known one, or no epoch known, is (-1, -1).
func endOffsetForEpoch(entries []partlog.EpochEntry, epoch int32, logEnd int64) EpochEndOffset {
	undefined := EpochEndOffset{Epoch: partlog.UndefinedEpoch, EndOffset: -1}
	if epoch == partlog.UndefinedEpoch || len(entries) == 0 {
		return undefined
	}
	if entries[len(entries)-1].Epoch == epoch {
		return EpochEndOffset{Epoch: epoch, EndOffset: logEnd}
	}
	higher := slices.IndexFunc(entries, func(e partlog.EpochEntry) bool { return e.Epoch > epoch })
	switch {
	case higher < 0:
		return undefined
	case higher == 0:
		return EpochEndOffset{Epoch: epoch, EndOffset: entries[0].StartOffset}
	}
	return EpochEndOffset{Epoch: entries[higher-1].Epoch, EndOffset: entries[higher].StartOffset}
}
