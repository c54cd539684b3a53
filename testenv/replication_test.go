package testenv_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/broker/server"
	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// leaderRequestTimeout bounds one produce request of the chaos producer. A
// leader that is cut off answers nothing, so this is how long the producer
// waits before asking who leads now (Kafka clients wait request.timeout.ms).
const leaderRequestTimeout = 3 * time.Second

// router sends produce requests to each partition's leader, learning leaders
// from Metadata on any broker.
type router struct {
	t       testing.TB
	c       *testenv.Cluster
	topic   string
	clients map[int32]stratav1.StrataClient

	mu        sync.Mutex
	leaders   map[int32]int32 // partition → leader
	refreshed time.Time
}

func newRouter(t testing.TB, c *testenv.Cluster, topic string) *router {
	r := &router{t: t, c: c, topic: topic, clients: map[int32]stratav1.StrataClient{}, leaders: map[int32]int32{}}
	for _, b := range c.Brokers() {
		conn, err := grpc.NewClient(b.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(testenvtest.MaxMsg)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		r.clients[b.ID()] = stratav1.NewStrataClient(conn)
	}
	return r
}

// metadata asks every broker for the topic's partitions and keeps, for each
// partition, the answer with the highest leader epoch: a broker that was cut
// off may still be catching up with the cluster's state.
func (r *router) metadata() ([]*stratav1.PartitionInfo, error) {
	var lastErr error
	best := map[int32]*stratav1.PartitionInfo{}
	for id, client := range r.clients {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		md, err := client.Metadata(ctx, &stratav1.MetadataRequest{Topics: []string{r.topic}})
		cancel()
		if err != nil {
			lastErr = err
			continue
		}
		if len(md.GetTopics()) != 1 || md.GetTopics()[0].GetError() != nil {
			lastErr = fmt.Errorf("broker %d: metadata %v", id, md)
			continue
		}
		for _, p := range md.GetTopics()[0].GetPartitions() {
			if cur := best[p.GetPartition()]; cur == nil || p.GetLeaderEpoch() > cur.GetLeaderEpoch() ||
				p.GetLeaderEpoch() == cur.GetLeaderEpoch() && len(p.GetIsr()) < len(cur.GetIsr()) {
				best[p.GetPartition()] = p
			}
		}
	}
	if len(best) == 0 {
		return nil, lastErr
	}
	out := make([]*stratav1.PartitionInfo, 0, len(best))
	for _, p := range best {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetPartition() < out[j].GetPartition() })
	return out, nil
}

func (r *router) refresh() {
	r.mu.Lock()
	if time.Since(r.refreshed) < 20*time.Millisecond {
		r.mu.Unlock()
		time.Sleep(20 * time.Millisecond) // refreshed a moment ago: pace the callers that loop on refresh
		return
	}
	r.refreshed = time.Now()
	r.mu.Unlock()
	parts, err := r.metadata()
	if err != nil {
		return
	}
	r.mu.Lock()
	for _, p := range parts {
		r.leaders[p.GetPartition()] = p.GetLeader()
	}
	r.mu.Unlock()
}

func (r *router) leader(p int32) int32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l, ok := r.leaders[p]; ok {
		return l
	}
	return -1
}

// ack is one acknowledged produce request.
type ack struct {
	partition int32
	leader    int32
	at        time.Time
}

// chaosProducer produces acks=all continuously through the router. A record
// whose request fails is never sent again (new records follow), so every
// record is in the log at most once and an acknowledged one exactly once.
type chaosProducer struct {
	r   *router
	led *ledger

	mu   sync.Mutex
	acks []ack

	failures atomic.Int64
}

func (p *chaosProducer) run(ctx context.Context, inflight int) {
	gen := &producer{t: p.r.t, topic: p.r.topic, led: p.led}
	gen.produceWith(ctx, -1, inflight, p.send)
}

