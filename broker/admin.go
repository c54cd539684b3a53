package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/strata-broker/strata/broker/placement"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/topicconfig"
)

// MaxPartitions bounds the partitions of one topic. Creating a topic is one
// etcd transaction with an operation per partition, and the embedded etcd
// allows 4096 operations per transaction.
const MaxPartitions = 4000

// TopicSpec describes a topic to create. Zero or negative counts take the
// broker defaults (num.partitions, default.replication.factor), as Kafka's -1 does.
type TopicSpec struct {
	Name              string
	Partitions        int32
	ReplicationFactor int32
	Configs           map[string]string
	ValidateOnly      bool
	// ID and LeaderEpochs are for a topic restored from the object store:
	// it keeps its id (the bucket's keys carry it) and its partitions start
	// above the leader epochs their remote segments were written in.
	ID           string
	LeaderEpochs []int32
}

// TopicDescription is a topic with its partitions' replica state and its
// effective configuration.
type TopicDescription struct {
	Name              string
	ID                string
	ReplicationFactor int32
	Partitions        []metastore.PartitionState
	Configs           []topicconfig.Entry
}

func (b *Broker) settingInt(key string, def int32) (int32, error) {
	v, ok := b.cfg.Settings[key]
	if !ok {
		return def, nil
	}
	var n int32
	if _, err := fmt.Sscan(v, &n); err != nil || n < 1 {
		return 0, fmt.Errorf("broker setting %s=%q: must be a positive integer: %w", key, v, ErrInvalidConfig)
	}
	return n, nil
}

