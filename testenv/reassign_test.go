package testenv_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/rcrowley/go-metrics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// moveTimeout bounds every wait for a move, a failover or a read-back.
const moveTimeout = 45 * time.Second

// TestReassignUnderLoad moves an RF=3 partition (min.insync.replicas=2) off
// its leader to a new replica set under continuous acks=all load from a
// franz-go producer, and kills a broker taking part while the move is in
// progress: the controller, the joining replica, the old leader. The
// joining replica is held back (its connections to the other brokers are
// cut) so the move is recorded but cannot complete before the kill. Each
// move completes, or, in the CLI run, is cancelled and started again; every
// record the producer saw acknowledged is read back at its acknowledged
// offset afterwards. The runs share one five-broker cluster, each on a topic
// of its own, and leave every broker running for the next.
func TestReassignUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a five-broker cluster")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 5})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	store, err := metastore.Dial(ctx, []string{c.Etcd().Endpoint()}, c.EtcdPrefix(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	_, adm, _ := testenvtest.KafkaClient(t, c)

	t.Run("KillController", func(t *testing.T) {
		m := startMoveUnderLoad(ctx, t, c, store, adm, "move-controller")
		victim := m.controller
		c.Broker(victim).Kill()
		// The next controller is elected through etcd and finds the move
		// there: nothing of it lived in the dead one.
		var next int32
		await.NoError(t, moveTimeout, "a new controller", func() error {
			id, err := store.Controller(ctx)
			if err != nil || id < 0 || id == victim {
				return fmt.Errorf("controller %d (was %d), err %v", id, victim, err)
			}
			next = id
			return nil
		})
		// Kafka clients find it too (admin requests go there).
		await.NoError(t, moveTimeout, "Metadata to name the new controller", func() error {
			md, err := adm.Metadata(ctx)
			if err != nil || md.Controller != next {
				return fmt.Errorf("Metadata names controller %d, etcd %d (err %v)", md.Controller, next, err)
			}
			return nil
		})
		m.checkStillMoving(ctx, t)
		m.releaseJoiner()
		m.awaitTarget(ctx, t)
		m.finish(ctx, t, victim)
	})

	t.Run("KillJoiningReplica", func(t *testing.T) {
		m := startMoveUnderLoad(ctx, t, c, store, adm, "move-joiner")
		victim := m.joiner
		c.Broker(victim).Kill()
		m.releaseJoiner()
		m.checkStillMoving(ctx, t)
		// Back with the part it copied before the kill (nothing, here): it
		// catches up from scratch and joins the ISR.
		if err := c.Broker(victim).Start(ctx); err != nil {
			t.Fatal(err)
		}
		m.awaitTarget(ctx, t)
		m.finish(ctx, t, victim)
	})

	t.Run("KillOldLeader", func(t *testing.T) {
		m := startMoveUnderLoad(ctx, t, c, store, adm, "move-leader")
		victim := m.original.Leader
		c.Broker(victim).Kill()
		await.NoError(t, moveTimeout, "a leader other than the old one", func() error {
			st := m.state(ctx, t)
			if st.Leader < 0 || st.Leader == victim {
				return fmt.Errorf("leader %d", st.Leader)
			}
			return nil
		})
		m.checkStillMoving(ctx, t)
		m.releaseJoiner()
		m.awaitTarget(ctx, t)
		m.finish(ctx, t, victim)
	})

	t.Run("CLICancelWithJoinerDown", func(t *testing.T) {
		m := startMoveUnderLoad(ctx, t, c, store, adm, "move-cli")
		testReassignCLI(ctx, t, c, m)
	})

	t.Run("Sarama", func(t *testing.T) {
		testSaramaReassign(ctx, t, c, store)
	})
}

// moveRun is one move of partition part of topic under load.
type moveRun struct {
	c          *testenv.Cluster
	store      *metastore.Store
	topic      string
	part       int32
	original   metastore.PartitionState
	target     []int32
	joiner     int32
	controller int32 // the controller when the move started
	load       *ackedLoad
	released   bool
}

