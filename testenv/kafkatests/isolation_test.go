package kafkatests_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/api/client"
	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
	"github.com/strata-broker/strata/topicconfig"
)

// Read_committed consumers on a replicated cluster, while no client can
// open a transaction: franz-go from the leader and from a follower in its
// rack (KIP-392), and the Go client over gRPC, read every record; the last
// stable offset every replica reports is its high watermark, and ListOffsets
// latest is the same for both isolation levels.
func TestReadCommittedConsumersWithoutTransactions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-broker cluster")
	}
	racks := map[int32]string{1: "a", 2: "b", 3: "c"}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3,
		BrokerSettings: map[string]string{"replica.selector.class": topicconfig.RackAwareReplicaSelector},
		BrokerArgs:     func(id int32) []string { return []string{"--config", "broker.rack=" + racks[id]} }})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const topic, records = "committed", 500
	producer, adm, seeds := testenvtest.KafkaClient(t, c, kgo.DefaultProduceTopic(topic))
	testenvtest.CreateKafkaTopic(ctx, t, adm, topic, 3, nil)
	for i := range records {
		producer.Produce(ctx, &kgo.Record{Value: fmt.Appendf(nil, "record-%04d", i)}, nil)
	}
	if err := producer.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	for _, rack := range []string{"", "b", "c"} {
		consumer, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.Rack(rack))
		if err != nil {
			t.Fatal(err)
		}
		next := 0
		for next < records {
			fetches := consumer.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				t.Fatalf("rack %q: read %d of %d records: %v", rack, next, records, err)
			}
			fetches.EachError(func(topic string, p int32, err error) { t.Fatalf("rack %q: fetch %s-%d: %v", rack, topic, p, err) })
			fetches.EachRecord(func(r *kgo.Record) {
				if want := fmt.Sprintf("record-%04d", next); r.Offset != int64(next) || string(r.Value) != want {
					t.Fatalf("rack %q: record at offset %d is %q, want offset %d %q", rack, r.Offset, r.Value, next, want)
				}
				next++
			})
		}
		consumer.Close()
	}

	// Each replica's answer to a read_committed fetch (v11 and later let
	// followers serve it), once it knows every record committed.
	for _, b := range c.Brokers() {
		req := kmsg.NewPtrFetchRequest()
		req.IsolationLevel = 1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = topic, testenvtest.TopicID(ctx, t, producer, topic)
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.FetchOffset = records
		rp.PartitionMaxBytes = 1 << 20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		await.NoError(t, 30*time.Second, fmt.Sprint("broker ", b.ID(), " answering read_committed at the end"), func() error {
			resp, err := req.RequestWith(ctx, producer.Broker(int(b.ID())))
			if err != nil {
				return err
			}
			p := resp.Topics[0].Partitions[0]
			if p.ErrorCode != 0 || p.HighWatermark != records || p.LastStableOffset != records || len(p.AbortedTransactions) != 0 {
				return fmt.Errorf("error %d, high watermark %d, last stable offset %d, aborted %v; want 0, %d, %d, none",
					p.ErrorCode, p.HighWatermark, p.LastStableOffset, p.AbortedTransactions, records, records)
			}
			return nil
		})
	}
	for _, iso := range []int8{0, 1} {
		req := kmsg.NewPtrListOffsetsRequest()
		req.IsolationLevel = iso
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Timestamp = -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, producer)
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Topics[0].Partitions[0]; got.ErrorCode != 0 || got.Offset != records {
			t.Fatalf("ListOffsets latest, isolation %d: %d (error %d), want %d", iso, got.Offset, got.ErrorCode, records)
		}
	}

	gc, err := client.Dial(ctx, c.BootstrapServers())
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	gcons, err := client.NewConsumer(gc, client.ConsumerOptions{Topic: topic, Start: client.StartEarliest, ReadCommitted: true, Rack: "c"})
	if err != nil {
		t.Fatal(err)
	}
	defer gcons.Close()
	next := 0
	for {
		recs, err := gcons.Poll(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Go consumer: read %d of %d records: %v", next, records, err)
		}
		next += len(recs)
	}
	if next != records {
		t.Fatalf("Go read_committed consumer read %d records to the end, want %d", next, records)
	}
}
