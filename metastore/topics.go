package metastore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// alterAttempts bounds AlterTopicConfigs' compare-and-swap retries.
const alterAttempts = 5

// Topic is a topic's stored definition.
type Topic struct {
	Name string
	// ID is a random 16-byte id as a UUID string, assigned by CreateTopic
	// unless the caller supplies one (restoring a topic keeps its id).
	ID                string
	Partitions        int32
	ReplicationFactor int32
	// Configs holds the topic's overrides only (Kafka config keys); the
	// effective values come from topicconfig.Resolve. Never nil on read.
	Configs   map[string]string
	CreatedAt time.Time
	// Revision is the etcd mod revision of the topic key, filled on read.
	Revision int64
	// InitialLeaderEpochs, when set at CreateTopic, are the partitions'
	// first leader epochs (zero otherwise): a topic restored from an object
	// store starts above the epochs its remote segments were written in.
	// Not stored with the topic.
	InitialLeaderEpochs []int32
	// PartitionLimit, when positive at CreateTopic or AddPartitions,
	// is the most partitions the cluster may hold once they are written:
	// beyond it they fail with a *PartitionLimitError and write nothing.
	// The count and the write are one decision, however many brokers
	// create topics at once. Not stored with the topic.
	PartitionLimit int64
}

// topicValue is the JSON stored at <prefix>/topics/<name>.
type topicValue struct {
	Name              string            `json:"name"`
	ID                string            `json:"id"`
	Partitions        int32             `json:"partitions"`
	ReplicationFactor int32             `json:"replication_factor"`
	Configs           map[string]string `json:"configs,omitempty"`
	CreatedAt         time.Time         `json:"created_at"`
}

func (t Topic) value() topicValue {
	return topicValue{
		Name:              t.Name,
		ID:                t.ID,
		Partitions:        t.Partitions,
		ReplicationFactor: t.ReplicationFactor,
		Configs:           t.Configs,
		CreatedAt:         t.CreatedAt,
	}
}

func decodeTopic(value []byte, modRevision int64) (Topic, error) {
	var v topicValue
	if err := json.Unmarshal(value, &v); err != nil {
		return Topic{}, fmt.Errorf("decode topic: %w", err)
	}
	t := Topic{
		Name:              v.Name,
		ID:                v.ID,
		Partitions:        v.Partitions,
		ReplicationFactor: v.ReplicationFactor,
		Configs:           v.Configs,
		CreatedAt:         v.CreatedAt,
		Revision:          modRevision,
	}
	if t.Configs == nil {
		t.Configs = map[string]string{}
	}
	return t, nil
}

// CreateTopic writes t and the initial state of each of its partitions in one
// transaction: assignments[p] is partition p's replica list, its first
// replica the leader, the ISR all replicas, leader epoch 0. It fails with
// ErrTopicExists if a topic of that name exists.
//
// t.Partitions and t.ReplicationFactor may be left zero, in which case they
// are taken from assignments; when set they must agree with it. Every
// partition must have the same number of distinct replicas, as in Kafka.
// An empty t.ID gets a fresh random id, a zero t.CreatedAt the current time.
// The returned Topic has ID, CreatedAt and Revision filled.
func (s *Store) CreateTopic(ctx context.Context, t Topic, assignments [][]int32) (Topic, error) {
	if err := ValidateNewTopic(&t, assignments); err != nil {
		return Topic{}, fmt.Errorf("metastore: create topic %q: %w", t.Name, err)
	}
	if t.ID == "" {
		id, err := NewTopicID()
		if err != nil {
			return Topic{}, fmt.Errorf("metastore: create topic %q: %w", t.Name, err)
		}
		t.ID = id
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = time.Now().UTC()
	}
	if t.Configs == nil {
		t.Configs = map[string]string{}
	} else {
		t.Configs = maps.Clone(t.Configs)
	}

	topicKey := s.topicKey(t.Name)
	val, err := encode(t.value())
	if err != nil {
		return Topic{}, fmt.Errorf("metastore: create topic %q: %w", t.Name, err)
	}
	ops := make([]clientv3.Op, 0, 1+len(assignments))
	ops = append(ops, clientv3.OpPut(topicKey, val))
	for p, replicas := range assignments {
		st := PartitionState{
			Topic:     t.Name,
			TopicID:   t.ID,
			Partition: int32(p),
			Leader:    replicas[0],
			Replicas:  replicas,
			ISR:       replicas,
		}
		if p < len(t.InitialLeaderEpochs) {
			st.LeaderEpoch = t.InitialLeaderEpochs[p]
		}
		v, err := encode(st.value())
		if err != nil {
			return Topic{}, fmt.Errorf("metastore: create topic %q: %w", t.Name, err)
		}
		ops = append(ops, clientv3.OpPut(s.partitionKey(t.Name, int32(p)), v))
	}
	// An id whose objects are being deleted must not be reused (a restore
	// keeps the bucket's id): the deletion would take the new data too.
	deletedKey := s.deletedTopicKey(t.ID)
	partitionLimit := t.PartitionLimit
	t.PartitionLimit = 0
	for attempt := 1; ; attempt++ {
		limit, err := s.partitionLimitCompare(ctx, partitionLimit, len(assignments))
		if err != nil {
			return Topic{}, fmt.Errorf("metastore: create topic %q: %w", t.Name, err)
		}
		resp, err := s.client.Txn(ctx).
			If(append([]clientv3.Cmp{
				clientv3.Compare(clientv3.CreateRevision(topicKey), "=", 0),
				clientv3.Compare(clientv3.CreateRevision(deletedKey), "=", 0),
			}, limit...)...).
			Then(ops...).
			Else(clientv3.OpGet(deletedKey, clientv3.WithCountOnly()), clientv3.OpGet(topicKey, clientv3.WithCountOnly())).
			Commit()
		if err != nil {
			if errors.Is(err, rpctypes.ErrTooManyOps) {
				err = fmt.Errorf("%d partitions exceed etcd's --max-txn-ops: %w", len(assignments), err)
			}
			return Topic{}, fmt.Errorf("metastore: create topic %q: %w", t.Name, err)
		}
		if resp.Succeeded {
			t.Revision = resp.Header.Revision
			return t, nil
		}
		switch {
		case resp.Responses[0].GetResponseRange().Count > 0:
			return Topic{}, fmt.Errorf("metastore: create topic %q with id %s: %w", t.Name, t.ID, ErrTopicDeletionPending)
		case resp.Responses[1].GetResponseRange().Count > 0:
			return Topic{}, fmt.Errorf("metastore: create topic %q: %w", t.Name, ErrTopicExists)
		case attempt == alterAttempts:
			return Topic{}, fmt.Errorf("metastore: create topic %q: topics kept changing while the partitions were counted: %w", t.Name, ErrConflict)
		}
		// Another topic was created or changed since the count: count again.
	}
}

