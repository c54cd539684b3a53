package server_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/broker/server"
	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/metastore/metastoretest"
)

// inProcessCluster runs n brokers in this process against one embedded etcd.
type inProcessCluster struct {
	t       testing.TB
	etcd    []string
	dir     string
	cancels map[int32]context.CancelFunc
	done    map[int32]chan error
	addrs   map[int32]string
}

func startCluster(t testing.TB, n int) *inProcessCluster {
	t.Helper()
	dir := t.TempDir()
	c := &inProcessCluster{t: t, etcd: metastoretest.StartEtcd(t), dir: dir,
		cancels: map[int32]context.CancelFunc{}, done: map[int32]chan error{}, addrs: map[int32]string{}}
	// Registered after StartEtcd's, so it runs before etcd stops.
	t.Cleanup(func() {
		for id := range c.cancels {
			c.stop(id)
		}
	})
	for id := int32(1); id <= int32(n); id++ {
		c.start(id)
	}
	return c
}

func (c *inProcessCluster) start(id int32) {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	cfg := server.Config{
		NodeID:        id,
		DataDir:       filepath.Join(c.dir, fmt.Sprint("broker-", id)),
		GRPCAddr:      "127.0.0.1:0",
		HTTPAddr:      "127.0.0.1:0",
		EtcdEndpoints: c.etcd,
	}
	go func() {
		done <- server.Run(ctx, cfg, func(a server.Addrs) { ready <- a.GRPC })
	}()
	select {
	case a := <-ready:
		c.addrs[id] = a.String()
	case err := <-done:
		cancel()
		c.t.Fatalf("broker %d: %v", id, err)
	case <-time.After(30 * time.Second):
		cancel()
		c.t.Fatalf("broker %d did not start", id)
	}
	c.cancels[id], c.done[id] = cancel, done
}

// stop shuts a broker down cleanly (its lease is revoked at once).
func (c *inProcessCluster) stop(id int32) {
	if cancel := c.cancels[id]; cancel != nil {
		cancel()
		if err := <-c.done[id]; err != nil {
			c.t.Errorf("broker %d: %v", id, err)
		}
		delete(c.cancels, id)
	}
}

func (c *inProcessCluster) client(id int32) stratav1.StrataClient {
	c.t.Helper()
	conn, err := grpc.NewClient(c.addrs[id], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { conn.Close() })
	return stratav1.NewStrataClient(conn)
}

func (c *inProcessCluster) metadata(id int32, topic string) *stratav1.PartitionInfo {
	c.t.Helper()
	md, err := c.client(id).Metadata(context.Background(), &stratav1.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		c.t.Fatal(err)
	}
	return md.GetTopics()[0].GetPartitions()[0]
}

func TestReplicationAndFailover(t *testing.T) {
	c := startCluster(t, 3)
	ctx := context.Background()
	admin := c.client(1)
	if _, err := admin.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "r", Partitions: 1, ReplicationFactor: 3,
		Configs: map[string]string{"min.insync.replicas": "2"}}); err != nil {
		t.Fatal(err)
	}
	p := c.metadata(1, "r")
	if !slices.Equal(p.GetReplicas(), []int32{1, 2, 3}) || p.GetLeader() != 1 {
		t.Fatalf("placement %v", p)
	}
	produce := func(leader int32, n int, tag string) int64 {
		t.Helper()
		resp, err := c.client(leader).Produce(ctx, &stratav1.ProduceRequest{Topic: "r", Acks: stratav1.Acks_ACKS_ALL, TimeoutMs: 10000,
			Partitions: []*stratav1.ProducePartition{{Partition: 0, RecordBatches: batchOf(t, n, tag)}}})
		if err != nil {
			t.Fatal(err)
		}
		if e := resp.GetPartitions()[0].GetError(); e != nil {
			t.Fatalf("produce to %d: %v", leader, e)
		}
		return resp.GetPartitions()[0].GetBaseOffset()
	}
	for i := 0; i < 5; i++ {
		if got := produce(1, 10, fmt.Sprint("a", i)); got != int64(i*10) {
			t.Fatalf("base offset %d, want %d", got, i*10)
		}
	}
	// A follower refuses produce, naming the leader.
	resp, err := c.client(2).Produce(ctx, &stratav1.ProduceRequest{Topic: "r", Acks: stratav1.Acks_ACKS_ALL,
		Partitions: []*stratav1.ProducePartition{{Partition: 0, RecordBatches: batchOf(t, 1, "x")}}})
	if err != nil || resp.GetPartitions()[0].GetError().GetReason() != "NOT_LEADER_OR_FOLLOWER" {
		t.Fatalf("produce to follower: %v %v", resp, err)
	}

	// The leader goes; a follower from the ISR takes over with a new epoch.
	c.stop(1)
	await.True(t, 30*time.Second, "a new leader", func() bool {
		p = c.metadata(2, "r")
		return p.GetLeader() == 2 || p.GetLeader() == 3
	})
	if p.GetLeaderEpoch() < 1 || slices.Contains(p.GetIsr(), 1) {
		t.Fatalf("after failover %v", p)
	}
	leader := p.GetLeader()
	if got := produce(leader, 10, "b"); got != 50 {
		t.Fatalf("base offset after failover %d, want 50", got)
	}

	// The old leader returns, catches up and rejoins the ISR.
	c.start(1)
	await.True(t, 30*time.Second, "broker 1 back in the ISR", func() bool {
		return slices.Contains(c.metadata(2, "r").GetIsr(), 1)
	})
	produce(leader, 10, "c")
	fetchAll := func(id int32) int {
		fr, err := c.client(id).Fetch(ctx, &stratav1.FetchRequest{Partitions: []*stratav1.FetchPartition{{Topic: "r", Partition: 0}}})
		if err != nil {
			t.Fatal(err)
		}
		return len(decodeAll(t, fr.GetPartitions()[0].GetRecordBatches(), 0))
	}
	if n := fetchAll(leader); n != 70 {
		t.Fatalf("leader has %d records, want 70", n)
	}
}

