package metastore

import (
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The record of a topic's pending deletion from the object store is written
// by the transaction that deletes the topic: no revision has the topic gone
// and the record missing.
func TestDeleteTopicRecordsPendingDeletionInTheSameTransaction(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	before := time.Now().UTC().Add(-time.Second)
	tiered := createTestTopic(t, s, "orders", 2, map[string]string{"remote.storage.enable": "true"})
	plain := createTestTopic(t, s, "plain", 1, nil)
	if err := s.DeleteTopic(ctx, "orders"); err != nil {
		t.Fatal(err)
	}

	d, found, err := s.DeletedTopic(ctx, tiered.ID)
	if err != nil || !found {
		t.Fatalf("deleted-topic record of %s: found %v, %v", tiered.ID, found, err)
	}
	if d.Name != "orders" || d.ID != tiered.ID || !d.Tiered || d.DeletedAt.Before(before) {
		t.Fatalf("record %+v, want orders %s tiered, deleted after %v", d, tiered.ID, before)
	}
	// The record appeared at the revision the topic and its partitions
	// disappeared at.
	at := func(rev int64, key string, opts ...clientv3.OpOption) int64 {
		t.Helper()
		resp, err := s.client.Get(ctx, key, append(opts, clientv3.WithRev(rev), clientv3.WithCountOnly())...)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Count
	}
	for _, c := range []struct {
		key          string
		opts         []clientv3.OpOption
		before, then int64
	}{
		{s.topicKey("orders"), nil, 1, 0},
		{s.partitionsPrefix("orders"), []clientv3.OpOption{clientv3.WithPrefix()}, 2, 0},
		{s.deletedTopicKey(tiered.ID), nil, 0, 1},
	} {
		if got := at(d.Revision-1, c.key, c.opts...); got != c.before {
			t.Errorf("%s at revision %d: %d keys, want %d", c.key, d.Revision-1, got, c.before)
		}
		if got := at(d.Revision, c.key, c.opts...); got != c.then {
			t.Errorf("%s at revision %d: %d keys, want %d", c.key, d.Revision, got, c.then)
		}
	}

	// Every deletion is recorded, tiered or not; a failed one is not.
	if err := s.DeleteTopic(ctx, "plain"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTopic(ctx, "missing"); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("delete missing topic: %v", err)
	}
	list, err := s.DeletedTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != tiered.ID || list[1].ID != plain.ID || list[1].Tiered || list[1].Name != "plain" {
		t.Fatalf("deleted topics %+v, want orders then plain (not tiered)", list)
	}

	// The id cannot come back while its objects are being deleted; the
	// name can, under a new id.
	_, err = s.CreateTopic(ctx, Topic{Name: "orders", ID: tiered.ID}, [][]int32{{1}})
	if !errors.Is(err, ErrTopicDeletionPending) {
		t.Fatalf("create topic with an id pending deletion: %v", err)
	}
	again := createTestTopic(t, s, "orders", 1, nil)
	if again.ID == tiered.ID {
		t.Fatal("topic created again under the deleted id")
	}
	if _, err := s.CreateTopic(ctx, Topic{Name: "orders"}, [][]int32{{1}}); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("create existing topic: %v, want ErrTopicExists", err)
	}

	// Finishing is a compare-and-swap on the record.
	stale := d
	stale.Revision--
	if err := s.FinishTopicDeletion(ctx, stale); !errors.Is(err, ErrConflict) {
		t.Fatalf("finish with a stale revision: %v, want ErrConflict", err)
	}
	if err := s.FinishTopicDeletion(ctx, d); err != nil {
		t.Fatal(err)
	}
	if _, found, err := s.DeletedTopic(ctx, tiered.ID); err != nil || found {
		t.Fatalf("record after finishing: found %v, %v", found, err)
	}
	if err := s.FinishTopicDeletion(ctx, d); err != nil {
		t.Fatalf("finishing twice: %v", err)
	}
	if list, err := s.DeletedTopics(ctx); err != nil || len(list) != 1 || list[0].ID != plain.ID {
		t.Fatalf("deleted topics after finishing one: %+v, %v", list, err)
	}
	// Now the id may be used again (a restore from the bucket).
	if _, err := s.CreateTopic(ctx, Topic{Name: "orders-restored", ID: tiered.ID}, [][]int32{{1}}); err != nil {
		t.Fatalf("create with the id once its deletion finished: %v", err)
	}
}

// A topic changed between DeleteTopic's read and its transaction is read
// again, so the record names the incarnation that was deleted.
func TestDeleteTopicRecordsTheIncarnationDeleted(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	first := createTestTopic(t, s, "t", 1, nil)
	if err := s.DeleteTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	second := createTestTopic(t, s, "t", 1, map[string]string{"remote.storage.enable": "true"})
	if err := s.DeleteTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	list, err := s.DeletedTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != first.ID || list[0].Tiered || list[1].ID != second.ID || !list[1].Tiered {
		t.Fatalf("deleted topics %+v, want %s then %s (tiered)", list, first.ID, second.ID)
	}
}

// A topic whose stored value is damaged can still be deleted; with no id
// to name its objects, no record is written.
func TestDeleteUndecodableTopic(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	if _, err := s.client.Put(ctx, s.topicKey("broken"), "{not json"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTopic(ctx, "broken"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetTopic(ctx, "broken"); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if list, err := s.DeletedTopics(ctx); err != nil || len(list) != 0 {
		t.Fatalf("deleted topics %+v, %v", list, err)
	}
}