// ValidateNewTopic checks a topic to create and its replica assignments,
// filling in the partition count and replication factor when zero.
func ValidateNewTopic(t *Topic, assignments [][]int32) error {
	if err := CheckTopicName(t.Name); err != nil {
		return err
	}
	if len(assignments) == 0 {
		return errors.New("no partitions")
	}
	if t.Partitions == 0 {
		t.Partitions = int32(len(assignments))
	}
	if int(t.Partitions) != len(assignments) {
		return fmt.Errorf("topic has %d partitions but %d assignments", t.Partitions, len(assignments))
	}
	if t.ReplicationFactor == 0 {
		t.ReplicationFactor = int32(len(assignments[0]))
	}
	for p, replicas := range assignments {
		if len(replicas) != int(t.ReplicationFactor) {
			return fmt.Errorf("partition %d has %d replicas, replication factor is %d", p, len(replicas), t.ReplicationFactor)
		}
		if len(replicas) == 0 {
			return fmt.Errorf("partition %d has no replicas", p)
		}
		if hasDuplicates(replicas) {
			return fmt.Errorf("partition %d lists a replica twice: %v", p, replicas)
		}
	}
	if t.ID != "" {
		if _, err := parseUUID(t.ID); err != nil {
			return fmt.Errorf("topic id: %w", err)
		}
	}
	return nil
}

func hasDuplicates(ids []int32) bool {
	for i := range ids {
		if slices.Contains(ids[i+1:], ids[i]) {
			return true
		}
	}
	return false
}

// NewTopicID returns a random version-4 UUID. Like Kafka's Uuid.randomUuid it
// avoids ids whose base64 form (Kafka's textual form) starts with '-', which
// command-line tools would take for a flag.
func NewTopicID() (string, error) {
	var b [16]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("topic id: %w", err)
		}
		b[6] = b[6]&0x0f | 0x40 // version 4
		b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
		if b[0]>>2 != 62 {      // 62 is '-' in base64url
			break
		}
	}
	return FormatUUID(b), nil
}

