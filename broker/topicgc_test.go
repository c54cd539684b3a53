package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/metastore/metastoretest"
	"github.com/strata-broker/strata/tiering"
	"github.com/strata-broker/strata/tiering/objstore"
	"github.com/strata-broker/strata/tiering/objstore/objstoretest"
)

// startTopicGCBroker runs broker 1 on a flaky local-directory store, with
// the tiering task and the topic deleter every 50 ms and the deleter's
// grace for in-flight uploads set to grace; its metrics go to the returned
// registry.
func startTopicGCBroker(t *testing.T, grace time.Duration) (*Broker, *metastoretest.Store, *objstoretest.Faulty, *prometheus.Registry) {
	t.Helper()
	store, dir := startMetastore(t)
	objects, err := objstore.Open(context.Background(), "file://"+dir+"/objects", objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	flaky := objstoretest.NewFaulty(objects)
	reg := prometheus.NewRegistry()
	b, err := New(Config{NodeID: 1, DataDir: dir + "/data", ObjectStore: flaky, Registerer: reg,
		Settings: smallSegments(map[string]string{"remote.log.manager.task.interval.ms": "50"})}, store)
	if err != nil {
		t.Fatal(err)
	}
	b.rlm.SetDeletedTopicGrace(grace) // before Start: the worker reads it
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, store, flaky, reg
}

func listKeys(t *testing.T, st objstore.Store, prefix string) []string {
	t.Helper()
	objs, err := st.List(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = o.Key
	}
	return keys
}

// createTieredWithSegments creates a tiered topic and waits until its
// segments and topic manifest are in the bucket; it returns the layout.
func createTieredWithSegments(t *testing.T, b *Broker, st objstore.Store, name string) tiering.Layout {
	t.Helper()
	d, err := b.CreateTopic(context.Background(), TopicSpec{Name: name, Partitions: 1, Configs: map[string]string{
		"remote.storage.enable": "true", "segment.bytes": "1024", "local.retention.bytes": "2048",
	}})
	if err != nil {
		t.Fatal(err)
	}
	produceValues(t, b, name, 0, 100)
	l := tiering.Layout{Topic: name, TopicID: d.ID}
	await.True(t, 20*time.Second, name+"'s segments and topic manifest in the bucket", func() bool {
		keys := listKeys(t, st, l.TopicPrefix())
		segments := 0
		for _, k := range keys {
			if strings.HasSuffix(k, ".log") {
				segments++
			}
		}
		return segments >= 3 && slices.Contains(keys, l.TopicManifestKey())
	})
	return l
}

// A deleted topic's objects leave the bucket, its topic manifest last, and
// then its record in etcd; a store that fails deletes keeps the record (and
// the topic unrestorable) until it works again, retried with backoff.
// Another topic's objects are untouched.
func TestDeletedTopicObjectsLeaveTheBucket(t *testing.T) {
	b, store, st, reg := startTopicGCBroker(t, 0)
	ctx := context.Background()
	doomed := createTieredWithSegments(t, b, st, "doomed")
	kept := createTieredWithSegments(t, b, st, "kept")
	keptBefore := listKeys(t, st, kept.TopicPrefix())
	doomedObjects := len(listKeys(t, st, doomed.TopicPrefix()))

	st.FailDeletes.Store(true)
	if err := b.DeleteTopic(ctx, "doomed"); err != nil {
		t.Fatal(err)
	}
	if _, found, err := store.DeletedTopic(ctx, doomed.TopicID); err != nil || !found {
		t.Fatalf("record of the deletion: found %v, %v", found, err)
	}

	// The worker tries, fails, and backs off instead of spinning.
	await.True(t, 10*time.Second, "three failed delete attempts", func() bool { return st.DeleteCalls.Load() >= 3 })
	calls := st.DeleteCalls.Load()
	time.Sleep(600 * time.Millisecond)
	if n := st.DeleteCalls.Load() - calls; n > 3 {
		t.Errorf("%d delete attempts in 600ms against a failing store: no backoff", n)
	}
	if _, found, err := store.DeletedTopic(ctx, doomed.TopicID); err != nil || !found {
		t.Fatalf("record while the store fails deletes: found %v, %v", found, err)
	}
	if keys := listKeys(t, st, doomed.TopicPrefix()); !slices.Contains(keys, doomed.TopicManifestKey()) {
		t.Fatalf("topic manifest gone while deletes fail: %v", keys)
	}
	if got := metricValue(t, reg, "strata_tiering_deleted_topics_pending"); got != 1 {
		t.Errorf("pending gauge %v, want 1", got)
	}
	// Its id cannot be restored meanwhile.
	_, err := b.RestoreTopic(ctx, "doomed")
	if !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), "being deleted") {
		t.Fatalf("restore of a topic pending deletion: %v", err)
	}

	st.FailDeletes.Store(false)
	await.True(t, 20*time.Second, "the record gone once the store works", func() bool {
		_, found, err := store.DeletedTopic(ctx, doomed.TopicID)
		return err == nil && !found
	})
	if keys := listKeys(t, st, doomed.TopicPrefix()); len(keys) != 0 {
		t.Fatalf("objects left under %s: %v", doomed.TopicPrefix(), keys)
	}
	var ofDoomed []string
	for _, k := range st.Deleted() {
		if strings.HasPrefix(k, doomed.TopicPrefix()) {
			ofDoomed = append(ofDoomed, k)
		}
	}
	if len(ofDoomed) < doomedObjects || ofDoomed[len(ofDoomed)-1] != doomed.TopicManifestKey() {
		t.Errorf("deleted %d objects (had %d), the last %q: want the topic manifest last", len(ofDoomed), doomedObjects, ofDoomed[len(ofDoomed)-1])
	}
	keptNow := listKeys(t, st, kept.TopicPrefix())
	for _, k := range keptBefore {
		if strings.HasSuffix(k, ".log") && !slices.Contains(keptNow, k) {
			t.Errorf("segment %s of the kept topic is gone", k)
		}
	}
	if got := metricValue(t, reg, "strata_tiering_deleted_topic_objects_total"); got < float64(doomedObjects) {
		t.Errorf("deleted-objects counter %v, want at least %d", got, doomedObjects)
	}
	await.True(t, 5*time.Second, "the pending gauge at 0", func() bool { return metricValue(t, reg, "strata_tiering_deleted_topics_pending") == 0 })
	if _, err := b.RestoreTopic(ctx, "doomed"); !errors.Is(err, ErrUnknownTopicOrPartition) {
		t.Fatalf("restore once the objects are gone: %v, want unknown topic", err)
	}
	produceValues(t, b, "kept", 100, 110)
	if got := readValues(t, b, "kept", 110); got[0] != fmt.Sprintf("value-%05d-%0100d", 0, 0) {
		t.Fatalf("kept topic's first record %q", got[0])
	}
}