// CreateTopic validates spec, places replicas on live brokers and records the
// topic in the metastore. The topic is usable on this broker when it returns.
func (b *Broker) CreateTopic(ctx context.Context, spec TopicSpec) (TopicDescription, error) {
	if err := topicconfig.ValidTopicName(spec.Name); err != nil {
		return TopicDescription{}, fmt.Errorf("%w: %v", ErrInvalidTopic, err)
	}
	if IsInternalTopic(spec.Name) {
		// It always exists (see internaltopic.go), as on Kafka, where the
		// first group creates it.
		return TopicDescription{}, fmt.Errorf("topic %q is internal: %w", spec.Name, ErrTopicExists)
	}
	if spec.Partitions <= 0 {
		if spec.Partitions != 0 && spec.Partitions != -1 {
			return TopicDescription{}, fmt.Errorf("%w: %d (must be at least 1)", ErrInvalidPartitions, spec.Partitions)
		}
		n, err := b.settingInt("num.partitions", 1)
		if err != nil {
			return TopicDescription{}, err
		}
		spec.Partitions = n
	}
	if spec.Partitions > MaxPartitions {
		return TopicDescription{}, fmt.Errorf("%w: %d (at most %d per topic)", ErrInvalidPartitions, spec.Partitions, MaxPartitions)
	}
	if spec.ReplicationFactor <= 0 {
		if spec.ReplicationFactor != 0 && spec.ReplicationFactor != -1 {
			return TopicDescription{}, fmt.Errorf("%w: %d (must be at least 1)", ErrInvalidReplication, spec.ReplicationFactor)
		}
		n, err := b.settingInt("default.replication.factor", 1)
		if err != nil {
			return TopicDescription{}, err
		}
		spec.ReplicationFactor = n
	}
	if err := b.validateConfigs(spec.Configs); err != nil {
		return TopicDescription{}, err
	}
	existing, _, err := b.store.ListTopics(ctx)
	if err != nil {
		return TopicDescription{}, fmt.Errorf("create topic %q: list topics: %w", spec.Name, err)
	}
	for _, t := range existing {
		if t.Name != spec.Name && topicconfig.TopicNamesCollide(t.Name, spec.Name) {
			// Kafka's metric names turn '.' into '_', so it refuses names that differ only there.
			return TopicDescription{}, fmt.Errorf("%w: %q collides with existing topic %q ('.' and '_' are interchangeable in topic names)",
				ErrInvalidTopic, spec.Name, t.Name)
		}
	}
	// Checked here for validate-only requests and a prompt answer; the
	// metastore decides for good when it writes the topic.
	if err := b.limits.checkPartitions(existing, int(spec.Partitions)); err != nil {
		return TopicDescription{}, fmt.Errorf("create topic %q: %w", spec.Name, err)
	}
	brokers, err := b.store.Brokers(ctx)
	if err != nil {
		return TopicDescription{}, fmt.Errorf("create topic %q: list brokers: %w", spec.Name, err)
	}
	if int(spec.ReplicationFactor) > len(brokers) {
		return TopicDescription{}, fmt.Errorf("%w: replication factor %d is larger than the %d available broker(s)",
			ErrInvalidReplication, spec.ReplicationFactor, len(brokers))
	}
	assignments, err := assignReplicas(brokers, 0, spec.Partitions, spec.ReplicationFactor)
	if err != nil {
		return TopicDescription{}, fmt.Errorf("create topic %q: %w", spec.Name, err)
	}
	if spec.ValidateOnly {
		return b.describeSpec(spec, assignments), nil
	}
	done, err := b.limits.startCreating(ctx)
	if err != nil {
		return TopicDescription{}, fmt.Errorf("create topic %q: %w", spec.Name, err)
	}
	t, err := b.store.CreateTopic(ctx, metastore.Topic{
		Name:                spec.Name,
		Partitions:          spec.Partitions,
		ReplicationFactor:   spec.ReplicationFactor,
		Configs:             spec.Configs,
		CreatedAt:           b.now(),
		ID:                  spec.ID,
		InitialLeaderEpochs: spec.LeaderEpochs,
		PartitionLimit:      int64(b.limits.maxPartitions),
	}, assignments)
	done()
	if errors.Is(err, metastore.ErrTopicExists) {
		return TopicDescription{}, fmt.Errorf("topic %q: %w", spec.Name, ErrTopicExists)
	}
	if errors.Is(err, metastore.ErrTopicDeletionPending) {
		return TopicDescription{}, fmt.Errorf("%w: topic %q: %v", ErrInvalidRequest, spec.Name, err)
	}
	if err := b.limits.policyError(err); err != nil {
		return TopicDescription{}, fmt.Errorf("create topic %q: %w", spec.Name, err)
	}
	if err != nil {
		return TopicDescription{}, fmt.Errorf("create topic %q: %w", spec.Name, err)
	}
	// Apply now rather than waiting for the watch, so that a client may use
	// the topic as soon as the call returns.
	if err := b.hosted.applyTopic(t); err != nil {
		return TopicDescription{}, fmt.Errorf("create topic %q: open partitions: %w", spec.Name, err)
	}
	b.logger.Info("topic created", "topic", t.Name, "partitions", t.Partitions, "replication_factor", t.ReplicationFactor)
	return b.DescribeTopic(ctx, spec.Name)
}

// assignReplicas places partitions first, first+1, ... of a topic on the
// live brokers: rack-aware when they name racks (each partition's replicas
// in distinct racks as far as the racks allow), round-robin by node id
// otherwise, leaders spread evenly either way (see broker/placement).
// Partitions added to a topic continue its pattern.
func assignReplicas(brokers []metastore.BrokerInfo, first, partitions, rf int32) ([][]int32, error) {
	in := make([]placement.Broker, len(brokers))
	for i, br := range brokers {
		in[i] = placement.Broker{ID: br.NodeID, Rack: br.Rack}
	}
	out, err := placement.Assign(in, first, partitions, rf)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidReplication, err)
	}
	return out, nil
}

// createPartitionsAttempts bounds CreatePartitions' retries when the topic
// changes between its read and its write (another admin call's change).
const createPartitionsAttempts = 5