func (p *chaosProducer) send(ctx context.Context, j produceJob) {
	leader := p.r.leader(j.partition)
	client := p.r.clients[leader]
	if client == nil {
		p.failures.Add(1)
		p.r.refresh()
		return
	}
	rctx, cancel := context.WithTimeout(ctx, leaderRequestTimeout)
	defer cancel()
	resp, err := client.Produce(rctx, &stratav1.ProduceRequest{
		Topic: p.r.topic, Acks: stratav1.Acks_ACKS_ALL, TimeoutMs: int32(leaderRequestTimeout / time.Millisecond),
		Partitions: []*stratav1.ProducePartition{{Partition: j.partition, RecordBatches: j.batch}},
	})
	if err == nil {
		err = checkProduce(resp, j)
	}
	if err != nil {
		p.failures.Add(1)
		p.r.refresh()
		return
	}
	p.led.ack(j.idx, j.partition, resp.GetPartitions()[0].GetBaseOffset())
	p.mu.Lock()
	p.acks = append(p.acks, ack{partition: j.partition, leader: leader, at: time.Now()})
	p.mu.Unlock()
}

// firstAckAfter returns when partition was first acknowledged by a leader
// other than old after t.
func (p *chaosProducer) firstAckAfter(partition, old int32, t time.Time) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range p.acks {
		if a.partition == partition && a.leader != old && a.at.After(t) {
			return a.at, true
		}
	}
	return time.Time{}, false
}

// startLoad creates topic (RF=3, min.insync.replicas=2) and starts the chaos
// producer on it, returning once it has records acknowledged. stop ends the
// producer and waits for it; calling it again does nothing.
func startLoad(t testing.TB, c *testenv.Cluster, topic string, partitions int32) (*router, *ledger, *chaosProducer, func()) {
	t.Helper()
	r := newRouter(t, c, topic)
	if _, err := r.clients[1].CreateTopic(context.Background(), &stratav1.CreateTopicRequest{Name: topic, Partitions: partitions,
		ReplicationFactor: 3, Configs: map[string]string{"min.insync.replicas": "2"}}); err != nil {
		t.Fatal(err)
	}
	r.refresh()
	led := newLedger(partitions)
	prod := &chaosProducer{r: r, led: led}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		prod.run(ctx, 4)
	}()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	await.True(t, 30*time.Second, "the producer to get going", func() bool { return led.ackedCount() >= 5*batchRecords })
	return r, led, prod, stop
}

// fault is one way of losing a leader, and how to bring the broker back.
type fault struct {
	name    string
	inject  func(b *testenv.Broker) error
	recover func(b *testenv.Broker) error
}

