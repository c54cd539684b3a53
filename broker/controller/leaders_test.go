package controller

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/metastore/metastoretest"
	"github.com/strata-broker/strata/topicconfig"
)

// led returns partition p of topic "t", preferring replicas[0], led by
// leader, with every replica in sync, written at revision 100.
func led(p, leader int32, replicas ...int32) metastore.PartitionState {
	return metastore.PartitionState{Topic: "t", Partition: p, Leader: leader, LeaderEpoch: 5,
		Replicas: replicas, ISR: slices.Clone(replicas), Revision: 100}
}

// elected lists the partitions a check elects, and checks each election
// makes the preferred replica leader in a new epoch.
func elected(t *testing.T, states []metastore.PartitionState, live map[int32]int64, percent int) []int32 {
	t.Helper()
	var out []int32
	for _, e := range preferredElections(states, live, percent) {
		if e.next.Leader != e.old.Replicas[0] || e.next.LeaderEpoch != e.old.LeaderEpoch+1 ||
			!slices.Equal(e.next.ISR, e.old.ISR) || !slices.Equal(e.next.Replicas, e.old.Replicas) {
			t.Errorf("election of partition %d: %+v from %+v", e.old.Partition, e.next, e.old)
		}
		out = append(out, e.old.Partition)
	}
	return out
}

// Broker 1 is preferred for ten partitions: one led elsewhere is 10%, not
// more than leader.imbalance.per.broker.percentage=10; two are 20%, and
// both go back.
func TestPreferredElectionsOnlyOverTheThreshold(t *testing.T) {
	live := map[int32]int64{1: 1, 2: 2, 3: 3}
	var states []metastore.PartitionState
	for p := range int32(10) {
		states = append(states, led(p, 1, 1, 2, 3))
	}
	states[3].Leader = 2
	if got := elected(t, states, live, 10); len(got) != 0 {
		t.Fatalf("elected %v at 10%% imbalance, threshold 10%%", got)
	}
	if got := elected(t, states, live, 0); !slices.Equal(got, []int32{3}) {
		t.Fatalf("threshold 0%%: elected %v, want [3]", got)
	}
	states[7].Leader = 3
	if got := elected(t, states, live, 10); !slices.Equal(got, []int32{3, 7}) {
		t.Fatalf("elected %v at 20%% imbalance, want [3 7]", got)
	}
	// The share is each broker's own: broker 2, preferred for one
	// partition that broker 1 leads, is over the threshold at 100%.
	states = append(states, led(10, 1, 2, 1, 3))
	if got := elected(t, states, live, 10); !slices.Equal(got, []int32{3, 7, 10}) {
		t.Fatalf("elected %v, want [3 7 10]", got)
	}
	if got := elected(t, states, live, 100); len(got) != 0 {
		t.Fatalf("elected %v at threshold 100%%", got)
	}
}

// A preferred replica that could lose records, or a partition in the
// middle of something else, keeps its leader.
func TestPreferredElectionsOnlyWhereThePreferredCanLead(t *testing.T) {
	live := map[int32]int64{1: 1, 2: 2, 3: 3}
	outOfISR := led(0, 2, 1, 2, 3)
	outOfISR.ISR = []int32{2, 3}
	dead := led(1, 2, 4, 2, 3)
	restarted := led(2, 2, 5, 2, 3)
	moving, _, err := StartMove(led(3, 2, 1, 2, 3), []int32{1, 2, 6})
	if err != nil || !moving.Moving() {
		t.Fatalf("StartMove: %+v, %v", moving, err)
	}
	leaderless := led(4, -1, 1, 2, 3)
	states := []metastore.PartitionState{outOfISR, dead, restarted, moving, leaderless}
	// Broker 5 registered again after the state was written (its broker
	// epoch is newer): it may have lost what it held.
	live[5] = 101
	if got := elected(t, states, live, 0); len(got) != 0 {
		t.Fatalf("elected %v", got)
	}
	// Registered before the state: it counts, and leads again.
	live[5] = 99
	if got := elected(t, states, live, 0); !slices.Equal(got, []int32{2}) {
		t.Fatalf("elected %v, want [2]", got)
	}
}

// newTestController is a controller elected in store with the states of
// store loaded, as Run's partition watch would load them.
func newTestController(t *testing.T, store *metastoretest.Store, reg *metastoretest.Registration, opts ...Option) *controller {
	t.Helper()
	term, err := store.CampaignController(t.Context(), reg)
	if err != nil {
		t.Fatal(err)
	}
	c := newController(store, term, nil, slog.New(slog.DiscardHandler), opts...)
	states, err := store.PartitionStates(t.Context(), "t")
	if err != nil {
		t.Fatal(err)
	}
	c.partitions(metastore.PartitionsUpdate{Snapshot: true, States: states})
	return c
}

// registerBrokers registers brokers 1 to n in store.
func registerBrokers(t *testing.T, store *metastoretest.Store, n int32) map[int32]*metastoretest.Registration {
	t.Helper()
	regs := map[int32]*metastoretest.Registration{}
	for id := int32(1); id <= n; id++ {
		reg, err := store.RegisterBroker(t.Context(), metastore.BrokerInfo{NodeID: id}, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { reg.Close() })
		regs[id] = reg
	}
	return regs
}

