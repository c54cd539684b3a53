package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/strata-broker/strata/broker/controller"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/topicconfig"
)

// Reassignment is one partition's move: to Replicas, its preferred leader
// first, or, with no replicas, the cancellation of its move in progress.
type Reassignment struct {
	Topic     string
	Partition int32
	Replicas  []int32
}

// reassignAttempts bounds how often a move is decided again after the
// partition's state changed under it (an ISR change, a failover).
const reassignAttempts = 10

// AlterPartitionReassignments records each move in the partition's state in
// the metastore, where the controller carries it out; it returns one error
// per move, nil for those recorded. A move's state is all there is of it,
// so it survives the failover of the controller and the crash of any broker
// taking part.
func (b *Broker) AlterPartitionReassignments(ctx context.Context, moves []Reassignment) []error {
	errs := make([]error, len(moves))
	states := b.newStateReader()
	var live map[int32]bool
	for i, m := range moves {
		if len(m.Replicas) > 0 && live == nil {
			brokers, err := b.store.Brokers(ctx)
			if err != nil {
				errs[i] = fmt.Errorf("reassign %s-%d: read the live brokers: %w", m.Topic, m.Partition, err)
				continue
			}
			live = make(map[int32]bool, len(brokers))
			for _, br := range brokers {
				live[br.NodeID] = true
			}
		}
		errs[i] = b.reassign(ctx, m, live, states)
	}
	return errs
}

func (b *Broker) reassign(ctx context.Context, m Reassignment, live map[int32]bool, states *stateReader) error {
	for _, id := range m.Replicas {
		if !live[id] {
			return fmt.Errorf("reassign %s-%d: broker %d is not alive: %w", m.Topic, m.Partition, id, ErrInvalidReplicaAssignment)
		}
	}
	if len(m.Replicas) > 0 {
		// A target smaller than min.insync.replicas would leave every
		// acks=all produce refused once the move completes: the move
		// itself would have taken the partition's guarantee away.
		cfg, err := states.config(ctx, m.Topic)
		if err != nil {
			return fmt.Errorf("reassign %s-%d: %w", m.Topic, m.Partition, err)
		}
		if int64(len(m.Replicas)) < cfg.MinInsyncReplicas {
			return fmt.Errorf("reassign %s-%d: %d replicas are fewer than the topic's min.insync.replicas=%d, so acks=all producers would be refused; lower min.insync.replicas first: %w",
				m.Topic, m.Partition, len(m.Replicas), cfg.MinInsyncReplicas, ErrInvalidReplicaAssignment)
		}
	}
	for attempt := 1; ; attempt++ {
		cur, err := states.get(ctx, m.Topic, m.Partition)
		if err != nil {
			return fmt.Errorf("reassign: %w", err)
		}
		var next metastore.PartitionState
		changed := true
		if len(m.Replicas) == 0 {
			next, err = controller.CancelMove(cur)
		} else {
			next, changed, err = controller.StartMove(cur, m.Replicas)
		}
		switch {
		case errors.Is(err, controller.ErrNoMove):
			return fmt.Errorf("cancel the move of %s-%d: %w", m.Topic, m.Partition, ErrNoReassignmentInProgress)
		case errors.Is(err, controller.ErrBadTarget):
			return fmt.Errorf("reassign %s-%d: %w: %v", m.Topic, m.Partition, ErrInvalidReplicaAssignment, err)
		case err != nil:
			return fmt.Errorf("reassign %s-%d: %w", m.Topic, m.Partition, err)
		case !changed:
			return nil
		}
		got, err := b.store.CompareAndSwapPartitionState(ctx, cur, next)
		if errors.Is(err, metastore.ErrConflict) && attempt < reassignAttempts {
			states.set(got)
			continue
		}
		if err != nil {
			return fmt.Errorf("reassign %s-%d: %w", m.Topic, m.Partition, err)
		}
		b.logger.Info("partition reassignment recorded", "topic", m.Topic, "partition", m.Partition,
			"target", got.TargetReplicas(), "replicas", got.Replicas, "adding", got.AddingReplicas, "removing", got.RemovingReplicas)
		// Applied here at once, as admin calls do; the others learn it from
		// their follow.
		b.hosted.applyStates(b.cluster.mergeStates(metastore.PartitionsUpdate{States: []metastore.PartitionState{got}}))
		return nil
	}
}

