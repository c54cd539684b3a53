package metastore

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// AddPartitions grows topic t, as read (its Revision is compared), by one
// partition per assignment: assignments[i] is the replica list of partition
// t.Partitions+i, its first replica the leader, the ISR all replicas, leader
// epoch 0, as CreateTopic writes them. The new count and the new partitions'
// states are written in one transaction, so no broker ever sees a partition
// count without the states of its partitions.
//
// If the topic changed since t was read (configs altered, partitions added,
// deleted and created again), nothing is written and it returns ErrConflict;
// if it is gone, ErrTopicNotFound. With t.PartitionLimit, a cluster
// that would hold more partitions is a *PartitionLimitError, and any
// topic's change since they were counted is ErrConflict too. Every new
// partition must have
// t.ReplicationFactor distinct replicas. The returned Topic has the new
// count and Revision.
func (s *Store) AddPartitions(ctx context.Context, t Topic, assignments [][]int32) (Topic, error) {
	if err := ValidateAddPartitions(t, assignments); err != nil {
		return Topic{}, fmt.Errorf("metastore: add partitions to %q: %w", t.Name, err)
	}
	next := t
	next.Partitions = t.Partitions + int32(len(assignments))
	val, err := encode(next.value())
	if err != nil {
		return Topic{}, fmt.Errorf("metastore: add partitions to %q: %w", t.Name, err)
	}
	topicKey := s.topicKey(t.Name)
	ops := make([]clientv3.Op, 0, 1+len(assignments))
	ops = append(ops, clientv3.OpPut(topicKey, val))
	for i, replicas := range assignments {
		p := t.Partitions + int32(i)
		st := PartitionState{
			Topic:     t.Name,
			TopicID:   t.ID,
			Partition: p,
			Leader:    replicas[0],
			Replicas:  replicas,
			ISR:       replicas,
		}
		v, err := encode(st.value())
		if err != nil {
			return Topic{}, fmt.Errorf("metastore: add partitions to %q: %w", t.Name, err)
		}
		ops = append(ops, clientv3.OpPut(s.partitionKey(t.Name, p), v))
	}
	limit, err := s.partitionLimitCompare(ctx, t.PartitionLimit, len(assignments))
	if err != nil {
		return Topic{}, fmt.Errorf("metastore: add partitions to %q: %w", t.Name, err)
	}
	// A mod revision of 0 would match a missing key: t.Revision > 0 is
	// checked above, so a deleted topic fails the compare.
	resp, err := s.client.Txn(ctx).
		If(append([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(topicKey), "=", t.Revision)}, limit...)...).
		Then(ops...).
		Else(clientv3.OpGet(topicKey, clientv3.WithCountOnly())).
		Commit()
	if err != nil {
		if errors.Is(err, rpctypes.ErrTooManyOps) {
			err = fmt.Errorf("%d new partitions exceed etcd's --max-txn-ops: %w", len(assignments), err)
		}
		return Topic{}, fmt.Errorf("metastore: add partitions to %q: %w", t.Name, err)
	}
	if !resp.Succeeded {
		if resp.Responses[0].GetResponseRange().Count == 0 {
			return Topic{}, fmt.Errorf("metastore: add partitions to %q: %w", t.Name, ErrTopicNotFound)
		}
		return Topic{}, fmt.Errorf("metastore: add partitions to %q: revision %d is stale, or the topics changed while the partitions were counted: %w",
			t.Name, t.Revision, ErrConflict)
	}
	next.Revision = resp.Header.Revision
	next.PartitionLimit = 0
	return next, nil
}

// ValidateAddPartitions checks the new partitions' replica lists against
// the topic, before any store is asked: the rules every implementation of
// the metastore shares.
func ValidateAddPartitions(t Topic, assignments [][]int32) error {
	if err := CheckTopicName(t.Name); err != nil {
		return err
	}
	if t.Revision <= 0 {
		return errors.New("topic has no revision; read it first")
	}
	if len(assignments) == 0 {
		return errors.New("no partitions to add")
	}
	for i, replicas := range assignments {
		p := int(t.Partitions) + i
		if len(replicas) == 0 {
			return fmt.Errorf("partition %d has no replicas", p)
		}
		if len(replicas) != int(t.ReplicationFactor) {
			return fmt.Errorf("partition %d has %d replicas, replication factor is %d", p, len(replicas), t.ReplicationFactor)
		}
		if hasDuplicates(replicas) {
			return fmt.Errorf("partition %d lists a replica twice: %v", p, replicas)
		}
	}
	return nil
}
