package metastore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// PartitionState is who leads a partition and who is in sync with it.
type PartitionState struct {
	Topic string
	// TopicID is the id of the topic incarnation the state belongs to: a
	// topic deleted and created again under the same name has a new one.
	// Empty in states written before it was recorded.
	TopicID   string
	Partition int32
	// Leader is the leading broker's node id, -1 if there is none.
	Leader int32
	// LeaderEpoch increases with every leader change and never decreases.
	LeaderEpoch int32
	Replicas    []int32
	ISR         []int32
	// AddingReplicas and RemovingReplicas describe a move in progress
	// (Kafka's reassignment): Replicas holds the target replicas followed
	// by the removing ones; the adding ones are the target's replicas that
	// were not replicas before the move. Both empty when nothing moves.
	AddingReplicas   []int32
	RemovingReplicas []int32
	// Lost names replicas that came back without their log of this
	// partition (a lost disk) and have not been in the ISR since: they
	// hold nothing that was committed, so an unclean election takes one
	// only when no other replica is alive. Whoever adds a replica to the
	// ISR drops it from here: CompareAndSwapPartitionState stores
	// PruneLost's result, so writers need not know of this field.
	Lost []int32
	// Revision is the etcd mod revision of the state, filled on read; it is
	// what CompareAndSwapPartitionState compares.
	Revision int64
}

// partitionValue is the JSON stored at <prefix>/partitions/<topic>/<partition>.
type partitionValue struct {
	Topic       string  `json:"topic"`
	TopicID     string  `json:"topic_id,omitempty"`
	Partition   int32   `json:"partition"`
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	Replicas    []int32 `json:"replicas"`
	ISR         []int32 `json:"isr"`
	Adding      []int32 `json:"adding_replicas,omitempty"`
	Removing    []int32 `json:"removing_replicas,omitempty"`
	Lost        []int32 `json:"lost,omitempty"`
}

func (p PartitionState) value() partitionValue {
	return partitionValue{
		Topic:       p.Topic,
		TopicID:     p.TopicID,
		Partition:   p.Partition,
		Leader:      p.Leader,
		LeaderEpoch: p.LeaderEpoch,
		Replicas:    nonNil(p.Replicas),
		ISR:         nonNil(p.ISR),
		Adding:      p.AddingReplicas,
		Removing:    p.RemovingReplicas,
		Lost:        p.Lost,
	}
}

// PruneLost returns p with Lost keeping only replicas outside the ISR: a
// replica in the ISR has caught up since it lost its log, and one no longer
// a replica holds nothing of the partition anyway.
func (p PartitionState) PruneLost() PartitionState {
	if len(p.Lost) == 0 {
		p.Lost = nil
		return p
	}
	p.Lost = slices.DeleteFunc(slices.Clone(p.Lost), func(id int32) bool {
		return slices.Contains(p.ISR, id) || !slices.Contains(p.Replicas, id)
	})
	if len(p.Lost) == 0 {
		p.Lost = nil
	}
	return p
}

func nonNil(ids []int32) []int32 {
	if ids == nil {
		return []int32{}
	}
	return ids
}

func decodePartition(value []byte, modRevision int64) (PartitionState, error) {
	var v partitionValue
	if err := json.Unmarshal(value, &v); err != nil {
		return PartitionState{}, fmt.Errorf("decode partition state: %w", err)
	}
	return PartitionState{
		Topic:            v.Topic,
		TopicID:          v.TopicID,
		Partition:        v.Partition,
		Leader:           v.Leader,
		LeaderEpoch:      v.LeaderEpoch,
		Replicas:         v.Replicas,
		ISR:              v.ISR,
		AddingReplicas:   v.Adding,
		RemovingReplicas: v.Removing,
		Lost:             v.Lost,
		Revision:         modRevision,
	}, nil
}

