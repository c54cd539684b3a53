package broker

import (
	"context"
	"errors"
	"fmt"

	"github.com/strata-broker/strata/broker/controller"
	"github.com/strata-broker/strata/metastore"
)

// ElectionResult is one partition's answer to ElectLeaders.
type ElectionResult struct {
	Topic     string
	Partition int32
	// Leader is the partition's leader after the call, -1 if none.
	Leader int32
	Err    error
}

// electAttempts bounds how often an election is decided again after the
// partition's state changed under it.
const electAttempts = 5

// ElectLeaders elects leaders as Kafka's ElectLeaders does: the preferred
// replica (the first of the replica list) where it is alive and in the ISR,
// or, unclean, any live replica of a leaderless partition. Every partition
// is elected in when none is named. The broker decides on a fresh read of
// the live brokers and their broker epochs, by the controller's rules of
// who counts, and writes each change as a compare-and-swap on the state.
func (b *Broker) ElectLeaders(ctx context.Context, unclean bool, parts []metastore.TopicPartition) ([]ElectionResult, error) {
	if len(parts) == 0 {
		topics, _, err := b.store.ListTopics(ctx)
		if err != nil {
			return nil, fmt.Errorf("elect leaders: %w", err)
		}
		for _, t := range topics {
			for i := range t.Partitions {
				parts = append(parts, metastore.TopicPartition{Topic: t.Name, Partition: i})
			}
		}
	}
	brokers, err := b.store.Brokers(ctx)
	if err != nil {
		return nil, fmt.Errorf("elect leaders: read the live brokers: %w", err)
	}
	epochs := make(map[int32]int64, len(brokers))
	for _, br := range brokers {
		epochs[br.NodeID] = br.Epoch
	}
	out := make([]ElectionResult, 0, len(parts))
	states := b.newStateReader()
	for _, tp := range parts {
		leader, err := b.elect(ctx, tp, unclean, epochs, states)
		out = append(out, ElectionResult{Topic: tp.Topic, Partition: tp.Partition, Leader: leader, Err: err})
	}
	return out, nil
}

func (b *Broker) elect(ctx context.Context, tp metastore.TopicPartition, unclean bool, epochs map[int32]int64, states *stateReader) (int32, error) {
	for attempt := 1; ; attempt++ {
		cur, err := states.get(ctx, tp.Topic, tp.Partition)
		if err != nil {
			return -1, fmt.Errorf("elect leader: %w", err)
		}
		live := controller.Current(cur, epochs)
		var next metastore.PartitionState
		if unclean {
			next, err = controller.UncleanLeader(cur, live)
		} else {
			next, err = controller.PreferredLeader(cur, live)
		}
		// Each result names its partition: the errors need not.
		switch {
		case errors.Is(err, controller.ErrElectionNotNeeded):
			return cur.Leader, fmt.Errorf("%w: broker %d leads already", ErrElectionNotNeeded, cur.Leader)
		case err != nil:
			// ErrPreferredLeaderNotAvailable or ErrEligibleLeadersNotAvailable,
			// with the reason.
			return cur.Leader, err
		}
		got, err := b.store.CompareAndSwapPartitionState(ctx, cur, next)
		if errors.Is(err, metastore.ErrConflict) && attempt < electAttempts {
			states.set(got)
			continue
		}
		if err != nil {
			return cur.Leader, fmt.Errorf("elect leader of %s-%d: %w", tp.Topic, tp.Partition, err)
		}
		b.logger.Info("leader elected", "topic", tp.Topic, "partition", tp.Partition, "leader", got.Leader,
			"leader_epoch", got.LeaderEpoch, "previous_leader", cur.Leader, "unclean", unclean)
		b.hosted.applyStates(b.cluster.mergeStates(metastore.PartitionsUpdate{States: []metastore.PartitionState{got}}))
		return got.Leader, nil
	}
}