// startMoveUnderLoad creates topic (five partitions, RF=3,
// min.insync.replicas=2), picks a partition whose replicas the controller is
// not one of, starts acks=all load on it, holds back the broker that will
// join (the other outsider of the five), and moves the partition off its
// leader: target = the two followers + the joiner. It returns once the move
// is recorded in etcd and listed by kadm, with the joiner out of the ISR.
func startMoveUnderLoad(ctx context.Context, t *testing.T, c *testenv.Cluster, store *metastore.Store, adm *kadm.Client, topic string) *moveRun {
	t.Helper()
	minISR := "2"
	resp, err := adm.CreateTopic(ctx, 5, 3, map[string]*string{"min.insync.replicas": &minISR}, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	m := &moveRun{c: c, store: store, topic: topic}
	await.NoError(t, moveTimeout, "an elected controller", func() error {
		id, err := store.Controller(ctx)
		if err != nil || id < 0 {
			return fmt.Errorf("controller %d, err %v", id, err)
		}
		m.controller = id
		return nil
	})
	states, err := store.PartitionStates(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range states {
		if !slices.Contains(st.Replicas, m.controller) && st.Leader >= 0 {
			m.part, m.original = st.Partition, st
			break
		}
	}
	if m.original.Replicas == nil {
		t.Fatalf("no partition of %s leaves out the controller %d: %+v", topic, m.controller, states)
	}
	for _, b := range c.Brokers() {
		if id := b.ID(); id != m.controller && !slices.Contains(m.original.Replicas, id) {
			m.joiner = id
		}
	}
	leader := m.original.Leader
	m.target = append(slices.DeleteFunc(slices.Clone(m.original.Replicas), func(id int32) bool { return id == leader }), m.joiner)
	// Wait until Kafka clients see the leader etcd names, so the load does
	// not start against a broker that has not opened the partition yet.
	if got := testenvtest.PartitionLeader(t, c, adm, topic, m.part); got.ID() != leader {
		t.Fatalf("partition %d: Metadata names leader %d, etcd %d", m.part, got.ID(), leader)
	}

	m.load = startAckedLoad(t, c, topic, m.part)
	m.load.awaitAcked(t, 200)
	m.holdJoiner()
	t.Cleanup(m.releaseJoiner)

	req := kadm.AlterPartitionAssignmentsReq{}
	req.Assign(topic, m.part, m.target)
	res, err := adm.AlterPartitionAssignments(ctx, req)
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatalf("AlterPartitionAssignments %s-%d → %v: %v", topic, m.part, m.target, err)
	}
	m.checkStillMoving(ctx, t)
	listed, err := adm.ListPartitionReassignments(ctx, kadm.TopicsSet{topic: {m.part: {}}})
	if err != nil {
		t.Fatal(err)
	}
	lr, ok := listed[topic][m.part]
	if !ok || !slices.Equal(lr.AddingReplicas, []int32{m.joiner}) || !slices.Equal(lr.RemovingReplicas, []int32{leader}) {
		t.Fatalf("ListPartitionReassignments: %+v; want adding [%d], removing [%d]", listed, m.joiner, leader)
	}
	t.Logf("%s-%d: moving %v → %v (leader %d, joiner %d held back, controller %d), %d records acknowledged",
		topic, m.part, m.original.Replicas, m.target, leader, m.joiner, m.controller, m.load.ackedCount())
	return m
}

// holdJoiner cuts the joiner's connections to every other broker's gRPC
// listener, so it cannot copy the log and the move stays in progress.
func (m *moveRun) holdJoiner() {
	for _, b := range m.c.Brokers() {
		if b.ID() != m.joiner {
			b.InboundProxy().BlockSource(fmt.Sprintf("broker-%d", m.joiner))
		}
	}
	m.released = false
}

func (m *moveRun) releaseJoiner() {
	if m.released {
		return
	}
	m.released = true
	for _, b := range m.c.Brokers() {
		if b.ID() != m.joiner {
			b.InboundProxy().UnblockSource(fmt.Sprintf("broker-%d", m.joiner))
		}
	}
}

// state reads the partition's state from etcd.
func (m *moveRun) state(ctx context.Context, t *testing.T) metastore.PartitionState {
	t.Helper()
	states, err := m.store.PartitionStates(ctx, m.topic)
	if err != nil {
		t.Fatal(err)
	}
	return states[m.part]
}

// checkStillMoving fails unless etcd holds the move to target, with the
// joiner not in the ISR: the move is recorded and not complete.
func (m *moveRun) checkStillMoving(ctx context.Context, t *testing.T) {
	t.Helper()
	st := m.state(ctx, t)
	if !st.Moving() || !slices.Equal(st.TargetReplicas(), m.target) || !slices.Equal(st.AddingReplicas, []int32{m.joiner}) {
		t.Fatalf("etcd: %+v; want a move to %v adding %d", st, m.target, m.joiner)
	}
	if slices.Contains(st.ISR, m.joiner) {
		t.Fatalf("etcd: the held-back joiner %d is in the ISR %v", m.joiner, st.ISR)
	}
}

// awaitTarget waits for the move to complete: the partition on target
// alone, every target replica in the ISR, led by one of them.
func (m *moveRun) awaitTarget(ctx context.Context, t *testing.T) {
	t.Helper()
	m.awaitReplicas(ctx, t, m.target)
}

func (m *moveRun) awaitReplicas(ctx context.Context, t *testing.T, want []int32) {
	t.Helper()
	start := time.Now()
	await.NoError(t, moveTimeout, fmt.Sprintf("%s-%d on %v", m.topic, m.part, want), func() error {
		st := m.state(ctx, t)
		if st.Moving() || !slices.Equal(st.Replicas, want) || !slices.Contains(want, st.Leader) {
			return fmt.Errorf("state %+v", st)
		}
		if !sameSet(st.ISR, want) {
			return fmt.Errorf("ISR %v, replicas %v", st.ISR, want)
		}
		return nil
	})
	t.Logf("%s-%d on %v after %v", m.topic, m.part, want, time.Since(start).Round(time.Millisecond))
}

// finish restarts victim if it is down, checks that the load went on after
// the move, stops it and reads every acknowledged record back at its
// offset.
func (m *moveRun) finish(ctx context.Context, t *testing.T, victim int32) {
	t.Helper()
	if b := m.c.Broker(victim); !b.Running() {
		if err := b.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	m.awaitCopies(t, m.target)
	m.load.awaitAcked(t, m.load.ackedCount()+200)
	m.load.stop(t)
	m.load.verify(ctx, t)
}

// awaitCopies waits until exactly the brokers of replicas hold a local copy
// of the partition: one that left the replica set deletes its copy, also
// when it was down as it left and learns it on its return (Kafka deletes
// such stray logs too).
func (m *moveRun) awaitCopies(t *testing.T, replicas []int32) {
	t.Helper()
	await.NoError(t, moveTimeout, fmt.Sprintf("copies of %s-%d on %v only", m.topic, m.part, replicas), func() error {
		var have []int32
		for _, b := range m.c.Brokers() {
			_, err := os.Stat(filepath.Join(b.DataDir(), fmt.Sprintf("%s-%d", m.topic, m.part)))
			switch {
			case err == nil:
				have = append(have, b.ID())
			case !errors.Is(err, os.ErrNotExist):
				return err
			}
		}
		if !sameSet(have, replicas) {
			return fmt.Errorf("brokers %v hold a copy", have)
		}
		return nil
	})
}

// ackedLoad is a franz-go acks=all producer writing to one partition as
// fast as a ticker lets it, remembering the offset each acknowledgement
// returned.
type ackedLoad struct {
	c     *testenv.Cluster
	topic string
	part  int32
	cl    *kgo.Client
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup

	mu     sync.Mutex
	sent   int
	acked  map[int64]string // offset → value
	failed []error
}

// loadInterval paces the load: a few hundred records a second, enough to
// keep records in flight through every failover without starving the two
// cores the whole suite shares.
const loadInterval = 2 * time.Millisecond

func startAckedLoad(t *testing.T, c *testenv.Cluster, topic string, part int32) *ackedLoad {
	t.Helper()
	var seeds []string
	for _, b := range c.Brokers() {
		seeds = append(seeds, b.KafkaAddr())
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(2*moveTimeout))
	if err != nil {
		t.Fatal(err)
	}
	l := &ackedLoad{c: c, topic: topic, part: part, cl: cl, done: make(chan struct{}), acked: map[int64]string{}}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		tick := time.NewTicker(loadInterval)
		defer tick.Stop()
		for {
			select {
			case <-l.done:
				return
			case <-tick.C:
			}
			l.mu.Lock()
			v := fmt.Sprintf("%s-%d", topic, l.sent)
			l.sent++
			l.mu.Unlock()
			cl.Produce(context.Background(), &kgo.Record{Partition: part, Value: []byte(v)}, func(r *kgo.Record, err error) {
				l.mu.Lock()
				defer l.mu.Unlock()
				if err != nil {
					l.failed = append(l.failed, fmt.Errorf("record %s: %w", v, err))
					return
				}
				if prev, dup := l.acked[r.Offset]; dup {
					l.failed = append(l.failed, fmt.Errorf("offset %d acknowledged for %s and for %s", r.Offset, prev, v))
				}
				l.acked[r.Offset] = v
			})
		}
	}()
	t.Cleanup(cl.Close)
	t.Cleanup(l.halt)
	return l
}

func (l *ackedLoad) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

func (l *ackedLoad) awaitAcked(t *testing.T, n int) {
	t.Helper()
	await.True(t, moveTimeout, fmt.Sprintf("%d acknowledged records", n), func() bool { return l.ackedCount() >= n })
}

// halt stops producing; idempotent.
func (l *ackedLoad) halt() {
	l.once.Do(func() { close(l.done) })
	l.wg.Wait()
}

// stop stops producing, waits for every record sent to be acknowledged and
// fails the test if any was not.
func (l *ackedLoad) stop(t *testing.T) {
	t.Helper()
	l.halt()
	ctx, cancel := context.WithTimeout(context.Background(), 2*moveTimeout)
	defer cancel()
	if err := l.cl.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failed) > 0 {
		t.Fatalf("%d of %d records failed; first: %v", len(l.failed), l.sent, l.failed[0])
	}
	if len(l.acked) != l.sent {
		t.Fatalf("%d of %d records acknowledged", len(l.acked), l.sent)
	}
}

