package broker

import (
	"path/filepath"
	"slices"
	"strings"

	"github.com/strata-broker/strata/metastore"
)

// ReplicaLog is one partition replica hosted by this broker and the size
// of its local log: the bytes of its segment files, not what a tiered
// topic keeps in the object store, since that is what moving the replica
// to another broker's disk would copy.
type ReplicaLog struct {
	Topic     string
	Partition int32
	Size      int64
	// Tiered is whether the topic has remote.storage.enable=true: its
	// history is in the object store, and an added replica copies only the
	// local tail.
	Tiered bool
}

// LogDirs is this broker's one log directory (Kafka's log.dirs; a Strata
// broker has a single data directory) and the replicas in it.
type LogDirs struct {
	NodeID   int32
	Dir      string
	Replicas []ReplicaLog
}

// DescribeLogDirs lists the replicas this broker hosts, in topic and
// partition order, with their local log sizes: those of the named
// partitions only when parts is not nil (a named partition not hosted here
// is left out, as Kafka leaves it).
func (b *Broker) DescribeLogDirs(parts []metastore.TopicPartition) LogDirs {
	dir, err := filepath.Abs(b.cfg.DataDir)
	if err != nil {
		dir = b.cfg.DataDir
	}
	return LogDirs{NodeID: b.cfg.NodeID, Dir: dir, Replicas: b.hosted.replicaLogs(parts)}
}

func (h *hostedTopics) replicaLogs(parts []metastore.TopicPartition) []ReplicaLog {
	var want map[metastore.TopicPartition]bool
	if parts != nil {
		want = make(map[metastore.TopicPartition]bool, len(parts))
		for _, p := range parts {
			want[p] = true
		}
	}
	type hostedReplica struct {
		p      *Partition
		tiered bool
	}
	var hosted []hostedReplica
	h.mu.RLock()
	for name, t := range h.topics {
		for i, p := range t.partitions {
			if p == nil || (want != nil && !want[metastore.TopicPartition{Topic: name, Partition: int32(i)}]) {
				continue
			}
			hosted = append(hosted, hostedReplica{p: p, tiered: t.cfg.RemoteStorageEnable})
		}
	}
	h.mu.RUnlock()
	// Sizes are read outside h.mu: a log's size takes its own lock.
	out := make([]ReplicaLog, 0, len(hosted))
	for _, r := range hosted {
		out = append(out, ReplicaLog{Topic: r.p.Topic, Partition: r.p.Index, Size: r.p.log.Size(), Tiered: r.tiered})
	}
	slices.SortFunc(out, func(a, b ReplicaLog) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return int(a.Partition - b.Partition)
	})
	return out
}
