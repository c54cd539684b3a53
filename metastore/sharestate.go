// Share-partition state (share groups): for each share group and partition
// it reads, the share-partition start offset (SPSO) and the state of the
// records beyond it that are not simply available, so that a new leader of
// the partition continues where the old one stopped.
//
// # Key layout
//
//	<prefix>/share-states/<group>/<topic>/<partition>   ShareState as JSON (partition in decimal)
//
// <group> and <topic> are url.PathEscape'd, as the groups' keys are, so
// <prefix>/share-states/<group>/ is the prefix of one group's keys only.
//
// # Consistency
//
// Every write is a compare-and-swap on the key's mod revision: the writer
// passes the revision it read or last wrote. A leader that lost the
// partition (the new leader has written since) or whose state an admin
// changed (AlterShareGroupOffsets) gets ErrConflict with the stored state
// and must not continue from its own. Records a consumer holds are never
// stored as acquired: only their delivery count, as Kafka's share-group
// state does, so that a failover makes them available again.

package metastore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// MaxShareStateBatches bounds the state batches of one partition's share
// state, so that a value stays far below etcd's request limit (1.5 MiB by
// default): a batch encodes in under 80 bytes.
const MaxShareStateBatches = 10000

// shareStateScanPage is the number of keys read per request when listing a
// group's share states.
const shareStateScanPage = 512

// ErrShareStateNotFound means the partition has no share state stored.
var ErrShareStateNotFound = errors.New("metastore: share state not found")

// ShareState is the persisted state of one share partition.
type ShareState struct {
	Group     string
	Topic     string
	Partition int32
	// TopicID is the topic incarnation the state is of: a state of a
	// deleted topic's partition does not apply to a new topic of the same
	// name.
	TopicID string
	// StateEpoch changes each time the state is set anew
	// (AlterShareGroupOffsets), as Kafka's state epoch does.
	StateEpoch int32
	// LeaderEpoch is the partition leader epoch of the broker that last
	// wrote the state.
	LeaderEpoch int32
	// StartOffset is the share-partition start offset (SPSO): every record
	// below it is done with.
	StartOffset int64
	// Batches are the records at or beyond StartOffset whose state is not
	// plain "available, never delivered", in offset order, not overlapping.
	Batches []ShareStateBatch
	// Revision is the key's mod revision as read or written.
	Revision int64
}

// ShareStateBatch is a range of records sharing a state and delivery count.
// State is Kafka's record state: 0 available, 2 acknowledged, 4 archived
// (1, acquired, is never stored).
type ShareStateBatch struct {
	FirstOffset   int64 `json:"first"`
	LastOffset    int64 `json:"last"`
	State         int8  `json:"state"`
	DeliveryCount int16 `json:"count"`
}

type shareStateValue struct {
	TopicID     string            `json:"topic_id,omitempty"`
	StateEpoch  int32             `json:"state_epoch"`
	LeaderEpoch int32             `json:"leader_epoch"`
	StartOffset int64             `json:"start_offset"`
	Batches     []ShareStateBatch `json:"batches,omitempty"`
}

// Check validates st's identity and bounds: a start offset of at least 0,
// at most MaxShareStateBatches batches, each within itself, at or beyond
// the start offset and after the one before.
func (st ShareState) Check() error {
	if err := CheckGroupName(st.Group); err != nil {
		return err
	}
	if err := CheckTopicName(st.Topic); err != nil {
		return err
	}
	if st.Partition < 0 {
		return fmt.Errorf("negative partition %d", st.Partition)
	}
	if st.StartOffset < 0 {
		return fmt.Errorf("negative start offset %d", st.StartOffset)
	}
	if len(st.Batches) > MaxShareStateBatches {
		return fmt.Errorf("%d state batches, more than %d", len(st.Batches), MaxShareStateBatches)
	}
	next := st.StartOffset
	for _, b := range st.Batches {
		if b.FirstOffset < next || b.LastOffset < b.FirstOffset {
			return fmt.Errorf("state batch %d-%d is out of order (expected from %d on)", b.FirstOffset, b.LastOffset, next)
		}
		if b.State != 0 && b.State != 2 && b.State != 4 {
			return fmt.Errorf("state batch %d-%d has state %d", b.FirstOffset, b.LastOffset, b.State)
		}
		if b.DeliveryCount < 0 {
			return fmt.Errorf("state batch %d-%d has delivery count %d", b.FirstOffset, b.LastOffset, b.DeliveryCount)
		}
		next = b.LastOffset + 1
	}
	return nil
}

func (s *Store) shareStatesPrefix() string { return s.prefix + "/share-states/" }

func (s *Store) shareGroupPrefix(group string) string {
	return s.shareStatesPrefix() + url.PathEscape(group) + "/"
}

func (s *Store) shareTopicPrefix(group, topic string) string {
	return s.shareGroupPrefix(group) + url.PathEscape(topic) + "/"
}

func (s *Store) shareStateKey(group, topic string, partition int32) string {
	return s.shareTopicPrefix(group, topic) + strconv.FormatInt(int64(partition), 10)
}

