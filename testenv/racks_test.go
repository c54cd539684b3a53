package testenv_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
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

// TestBrokerRacks: each broker's broker.rack reaches Kafka clients in
// Metadata and DescribeCluster, and `strata brokers list` shows it with
// the replicas and leaders each broker has.
func TestBrokerRacks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-broker cluster")
	}
	racks := map[int32]string{1: "zone-a", 2: "zone-b", 3: "zone-c"}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3,
		BrokerArgs: func(id int32) []string { return []string{"--config", "broker.rack=" + racks[id]} }})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, adm, _ := testenvtest.KafkaClient(t, c)
	resp, err := adm.CreateTopic(ctx, 3, 3, nil, "placed")
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatal(err)
	}
	md, err := adm.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range md.Brokers {
		if b.Rack == nil || *b.Rack != racks[b.NodeID] {
			t.Errorf("Metadata: broker %d rack %v, want %s", b.NodeID, b.Rack, racks[b.NodeID])
		}
	}
	cluster, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range cluster.Brokers {
		if b.Rack == nil || *b.Rack != racks[b.NodeID] {
			t.Errorf("DescribeCluster: broker %d rack %v, want %s", b.NodeID, b.Rack, racks[b.NodeID])
		}
	}

	// Every broker holds a replica of each of the 3 partitions; between
	// them they lead all 3.
	await.NoError(t, 30*time.Second, "brokers list to show every replica and leader", func() error {
		out, _, err := testenvtest.RunStrata(t, c.BootstrapServers(), "", "brokers", "list")
		if err != nil {
			return err
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 4 {
			return fmt.Errorf("brokers list:\n%s", out)
		}
		leaders := 0
		for i, line := range lines[1:] {
			f := strings.Fields(line)
			id := int32(i + 1)
			if len(f) != 8 || strings.TrimSuffix(f[0], "*") != fmt.Sprint(id) || f[3] != racks[id] || f[4] != "3" {
				return fmt.Errorf("broker %d's line %q, want rack %s and 3 replicas:\n%s", id, line, racks[id], out)
			}
			var n int
			fmt.Sscan(f[5], &n)
			leaders += n
		}
		if leaders != 3 {
			return fmt.Errorf("%d leaders listed, want 3:\n%s", leaders, out)
		}
		return nil
	})
}

// TestFollowerFetchingFromConsumersRack: with broker.rack a, b, c and
// replica.selector.class=RackAwareReplicaSelector, a new RF=3 topic has a
// replica in each rack, and a franz-go consumer with Rack("b") reads every
// record produced with acks=all from the rack-b replica (KIP-392) while the
// leader is in another rack: the rack-b broker's served bytes grow and the
// leader serves the consumer none. The Go client's consumer with Rack("c")
// does the same over gRPC.
func TestFollowerFetchingFromConsumersRack(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-broker cluster")
	}
	racks := map[int32]string{1: "a", 2: "b", 3: "c"}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3,
		BrokerSettings: map[string]string{"replica.selector.class": topicconfig.RackAwareReplicaSelector},
		BrokerArgs:     func(id int32) []string { return []string{"--config", "broker.rack=" + racks[id]} }})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const topic, records = "zonal", 3000
	producer, adm, seeds := testenvtest.KafkaClient(t, c, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchMaxBytes(16<<10))
	testenvtest.CreateKafkaTopic(ctx, t, adm, topic, 3, nil)

	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	replicas := md.Topics[topic].Partitions[0].Replicas
	placed := map[string]bool{}
	for _, id := range replicas {
		placed[racks[id]] = true
	}
	if len(placed) != 3 {
		t.Fatalf("replicas %v are in racks %v, want a, b and c", replicas, placed)
	}
	leader := testenvtest.PartitionLeader(t, c, adm, topic, 0)
	if racks[leader.ID()] == "b" {
		t.Fatalf("broker %d in rack b leads %s: the test needs the leader elsewhere", leader.ID(), topic)
	}

	for i := range records {
		producer.Produce(ctx, &kgo.Record{Value: fmt.Appendf(nil, "record-%05d", i)}, nil)
	}
	if err := producer.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	rackB := c.Broker(2)
	servedB := metricValue(t, rackB, "strata_fetch_bytes_total")
	sameB := seriesValue(t, rackB, `strata_consumer_fetch_bytes_total{rack="same"}`)
	leaderServed := metricValue(t, leader, "strata_consumer_fetch_bytes_total")

	consumer, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.Rack("b"))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	next := 0
	for next < records {
		fetches := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of %d records: %v", next, records, err)
		}
		fetches.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s-%d: %v", topic, p, err) })
		fetches.EachRecord(func(r *kgo.Record) {
			if want := fmt.Sprintf("record-%05d", next); r.Offset != int64(next) || string(r.Value) != want {
				t.Fatalf("record at offset %d is %q, want offset %d %q", r.Offset, r.Value, next, want)
			}
			next++
		})
	}

	if got := metricValue(t, rackB, "strata_fetch_bytes_total") - servedB; got <= 0 {
		t.Errorf("the rack-b broker served %v bytes to the rack-b consumer, want its records", got)
	}
	if got := seriesValue(t, rackB, `strata_consumer_fetch_bytes_total{rack="same"}`) - sameB; got <= 0 {
		t.Errorf("the rack-b broker counted %v same-rack bytes", got)
	}
	if got := metricValue(t, leader, "strata_consumer_fetch_bytes_total") - leaderServed; got != 0 {
		t.Errorf("the leader (broker %d, rack %s) served the rack-b consumer %v bytes", leader.ID(), racks[leader.ID()], got)
	}

	// The Go client's consumer with a rack reads from the replica there too
	// (over gRPC, choosing the replica from Metadata).
	rackC := c.Broker(3)
	sameC := seriesValue(t, rackC, `strata_consumer_fetch_bytes_total{rack="same"}`)
	leaderServed = metricValue(t, leader, "strata_consumer_fetch_bytes_total")
	gc, err := client.Dial(ctx, c.BootstrapServers())
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	gcons, err := client.NewConsumer(gc, client.ConsumerOptions{Topic: topic, Start: client.StartEarliest, Follow: true, Rack: "c"})
	if err != nil {
		t.Fatal(err)
	}
	defer gcons.Close()
	next = 0
	for next < records {
		recs, err := gcons.Poll(ctx)
		if err != nil {
			t.Fatalf("Go consumer: read %d of %d records: %v", next, records, err)
		}
		for _, r := range recs {
			if want := fmt.Sprintf("record-%05d", next); r.Offset != int64(next) || string(r.Value) != want {
				t.Fatalf("Go consumer: record at offset %d is %q, want offset %d %q", r.Offset, r.Value, next, want)
			}
			next++
		}
	}
	if got := seriesValue(t, rackC, `strata_consumer_fetch_bytes_total{rack="same"}`) - sameC; got <= 0 {
		t.Errorf("the rack-c broker served the rack-c Go consumer %v bytes", got)
	}
	if got := metricValue(t, leader, "strata_consumer_fetch_bytes_total") - leaderServed; got != 0 {
		t.Errorf("the leader (broker %d) served the rack-c Go consumer %v bytes", leader.ID(), got)
	}
}

