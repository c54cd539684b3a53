package broker

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash/fnv"
	"strconv"

	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/topicconfig"
)

// OffsetsTopic is Kafka's internal topic of group offsets. Strata keeps
// group offsets in etcd, so the topic holds nothing; it exists only in
// what clients are told (Metadata lists it, internal), because clients
// and tools expect it: regex consumers leave internal topics out, and
// `kafka-topics --exclude-internal` and kcat list it. It is never in the
// metastore, so retention, tiering, the controller and the rebalancer
// never see it. Writing to it, deleting it and adding partitions to it are
// refused; creating it answers that it exists; reading it finds it empty.
const OffsetsTopic = "__consumer_offsets"

// OffsetsTopicPartitionsKey is Kafka's setting of the topic's partition
// count; clients see that many partitions.
const OffsetsTopicPartitionsKey = "offsets.topic.num.partitions"

// defaultOffsetsTopicPartitions is Kafka's default of
// offsets.topic.num.partitions.
const defaultOffsetsTopicPartitions = 50

// IsInternalTopic tells whether name is one of Kafka's internal topics that
// Strata shows.
func IsInternalTopic(name string) bool { return name == OffsetsTopic }

// virtualTopic tells whether name is the internal topic and the metastore
// has no real topic of that name (one created before the name was
// reserved is served as it is).
func (b *Broker) virtualTopic(name string) bool {
	if !IsInternalTopic(name) {
		return false
	}
	_, real := b.hosted.meta(name)
	return !real
}

// OffsetsTopicUUID is the internal topic's id: derived from the cluster
// id, so that it is the same on every broker and across restarts, and
// different between clusters, as a topic id is.
func OffsetsTopicUUID(clusterID string) [16]byte {
	h := sha256.New()
	h.Write([]byte("strata internal topic\x00"))
	h.Write([]byte(clusterID))
	h.Write([]byte("\x00" + OffsetsTopic))
	var sum [sha256.Size]byte
	var id [16]byte
	copy(id[:], h.Sum(sum[:0]))
	// A name-based UUID (version 5, RFC 4122 variant).
	id[6] = id[6]&0x0f | 0x50
	id[8] = id[8]&0x3f | 0x80
	return id
}

// offsetsTopicID is OffsetsTopicUUID in the text form topic ids are kept
// in.
func offsetsTopicID(clusterID string) string {
	return metastore.FormatUUID(OffsetsTopicUUID(clusterID))
}

// offsetsTopicMetadata is the internal topic as Metadata lists it: each
// partition led by one live broker, chosen by rendezvous hashing of the
// partition so that every broker names the same leader and the partitions
// spread over the brokers.
func (b *Broker) offsetsTopicMetadata(ctx context.Context, live []metastore.BrokerInfo) TopicMetadata {
	tm := TopicMetadata{Name: OffsetsTopic, Internal: true}
	if id, err := b.ClusterID(ctx); err == nil {
		tm.ID = offsetsTopicID(id)
	}
	for i := int32(0); i < b.offsetsPartitions; i++ {
		leader := rendezvous(live, OffsetsTopic+"-"+strconv.Itoa(int(i)))
		st := metastore.PartitionState{Topic: OffsetsTopic, TopicID: tm.ID, Partition: i, Leader: leader, LeaderEpoch: 0}
		if leader >= 0 {
			st.Replicas, st.ISR = []int32{leader}, []int32{leader}
		}
		tm.Partitions = append(tm.Partitions, st)
	}
	return tm
}

// rendezvous picks the broker with the highest hash of key and its id, -1
// when there is none: the choice moves only for the keys of a broker that
// comes or goes.
func rendezvous(brokers []metastore.BrokerInfo, key string) int32 {
	best, bestScore := int32(-1), uint64(0)
	for _, br := range brokers {
		h := fnv.New64a()
		h.Write([]byte(key))
		h.Write([]byte{0})
		h.Write(strconv.AppendInt(nil, int64(br.NodeID), 10))
		if s := h.Sum64(); best < 0 || s > bestScore {
			best, bestScore = br.NodeID, s
		}
	}
	return best
}

// readVirtual answers a fetch of the internal topic: it is empty, so any
// offset but 0 is out of range.
func (b *Broker) readVirtual(fp FetchPartition, res *FetchResult) {
	switch {
	case fp.Partition < 0 || fp.Partition >= b.offsetsPartitions:
		res.Err = fmt.Errorf("fetch %s-%d: %w", fp.Topic, fp.Partition, ErrUnknownTopicOrPartition)
	case fp.Offset != 0:
		res.Err = fmt.Errorf("fetch %s-%d: %w", fp.Topic, fp.Partition, &partlog.OffsetOutOfRangeError{Offset: fp.Offset})
	}
}

// describeOffsetsTopic describes the internal topic with the overrides
// Kafka gives it.
func (b *Broker) describeOffsetsTopic(ctx context.Context) (TopicDescription, error) {
	tm := b.offsetsTopicMetadata(ctx, b.cluster.liveBrokers())
	_, entries, err := topicconfig.Resolve(map[string]string{"cleanup.policy": "compact"}, b.brokerDefaults)
	if err != nil {
		return TopicDescription{}, fmt.Errorf("describe topic %q: %w", OffsetsTopic, err)
	}
	return TopicDescription{Name: OffsetsTopic, ID: tm.ID, ReplicationFactor: 1, Partitions: tm.Partitions, Configs: entries}, nil
}

// eachVirtualTopicID gives f the internal topic's name and id, as clients
// learnt it from Metadata, so that a fetch naming it by id finds it. Before
// the cluster id is known no client can have its id.
func (b *Broker) eachVirtualTopicID(f func(name, id string)) {
	b.clusterID.mu.Lock()
	cid := b.clusterID.id
	b.clusterID.mu.Unlock()
	if cid != "" {
		f(OffsetsTopic, offsetsTopicID(cid))
	}
}
