package broker

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/topicconfig"
)

// newGroupCoordinator reads the group settings (Kafka's keys) and builds the
// coordinator for the groups this broker owns.
func newGroupCoordinator(b *Broker) (*group.Coordinator, error) {
	ms := func(key string, def time.Duration) (time.Duration, error) {
		return settingMs(b.cfg.Settings, key, int64(def/time.Millisecond))
	}
	var cfg group.Config
	var err error
	// Zero is a valid delay (no wait for more members), which settingMs
	// refuses.
	if v := b.cfg.Settings["group.initial.rebalance.delay.ms"]; v != "0" {
		if cfg.InitialRebalanceDelay, err = ms("group.initial.rebalance.delay.ms", group.DefaultInitialRebalanceDelay); err != nil {
			return nil, err
		}
	}
	if cfg.MinSessionTimeout, err = ms("group.min.session.timeout.ms", group.DefaultMinSessionTimeout); err != nil {
		return nil, err
	}
	if cfg.MaxSessionTimeout, err = ms("group.max.session.timeout.ms", group.DefaultMaxSessionTimeout); err != nil {
		return nil, err
	}
	retention := group.DefaultOffsetsRetention
	if v, ok := b.cfg.Settings["offsets.retention.minutes"]; ok {
		n, perr := strconv.ParseInt(v, 10, 32)
		if perr != nil || n < 1 {
			return nil, fmt.Errorf("broker: setting offsets.retention.minutes=%q: must be a positive number of minutes: %w", v, ErrInvalidConfig)
		}
		retention = time.Duration(n) * time.Minute
	}
	cfg.OffsetsRetention = retention
	if cfg.MaxMetadataBytes, err = topicconfig.OffsetMetadataMaxBytes(b.cfg.Settings); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	if cfg.MaxMetadataBytes == 0 {
		cfg.MaxMetadataBytes = -1 // the coordinator's zero is the default
	}
	if cfg.MaxSize, err = topicconfig.GroupMaxSize(b.cfg.Settings); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	// As Kafka's OffsetCommit handler does, from the topics this broker
	// knows: a commit for a partition that does not exist would be kept in
	// etcd for nothing.
	cfg.PartitionExists = func(topic string, partition int32) bool {
		n, err := b.PartitionCount(topic)
		return err == nil && partition >= 0 && partition < n
	}
	if cfg.ConsumerSessionTimeout, err = ms("group.consumer.session.timeout.ms", group.DefaultConsumerSessionTimeout); err != nil {
		return nil, err
	}
	if cfg.ConsumerHeartbeatInterval, err = ms("group.consumer.heartbeat.interval.ms", group.DefaultConsumerHeartbeatInterval); err != nil {
		return nil, err
	}
	if cfg.ConsumerHeartbeatInterval >= cfg.ConsumerSessionTimeout {
		return nil, fmt.Errorf("broker: group.consumer.heartbeat.interval.ms (%v) must be below group.consumer.session.timeout.ms (%v): %w",
			cfg.ConsumerHeartbeatInterval, cfg.ConsumerSessionTimeout, ErrInvalidConfig)
	}
	// A consumer group's own consumer.session.timeout.ms and
	// consumer.heartbeat.interval.ms (group configs, cached) apply to its
	// members; the settings above are their defaults.
	cfg.ConsumerTimeouts = func(ctx context.Context, name string) (time.Duration, time.Duration, error) {
		gc, err := b.GroupConfigs(ctx, name)
		if err != nil {
			return 0, 0, err
		}
		return gc.ConsumerSessionTimeout, gc.ConsumerHeartbeatInterval, nil
	}
	if v, ok := b.cfg.Settings["group.consumer.assignors"]; ok {
		for _, name := range strings.Split(v, ",") {
			name = strings.TrimSpace(name)
			if !slices.Contains(group.Assignors(), name) || slices.Contains(cfg.ConsumerAssignors, name) {
				return nil, fmt.Errorf("broker: setting group.consumer.assignors=%q: %q is not one of %v (or is named twice): %w",
					v, name, group.Assignors(), ErrInvalidConfig)
			}
			cfg.ConsumerAssignors = append(cfg.ConsumerAssignors, name)
		}
	}
	// The consumer group protocol's assignors and regular expressions see
	// the topics this broker knows. As in Kafka, a regular expression may
	// match an internal topic: the client decides whether to consume it.
	cfg.Topics = func() []group.TopicInfo {
		_, known := b.hosted.known(nil)
		out := make([]group.TopicInfo, 0, len(known))
		for name, t := range known {
			if t.ID == "" {
				continue
			}
			out = append(out, group.TopicInfo{Name: name, ID: t.ID, Partitions: t.Partitions})
		}
		if b.virtualTopic(OffsetsTopic) {
			// The cluster id is read once per process; until it is,
			// the internal topic is left out rather than wait here.
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if id, err := b.ClusterID(ctx); err == nil {
				out = append(out, group.TopicInfo{Name: OffsetsTopic, ID: offsetsTopicID(id), Partitions: b.offsetsPartitions})
			}
		}
		return out
	}
	// A broker whose lease may have expired (it was paused, or cut off from
	// etcd) may already have been replaced by another coordinator that the
	// live-broker view does not show yet: it does not act for any group
	// until it is registered again.
	cfg.Owns = func(name string) bool {
		return b.leaseOK() && b.GroupCoordinator(name).NodeID == b.cfg.NodeID
	}
	cfg.Now = b.now
	cfg.Logger = b.logger.With("component", "groups")
	return group.New(b.store, cfg), nil
}

// Groups is the coordinator of the consumer groups this broker owns.
func (b *Broker) Groups() *group.Coordinator { return b.groups }

// GroupCoordinator names the live broker that coordinates a group: the one
// whose node id scores highest with the group's name (rendezvous hashing),
// so every broker agrees from the same live set, and a broker leaving moves
// only the groups it had. NodeID is -1 while no broker is known.
func (b *Broker) GroupCoordinator(name string) metastore.BrokerInfo {
	return b.cluster.coordinator(name)
}

// coordinator is GroupCoordinator from the live brokers held now.
func (c *clusterView) coordinator(name string) metastore.BrokerInfo {
	c.mu.RLock()
	defer c.mu.RUnlock()
	best, bestScore := metastore.BrokerInfo{NodeID: -1}, uint64(0)
	for _, br := range c.brokers {
		h := fnv.New64a()
		h.Write([]byte(name))
		h.Write([]byte{0})
		h.Write(strconv.AppendInt(nil, int64(br.NodeID), 10))
		if s := h.Sum64(); best.NodeID < 0 || s > bestScore {
			best, bestScore = br, s
		}
	}
	return best
}