// TestReplicatedTopicSurvivesLeaderFaults is the cluster's acceptance test:
// three brokers, RF=3, min.insync.replicas=2, acks=all written continuously
// while partition 0's leader is killed, paused and cut off, twice over. Every
// acknowledged record must then be readable exactly once at the offset it was
// acknowledged with, offsets dense, and every replica's log identical.
func TestReplicatedTopicSurvivesLeaderFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-broker cluster")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3})
	const topic, partitions = "chaos", int32(2)
	ctx := context.Background()
	r, led, prod, stopProducer := startLoad(t, c, topic, partitions)
	defer stopProducer()

	faults := []fault{
		{"kill", func(b *testenv.Broker) error { b.Kill(); return nil }, func(b *testenv.Broker) error { return b.Start(ctx) }},
		{"pause", (*testenv.Broker).Pause, (*testenv.Broker).Resume},
		{"isolate", func(b *testenv.Broker) error { b.Isolate(); return nil }, func(b *testenv.Broker) error { b.Heal(); return nil }},
	}
	var failovers []string
	for round := 1; round <= 2; round++ {
		for _, f := range faults {
			parts, err := r.metadata()
			if err != nil {
				t.Fatal(err)
			}
			old := parts[0].GetLeader()
			victim := c.Broker(old)
			ackedBefore := led.ackedCount()
			t0 := time.Now()
			if err := f.inject(victim); err != nil {
				t.Fatalf("%s broker %d: %v", f.name, old, err)
			}
			var at time.Time
			await.True(t, 60*time.Second, fmt.Sprintf("a produce acknowledged by a new leader after %s of broker %d", f.name, old), func() bool {
				var ok bool
				at, ok = prod.firstAckAfter(0, old, t0)
				return ok
			})
			failover := at.Sub(t0)
			failovers = append(failovers, fmt.Sprintf("%s:%v", f.name, failover.Round(time.Millisecond)))
			// Describe shows the new leader and the shrunk ISR.
			await.True(t, 30*time.Second, "metadata to show the new leader and the shrunk ISR", func() bool {
				parts, err := r.metadata()
				return err == nil && parts[0].GetLeader() != old && parts[0].GetLeader() >= 0 && !slices.Contains(parts[0].GetIsr(), old)
			})
			if err := f.recover(victim); err != nil {
				t.Fatalf("recover broker %d after %s: %v", old, f.name, err)
			}
			waitForWholeISR(t, r, 60*time.Second)
			t.Logf("round %d: %s of leader %d: failover (fault to first acknowledged produce on the new leader) %v; %d records acknowledged meanwhile, %d requests failed so far",
				round, f.name, old, failover.Round(time.Millisecond), led.ackedCount()-ackedBefore, prod.failures.Load())
		}
	}
	stopProducer()
	t.Logf("failover times: %v", failovers)

	// Everything acknowledged is there, once, at its offset; offsets are dense.
	parts := waitForWholeISR(t, r, 60*time.Second)
	ends := make([]int64, partitions)
	for _, p := range parts {
		f := fetchFrom(t, r.clients[p.GetLeader()], topic, p.GetPartition(), 0)
		if f.err != nil {
			t.Fatalf("read partition %d from its leader %d: %v", p.GetPartition(), p.GetLeader(), f.err)
		}
		checkPartition(t, led, p.GetPartition(), 0, f.hw, f.records)
		if beyond := led.ackedIn(p.GetPartition(), f.hw, 1<<62); len(beyond) > 0 {
			t.Errorf("partition %d: %d acknowledged records at or above the high watermark %d", p.GetPartition(), len(beyond), f.hw)
		}
		ends[p.GetPartition()] = f.hw
	}
	t.Logf("%d records acknowledged, %d produce requests failed; partition ends %v", led.ackedCount(), prod.failures.Load(), ends)

	// Every replica holds the same bytes: stop the brokers, read their logs.
	for _, b := range c.Brokers() {
		if err := b.Stop(); err != nil {
			t.Fatalf("stop broker %d: %v", b.ID(), err)
		}
	}
	for p := range partitions {
		var want []byte
		for _, b := range c.Brokers() {
			got := readReplica(t, partitionDir(t, b.DataDir(), topic, p), ends[p])
			if want == nil {
				want = got
				continue
			}
			if !bytes.Equal(got, want) {
				t.Errorf("partition %d: broker %d's log differs from broker 1's below offset %d (%d vs %d bytes)", p, b.ID(), ends[p], len(got), len(want))
			}
		}
	}
}

// waitForWholeISR waits until every partition has a leader and all three
// replicas in its ISR, and the leader's high watermark has reached every
// follower (nothing more is being written).
func waitForWholeISR(t testing.TB, r *router, timeout time.Duration) []*stratav1.PartitionInfo {
	t.Helper()
	var parts []*stratav1.PartitionInfo
	await.True(t, timeout, "every partition's ISR to be whole", func() bool {
		var err error
		parts, err = r.metadata()
		if err != nil {
			return false
		}
		for _, p := range parts {
			if p.GetLeader() < 0 || len(p.GetIsr()) != len(p.GetReplicas()) {
				return false
			}
		}
		return true
	})
	sort.Slice(parts, func(i, j int) bool { return parts[i].GetPartition() < parts[j].GetPartition() })
	return parts
}

