package broker

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/tiering"
	"github.com/strata-broker/strata/tiering/rlm"
	"github.com/strata-broker/strata/topicconfig"
)

// The remote log manager (package tiering/rlm) copies, expires and compacts
// the tiered partitions' segments in the object store, serves reads below
// the local log from there, and deletes deleted topics' objects. The broker
// adds each partition it opens to it and removes it when dropped.

// defaultTieringIntervalMs is Kafka's remote.log.manager.task.interval.ms.
const defaultTieringIntervalMs = 30_000

func (b *Broker) newRemoteLogManager() (*rlm.Manager, error) {
	interval, err := settingMs(b.cfg.Settings, "remote.log.manager.task.interval.ms", defaultTieringIntervalMs)
	if err != nil {
		return nil, err
	}
	m, err := rlm.New(rlm.Config{
		NodeID:             b.cfg.NodeID,
		Store:              b.cfg.ObjectStore,
		DataDir:            b.cfg.DataDir,
		CacheBytes:         b.cfg.TieringCacheBytes,
		Interval:           interval,
		LeaseOK:            b.leaseOK,
		DeletedTopics:      b.store,
		Controllers:        b.store,
		CompactionMapBytes: b.cleaner.mapBytes,
		CompactionLimiter:  b.cleaner.limiter,
		RetentionDeleted:   b.retention.Count,
		Decompress:         b.inflate.do,
		Now:                b.now,
		Logger:             b.logger,
		Registerer:         b.cfg.Registerer,
	})
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	return m, nil
}

// tieredReplica is a hosted partition as the remote log manager sees it.
type tieredReplica struct {
	*Partition
	b *Broker
}

func topicPartition(t metastore.Topic, p int32) rlm.TopicPartition {
	return rlm.TopicPartition{Topic: t.Name, TopicID: t.ID, Partition: p}
}

// remoteEnabled reports whether a topic's configs, over the broker
// defaults, enable remote storage.
func remoteEnabled(t metastore.Topic, defaults map[string]string) bool {
	cfg, _, err := topicconfig.Resolve(t.Configs, defaults)
	return err == nil && cfg.RemoteStorageEnable
}

func (r tieredReplica) Leadership() (int32, bool) {
	st, role := r.State()
	return st.LeaderEpoch, role == roleLeader
}

func (r tieredReplica) Config() (topicconfig.Topic, error) { return r.b.hosted.TopicConfig(r.Topic) }

func (r tieredReplica) TopicManifest() (tiering.TopicManifest, bool) {
	t, ok := r.b.hosted.meta(r.Topic)
	if !ok {
		return tiering.TopicManifest{}, false
	}
	return tiering.TopicManifest{
		Name: t.Name, ID: t.ID, Partitions: t.Partitions,
		ReplicationFactor: t.ReplicationFactor, Configs: maps.Clone(t.Configs),
	}, true
}

// PartitionTiering is a partition's tiering state as its leader sees it.
type PartitionTiering = rlm.Status

// TieringStatus returns the tiering state of the partitions of topic that
// this broker leads, in partition order: only the leader uploads, so only
// it knows the backlog. Ask every partition's leader for the whole topic.
// A tiered partition whose manifest this broker has not read yet has it
// read from the object store first.
func (b *Broker) TieringStatus(ctx context.Context, topic string) ([]PartitionTiering, error) {
	parts, _, err := b.hosted.hostedOf(topic)
	if err != nil {
		return nil, err
	}
	out := []PartitionTiering{}
	for _, p := range parts {
		if st, ok := p.remote.Status(ctx); ok {
			out = append(out, st)
		}
	}
	return out, nil
}

// RestoreTopic recreates a topic from the object store: its newest
// incarnation there, with the same id, partition count, replication factor
// and configs. Each partition's log starts where its copy in the bucket
// ends, with a leader epoch above the ones its remote segments were written
// in, and its history is read from the bucket. An incarnation whose
// deletion is pending (its objects are being deleted) is refused.
func (b *Broker) RestoreTopic(ctx context.Context, name string) (TopicDescription, error) {
	if !b.rlm.Enabled() {
		return TopicDescription{}, fmt.Errorf("%w: restoring a topic needs the brokers to run with an object store (--object-store)", ErrInvalidRequest)
	}
	tm, epochs, err := b.rlm.Restorable(ctx, name)
	var pending *rlm.PendingDeletionError
	switch {
	case errors.Is(err, tiering.ErrNoTopic):
		return TopicDescription{}, fmt.Errorf("topic %q: %w: %v", name, ErrUnknownTopicOrPartition, err)
	case errors.As(err, &pending):
		return TopicDescription{}, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	case err != nil:
		return TopicDescription{}, fmt.Errorf("restore topic %q: %w", name, err)
	}
	configs := maps.Clone(tm.Configs)
	if configs == nil {
		configs = map[string]string{}
	}
	configs["remote.storage.enable"] = "true"
	desc, err := b.CreateTopic(ctx, TopicSpec{
		Name: tm.Name, Partitions: tm.Partitions, ReplicationFactor: tm.ReplicationFactor,
		Configs: configs, ID: tm.ID, LeaderEpochs: epochs,
	})
	if err != nil {
		return TopicDescription{}, err
	}
	b.logger.Info("topic restored from the object store", "topic", tm.Name, "topic_id", tm.ID, "partitions", tm.Partitions)
	return desc, nil
}