// seriesValue reads one series (name with its labels, as exposed) from a
// broker's /metrics; a series not exposed reads as 0.
func seriesValue(t testing.TB, b *testenv.Broker, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + b.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return v
		}
	}
	return 0
}

// TestTieredFollowerFetching: a rack-b consumer of a tiered topic reads
// from the rack-b follower from offset 0, though that follower's disk
// holds only the tail: it reads the rest from the bucket, as the leader
// would, and the leader serves the consumer nothing.
func TestTieredFollowerFetching(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-broker cluster with MinIO")
	}
	racks := map[int32]string{1: "a", 2: "b", 3: "c"}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3, MinIO: true,
		BrokerSettings: map[string]string{"log.segment.min.bytes": "1024", "remote.log.manager.task.interval.ms": "200",
			"replica.selector.class": topicconfig.RackAwareReplicaSelector},
		BrokerArgs: func(id int32) []string { return []string{"--config", "broker.rack=" + racks[id]} }})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const topic, n = "zonal-history", 3000
	cl, adm, seeds := testenvtest.KafkaClient(t, c, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.NoCompression()))
	testenvtest.CreateKafkaTopic(ctx, t, adm, topic, 3, map[string]string{
		"remote.storage.enable": "true", "segment.bytes": "16384", "local.retention.bytes": "32768",
	})
	for i := 0; i < n; i += 100 {
		var recs []*kgo.Record
		for j := i; j < i+100; j++ {
			recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, "%06d-%0150d", j, j)})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	leader := testenvtest.PartitionLeader(t, c, adm, topic, 0)
	if racks[leader.ID()] == "b" {
		t.Fatalf("broker %d in rack b leads %s: the test needs the leader elsewhere", leader.ID(), topic)
	}
	rackB := c.Broker(2)
	await.True(t, 60*time.Second, "the rack-b follower's local log to shrink to its local retention", func() bool {
		local, _ := filepath.Glob(filepath.Join(rackB.DataDir(), topic+"-0", "*.log"))
		return len(local) > 0 && len(local) <= 4
	})

	sameB := seriesValue(t, rackB, `strata_consumer_fetch_bytes_total{rack="same"}`)
	leaderServed := metricValue(t, leader, "strata_consumer_fetch_bytes_total")
	cons, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.Rack("b"))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	next := 0
	for next < n {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", next, n)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			if want := fmt.Sprintf("%06d-%0150d", next, next); string(r.Value) != want || r.Offset != int64(next) {
				t.Fatalf("record at offset %d is %.20q..., want offset %d", r.Offset, r.Value, next)
			}
			next++
		})
	}
	if got := seriesValue(t, rackB, `strata_consumer_fetch_bytes_total{rack="same"}`) - sameB; got < n*150 {
		t.Errorf("the rack-b follower served %v bytes, want at least the %d bytes of values", got, n*150)
	}
	if got := metricValue(t, leader, "strata_consumer_fetch_bytes_total") - leaderServed; got != 0 {
		t.Errorf("the leader (broker %d) served the rack-b consumer %v bytes", leader.ID(), got)
	}
}