func TestMinInsyncReplicas(t *testing.T) {
	c := startCluster(t, 3)
	ctx := context.Background()
	if _, err := c.client(1).CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "m", Partitions: 1, ReplicationFactor: 3,
		Configs: map[string]string{"min.insync.replicas": "3"}}); err != nil {
		t.Fatal(err)
	}
	produce := func(acks stratav1.Acks) *stratav1.ProducePartitionResult {
		t.Helper()
		resp, err := c.client(1).Produce(ctx, &stratav1.ProduceRequest{Topic: "m", Acks: acks, TimeoutMs: 5000,
			Partitions: []*stratav1.ProducePartition{{Partition: 0, RecordBatches: batchOf(t, 3, "m")}}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetPartitions()[0]
	}
	// A broker whose registration was renewed after the topic's state was
	// written (a lease that lapsed on a loaded machine) is out of the ISR
	// until it catches up again: wait for the whole ISR, which is what this
	// step is about.
	await.True(t, 30*time.Second, "the whole ISR", func() bool { return len(c.metadata(1, "m").GetIsr()) == 3 })
	if r := produce(stratav1.Acks_ACKS_ALL); r.GetError() != nil {
		t.Fatalf("with a whole ISR: %v", r.GetError())
	}
	c.stop(3)
	await.True(t, 30*time.Second, "broker 3 out of the ISR", func() bool { return !slices.Contains(c.metadata(1, "m").GetIsr(), 3) })
	r := produce(stratav1.Acks_ACKS_ALL)
	if r.GetError().GetReason() != "NOT_ENOUGH_REPLICAS" {
		t.Fatalf("acks=all with ISR of 2 and min.insync.replicas=3: %v", r)
	}
	end, err := c.client(1).ListOffsets(ctx, &stratav1.ListOffsetsRequest{Topic: "m",
		Partitions: []*stratav1.ListOffsetsPartition{{Partition: 0, Timestamp: -1}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := end.GetPartitions()[0].GetOffset(); got != 3 {
		t.Fatalf("refused produce wrote something: high watermark %d, want 3", got)
	}
	// acks=1 does not need the ISR.
	if r := produce(stratav1.Acks_ACKS_LEADER); r.GetError() != nil || r.GetBaseOffset() != 3 {
		t.Fatalf("acks=1: %v", r)
	}
	// The broker comes back, catches up, and acks=all works again.
	c.start(3)
	await.True(t, 30*time.Second, "broker 3 back in the ISR", func() bool { return slices.Contains(c.metadata(1, "m").GetIsr(), 3) })
	if r := produce(stratav1.Acks_ACKS_ALL); r.GetError() != nil || r.GetBaseOffset() != 6 {
		t.Fatalf("after the ISR is whole again: %v", r)
	}
}