// PartitionStates returns the state of every partition of topic, sorted by
// partition; ErrTopicNotFound if the topic does not exist. Topic and
// partitions are read at one revision.
func (s *Store) PartitionStates(ctx context.Context, topic string) ([]PartitionState, error) {
	if err := CheckTopicName(topic); err != nil {
		return nil, fmt.Errorf("metastore: partition states of %q: %w", topic, err)
	}
	resp, err := s.client.Txn(ctx).Then(
		clientv3.OpGet(s.topicKey(topic), clientv3.WithCountOnly()),
		clientv3.OpGet(s.partitionsPrefix(topic), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("metastore: partition states of %q: %w", topic, err)
	}
	if resp.Responses[0].GetResponseRange().Count == 0 {
		return nil, fmt.Errorf("metastore: partition states of %q: %w", topic, ErrTopicNotFound)
	}
	kvs := resp.Responses[1].GetResponseRange().Kvs
	states := make([]PartitionState, 0, len(kvs))
	for _, kv := range kvs {
		st, err := decodePartition(kv.Value, kv.ModRevision)
		if err != nil {
			return nil, fmt.Errorf("metastore: partition states of %q: key %q: %w", topic, kv.Key, err)
		}
		states = append(states, st)
	}
	slices.SortFunc(states, func(a, b PartitionState) int { return cmp.Compare(a.Partition, b.Partition) })
	return states, nil
}

// CompareAndSwapPartitionState replaces old with next if the stored state is
// still at old.Revision, and returns next with its new Revision. When the
// state has changed since, it returns ErrConflict together with the current
// state (so the caller can retry without another read); when the partition
// no longer exists, ErrTopicNotFound.
//
// next must name the same partition as old, keep the leader epoch from going
// backwards, have its leader (unless -1) among its replicas, and its ISR a
// subset of its replicas.
func (s *Store) CompareAndSwapPartitionState(ctx context.Context, old, next PartitionState) (PartitionState, error) {
	return s.casPartition(ctx, old, next, nil)
}

// casPartition is CompareAndSwapPartitionState with extra conditions (a
// controller's fence); if they fail the swap fails with ErrNotController.
func (s *Store) casPartition(ctx context.Context, old, next PartitionState, fence []clientv3.Cmp) (PartitionState, error) {
	if err := ValidatePartitionUpdate(old, next); err != nil {
		return PartitionState{}, fmt.Errorf("metastore: update partition %s-%d: %w", old.Topic, old.Partition, err)
	}
	next = next.PruneLost()
	key := s.partitionKey(old.Topic, old.Partition)
	val, err := encode(next.value())
	if err != nil {
		return PartitionState{}, fmt.Errorf("metastore: update partition %s-%d: %w", old.Topic, old.Partition, err)
	}
	cmps := append([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", old.Revision)}, fence...)
	resp, err := s.client.Txn(ctx).
		If(cmps...).
		Then(clientv3.OpPut(key, val)).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return PartitionState{}, fmt.Errorf("metastore: update partition %s-%d: %w", old.Topic, old.Partition, err)
	}
	if resp.Succeeded {
		next.Revision = resp.Header.Revision
		return next, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return PartitionState{}, fmt.Errorf("metastore: update partition %s-%d: %w", old.Topic, old.Partition, ErrTopicNotFound)
	}
	current, err := decodePartition(kvs[0].Value, kvs[0].ModRevision)
	if err != nil {
		return PartitionState{}, fmt.Errorf("metastore: update partition %s-%d: %w", old.Topic, old.Partition, err)
	}
	if current.Revision == old.Revision {
		return current, fmt.Errorf("metastore: update partition %s-%d: %w", old.Topic, old.Partition, ErrNotController)
	}
	return current, fmt.Errorf("metastore: update partition %s-%d: revision %d is stale (now %d): %w",
		old.Topic, old.Partition, old.Revision, current.Revision, ErrConflict)
}

// ValidatePartitionUpdate checks a partition state change: same partition,
// leader epoch never going back, leader and ISR among the replicas.
func ValidatePartitionUpdate(old, next PartitionState) error {
	if err := CheckTopicName(old.Topic); err != nil {
		return err
	}
	if old.Revision <= 0 {
		// Revision 0 would compare equal to a missing key and create it.
		return errors.New("old state has no revision; read it first")
	}
	if next.Topic != old.Topic || next.Partition != old.Partition || next.TopicID != old.TopicID {
		return fmt.Errorf("new state is for %s-%d", next.Topic, next.Partition)
	}
	if next.LeaderEpoch < old.LeaderEpoch {
		return fmt.Errorf("leader epoch would go back from %d to %d", old.LeaderEpoch, next.LeaderEpoch)
	}
	if len(next.Replicas) == 0 {
		return errors.New("no replicas")
	}
	if next.Leader != -1 && !slices.Contains(next.Replicas, next.Leader) {
		return fmt.Errorf("leader %d is not a replica %v", next.Leader, next.Replicas)
	}
	for _, id := range next.ISR {
		if !slices.Contains(next.Replicas, id) {
			return fmt.Errorf("ISR member %d is not a replica %v", id, next.Replicas)
		}
	}
	for _, id := range next.AddingReplicas {
		if !slices.Contains(next.Replicas, id) || slices.Contains(next.RemovingReplicas, id) {
			return fmt.Errorf("adding replica %d is not a replica %v or is also removed", id, next.Replicas)
		}
	}
	for _, id := range next.RemovingReplicas {
		if !slices.Contains(next.Replicas, id) {
			return fmt.Errorf("removing replica %d is not a replica %v", id, next.Replicas)
		}
	}
	if len(next.RemovingReplicas) >= len(next.Replicas) {
		return fmt.Errorf("a move would remove every replica %v", next.Replicas)
	}
	return nil
}

// Moving reports whether a reassignment of the partition is in progress.
func (p PartitionState) Moving() bool {
	return len(p.AddingReplicas) > 0 || len(p.RemovingReplicas) > 0
}

// TargetReplicas is where the partition is going: its replicas without the
// ones a move in progress removes (its replicas when nothing moves).
func (p PartitionState) TargetReplicas() []int32 {
	return slices.DeleteFunc(slices.Clone(p.Replicas), func(id int32) bool { return slices.Contains(p.RemovingReplicas, id) })
}

// OriginalReplicas is where the partition was before the move in progress:
// its replicas without the ones the move adds.
func (p PartitionState) OriginalReplicas() []int32 {
	return slices.DeleteFunc(slices.Clone(p.Replicas), func(id int32) bool { return slices.Contains(p.AddingReplicas, id) })
}