// CreatePartitions grows topic to count partitions, as Kafka's
// CreatePartitions. With nil assignments the new partitions are placed as
// CreateTopic places a topic's (assignReplicas), continuing from the
// existing partitions, with the topic's replication
// factor. Otherwise assignments[i] is the replica list of partition
// current+i (its first replica the leader): one per new partition, each of
// the topic's replication factor, naming live brokers once each (an empty,
// non-nil slice is a count mismatch, as in Kafka).
//
// Partitions are never removed: a count not above the current one is
// ErrInvalidPartitions. The new count and the new partitions' states are
// recorded in one metastore transaction, fenced by the topic's revision;
// with validateOnly nothing is. The new partitions are usable on this
// broker when it returns; other brokers open theirs when the topic watch
// reports the change.
func (b *Broker) CreatePartitions(ctx context.Context, topic string, count int32, assignments [][]int32, validateOnly bool) error {
	if b.virtualTopic(topic) {
		return fmt.Errorf("%w: the partitions of internal topic %q are set by %s", ErrInvalidPartitions, topic, OffsetsTopicPartitionsKey)
	}
	for attempt := 1; ; attempt++ {
		t, err := b.store.GetTopic(ctx, topic)
		if errors.Is(err, metastore.ErrTopicNotFound) {
			return fmt.Errorf("topic %q: %w", topic, ErrUnknownTopicOrPartition)
		}
		if err != nil {
			return fmt.Errorf("create partitions of %q: %w", topic, err)
		}
		added, err := b.placeNewPartitions(ctx, t, count, assignments)
		if err != nil {
			return err
		}
		if validateOnly {
			topics, err := b.ListTopics(ctx)
			if err != nil {
				return fmt.Errorf("create partitions of %q: %w", topic, err)
			}
			if err := b.limits.checkPartitions(topics, len(added)); err != nil {
				return fmt.Errorf("create partitions of %q: %w", topic, err)
			}
			return nil
		}
		t.PartitionLimit = int64(b.limits.maxPartitions)
		done, err := b.limits.startCreating(ctx)
		if err != nil {
			return fmt.Errorf("create partitions of %q: %w", topic, err)
		}
		grown, err := b.store.AddPartitions(ctx, t, added)
		done()
		if perr := b.limits.policyError(err); perr != nil {
			return fmt.Errorf("create partitions of %q: %w", topic, perr)
		}
		switch {
		case errors.Is(err, metastore.ErrConflict) && attempt < createPartitionsAttempts:
			// Changed since it was read: decide again on what it is now.
			b.logger.Debug("topic changed during create partitions, retrying", "topic", topic)
			continue
		case errors.Is(err, metastore.ErrTopicNotFound):
			return fmt.Errorf("topic %q: %w", topic, ErrUnknownTopicOrPartition)
		case err != nil:
			return fmt.Errorf("create partitions of %q: %w", topic, err)
		}
		// Apply now rather than waiting for the watch, as CreateTopic does.
		if err := b.hosted.applyTopic(grown); err != nil {
			return fmt.Errorf("create partitions of %q: open partitions: %w", topic, err)
		}
		b.logger.Info("partitions created", "topic", topic, "partitions", grown.Partitions, "previous", t.Partitions)
		return nil
	}
}

