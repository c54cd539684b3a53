package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/record"
)

// appendRecords appends n single-record batches to a partition with
// acks=all and returns the base offset of the first.
func appendRecords(t *testing.T, b *Broker, topic string, partition int32, n int) int64 {
	t.Helper()
	first := int64(-1)
	for i := range n {
		if off := appendBatch(t, b, topic, partition, 1); i == 0 {
			first = off
		}
	}
	return first
}

// appendBatch appends one batch of n records with acks=all and returns its
// base offset.
func appendBatch(t *testing.T, b *Broker, topic string, partition int32, n int) int64 {
	t.Helper()
	bld := record.NewBuilder(time.Now().UnixMilli(), 0)
	for i := range n {
		bld.Append(&record.Record{Value: fmt.Appendf(nil, "%s-%d-%d", topic, partition, i)})
	}
	batch, err := bld.Build(record.None)
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.ProduceWithTimeout(context.Background(), topic, AcksAll, 20*time.Second,
		[]PartitionBatches{{Partition: partition, Batches: append([]byte(nil), batch...)}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil {
		t.Fatalf("produce to %s-%d on broker %d: %v", topic, partition, b.cfg.NodeID, res[0].Err)
	}
	return res[0].BaseOffset
}

// countRecords fetches a partition from offset on and returns how many
// records came back.
func countRecords(t *testing.T, b *Broker, topic string, partition int32, offset int64) (int, error) {
	t.Helper()
	res, err := b.Fetch(context.Background(), []FetchPartition{{Topic: topic, Partition: partition, Offset: offset}}, FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil {
		return 0, res[0].Err
	}
	n := 0
	it := record.NewBatches(res[0].Data)
	for it.Next() {
		if err := record.ForEach(it.Bytes(), func(r *record.Record) error {
			if r.Offset >= offset {
				n++
			}
			return nil
		}); err != nil {
			return n, err
		}
	}
	return n, it.Err()
}

func TestCreatePartitions(t *testing.T) {
	b, store := startBroker(t)
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "g", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	appendRecords(t, b, "g", 0, 3)
	p0, err := b.hosted.partition("g", 0)
	if err != nil {
		t.Fatal(err)
	}

	if err := b.CreatePartitions(ctx, "g", 3, nil, true); err != nil {
		t.Fatalf("validate only: %v", err)
	}
	if n, _ := b.PartitionCount("g"); n != 1 {
		t.Fatalf("validate only changed the count to %d", n)
	}
	if err := b.CreatePartitions(ctx, "g", 3, nil, false); err != nil {
		t.Fatal(err)
	}
	// Usable at once on the broker that served the call.
	if n, _ := b.PartitionCount("g"); n != 3 {
		t.Fatalf("partition count %d, want 3", n)
	}
	for p := int32(1); p < 3; p++ {
		if off := appendRecords(t, b, "g", p, 2); off != 0 {
			t.Fatalf("partition %d: first offset %d", p, off)
		}
		if n, err := countRecords(t, b, "g", p, 0); err != nil || n != 2 {
			t.Fatalf("partition %d: fetched %d records, %v", p, n, err)
		}
	}
	// The existing partition is the same replica, its data untouched.
	if p, _ := b.hosted.partition("g", 0); p != p0 {
		t.Fatal("partition 0 was reopened")
	}
	if off := appendRecords(t, b, "g", 0, 1); off != 3 {
		t.Fatalf("partition 0 continues at %d, want 3", off)
	}
	md, err := b.Metadata(ctx, []string{"g"})
	if err != nil {
		t.Fatal(err)
	}
	if got := md.Topics[0].Partitions; len(got) != 3 || got[2].Leader != 1 || !slices.Equal(got[2].Replicas, []int32{1}) {
		t.Fatalf("metadata %+v", got)
	}

	for _, c := range []struct {
		name        string
		topic       string
		count       int32
		assignments [][]int32
		kind        Kind
		text        string
	}{
		{name: "same count", topic: "g", count: 3, kind: KindInvalidPartitions, text: "Topic already has 3 partitions."},
		{name: "fewer", topic: "g", count: 2, kind: KindInvalidPartitions,
			text: "Topic currently has 3 partitions, which is higher than the requested 2."},
		{name: "too many", topic: "g", count: MaxPartitions + 1, kind: KindInvalidPartitions},
		{name: "unknown topic", topic: "nope", count: 5, kind: KindUnknownTopicOrPartition},
		{name: "assignment count", topic: "g", count: 5, assignments: [][]int32{{1}}, kind: KindInvalidRequest,
			text: "Increasing the number of partitions by 2 but 1 assignments provided."},
		{name: "empty assignments", topic: "g", count: 4, assignments: [][]int32{}, kind: KindInvalidRequest},
		{name: "unknown broker", topic: "g", count: 4, assignments: [][]int32{{7}}, kind: KindInvalidRequest},
		{name: "replication factor", topic: "g", count: 4, assignments: [][]int32{{1, 1}}, kind: KindInvalidReplication},
		{name: "no replicas", topic: "g", count: 4, assignments: [][]int32{{}}, kind: KindInvalidReplication},
	} {
		err := b.CreatePartitions(ctx, c.topic, c.count, c.assignments, false)
		if Classify(err) != c.kind || !strings.Contains(fmt.Sprint(err), c.text) {
			t.Errorf("%s: %v (kind %d), want kind %d with %q", c.name, err, Classify(err), c.kind, c.text)
		}
	}
	if n, _ := b.PartitionCount("g"); n != 3 {
		t.Fatalf("refused calls changed the count to %d", n)
	}

	// Given assignments are used as they are.
	if err := b.CreatePartitions(ctx, "g", 4, [][]int32{{1}}, false); err != nil {
		t.Fatal(err)
	}
	states, err := store.PartitionStates(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 4 || states[3].Leader != 1 || !slices.Equal(states[3].ISR, []int32{1}) {
		t.Fatalf("states %+v", states)
	}
	appendRecords(t, b, "g", 3, 1)

	// A restart opens every partition again.
	b2 := reopenBroker(t, b)
	for p := int32(0); p < 4; p++ {
		want := map[int32]int{0: 4, 1: 2, 2: 2, 3: 1}[p]
		await.True(t, 30*time.Second, fmt.Sprint("partition ", p, " led after the restart"), func() bool {
			_, err := b2.hosted.leaderPartition("g", p)
			return err == nil
		})
		if n, err := countRecords(t, b2, "g", p, 0); err != nil || n != want {
			t.Fatalf("after restart, partition %d: %d records, %v; want %d", p, n, err, want)
		}
	}
}

// Partitions added by another broker reach this one through the topic watch.
func TestPartitionsAddedElsewhereAreOpened(t *testing.T) {
	b, store := startBroker(t)
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "w", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	appendRecords(t, b, "w", 1, 2)
	tp, err := store.GetTopic(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.AddPartitions(ctx, tp, [][]int32{{1}, {1}}); err != nil {
		t.Fatal(err)
	}
	await.True(t, 30*time.Second, "the new partitions led here", func() bool {
		_, err2 := b.hosted.leaderPartition("w", 2)
		_, err3 := b.hosted.leaderPartition("w", 3)
		return err2 == nil && err3 == nil
	})
	if n, _ := b.PartitionCount("w"); n != 4 {
		t.Fatalf("partition count %d", n)
	}
	appendRecords(t, b, "w", 3, 1)
	if off := appendRecords(t, b, "w", 1, 1); off != 2 {
		t.Fatalf("partition 1 continues at %d, want 2", off)
	}
}

// reopenBroker closes b and starts a broker on its data directory and
// metastore.
func reopenBroker(t *testing.T, b *Broker) *Broker {
	t.Helper()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	nb, err := New(b.cfg, b.store)
	if err != nil {
		t.Fatal(err)
	}
	if err := nb.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nb.Close() })
	return nb
}

func TestDeleteRecords(t *testing.T) {
	b, store := startBrokerWith(t, Config{Settings: smallSegments(nil)})
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "d", Partitions: 1, Configs: map[string]string{"segment.bytes": "1024"}}); err != nil {
		t.Fatal(err)
	}
	appendRecords(t, b, "d", 0, 60)
	p, err := b.hosted.partition("d", 0)
	if err != nil {
		t.Fatal(err)
	}
	segments := len(p.log.Segments())
	if segments < 4 {
		t.Fatalf("%d segments", segments)
	}

	low, err := b.DeleteRecords(ctx, "d", 0, 30)
	if err != nil || low != 30 {
		t.Fatalf("DeleteRecords(30) = %d, %v", low, err)
	}
	if p.LogStartOffset() != 30 || len(p.log.Segments()) >= segments {
		t.Fatalf("log start %d, %d segments (from %d)", p.LogStartOffset(), len(p.log.Segments()), segments)
	}
	if _, err := countRecords(t, b, "d", 0, 29); Classify(err) != KindOffsetOutOfRange {
		t.Fatalf("fetch below the log start: %v", err)
	}
	// A fetch stays within a segment: some records, none below the start.
	if n, err := countRecords(t, b, "d", 0, 30); err != nil || n == 0 {
		t.Fatalf("fetch from the log start: %d records, %v", n, err)
	}
	// Not backwards: the log start stays.
	if low, err := b.DeleteRecords(ctx, "d", 0, 3); err != nil || low != 30 {
		t.Fatalf("DeleteRecords(3) = %d, %v", low, err)
	}
	// Beyond the high watermark: offset out of range.
	for _, off := range []int64{61, -2} {
		if _, err := b.DeleteRecords(ctx, "d", 0, off); Classify(err) != KindOffsetOutOfRange {
			t.Fatalf("DeleteRecords(%d): %v (kind %d)", off, err, Classify(err))
		}
	}
	// -1: up to the high watermark.
	if low, err := b.DeleteRecords(ctx, "d", 0, -1); err != nil || low != 60 {
		t.Fatalf("DeleteRecords(-1) = %d, %v", low, err)
	}
	if off := appendRecords(t, b, "d", 0, 1); off != 60 {
		t.Fatalf("next offset %d, want 60", off)
	}
	if _, err := b.DeleteRecords(ctx, "nope", 0, 1); Classify(err) != KindUnknownTopicOrPartition {
		t.Fatalf("unknown topic: %v", err)
	}
	if _, err := b.DeleteRecords(ctx, "d", 5, 1); Classify(err) != KindUnknownTopicOrPartition {
		t.Fatalf("unknown partition: %v", err)
	}

	// The new log start survives a restart.
	b2 := reopenBroker(t, b)
	await.True(t, 30*time.Second, "the partition led after the restart", func() bool {
		_, err := b2.hosted.leaderPartition("d", 0)
		return err == nil
	})
	if p, _ := b2.hosted.partition("d", 0); p.LogStartOffset() != 60 || p.LogEndOffset() != 61 {
		t.Fatalf("after restart: log start %d, end %d", p.LogStartOffset(), p.LogEndOffset())
	}

	// Only the leader deletes: a partition led by another broker.
	if _, err := store.CreateTopic(ctx, metastore.Topic{Name: "f"}, [][]int32{{2, 1}}); err != nil {
		t.Fatal(err)
	}
	await.True(t, 30*time.Second, "the follower partition hosted", func() bool {
		_, err := b2.hosted.partition("f", 0)
		return err == nil
	})
	if _, err := b2.DeleteRecords(ctx, "f", 0, 0); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("on a follower: %v, want ErrNotLeader", err)
	}
}