// The record of a tiered topic outlives the emptied prefix for the grace
// given to uploads in flight; a topic that was not tiered needs none.
func TestDeletedTopicRecordWaitsForUploadsInFlight(t *testing.T) {
	b, store, st, _ := startTopicGCBroker(t, time.Hour)
	ctx := context.Background()
	tiered := createTieredWithSegments(t, b, st, "tiered")
	plain, err := b.CreateTopic(ctx, TopicSpec{Name: "plain", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tiered", "plain"} {
		if err := b.DeleteTopic(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	await.True(t, 10*time.Second, "the plain topic's record gone", func() bool {
		_, found, err := store.DeletedTopic(ctx, plain.ID)
		return err == nil && !found
	})
	await.True(t, 10*time.Second, "the tiered topic's prefix empty", func() bool {
		return len(listKeys(t, st, tiered.TopicPrefix())) == 0
	})
	lists := st.ListCalls.Load()
	// The record must stay at every look until the deleter has listed the
	// prefix three more times, all within the grace.
	await.True(t, 10*time.Second, "the deleter to keep listing the tiered topic's prefix within its grace", func() bool {
		if _, found, err := store.DeletedTopic(ctx, tiered.TopicID); err != nil || !found {
			t.Fatalf("tiered topic's record within the grace: found %v, %v", found, err)
		}
		return st.ListCalls.Load() >= lists+3
	})
}