// verify reads the partition from offset 0 with a fresh client and checks
// that every acknowledged record is there at its acknowledged offset.
func (l *ackedLoad) verify(ctx context.Context, t *testing.T) {
	t.Helper()
	var seeds []string
	for _, b := range l.c.Brokers() {
		seeds = append(seeds, b.KafkaAddr())
	}
	var last int64 = -1
	for off := range l.acked {
		last = max(last, off)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{l.topic: {l.part: kgo.NewOffset().At(0)}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, moveTimeout)
	defer cancel()
	got := map[int64]string{}
	for next := int64(0); next <= last; {
		fs := cl.PollFetches(rctx)
		if rctx.Err() != nil {
			t.Fatalf("read up to offset %d of %d: %v", next, last, rctx.Err())
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			got[r.Offset] = string(r.Value)
			next = max(next, r.Offset+1)
		})
	}
	missing := 0
	for off, v := range l.acked {
		if got[off] != v {
			if missing < 5 {
				t.Errorf("offset %d: read %q, acknowledged %q", off, got[off], v)
			}
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged records are not at their offsets", missing, len(l.acked))
	}
	t.Logf("%s-%d: all %d acknowledged records read back at their offsets (0..%d)", l.topic, l.part, len(l.acked), last)
}

// testReassignCLI drives the held-back move with `strata partitions
// reassign` from a plan file: --list and --verify show it in progress; the
// joiner is killed and --cancel returns the partition to its original
// replicas; then the same plan with --wait completes.
func testReassignCLI(ctx context.Context, t *testing.T, c *testenv.Cluster, m *moveRun) {
	plan := filepath.Join(t.TempDir(), "plan.json")
	raw, err := json.Marshal(map[string]any{"version": 1, "partitions": []map[string]any{
		{"topic": m.topic, "partition": m.part, "replicas": m.target}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(plan, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) string {
		t.Helper()
		out, errOut, err := testenvtest.RunStrata(t, c.BootstrapServers(), "", append([]string{"partitions", "reassign"}, args...)...)
		if err != nil {
			t.Fatalf("strata partitions reassign %s: %v\n%s", strings.Join(args, " "), err, errOut)
		}
		if errOut != "" {
			t.Logf("strata partitions reassign %s: stderr: %s", strings.Join(args, " "), errOut)
		}
		return out
	}
	name := fmt.Sprintf("%s-%d", m.topic, m.part)
	ids := func(v []int32) string {
		s := make([]string, len(v))
		for i, id := range v {
			s[i] = fmt.Sprint(id)
		}
		return strings.Join(s, ",")
	}
	// The move kadm started is replaced by the same one from the plan:
	// nothing changes, and the plan printed to roll back with is where the
	// partition was before the move, not where it is going.
	out := cli("--reassignment-json-file", plan)
	if !strings.Contains(out, "Successfully started partition reassignments for: "+name) {
		t.Fatalf("start:\n%s", out)
	}
	_, rest, _ := strings.Cut(out, "Current partition replica assignment\n\n")
	line, _, _ := strings.Cut(rest, "\n")
	var rollback struct {
		Partitions []struct {
			Replicas []int32 `json:"replicas"`
		} `json:"partitions"`
	}
	// The state keeps the replicas of a move as target + leaving, so the
	// original order is not known any more (nor is it to Kafka, whose
	// cancellation also keeps the order the move left): the set is.
	if err := json.Unmarshal([]byte(line), &rollback); err != nil || len(rollback.Partitions) != 1 ||
		!sameSet(rollback.Partitions[0].Replicas, m.original.Replicas) {
		t.Fatalf("the rollback plan %q (%v) does not name the replicas %v the partition had:\n%s", line, err, m.original.Replicas, out)
	}
	m.checkStillMoving(ctx, t)
	want := fmt.Sprintf("Topic: %s\tPartition: %d\tReplicas: %s\tAdding Replicas: %d\tRemoving Replicas: %d\n",
		m.topic, m.part, ids(append(slices.Clone(m.target), m.original.Leader)), m.joiner, m.original.Leader)
	if out := cli("--list"); !strings.Contains(out, want) {
		t.Fatalf("--list lacks %q:\n%s", want, out)
	}
	if out := cli("--reassignment-json-file", plan, "--verify"); !strings.Contains(out, "Reassignment of partition "+name+" is still in progress") {
		t.Fatalf("--verify:\n%s", out)
	}

	c.Broker(m.joiner).Kill()
	// A cancelled move leaves the partition on the replicas it had, in
	// the order the move left them (as Kafka's cancellation does).
	original := m.state(ctx, t).OriginalReplicas()
	if out := cli("--reassignment-json-file", plan, "--cancel"); !strings.Contains(out, "Successfully cancelled partition reassignments for: "+name) {
		t.Fatalf("--cancel:\n%s", out)
	}
	m.awaitReplicas(ctx, t, original)
	if st := m.state(ctx, t); st.Leader != m.original.Leader {
		t.Errorf("after the cancel: leader %d, was %d", st.Leader, m.original.Leader)
	}
	if out := cli("--list"); !strings.Contains(out, "No partition reassignments in progress.") {
		t.Fatalf("--list after the cancel:\n%s", out)
	}
	if out := cli("--reassignment-json-file", plan, "--verify"); !strings.Contains(out, "There is no active reassignment of partition "+name) {
		t.Fatalf("--verify after the cancel:\n%s", out)
	}

	// The joiner comes back no longer a replica: it deletes the copy it
	// opened as it joined. Then the same plan completes.
	if err := c.Broker(m.joiner).Start(ctx); err != nil {
		t.Fatal(err)
	}
	m.awaitCopies(t, original)
	m.releaseJoiner()
	out = cli("--reassignment-json-file", plan, "--wait", moveTimeout.String())
	if !strings.Contains(out, "Reassignment of partition "+name+" is completed.") {
		t.Fatalf("--wait:\n%s", out)
	}
	m.awaitTarget(ctx, t)
	if out := cli("--reassignment-json-file", plan, "--verify"); !strings.Contains(out, "Reassignment of partition "+name+" is completed.") {
		t.Fatalf("--verify after the move:\n%s", out)
	}
	m.finish(ctx, t, m.joiner)
}

// testSaramaReassign moves a one-partition topic with sarama's ClusterAdmin
// and lists the move while the joiner is held back.
func testSaramaReassign(ctx context.Context, t *testing.T, c *testenv.Cluster, store *metastore.Store) {
	// sarama's meters start a go-metrics goroutine that never ends, which
	// the package's goleak check would report.
	metrics.UseNilMetrics = true
	testenvtest.SaramaLogTo(nil)
	cfg := sarama.NewConfig()
	cfg.ClientID = "reassign-sarama"
	cfg.Version = sarama.V2_4_0_0 // the first to know AlterPartitionReassignments
	var seeds []string
	for _, b := range c.Brokers() {
		seeds = append(seeds, b.KafkaAddr())
	}
	admin, err := sarama.NewClusterAdmin(seeds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	const topic = "move-sarama"
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 3}, false); err != nil {
		t.Fatal(err)
	}
	m := &moveRun{c: c, store: store, topic: topic}
	await.NoError(t, moveTimeout, "a leader of "+topic, func() error {
		if m.original = m.state(ctx, t); m.original.Leader < 0 {
			return errors.New("no leader")
		}
		return nil
	})
	for _, b := range c.Brokers() {
		if !slices.Contains(m.original.Replicas, b.ID()) {
			m.joiner = b.ID()
		}
	}
	leader := m.original.Leader
	m.target = append(slices.DeleteFunc(slices.Clone(m.original.Replicas), func(id int32) bool { return id == leader }), m.joiner)
	m.holdJoiner()
	defer m.releaseJoiner()

	if err := admin.AlterPartitionReassignments(topic, [][]int32{m.target}); err != nil {
		t.Fatalf("AlterPartitionReassignments → %v: %v", m.target, err)
	}
	m.checkStillMoving(ctx, t)
	listed, err := admin.ListPartitionReassignments(topic, []int32{0})
	if err != nil {
		t.Fatal(err)
	}
	st := listed[topic][0]
	if st == nil || !slices.Equal(st.AddingReplicas, []int32{m.joiner}) || !slices.Equal(st.RemovingReplicas, []int32{leader}) {
		t.Fatalf("ListPartitionReassignments: %+v; want adding [%d], removing [%d]", st, m.joiner, leader)
	}
	m.releaseJoiner()
	m.awaitTarget(ctx, t)
	listed, err = admin.ListPartitionReassignments(topic, []int32{0})
	if err != nil {
		t.Fatal(err)
	}
	if len(listed[topic]) != 0 {
		t.Errorf("ListPartitionReassignments after the move: %+v", listed[topic][0])
	}
}

// sameSet reports whether a and b hold the same broker ids.
func sameSet(a, b []int32) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