// readReplica reads a stopped broker's partition log below end.
func readReplica(t testing.TB, dir string, end int64) []byte {
	t.Helper()
	l, err := partlog.Open(partlog.Options{Dir: dir})
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	defer l.Close()
	if l.LogEndOffset() < end {
		t.Errorf("%s: log ends at %d, below the high watermark %d", dir, l.LogEndOffset(), end)
	}
	var out []byte
	for off := int64(0); off < end; {
		rr, err := l.Read(off, 8<<20, end)
		if err != nil {
			t.Fatalf("read %s at %d: %v", dir, off, err)
		}
		if len(rr.Data) == 0 {
			break
		}
		out = append(out, rr.Data...)
		off = rr.NextOffset
	}
	return out
}

// TestLeaderCutOffFromEtcdStopsTakingWrites cuts a leader off from etcd only:
// clients and the other brokers still reach it. It must stop acknowledging
// writes before its lease can have expired, so every acks=1 write it did
// acknowledge was copied by the follower that the controller makes leader,
// and nothing acknowledged is lost.
func TestLeaderCutOffFromEtcdStopsTakingWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-broker cluster")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3})
	const topic = "fenced"
	r := newRouter(t, c, topic)
	ctx := context.Background()
	if _, err := r.clients[1].CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: topic, Partitions: 1, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	parts := waitForWholeISR(t, r, 30*time.Second)
	old := parts[0].GetLeader()
	led := newLedger(1)
	prod := &producer{t: t, client: r.clients[old], topic: topic, led: led, acks: stratav1.Acks_ACKS_LEADER}
	prod.crashing.Store(true) // refusals are expected once it is cut off
	pctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		prod.produce(pctx, -1, 2)
	}()
	defer func() { stop(); <-done }()
	await.True(t, 30*time.Second, "writes to the leader", func() bool { return prod.requests.Load() >= 10 })

	c.Broker(old).EtcdProxy().Block()
	cut := time.Now()
	await.True(t, 30*time.Second, "a new leader", func() bool {
		parts, err := r.metadata()
		return err == nil && parts[0].GetLeader() != old && parts[0].GetLeader() >= 0
	})
	elected := time.Since(cut)
	// Keep writing to the old leader a while after the election: it must
	// refuse all of it.
	before := prod.requests.Load()
	time.Sleep(time.Second)
	if after := prod.requests.Load(); after != before {
		t.Errorf("the cut-off leader acknowledged %d requests after a new leader was elected", after-before)
	}
	stop()
	<-done
	c.Broker(old).EtcdProxy().Unblock()
	parts = waitForWholeISR(t, r, 60*time.Second)
	f := fetchFrom(t, r.clients[parts[0].GetLeader()], topic, 0, 0)
	if f.err != nil {
		t.Fatal(f.err)
	}
	checkPartition(t, led, 0, 0, f.hw, f.records)
	if beyond := led.ackedIn(0, f.hw, 1<<62); len(beyond) > 0 {
		t.Errorf("%d acknowledged records lost (at or above the new leader's high watermark %d)", len(beyond), f.hw)
	}
	t.Logf("new leader %d elected %v after the cut; %d records acknowledged by the old leader", parts[0].GetLeader(), elected.Round(time.Millisecond), led.ackedCount())
}