// stateReader reads partition states from the metastore for one admin
// call, one read per topic: a call naming every partition of a large topic
// would otherwise read the whole topic once per partition. A state that a
// compare-and-swap found changed is replaced by the current one the swap
// returned.
type stateReader struct {
	b       *Broker
	topics  map[string][]metastore.PartitionState
	configs map[string]topicconfig.Topic
}

func (b *Broker) newStateReader() *stateReader {
	return &stateReader{b: b, topics: map[string][]metastore.PartitionState{}, configs: map[string]topicconfig.Topic{}}
}

func (r *stateReader) get(ctx context.Context, topic string, partition int32) (metastore.PartitionState, error) {
	states, ok := r.topics[topic]
	if !ok {
		if metastore.CheckTopicName(topic) != nil {
			return metastore.PartitionState{}, fmt.Errorf("topic %q: %w", topic, ErrUnknownTopicOrPartition)
		}
		var err error
		states, err = r.b.store.PartitionStates(ctx, topic)
		if errors.Is(err, metastore.ErrTopicNotFound) {
			return metastore.PartitionState{}, fmt.Errorf("topic %q: %w", topic, ErrUnknownTopicOrPartition)
		}
		if err != nil {
			return metastore.PartitionState{}, fmt.Errorf("partition states of %q: %w", topic, err)
		}
		r.topics[topic] = states
	}
	if partition < 0 || int(partition) >= len(states) || states[partition].Partition != partition {
		return metastore.PartitionState{}, fmt.Errorf("topic %q has no partition %d: %w", topic, partition, ErrUnknownTopicOrPartition)
	}
	return states[partition], nil
}

// set records st as the partition's current state.
func (r *stateReader) set(st metastore.PartitionState) {
	if states := r.topics[st.Topic]; int(st.Partition) < len(states) && st.Revision > states[st.Partition].Revision {
		states[st.Partition] = st
	}
}

// ListPartitionReassignments returns the states of the named partitions
// that are moving (of every moving partition when none is named), from the
// metastore.
func (b *Broker) ListPartitionReassignments(ctx context.Context, parts []metastore.TopicPartition) ([]metastore.PartitionState, error) {
	var topics []string
	if len(parts) == 0 {
		all, _, err := b.store.ListTopics(ctx)
		if err != nil {
			return nil, fmt.Errorf("list reassignments: %w", err)
		}
		for _, t := range all {
			topics = append(topics, t.Name)
		}
	} else {
		for _, p := range parts {
			if !slices.Contains(topics, p.Topic) {
				topics = append(topics, p.Topic)
			}
		}
	}
	var out []metastore.PartitionState
	for _, name := range topics {
		if metastore.CheckTopicName(name) != nil {
			continue
		}
		states, err := b.store.PartitionStates(ctx, name)
		if errors.Is(err, metastore.ErrTopicNotFound) {
			continue // Kafka lists nothing for an unknown partition
		}
		if err != nil {
			return nil, fmt.Errorf("list reassignments: %w", err)
		}
		for _, st := range states {
			if !st.Moving() {
				continue
			}
			if len(parts) > 0 && !slices.Contains(parts, metastore.TopicPartition{Topic: st.Topic, Partition: st.Partition}) {
				continue
			}
			out = append(out, st)
		}
	}
	return out, nil
}

// config is a topic's effective config as the metastore holds it, read
// once per call.
func (r *stateReader) config(ctx context.Context, name string) (topicconfig.Topic, error) {
	if cfg, ok := r.configs[name]; ok {
		return cfg, nil
	}
	if metastore.CheckTopicName(name) != nil {
		return topicconfig.Topic{}, fmt.Errorf("topic %q: %w", name, ErrUnknownTopicOrPartition)
	}
	t, err := r.b.store.GetTopic(ctx, name)
	if errors.Is(err, metastore.ErrTopicNotFound) {
		return topicconfig.Topic{}, fmt.Errorf("topic %q: %w", name, ErrUnknownTopicOrPartition)
	}
	if err != nil {
		return topicconfig.Topic{}, fmt.Errorf("read topic %q: %w", name, err)
	}
	cfg, _, _ := topicconfig.Resolve(t.Configs, r.b.brokerDefaults)
	r.configs[name] = cfg
	return cfg, nil
}