// FormatUUID is a topic id's canonical text form, as topic ids are kept
// (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx).
func FormatUUID(b [16]byte) string {
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// parseUUID parses the canonical 36-character form.
func parseUUID(s string) ([16]byte, error) {
	var b [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return b, fmt.Errorf("%q is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", s)
	}
	raw, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil {
		return b, fmt.Errorf("%q is not a UUID: %w", s, err)
	}
	copy(b[:], raw)
	if b == [16]byte{} {
		return b, errors.New("topic id must not be zero")
	}
	return b, nil
}

// DeleteTopic removes the topic and all its partition states, and records
// the incarnation's pending deletion from the object store (see
// DeletedTopic), in one transaction: the topic cannot be gone while its
// objects are forgotten. The transaction compares the topic key's revision
// read just before, so the record names the incarnation actually deleted;
// it is retried a few times when the topic changes in between (then
// ErrConflict). ErrTopicNotFound if it does not exist.
func (s *Store) DeleteTopic(ctx context.Context, name string) error {
	if err := CheckTopicName(name); err != nil {
		return fmt.Errorf("metastore: delete topic %q: %w", name, err)
	}
	topicKey := s.topicKey(name)
	for range alterAttempts {
		got, err := s.client.Get(ctx, topicKey)
		if err != nil {
			return fmt.Errorf("metastore: delete topic %q: %w", name, err)
		}
		if len(got.Kvs) == 0 {
			return fmt.Errorf("metastore: delete topic %q: %w", name, ErrTopicNotFound)
		}
		kv := got.Kvs[0]
		ops := []clientv3.Op{
			clientv3.OpDelete(topicKey),
			clientv3.OpDelete(s.partitionsPrefix(name), clientv3.WithPrefix()),
		}
		if t, err := decodeTopic(kv.Value, kv.ModRevision); err != nil || t.ID == "" {
			// Without an id there is no prefix to name; a damaged value
			// must still be deletable.
			s.logger.Warn("deleting an undecodable topic: its objects in the object store, if any, are not deleted", "topic", name, "err", err)
		} else {
			record, err := s.deletedTopicOp(t, time.Now().UTC())
			if err != nil {
				return fmt.Errorf("metastore: delete topic %q: %w", name, err)
			}
			ops = append(ops, record)
		}
		resp, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(topicKey), "=", kv.ModRevision)).
			Then(ops...).
			Commit()
		if err != nil {
			return fmt.Errorf("metastore: delete topic %q: %w", name, err)
		}
		if resp.Succeeded {
			return nil
		}
		s.logger.Debug("topic changed during delete, retrying", "topic", name)
	}
	return fmt.Errorf("metastore: delete topic %q: %d attempts: %w", name, alterAttempts, ErrConflict)
}

// GetTopic reads one topic; ErrTopicNotFound if it does not exist.
func (s *Store) GetTopic(ctx context.Context, name string) (Topic, error) {
	if err := CheckTopicName(name); err != nil {
		return Topic{}, fmt.Errorf("metastore: get topic %q: %w", name, err)
	}
	resp, err := s.client.Get(ctx, s.topicKey(name))
	if err != nil {
		return Topic{}, fmt.Errorf("metastore: get topic %q: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return Topic{}, fmt.Errorf("metastore: get topic %q: %w", name, ErrTopicNotFound)
	}
	t, err := decodeTopic(resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
	if err != nil {
		return Topic{}, fmt.Errorf("metastore: get topic %q: %w", name, err)
	}
	return t, nil
}

// ListTopics returns all topics sorted by name and the etcd revision the
// list was read at (watch from revision+1 to miss nothing). A topic whose
// stored value cannot be decoded is logged and left out.
func (s *Store) ListTopics(ctx context.Context) ([]Topic, int64, error) {
	resp, err := s.client.Get(ctx, s.topicsPrefix(),
		clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, 0, fmt.Errorf("metastore: list topics: %w", err)
	}
	topics := make([]Topic, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		t, err := decodeTopic(kv.Value, kv.ModRevision)
		if err != nil {
			// One damaged value must not hide every other topic (nor stop
			// WatchTopics, which lists through here).
			s.logger.Error("skipping undecodable topic", "key", string(kv.Key), "revision", kv.ModRevision, "err", err)
			continue
		}
		topics = append(topics, t)
	}
	return topics, resp.Header.Revision, nil
}

// AlterTopicConfigs sets the keys in set and removes those in del from the
// topic's overrides, as a compare-and-swap on the topic key that is retried a
// few times when another writer gets there first (then ErrConflict).
// validate, if not nil, is called with the merged overrides before writing,
// and its error is returned as is. A key may not be both set and deleted.
// When nothing changes nothing is written.
func (s *Store) AlterTopicConfigs(ctx context.Context, name string, set map[string]string, del []string, validate func(map[string]string) error) (Topic, error) {
	for _, k := range del {
		if _, ok := set[k]; ok {
			return Topic{}, fmt.Errorf("metastore: alter topic %q configs: key %q both set and deleted", name, k)
		}
	}
	for range alterAttempts {
		t, err := s.GetTopic(ctx, name)
		if err != nil {
			return Topic{}, fmt.Errorf("metastore: alter topic %q configs: %w", name, errors.Unwrap(err))
		}
		merged := maps.Clone(t.Configs)
		maps.Copy(merged, set)
		for _, k := range del {
			delete(merged, k)
		}
		if validate != nil {
			if err := validate(maps.Clone(merged)); err != nil {
				return Topic{}, err
			}
		}
		if maps.Equal(merged, t.Configs) {
			return t, nil
		}
		next := t
		next.Configs = merged
		val, err := encode(next.value())
		if err != nil {
			return Topic{}, fmt.Errorf("metastore: alter topic %q configs: %w", name, err)
		}
		key := s.topicKey(name)
		resp, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", t.Revision)).
			Then(clientv3.OpPut(key, val)).
			Commit()
		if err != nil {
			return Topic{}, fmt.Errorf("metastore: alter topic %q configs: %w", name, err)
		}
		if resp.Succeeded {
			next.Revision = resp.Header.Revision
			return next, nil
		}
		s.logger.Debug("topic changed during config update, retrying", "topic", name)
	}
	return Topic{}, fmt.Errorf("metastore: alter topic %q configs: %d attempts: %w", name, alterAttempts, ErrConflict)
}