// TestNodeIDClashIsRefused starts a second broker with a node id a live
// broker holds: it must exit with an error naming the clash, and the live
// broker must keep its registration.
func TestNodeIDClashIsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	cmd := exec.CommandContext(ctx, testenv.Binary(t), "broker", "--node-id", "1",
		"--etcd-endpoints", c.Etcd().ClientAddr(), "--data-dir", dir,
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--kafka-addr", "127.0.0.1:0")
	out, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("a second broker with node id 1 did not fail (err %v, ctx %v):\n%s", err, ctx.Err(), out)
	}
	if !strings.Contains(string(out), "register broker 1") || !strings.Contains(string(out), "already registered") {
		t.Fatalf("the refusal does not name the clash:\n%s", out)
	}
	r := newRouter(t, c, "none")
	md, err := r.clients[1].Metadata(context.Background(), &stratav1.MetadataRequest{})
	if err != nil || len(md.GetBrokers()) != 1 || md.GetBrokers()[0].GetNodeId() != 1 || md.GetBrokers()[0].GetGrpcAddr() != c.Broker(1).GRPCAddr() {
		t.Fatalf("the live broker lost its registration: %v %v", md, err)
	}
}

// TestEtcdOutage stops etcd under acks=all load: brokers cannot renew their
// leases, so they stop leading; once etcd is back, leadership settles, writes
// resume, and nothing acknowledged is lost.
func TestEtcdOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-broker cluster")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3})
	const topic, partitions = "outage", int32(2)
	ctx := context.Background()
	r, led, _, stopProducer := startLoad(t, c, topic, partitions)
	defer stopProducer()

	if err := c.Etcd().Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * server.DefaultSessionTimeout) // outlast every broker's session
	// With every lease in doubt, no broker may acknowledge anything.
	acked := led.ackedCount()
	time.Sleep(time.Second)
	if now := led.ackedCount(); now != acked {
		t.Errorf("%d records acknowledged while etcd was down for longer than the session timeout", now-acked)
	}
	if err := c.Etcd().Start(ctx); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	await.True(t, 60*time.Second, "writes to resume after etcd returned", func() bool { return led.ackedCount() > acked+5*batchRecords })
	t.Logf("writes resumed %v after etcd restarted", time.Since(restarted).Round(time.Millisecond))
	stopProducer()

	parts := waitForWholeISR(t, r, 60*time.Second)
	for _, p := range parts {
		f := fetchFrom(t, r.clients[p.GetLeader()], topic, p.GetPartition(), 0)
		if f.err != nil {
			t.Fatalf("read partition %d: %v", p.GetPartition(), f.err)
		}
		checkPartition(t, led, p.GetPartition(), 0, f.hw, f.records)
		if beyond := led.ackedIn(p.GetPartition(), f.hw, 1<<62); len(beyond) > 0 {
			t.Errorf("partition %d: %d acknowledged records lost", p.GetPartition(), len(beyond))
		}
	}
}

// TestRecreatedReplicatedTopicStartsEmpty deletes a replicated topic with data
// and creates it again under the same name at once: the new incarnation
// takes acks=all writes from offset 0 and serves none of the old records.
func TestRecreatedReplicatedTopicStartsEmpty(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-broker cluster")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3})
	const topic = "again"
	r := newRouter(t, c, topic)
	ctx := context.Background()
	create := func() {
		t.Helper()
		if _, err := r.clients[1].CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: topic, Partitions: 2, ReplicationFactor: 3}); err != nil {
			t.Fatal(err)
		}
	}
	create()
	old := newLedger(2)
	oldProd := &producer{t: t, topic: topic, led: old}
	r.refresh()
	// send runs on produceWith's goroutines: it must not t.Fatal there.
	send := func(p *producer) func(context.Context, produceJob) {
		return func(ctx context.Context, j produceJob) {
			err := await.Poll(30*time.Second, func() error {
				resp, err := r.clients[max(r.leader(j.partition), 1)].Produce(ctx, &stratav1.ProduceRequest{Topic: topic, Acks: stratav1.Acks_ACKS_ALL,
					TimeoutMs: 5000, Partitions: []*stratav1.ProducePartition{{Partition: j.partition, RecordBatches: j.batch}}})
				if err == nil {
					err = checkProduce(resp, j)
				}
				if err == nil {
					p.led.ack(j.idx, j.partition, resp.GetPartitions()[0].GetBaseOffset())
					return nil
				}
				r.refresh()
				return err
			})
			if err != nil {
				t.Errorf("waiting for an acknowledged produce to partition %d: %v", j.partition, err)
			}
		}
	}
	oldProd.produceWith(ctx, 4*batchRecords, 2, send(oldProd))
	if t.Failed() {
		t.FailNow()
	}

	if _, err := r.clients[1].DeleteTopic(ctx, &stratav1.DeleteTopicRequest{Name: topic}); err != nil {
		t.Fatal(err)
	}
	create()
	r.refresh()
	fresh := newLedger(2)
	fresh.sent = old.sentCount() // new record indexes, so old ones are told apart
	freshProd := &producer{t: t, topic: topic, led: fresh}
	freshProd.produceWith(ctx, 2*batchRecords, 2, send(freshProd))
	if t.Failed() {
		t.FailNow()
	}

	parts := waitForWholeISR(t, r, 30*time.Second)
	for _, p := range parts {
		f := fetchFrom(t, r.clients[p.GetLeader()], topic, p.GetPartition(), 0)
		if f.err != nil {
			t.Fatal(f.err)
		}
		for _, rec := range f.records {
			if i, _ := recordIndex(rec.Key); i < old.sentCount() {
				t.Fatalf("partition %d offset %d holds record %d of the deleted incarnation", p.GetPartition(), rec.Offset, i)
			}
		}
		checkPartition(t, fresh, p.GetPartition(), 0, f.hw, f.records)
	}
}