func decodeShareState(group, topic string, partition int32, kv *mvccpb.KeyValue) (ShareState, error) {
	var v shareStateValue
	if err := json.Unmarshal(kv.Value, &v); err != nil {
		return ShareState{}, fmt.Errorf("decode share state %s/%s-%d: %w", group, topic, partition, err)
	}
	return ShareState{
		Group: group, Topic: topic, Partition: partition, TopicID: v.TopicID,
		StateEpoch: v.StateEpoch, LeaderEpoch: v.LeaderEpoch, StartOffset: v.StartOffset,
		Batches: v.Batches, Revision: kv.ModRevision,
	}, nil
}

// GetShareState reads the share state of group's partition;
// ErrShareStateNotFound if there is none.
func (s *Store) GetShareState(ctx context.Context, group, topic string, partition int32) (ShareState, error) {
	resp, err := s.client.Get(ctx, s.shareStateKey(group, topic, partition))
	if err != nil {
		return ShareState{}, fmt.Errorf("metastore: get share state %s/%s-%d: %w", group, topic, partition, err)
	}
	if len(resp.Kvs) == 0 {
		return ShareState{}, fmt.Errorf("metastore: get share state %s/%s-%d: %w", group, topic, partition, ErrShareStateNotFound)
	}
	st, err := decodeShareState(group, topic, partition, resp.Kvs[0])
	if err != nil {
		return ShareState{}, fmt.Errorf("metastore: %w", err)
	}
	return st, nil
}

// PutShareState stores st if the key's mod revision is still prevRevision
// (0: there must be no state yet) and returns it with its new Revision. If
// the revision moved it returns ErrConflict with the stored state (Revision
// 0 if there is none any more).
func (s *Store) PutShareState(ctx context.Context, st ShareState, prevRevision int64) (ShareState, error) {
	if err := st.Check(); err != nil {
		return ShareState{}, fmt.Errorf("metastore: put share state %s/%s-%d: %w", st.Group, st.Topic, st.Partition, err)
	}
	val, err := encode(shareStateValue{
		TopicID: st.TopicID, StateEpoch: st.StateEpoch, LeaderEpoch: st.LeaderEpoch,
		StartOffset: st.StartOffset, Batches: st.Batches,
	})
	if err != nil {
		return ShareState{}, fmt.Errorf("metastore: put share state %s/%s-%d: %w", st.Group, st.Topic, st.Partition, err)
	}
	key := s.shareStateKey(st.Group, st.Topic, st.Partition)
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", prevRevision)).
		Then(clientv3.OpPut(key, val)).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return ShareState{}, fmt.Errorf("metastore: put share state %s/%s-%d: %w", st.Group, st.Topic, st.Partition, err)
	}
	if resp.Succeeded {
		st.Revision = resp.Header.Revision
		return st, nil
	}
	current := ShareState{Group: st.Group, Topic: st.Topic, Partition: st.Partition}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		if current, err = decodeShareState(st.Group, st.Topic, st.Partition, kvs[0]); err != nil {
			return ShareState{}, fmt.Errorf("metastore: put share state: %w", err)
		}
	}
	return current, fmt.Errorf("metastore: put share state %s/%s-%d: revision %d is stale (now %d): %w",
		st.Group, st.Topic, st.Partition, prevRevision, current.Revision, ErrConflict)
}

// ListShareStates returns group's share states, ordered by topic and
// partition, read at one revision.
func (s *Store) ListShareStates(ctx context.Context, group string) ([]ShareState, error) {
	prefix := s.shareGroupPrefix(group)
	start, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	var rev int64
	var out []ShareState
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(shareStateScanPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.client.Get(ctx, start, opts...)
		if err != nil {
			return nil, fmt.Errorf("metastore: list share states of %q: %w", group, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			topicEsc, partStr, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), prefix), "/")
			topic, err1 := url.PathUnescape(topicEsc)
			p, err2 := strconv.ParseInt(partStr, 10, 32)
			if !ok || err1 != nil || err2 != nil {
				return nil, fmt.Errorf("metastore: list share states of %q: key %q is not a share state key", group, kv.Key)
			}
			st, err := decodeShareState(group, topic, int32(p), kv)
			if err != nil {
				return nil, fmt.Errorf("metastore: list share states: %w", err)
			}
			out = append(out, st)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	SortShareStates(out)
	return out, nil
}

// SortShareStates orders states by topic, then partition (etcd's key order
// puts partition 10 before 2).
func SortShareStates(states []ShareState) {
	slices.SortFunc(states, func(a, b ShareState) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
}

// DeleteShareStates deletes group's share states of topic, or of every
// topic when topic is empty, and returns how many there were.
func (s *Store) DeleteShareStates(ctx context.Context, group, topic string) (int, error) {
	prefix := s.shareGroupPrefix(group)
	if topic != "" {
		prefix = s.shareTopicPrefix(group, topic)
	}
	resp, err := s.client.Delete(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("metastore: delete share states %s/%s: %w", group, topic, err)
	}
	return int(resp.Deleted), nil
}
