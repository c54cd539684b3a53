package broker

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/internal/fakeclock"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/tiering/objstore"
	"github.com/strata-broker/strata/tiering/objstore/objstoretest"
)

// While the object store is down, a fetch below the local log gets an
// error clients retry (KindRemoteStorageUnavailable: Kafka's
// KAFKA_STORAGE_ERROR), not an internal error; nor, when the partition's
// manifest could not be read since a restart, OFFSET_OUT_OF_RANGE, which
// would make a consumer reset its position past records the bucket holds.
// ListOffsets of the earliest offset waits for the store too. Once it is
// back, the same fetch returns the records.
func TestRemoteReadFailuresAreRetriable(t *testing.T) {
	objects, err := objstore.Open(context.Background(), "file://"+t.TempDir(), objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store := objstoretest.NewFaulty(objects)
	clk := fakeclock.New(time.Now())
	b, _ := startBrokerWith(t, Config{ObjectStore: store, Now: clk.Now,
		Settings: smallSegments(map[string]string{"remote.log.manager.task.interval.ms": "50"})})
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "cold", Partitions: 1, Configs: map[string]string{
		"remote.storage.enable": "true", "segment.bytes": "1024", "local.retention.bytes": "1024",
	}}); err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		bld := record.NewBuilder(clk.Now().UnixMilli(), 0)
		bld.Append(&record.Record{Value: fmt.Appendf(nil, "%05d-%0100d", i, i)})
		batch, err := bld.Build(record.None)
		if err != nil {
			t.Fatal(err)
		}
		if res, err := b.Produce(ctx, "cold", AcksAll, []PartitionBatches{{Partition: 0, Batches: batch}}); err != nil || res[0].Err != nil {
			t.Fatalf("produce: %v %v", err, res)
		}
	}
	part, _ := b.hosted.partition("cold", 0)
	await.True(t, 10*time.Second, "records to be only in the bucket", func() bool { return part.log.LogStartOffset() >= 20 })
	fetch := func() FetchResult {
		t.Helper()
		res, err := b.Fetch(ctx, []FetchPartition{{Topic: "cold", Partition: 0, Offset: 0, MaxBytes: 1 << 20}}, FetchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return res[0]
	}

	store.FailReads.Store(true)
	if r := fetch(); Classify(r.Err) != KindRemoteStorageUnavailable {
		t.Fatalf("fetch below the local log with the store down: %v (kind %d), want a remote storage error", r.Err, Classify(r.Err))
	}
	part.setRemoteManifest(nil, -1) // as after a restart
	r := fetch()
	var oor *partlog.OffsetOutOfRangeError
	if Classify(r.Err) != KindRemoteStorageUnavailable || errors.As(r.Err, &oor) {
		t.Fatalf("fetch below the local log with the store down and the manifest unknown: %v, want a remote storage error", r.Err)
	}
	if _, _, _, err := b.ListOffset("cold", 0, EarliestTimestamp, ReadUncommitted); Classify(err) != KindRemoteStorageUnavailable {
		t.Fatalf("earliest offset with the store down and the manifest unknown: %v, want a remote storage error", err)
	}
	if off, _, _, err := b.ListOffset("cold", 0, LatestTimestamp, ReadUncommitted); err != nil || off != 60 {
		t.Fatalf("latest offset with the store down: %d, %v; want 60", off, err)
	}

	store.FailReads.Store(false)
	clk.Advance(time.Minute) // past the wait before the manifest is asked for again
	if r := fetch(); r.Err != nil || len(r.Data) == 0 {
		t.Fatalf("fetch with the store back: %d bytes, %v", len(r.Data), r.Err)
	}
	if off, _, _, err := b.ListOffset("cold", 0, EarliestTimestamp, ReadUncommitted); err != nil || off != 0 {
		t.Fatalf("earliest offset with the store back: %d, %v; want 0", off, err)
	}
}