// moveLeader writes partition p of "t" as led by leader, in a new epoch,
// as a failover would have.
func moveLeader(t *testing.T, store *metastoretest.Store, p, leader int32) metastore.PartitionState {
	t.Helper()
	states, err := store.PartitionStates(t.Context(), "t")
	if err != nil {
		t.Fatal(err)
	}
	next := states[p]
	next.Leader, next.LeaderEpoch = leader, next.LeaderEpoch+1
	got, err := store.CompareAndSwapPartitionState(t.Context(), states[p], next)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// A check writes its elections through the controller's term, in a new
// leader epoch, every one of them in the one check, more than changeWorkers.
func TestBalanceLeadersWritesThroughTheTerm(t *testing.T) {
	store := metastoretest.New()
	regs := registerBrokers(t, store, 2)
	n := int32(3 * changeWorkers)
	var assign [][]int32
	for range n {
		assign = append(assign, []int32{1, 2})
	}
	if _, err := store.CreateTopic(t.Context(), metastore.Topic{Name: "t"}, assign); err != nil {
		t.Fatal(err)
	}
	for p := range n {
		moveLeader(t, store, p, 2)
	}
	m := NewMetrics(prometheus.NewRegistry())
	c := newTestController(t, store, regs[2], WithMetrics(m))
	c.measure()
	if got := testutil.ToFloat64(m.imbalance); got != float64(n) {
		t.Fatalf("imbalance before the check: %v, want %d", got, n)
	}

	c.balanceLeaders(t.Context())
	c.measure()
	if got := testutil.ToFloat64(m.imbalance); got != 0 {
		t.Fatalf("imbalance after the check: %v, want 0", got)
	}
	if got := testutil.ToFloat64(m.preferredElections); got != float64(n) {
		t.Fatalf("elections counted: %v, want %d", got, n)
	}
	states, err := store.PartitionStates(t.Context(), "t")
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range states {
		if st.Leader != 1 || st.LeaderEpoch != 2 {
			t.Fatalf("after a check: %+v, want leader 1 in epoch 2", st)
		}
	}

	// A controller whose term ended writes nothing.
	c.partitions(metastore.PartitionsUpdate{States: []metastore.PartitionState{moveLeader(t, store, 0, 2)}})
	if err := c.term.(*metastoretest.ControllerTerm).Resign(t.Context()); err != nil {
		t.Fatal(err)
	}
	c.balanceLeaders(t.Context())
	if states, _ := store.PartitionStates(t.Context(), "t"); states[0].Leader != 2 {
		t.Fatalf("a resigned controller elected: %+v", states[0])
	}
}

// Run checks every leader.imbalance.check.interval.seconds: leadership
// moved off a broker returns to it once it is back in the ISR.
func TestRunReturnsLeadershipToThePreferredReplica(t *testing.T) {
	store := metastoretest.New()
	regs := registerBrokers(t, store, 3)
	if _, err := store.CreateTopic(t.Context(), metastore.Topic{Name: "t"}, [][]int32{{1, 2, 3}, {2, 3, 1}}); err != nil {
		t.Fatal(err)
	}
	term, err := store.CampaignController(t.Context(), regs[3])
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(runCtx, store, term, nil, slog.New(slog.DiscardHandler),
			WithLeaderRebalance(topicconfig.LeaderRebalance{Enable: true, ImbalancePercent: 10, CheckInterval: 20 * time.Millisecond}))
	}()
	t.Cleanup(func() {
		stop()
		<-done
	})

	// Broker 1 is gone: reconcile moves its leadership to 2, and out of
	// the ISR.
	regs[1].Expire()
	await.NoError(t, 10*time.Second, "leadership to move off broker 1", func() error {
		states, err := store.PartitionStates(t.Context(), "t")
		if err != nil {
			t.Fatal(err)
		}
		if st := states[0]; st.Leader != 2 || slices.Contains(st.ISR, 1) {
			return fmt.Errorf("state %+v", st)
		}
		return nil
	})
	// Back, and caught up: its leader puts it in the ISR again.
	registerBrokers(t, store, 1)
	states, err := store.PartitionStates(t.Context(), "t")
	if err != nil {
		t.Fatal(err)
	}
	back := states[0]
	back.ISR = append(slices.Clone(back.ISR), 1)
	if _, err := store.CompareAndSwapPartitionState(t.Context(), states[0], back); err != nil {
		t.Fatal(err)
	}
	await.NoError(t, 10*time.Second, "leadership to return to broker 1", func() error {
		states, err := store.PartitionStates(t.Context(), "t")
		if err != nil {
			t.Fatal(err)
		}
		if st := states[0]; st.Leader != 1 {
			return fmt.Errorf("state %+v", st)
		}
		if st := states[1]; st.Leader != 2 {
			t.Fatalf("partition 1 changed leader: %+v", st)
		}
		return nil
	})
}
