package kafkatests_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// The fault-injection run's coordinator case, on a real three-broker
// cluster: the coordinator of a group of two franz-go members is paused
// (SIGSTOP) past the members' session timeout; another broker takes the
// group over and rebalances it when the second member joins; the paused
// broker resumes. Every group state the brokers store is read from etcd
// with a watch, so the test sees what was made durable, not only what the
// members were told: generations only grow, one generation is never
// stored with two different member sets, and every offset the brokers
// write comes from a member of the generation stored at that moment
// (franz-go commits its member id as each offset's metadata).
func TestPausedGroupCoordinatorIsFenced(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-broker cluster")
	}
	const (
		topic      = "fence"
		group      = "fence-consumers"
		partitions = 4
		// sessionTimeout is the members' group session; the pause lasts
		// past it, so the paused coordinator wakes to expired sessions.
		sessionTimeout = 6 * time.Second
	)
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3, BrokerSettings: map[string]string{
		"group.initial.rebalance.delay.ms": "0",
	}})
	var bootstrap []string
	for _, b := range c.Brokers() {
		bootstrap = append(bootstrap, b.KafkaAddr())
	}
	compatWaitListening(t, bootstrap)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	adminCl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap...), kgo.RequestTimeoutOverhead(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer adminCl.Close()
	groupsCreateTopic(ctx, t, kadm.NewClient(adminCl), topic, partitions, 3)

	hist := watchGroupKeys(ctx, t, c, group)

	prod, err := kgo.NewClient(kgo.SeedBrokers(bootstrap...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.RequestTimeoutOverhead(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	prodCtx, stopProducing := context.WithCancel(ctx)
	defer stopProducing()
	go func() {
		for i := 0; prodCtx.Err() == nil; i++ {
			// Delivery is not what this test checks; records keep the
			// members' offsets moving so that they keep committing.
			prod.Produce(prodCtx, &kgo.Record{Value: fmt.Appendf(nil, "r-%d", i)}, nil)
			select {
			case <-prodCtx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()

	m1 := startFenceMember(t, bootstrap, topic, group, "member-1", sessionTimeout)
	await.NoError(t, 30*time.Second, "member-1 to commit in its first generation", func() error {
		if m1.commitsOK() == 0 {
			return errors.New("no successful commit yet")
		}
		return nil
	})
	coord := findCoordinator(ctx, t, adminCl, group, 0)
	victim := c.Broker(coord)
	if victim == nil {
		t.Fatalf("FindCoordinator names broker %d, not one of the cluster's", coord)
	}
	_, genBefore := m1.cl.GroupMetadata()
	t.Logf("broker %d coordinates %s; member-1 is in generation %d", coord, group, genBefore)

	if err := victim.Pause(); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	// Its connections to etcd are cut while it is stopped, so that it wakes
	// with nothing from etcd waiting in its sockets (its lease's expiry
	// above all): its first timers then act on what it knew before the
	// pause, the case to fence. Without the cut, the timers and the watch
	// race on waking; the fault-injection run lost that race in 2 of 4
	// runs.
	victim.EtcdProxy().Block()
	resumed := false
	defer func() {
		if !resumed {
			victim.EtcdProxy().Unblock()
			_ = victim.Resume()
		}
	}()
	// The second member does not know the paused broker: its first
	// requests would wait for it.
	var others []string
	for _, b := range c.Brokers() {
		if b.ID() != coord {
			others = append(others, b.KafkaAddr())
		}
	}
	m2 := startFenceMember(t, others, topic, group, "member-2", sessionTimeout)

	// The successor rebalances the group: a generation after the paused
	// coordinator's, with both members, stored and committing.
	var successorGen int32
	await.NoError(t, 60*time.Second, "the successor to rebalance the group to both members", func() error {
		meta, ok := hist.lastMeta()
		if !ok || meta.Generation <= genBefore || len(meta.Members) != 2 || meta.State != "Stable" {
			return fmt.Errorf("stored group: %+v", meta)
		}
		_, g1 := m1.cl.GroupMetadata()
		_, g2 := m2.cl.GroupMetadata()
		if g1 != meta.Generation || g2 != meta.Generation {
			return fmt.Errorf("members at generations %d and %d, stored %d", g1, g2, meta.Generation)
		}
		if m1.commitsOKAt(meta.Generation) == 0 || m2.commitsOKAt(meta.Generation) == 0 {
			return fmt.Errorf("generation %d: no successful commit of both members yet", meta.Generation)
		}
		successorGen = meta.Generation
		return nil
	})
	successor := findCoordinator(ctx, t, adminCl, group, coord)
	t.Logf("%v into the pause: broker %d coordinates %s at generation %d with both members",
		time.Since(paused).Round(time.Millisecond), successor, group, successorGen)
	// The paused coordinator last heard member-1 before the pause: it
	// wakes with that member's session expired.
	if wait := sessionTimeout + time.Second - time.Since(paused); wait > 0 {
		time.Sleep(wait)
	}
	victim.EtcdProxy().Unblock()
	if err := victim.Resume(); err != nil {
		t.Fatal(err)
	}
	resumed = true
	t.Logf("resumed broker %d after %v", coord, time.Since(paused).Round(time.Millisecond))

	// The group settles with both members (on whichever broker now
	// coordinates it), and both commit again after the resume.
	resumedAt := hist.revision()
	await.NoError(t, 60*time.Second, "the group to settle after the resume", func() error {
		meta, ok := hist.lastMeta()
		if !ok || len(meta.Members) != 2 || meta.State != "Stable" {
			return fmt.Errorf("stored group: %+v", meta)
		}
		for _, m := range []*fenceMember{m1, m2} {
			if _, g := m.cl.GroupMetadata(); g != meta.Generation {
				return fmt.Errorf("%s at generation %d, stored %d", m.name, g, meta.Generation)
			}
		}
		if hist.offsetWritesSince(resumedAt) == 0 {
			return errors.New("no offset written since the resume")
		}
		return nil
	})
	stopProducing()
	m1.stop()
	m2.stop()
	hist.stop()

	metas, writes := hist.snapshot()
	t.Logf("%d group states and %d offset writes stored", len(metas), len(writes))
	for _, m := range metas {
		t.Logf("  rev %d: generation %d, %s, members %v", m.Revision, m.Generation, m.State, m.memberIDs())
	}
	checkStoredGenerations(t, metas)
	checkOffsetWriters(t, metas, writes)
	for _, m := range []*fenceMember{m1, m2} {
		gens := m.generations()
		for i := 1; i < len(gens); i++ {
			if gens[i] <= gens[i-1] {
				t.Errorf("%s was assigned partitions in generations %v: not increasing", m.name, gens)
				break
			}
		}
	}
}

// storedGroup is a group's meta key as the broker writes it (see the key
// layout in metastore/groups.go), with only what this test looks at.
type storedGroup struct {
	Revision   int64  `json:"-"`
	Generation int32  `json:"g"`
	State      string `json:"s"`
	Members    []struct {
		ID string `json:"id"`
	} `json:"m"`
}

func (g storedGroup) memberIDs() []string {
	var ids []string
	for _, m := range g.Members {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	return ids
}

// offsetWrite is one write of a committed offset, at an etcd revision.
type offsetWrite struct {
	Revision int64
	Key      string
	Member   string // the commit's metadata: franz-go sends its member id
}

// groupKeysWatch records every write under a group's keys in etcd, in
// revision order.
type groupKeysWatch struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	rev    int64
	metas  []storedGroup
	writes []offsetWrite
	err    error
}

func watchGroupKeys(ctx context.Context, t *testing.T, c *testenv.Cluster, group string) *groupKeysWatch {
	t.Helper()
	cli := testenvtest.EtcdClient(t, c)
	prefix := c.EtcdPrefix() + "/groups/" + url.PathEscape(group) + "/"
	start, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &groupKeysWatch{cancel: cancel, done: make(chan struct{}), rev: start.Header.Revision}
	ch := cli.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(start.Header.Revision+1))
	go func() {
		defer close(w.done)
		for resp := range ch {
			w.mu.Lock()
			if err := resp.Err(); err != nil && ctx.Err() == nil {
				w.err = err
			}
			for _, ev := range resp.Events {
				w.rev = ev.Kv.ModRevision
				if ev.Type != clientv3.EventTypePut {
					continue
				}
				key := strings.TrimPrefix(string(ev.Kv.Key), prefix)
				switch {
				case key == "meta":
					var g storedGroup
					if err := json.Unmarshal(ev.Kv.Value, &g); err != nil {
						w.err = fmt.Errorf("meta at revision %d: %w", ev.Kv.ModRevision, err)
						continue
					}
					g.Revision = ev.Kv.ModRevision
					w.metas = append(w.metas, g)
				case strings.HasPrefix(key, "offsets/"):
					var o struct {
						Metadata string `json:"m"`
					}
					if err := json.Unmarshal(ev.Kv.Value, &o); err != nil {
						w.err = fmt.Errorf("offset at revision %d: %w", ev.Kv.ModRevision, err)
						continue
					}
					w.writes = append(w.writes, offsetWrite{Revision: ev.Kv.ModRevision, Key: key, Member: o.Metadata})
				}
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(w.stop)
	return w
}

func (w *groupKeysWatch) stop() {
	w.cancel()
	<-w.done
}

func (w *groupKeysWatch) lastMeta() (storedGroup, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.metas) == 0 {
		return storedGroup{}, false
	}
	return w.metas[len(w.metas)-1], true
}

func (w *groupKeysWatch) revision() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rev
}

func (w *groupKeysWatch) offsetWritesSince(rev int64) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, o := range w.writes {
		if o.Revision > rev {
			n++
		}
	}
	return n
}

func (w *groupKeysWatch) snapshot() ([]storedGroup, []offsetWrite) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.metas), slices.Clone(w.writes)
}

// checkStoredGenerations fails the test if a stored generation went
// backwards, or one generation was stored with two different member sets
// (handed out twice).
func checkStoredGenerations(t *testing.T, metas []storedGroup) {
	t.Helper()
	seen := map[int32][]string{}
	var last int32 = -1
	for _, m := range metas {
		if m.Generation < last {
			t.Errorf("revision %d stores generation %d after generation %d", m.Revision, m.Generation, last)
		}
		last = max(last, m.Generation)
		ids := m.memberIDs()
		if prev, ok := seen[m.Generation]; ok && len(ids) > 0 && !slices.Equal(prev, ids) {
			t.Errorf("revision %d stores generation %d with members %v; it was stored with %v before", m.Revision, m.Generation, ids, prev)
		}
		if len(ids) > 0 {
			seen[m.Generation] = ids
		}
	}
}

// checkOffsetWriters fails the test if an offset was written by a client
// that was not a member of the group state stored at that moment.
func checkOffsetWriters(t *testing.T, metas []storedGroup, writes []offsetWrite) {
	t.Helper()
	for _, w := range writes {
		i, _ := slices.BinarySearchFunc(metas, w.Revision, func(m storedGroup, rev int64) int {
			return int(m.Revision - rev)
		})
		if i == 0 {
			t.Errorf("revision %d: offset %s written by %q before any group state was stored", w.Revision, w.Key, w.Member)
			continue
		}
		meta := metas[i-1]
		if !slices.Contains(meta.memberIDs(), w.Member) {
			t.Errorf("revision %d: offset %s written by %q, not a member of generation %d stored at revision %d (members %v)",
				w.Revision, w.Key, w.Member, meta.Generation, meta.Revision, meta.memberIDs())
		}
	}
}

// findCoordinator asks the brokers other than not (0: any) which broker
// coordinates group, until one answers.
func findCoordinator(ctx context.Context, t *testing.T, cl *kgo.Client, group string, not int32) int32 {
	t.Helper()
	var coord int32
	await.NoError(t, 30*time.Second, "a coordinator for "+group, func() error {
		var errs []error
		for _, id := range []int32{1, 2, 3} {
			if id == not {
				continue
			}
			req := kmsg.NewPtrFindCoordinatorRequest()
			req.CoordinatorKey = group // up to v3
			req.CoordinatorKeys = []string{group}
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			resp, err := req.RequestWith(rctx, cl.Broker(int(id)))
			cancel()
			if err != nil {
				errs = append(errs, err)
				continue
			}
			node, code := resp.NodeID, resp.ErrorCode
			if len(resp.Coordinators) == 1 { // v4+
				node, code = resp.Coordinators[0].NodeID, resp.Coordinators[0].ErrorCode
			}
			switch {
			case code != 0:
				errs = append(errs, fmt.Errorf("broker %d: FindCoordinator error %d", id, code))
			case node == not:
				errs = append(errs, fmt.Errorf("broker %d still names broker %d", id, not))
			default:
				coord = node
				return nil
			}
		}
		return errors.Join(errs...)
	})
	return coord
}

// fenceMember is a franz-go group member that auto-commits every 200 ms
// and records the generations it was assigned partitions in and the
// outcome of its commits.
type fenceMember struct {
	name   string
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	mu      sync.Mutex
	gens    []int32
	commits map[int32]int // generation → successful commits
}

func startFenceMember(t *testing.T, seeds []string, topic, group, name string, session time.Duration) *fenceMember {
	t.Helper()
	m := &fenceMember{name: name, done: make(chan struct{}), commits: map[int32]int{}}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ClientID(name),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(session), kgo.HeartbeatInterval(500*time.Millisecond),
		kgo.RebalanceTimeout(10*time.Second), kgo.RequestTimeoutOverhead(2*time.Second),
		kgo.AutoCommitInterval(200*time.Millisecond), kgo.FetchMaxWait(200*time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, cl *kgo.Client, _ map[string][]int32) {
			_, gen := cl.GroupMetadata()
			m.mu.Lock()
			m.gens = append(m.gens, gen)
			m.mu.Unlock()
		}),
		kgo.AutoCommitCallback(func(_ *kgo.Client, req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil || resp == nil || len(resp.Topics) == 0 {
				return
			}
			for _, rt := range resp.Topics {
				for _, rp := range rt.Partitions {
					if rp.ErrorCode != 0 {
						return
					}
				}
			}
			m.mu.Lock()
			m.commits[req.Generation]++
			m.mu.Unlock()
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	m.cl = cl
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			cl.PollFetches(ctx)
		}
	}()
	t.Cleanup(m.stop)
	return m
}

func (m *fenceMember) stop() {
	m.once.Do(func() {
		m.cancel()
		<-m.done
		m.cl.Close()
	})
}

func (m *fenceMember) generations() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.gens)
}

func (m *fenceMember) commitsOK() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, c := range m.commits {
		n += c
	}
	return n
}

func (m *fenceMember) commitsOKAt(gen int32) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.commits[gen]
}
