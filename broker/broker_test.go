package broker

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/metastore/metastoretest"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/topicconfig"
)

// Compile-time checks: the broker runs on etcd's store and on the fake.
var (
	_ Metastore = (*metastore.Store)(nil)
	_ Metastore = (*metastoretest.Store)(nil)
)

// startMetastore returns an in-memory metastore with broker 1 registered in
// it, and a temporary directory.
func startMetastore(t testing.TB) (*metastoretest.Store, string) {
	t.Helper()
	store := metastoretest.New()
	reg, err := store.RegisterBroker(context.Background(), metastore.BrokerInfo{NodeID: 1}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	return store, t.TempDir()
}

// startBrokerWith runs broker 1 with cfg (NodeID and DataDir filled in).
func startBrokerWith(t testing.TB, cfg Config) (*Broker, *metastoretest.Store) {
	t.Helper()
	store, dir := startMetastore(t)
	cfg.NodeID, cfg.DataDir = 1, dir+"/data"
	b, err := New(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, store
}

// smallSegments returns a copy of settings that lets topics have
// segment.bytes below Kafka's 1 MiB minimum (log.segment.min.bytes), for
// tests that roll many segments.
func smallSegments(settings map[string]string) map[string]string {
	out := maps.Clone(settings)
	if out == nil {
		out = map[string]string{}
	}
	out[topicconfig.SegmentMinBytesKey] = "1024"
	return out
}

func startBroker(t testing.TB) (*Broker, *metastoretest.Store) {
	t.Helper()
	return startBrokerWith(t, Config{})
}

func produceOne(t *testing.T, b *Broker, topic string) int64 {
	t.Helper()
	bld := record.NewBuilder(time.Now().UnixMilli(), 0)
	bld.Append(&record.Record{Value: []byte("v")})
	batch, err := bld.Build(record.None)
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Produce(context.Background(), topic, AcksAll, []PartitionBatches{{Partition: 0, Batches: append([]byte(nil), batch...)}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	return res[0].BaseOffset
}

// A delete event that arrives after the topic was created anew (the watch
// lags behind this broker's own admin calls) must not remove the new topic.
func TestLateDeleteEventKeepsRecreatedTopic(t *testing.T) {
	b, store := startBroker(t)
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	old, err := store.GetTopic(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	produceOne(t, b, "t")
	if err := b.DeleteTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < 3; i++ {
		if off := produceOne(t, b, "t"); off != i {
			t.Fatalf("new topic: offset %d, want %d", off, i)
		}
	}
	// The late events of the first incarnation.
	b.hosted.applyDelete(ctx, "t")
	if err := b.hosted.applyTopic(old); err != nil {
		t.Fatal(err)
	}
	if off := produceOne(t, b, "t"); off != 3 {
		t.Fatalf("after late events, next offset %d, want 3: the new topic's data was dropped", off)
	}
}

// A long poll parked on a partition whose topic is re-created under it (seen
// by this broker as one change) must not stay parked on the dropped
// partition until its MaxWait.
func TestLongPollFollowsRecreatedPartition(t *testing.T) {
	b, store := startBroker(t)
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	fetched := make(chan []FetchResult, 1)
	go func() {
		res, err := b.Fetch(ctx, []FetchPartition{{Topic: "t", Partition: 0}}, FetchOptions{MinBytes: 1, MaxWait: time.Hour})
		if err != nil {
			t.Error(err)
		}
		fetched <- res
	}()
	// The topic is deleted and created again, and the broker learns of the
	// new incarnation in one change, as after a watch resync: same name, new
	// id, later revision.
	old, err := store.GetTopic(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.DeleteTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	nt := old
	nt.ID, nt.Revision = "00000000-0000-4000-8000-000000000001", 0
	nt, err = store.CreateTopic(ctx, nt, [][]int32{{1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.hosted.applyTopic(nt); err != nil {
		t.Fatal(err)
	}
	produceOne(t, b, "t")
	select {
	case res := <-fetched:
		// Woken while the old partition was being dropped, the fetch may see
		// the topic missing for that moment (clients retry that); otherwise it
		// must have followed the new partition and got the record.
		if !errors.Is(res[0].Err, ErrUnknownTopicOrPartition) && len(res[0].Data) == 0 {
			t.Fatalf("long poll returned %+v, want the new record or unknown topic", res[0])
		}
	case <-time.After(30 * time.Second):
		t.Fatal("long poll did not wake for the re-created partition")
	}
}