// placeNewPartitions checks a CreatePartitions request against the topic as
// read and returns the replica lists of the partitions to add.
func (b *Broker) placeNewPartitions(ctx context.Context, t metastore.Topic, count int32, assignments [][]int32) ([][]int32, error) {
	switch {
	case count == t.Partitions:
		return nil, fmt.Errorf("%w: Topic already has %d partitions.", ErrInvalidPartitions, t.Partitions)
	case count < t.Partitions:
		return nil, fmt.Errorf("%w: Topic currently has %d partitions, which is higher than the requested %d.",
			ErrInvalidPartitions, t.Partitions, count)
	case count > MaxPartitions:
		return nil, fmt.Errorf("%w: %d (at most %d per topic)", ErrInvalidPartitions, count, MaxPartitions)
	}
	brokers, err := b.store.Brokers(ctx)
	if err != nil {
		return nil, fmt.Errorf("create partitions of %q: list brokers: %w", t.Name, err)
	}
	n := count - t.Partitions
	if assignments == nil {
		if int(t.ReplicationFactor) > len(brokers) {
			return nil, fmt.Errorf("%w: replication factor %d is larger than the %d available broker(s)",
				ErrInvalidReplication, t.ReplicationFactor, len(brokers))
		}
		added, err := assignReplicas(brokers, t.Partitions, n, t.ReplicationFactor)
		if err != nil {
			return nil, fmt.Errorf("create partitions of %q: %w", t.Name, err)
		}
		return added, nil
	}
	if len(assignments) != int(n) {
		return nil, fmt.Errorf("%w: Increasing the number of partitions by %d but %d assignments provided.",
			ErrInvalidRequest, n, len(assignments))
	}
	live := make(map[int32]bool, len(brokers))
	for _, br := range brokers {
		live[br.NodeID] = true
	}
	out := make([][]int32, len(assignments))
	for i, replicas := range assignments {
		p := t.Partitions + int32(i)
		if len(replicas) != int(t.ReplicationFactor) {
			return nil, fmt.Errorf("%w: partition %d has %d replicas, the topic's replication factor is %d",
				ErrInvalidReplication, p, len(replicas), t.ReplicationFactor)
		}
		for j, id := range replicas {
			if slices.Contains(replicas[j+1:], id) {
				return nil, fmt.Errorf("%w: partition %d lists broker %d twice", ErrInvalidRequest, p, id)
			}
			if !live[id] {
				return nil, fmt.Errorf("%w: partition %d names unknown broker %d", ErrInvalidRequest, p, id)
			}
		}
		out[i] = slices.Clone(replicas)
	}
	return out, nil
}

func (b *Broker) describeSpec(spec TopicSpec, assignments [][]int32) TopicDescription {
	d := TopicDescription{Name: spec.Name, ReplicationFactor: spec.ReplicationFactor}
	for p, replicas := range assignments {
		d.Partitions = append(d.Partitions, metastore.PartitionState{
			Topic: spec.Name, Partition: int32(p), Leader: replicas[0], Replicas: replicas, ISR: replicas,
		})
	}
	_, d.Configs, _ = topicconfig.Resolve(spec.Configs, b.brokerDefaults)
	return d
}

// validateConfigs checks topic overrides on their own and together with the
// broker defaults (rules between keys, such as local retention within total
// retention, depend on both).
func (b *Broker) validateConfigs(overrides map[string]string) error {
	if err := topicconfig.ValidateOverrides(overrides); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	cfg, _, err := topicconfig.Resolve(overrides, b.brokerDefaults)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	if err := b.limits.checkSegmentBytes(cfg); err != nil {
		return err
	}
	if cfg.RemoteStorageEnable && b.cfg.ObjectStore == nil {
		return fmt.Errorf("%w: remote.storage.enable=true needs the brokers to run with an object store (--object-store)", ErrInvalidConfig)
	}
	return nil
}

// DeleteTopic removes a topic from the metastore and its data from this broker.
func (b *Broker) DeleteTopic(ctx context.Context, name string) error {
	if b.virtualTopic(name) {
		// Kafka's tools refuse it too; there is nothing to delete.
		return fmt.Errorf("%w: %q is internal and cannot be deleted", ErrInvalidTopic, name)
	}
	t, err := b.store.GetTopic(ctx, name)
	if errors.Is(err, metastore.ErrTopicNotFound) {
		return fmt.Errorf("topic %q: %w", name, ErrUnknownTopicOrPartition)
	}
	if err != nil {
		return fmt.Errorf("delete topic %q: %w", name, err)
	}
	if err := b.store.DeleteTopic(ctx, name); err != nil {
		if errors.Is(err, metastore.ErrTopicNotFound) {
			return fmt.Errorf("topic %q: %w", name, ErrUnknownTopicOrPartition)
		}
		return fmt.Errorf("delete topic %q: %w", name, err)
	}
	b.hosted.removeTopic(name, t.ID)
	b.logger.Info("topic deleted", "topic", name)
	return nil
}