// TestShortEtcdOutageMovesNoLeadership stops etcd for less than the brokers'
// session timeout under acks=all load. etcd keeps the leases across its
// restart and the brokers renew them once it is back, so nothing changes:
// every broker keeps its registration (its broker epoch), every partition
// its leader and leader epoch, and writes resume.
func TestShortEtcdOutageMovesNoLeadership(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-broker cluster")
	}
	const session = 4 * time.Second
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3, SessionTimeout: session})
	const topic, partitions = "blip", int32(2)
	ctx := context.Background()
	r, led, _, stopProducer := startLoad(t, c, topic, partitions)
	defer stopProducer()
	parts := waitForWholeISR(t, r, 30*time.Second)

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.Etcd().Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	registrations := func() map[string]int64 {
		t.Helper()
		var resp *clientv3.GetResponse
		err := await.Poll(30*time.Second, func() error {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			var err error
			resp, err = cli.Get(cctx, "/strata/brokers/", clientv3.WithPrefix())
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for _, kv := range resp.Kvs {
			out[string(kv.Key)] = kv.CreateRevision
		}
		return out
	}
	before := registrations()
	if len(before) != 3 {
		t.Fatalf("registrations before the outage: %v", before)
	}

	if err := c.Etcd().Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	time.Sleep(session / 2) // the outage, with etcd's stop and start
	if err := c.Etcd().Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("etcd was down for %v (session timeout %v)", time.Since(stopped).Round(time.Millisecond), session)
	acked := led.ackedCount()
	await.True(t, 30*time.Second, "writes to resume after etcd returned", func() bool { return led.ackedCount() > acked+5*batchRecords })

	if after := registrations(); !maps.Equal(after, before) {
		t.Errorf("broker registrations changed across a short etcd outage: %v, before %v", after, before)
	}
	now, err := r.metadata()
	if err != nil {
		t.Fatal(err)
	}
	wasBy := map[int32]*stratav1.PartitionInfo{}
	for _, p := range parts {
		wasBy[p.GetPartition()] = p
	}
	for _, p := range now {
		was := wasBy[p.GetPartition()]
		if p.GetLeader() != was.GetLeader() || p.GetLeaderEpoch() != was.GetLeaderEpoch() {
			t.Errorf("partition %d: leader %d epoch %d after a short etcd outage, was leader %d epoch %d",
				p.GetPartition(), p.GetLeader(), p.GetLeaderEpoch(), was.GetLeader(), was.GetLeaderEpoch())
		}
	}
}
