package metastore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrTopicDeletionPending refuses to create a topic under an id whose
// objects are still being deleted from the object store: the deletion would
// take the new topic's data with it.
var ErrTopicDeletionPending = errors.New("metastore: the topic id's deletion from the object store is pending")

// DeletedTopic is a deleted topic incarnation whose objects may still be in
// the object store. DeleteTopic records it in the transaction that deletes
// the topic, so no deletion is ever forgotten; FinishTopicDeletion removes
// it once the bucket holds nothing of it. There is one per deleted topic,
// never one per object.
type DeletedTopic struct {
	Name      string
	ID        string
	DeletedAt time.Time
	// Tiered tells whether the topic had remote.storage.enable=true when it
	// was deleted: only then can an upload still in flight add objects
	// after the deletion.
	Tiered bool
	// Revision is the etcd mod revision of the record, filled on read.
	Revision int64
}

// deletedTopicValue is the JSON stored at <prefix>/deleted-topics/<topic-id>.
type deletedTopicValue struct {
	Name      string    `json:"name"`
	ID        string    `json:"id"`
	DeletedAt time.Time `json:"deleted_at"`
	Tiered    bool      `json:"tiered,omitempty"`
}

func (s *Store) deletedTopicsPrefix() string { return s.prefix + "/deleted-topics/" }

func (s *Store) deletedTopicKey(id string) string { return s.deletedTopicsPrefix() + id }

// deletedTopicOp is the put recording t's deletion, for DeleteTopic's
// transaction.
func (s *Store) deletedTopicOp(t Topic, now time.Time) (clientv3.Op, error) {
	val, err := encode(deletedTopicValue{
		Name:      t.Name,
		ID:        t.ID,
		DeletedAt: now,
		Tiered:    strings.EqualFold(t.Configs["remote.storage.enable"], "true"),
	})
	if err != nil {
		return clientv3.Op{}, err
	}
	return clientv3.OpPut(s.deletedTopicKey(t.ID), val), nil
}

func decodeDeletedTopic(value []byte, modRevision int64) (DeletedTopic, error) {
	var v deletedTopicValue
	if err := json.Unmarshal(value, &v); err != nil {
		return DeletedTopic{}, fmt.Errorf("decode deleted topic: %w", err)
	}
	return DeletedTopic{Name: v.Name, ID: v.ID, DeletedAt: v.DeletedAt, Tiered: v.Tiered, Revision: modRevision}, nil
}

// DeletedTopics lists the deleted topic incarnations whose objects may still
// be in the object store, oldest deletion first. A record that cannot be
// decoded is logged and left out (and left in etcd: it names objects that
// must not be forgotten).
func (s *Store) DeletedTopics(ctx context.Context) ([]DeletedTopic, error) {
	resp, err := s.client.Get(ctx, s.deletedTopicsPrefix(), clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("metastore: list deleted topics: %w", err)
	}
	out := make([]DeletedTopic, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		d, err := decodeDeletedTopic(kv.Value, kv.ModRevision)
		if err != nil || d.ID == "" || d.Name == "" {
			s.logger.Error("skipping undecodable deleted-topic record", "key", string(kv.Key), "err", err)
			continue
		}
		out = append(out, d)
	}
	return out, nil
}

// DeletedTopic reads the record of topic id's pending deletion; found is
// false when there is none.
func (s *Store) DeletedTopic(ctx context.Context, id string) (d DeletedTopic, found bool, err error) {
	resp, err := s.client.Get(ctx, s.deletedTopicKey(id))
	if err != nil {
		return DeletedTopic{}, false, fmt.Errorf("metastore: get deleted topic %s: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return DeletedTopic{}, false, nil
	}
	d, err = decodeDeletedTopic(resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
	if err != nil {
		return DeletedTopic{}, false, fmt.Errorf("metastore: get deleted topic %s: %w", id, err)
	}
	return d, true, nil
}

// FinishTopicDeletion removes d's record once its objects are gone. It is a
// compare-and-swap on the record's revision (ErrConflict if it changed), so
// a record written again meanwhile is not lost. A record already gone is
// not an error.
func (s *Store) FinishTopicDeletion(ctx context.Context, d DeletedTopic) error {
	key := s.deletedTopicKey(d.ID)
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", d.Revision)).
		Then(clientv3.OpDelete(key)).
		Else(clientv3.OpGet(key, clientv3.WithCountOnly())).
		Commit()
	if err != nil {
		return fmt.Errorf("metastore: finish deletion of topic %q (%s): %w", d.Name, d.ID, err)
	}
	if !resp.Succeeded && resp.Responses[0].GetResponseRange().Count > 0 {
		return fmt.Errorf("metastore: finish deletion of topic %q (%s): %w", d.Name, d.ID, ErrConflict)
	}
	return nil
}