// ListTopics returns the topics known to this broker, sorted by name.
func (b *Broker) ListTopics(ctx context.Context) ([]metastore.Topic, error) {
	topics, _, err := b.store.ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	return topics, nil
}

// DescribeTopic returns a topic's partitions (leader, replicas, ISR) and its
// effective configuration with the source of each value.
func (b *Broker) DescribeTopic(ctx context.Context, name string) (TopicDescription, error) {
	if b.virtualTopic(name) {
		return b.describeOffsetsTopic(ctx)
	}
	t, err := b.store.GetTopic(ctx, name)
	if errors.Is(err, metastore.ErrTopicNotFound) {
		return TopicDescription{}, fmt.Errorf("topic %q: %w", name, ErrUnknownTopicOrPartition)
	}
	if err != nil {
		return TopicDescription{}, fmt.Errorf("describe topic %q: %w", name, err)
	}
	states, err := b.store.PartitionStates(ctx, name)
	if err != nil {
		return TopicDescription{}, fmt.Errorf("describe topic %q: %w", name, err)
	}
	_, entries, err := topicconfig.Resolve(t.Configs, b.brokerDefaults)
	if err != nil {
		return TopicDescription{}, fmt.Errorf("describe topic %q: %w", name, err)
	}
	return TopicDescription{
		Name:              t.Name,
		ID:                t.ID,
		ReplicationFactor: t.ReplicationFactor,
		Partitions:        states,
		Configs:           entries,
	}, nil
}

// AlterTopicConfigs sets and deletes topic overrides, validated as a whole,
// and applies them to the local logs at once.
func (b *Broker) AlterTopicConfigs(ctx context.Context, name string, set map[string]string, del []string, validateOnly bool) ([]topicconfig.Entry, error) {
	if b.virtualTopic(name) {
		return nil, fmt.Errorf("%w: internal topic %q holds nothing here; its configs are fixed", ErrInvalidRequest, name)
	}
	for _, k := range del {
		if !slices.Contains(topicconfig.Names(), k) {
			return nil, fmt.Errorf("%w: cannot delete unknown topic config %q", ErrInvalidConfig, k)
		}
	}
	validate := b.validateConfigs
	if validateOnly {
		t, err := b.store.GetTopic(ctx, name)
		if errors.Is(err, metastore.ErrTopicNotFound) {
			return nil, fmt.Errorf("topic %q: %w", name, ErrUnknownTopicOrPartition)
		}
		if err != nil {
			return nil, fmt.Errorf("alter topic %q: %w", name, err)
		}
		merged := make(map[string]string, len(t.Configs)+len(set))
		for k, v := range t.Configs {
			merged[k] = v
		}
		for k, v := range set {
			merged[k] = v
		}
		for _, k := range del {
			delete(merged, k)
		}
		if err := validate(merged); err != nil {
			return nil, err
		}
		_, entries, err := topicconfig.Resolve(merged, b.brokerDefaults)
		return entries, err
	}
	t, err := b.store.AlterTopicConfigs(ctx, name, set, del, validate)
	if errors.Is(err, metastore.ErrTopicNotFound) {
		return nil, fmt.Errorf("topic %q: %w", name, ErrUnknownTopicOrPartition)
	}
	if err != nil {
		if errors.Is(err, ErrInvalidConfig) {
			return nil, err
		}
		return nil, fmt.Errorf("alter topic %q: %w", name, err)
	}
	if err := b.hosted.applyTopic(t); err != nil {
		return nil, fmt.Errorf("alter topic %q: apply: %w", name, err)
	}
	_, entries, err := topicconfig.Resolve(t.Configs, b.brokerDefaults)
	return entries, err
}
