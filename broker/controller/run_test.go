package controller

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/metastore/metastoretest"
)

var (
	_ Store = (*metastore.Store)(nil)
	_ Term  = (*metastore.ControllerTerm)(nil)
)

// A controller elected in the metastore moves leadership off a broker that
// left and takes it out of the ISR, through its term.
func TestRunMovesLeadershipOffAGoneBroker(t *testing.T) {
	store := metastoretest.New()
	ctx := t.Context()
	regs := map[int32]*metastoretest.Registration{}
	for id := int32(1); id <= 2; id++ {
		reg, err := store.RegisterBroker(ctx, metastore.BrokerInfo{NodeID: id}, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { reg.Close() })
		regs[id] = reg
	}
	if _, err := store.CreateTopic(ctx, metastore.Topic{Name: "t"}, [][]int32{{1, 2}}); err != nil {
		t.Fatal(err)
	}
	term, err := store.CampaignController(ctx, regs[2])
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(runCtx, store, term, nil, slog.New(slog.DiscardHandler))
	}()
	t.Cleanup(func() {
		stop()
		<-done
	})

	regs[1].Expire()
	await.NoError(t, 10*time.Second, "leadership to move off broker 1", func() error {
		states, err := store.PartitionStates(ctx, "t")
		if err != nil {
			t.Fatal(err)
		}
		st := states[0]
		if st.Leader != 2 {
			return fmt.Errorf("state %+v", st)
		}
		if st.LeaderEpoch != 1 || !slices.Equal(st.ISR, []int32{2}) {
			t.Fatalf("state after broker 1 left: %+v, want leader 2 in epoch 1, ISR [2]", st)
		}
		return nil
	})
}

// staleBrokers is a store whose broker watch lags: it delivers the brokers
// registered when the controller started and nothing after, as an etcd
// watch can deliver a partition state before registrations written just
// before it.
type staleBrokers struct {
	*metastoretest.Store
	first []metastore.BrokerInfo
	reads atomic.Int32
}

func (s *staleBrokers) Brokers(ctx context.Context) ([]metastore.BrokerInfo, error) {
	defer s.reads.Add(1)
	return s.Store.Brokers(ctx)
}

func (s *staleBrokers) FollowBrokers(ctx context.Context, fn func([]metastore.BrokerInfo)) {
	fn(s.first)
	<-ctx.Done()
}

// A controller whose broker watch has not yet delivered registrations made
// before a partition's state must not take the registered replicas for gone.
// It did: 44 ms after a topic was created, leadership moved off its live
// leader to the controller with ISR [controller], and records the first
// leader had acknowledged were truncated.
func TestRunDoesNotActOnALaggingBrokerWatch(t *testing.T) {
	store := metastoretest.New()
	ctx := t.Context()
	regs := map[int32]*metastoretest.Registration{}
	register := func(id int32) {
		reg, err := store.RegisterBroker(ctx, metastore.BrokerInfo{NodeID: id}, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { reg.Close() })
		regs[id] = reg
	}
	register(2)
	term, err := store.CampaignController(ctx, regs[2])
	if err != nil {
		t.Fatal(err)
	}
	first, err := store.Brokers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	register(1)
	register(3)
	if _, err := store.CreateTopic(ctx, metastore.Topic{Name: "t"}, [][]int32{{1, 2, 3}}); err != nil {
		t.Fatal(err)
	}
	stale := &staleBrokers{Store: store, first: first}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(runCtx, stale, term, nil, slog.New(slog.DiscardHandler))
	}()
	t.Cleanup(func() {
		stop()
		<-done
	})

	// By the stale list, brokers 1 and 3 are gone; each pass checks that
	// against a fresh read. Two such passes have decided.
	await.True(t, 10*time.Second, "two passes to read the live brokers", func() bool { return stale.reads.Load() >= 2 })
	states, err := store.PartitionStates(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if st := states[0]; st.Leader != 1 || st.LeaderEpoch != 0 || !slices.Equal(st.ISR, []int32{1, 2, 3}) {
		t.Fatalf("state changed while every replica was registered: %+v", st)
	}

	// The fresh read is also what lets it act when a broker does go.
	regs[1].Expire()
	await.NoError(t, 10*time.Second, "leadership to move off broker 1", func() error {
		states, err := store.PartitionStates(ctx, "t")
		if err != nil {
			t.Fatal(err)
		}
		if st := states[0]; st.Leader != 2 || !slices.Equal(st.ISR, []int32{2, 3}) {
			return fmt.Errorf("state %+v", st)
		}
		return nil
	})
}

// A partition whose last in-sync replica came back without its log (and left
// the ISR) stays leaderless with every replica registered: the controller
// writes nothing, however often it looks. Allowing unclean election then
// elects a live replica that did not lose its log, although the one that
// did comes first in replica order.
func TestRunLeavesAnEmptyISRToUncleanElection(t *testing.T) {
	store := metastoretest.New()
	ctx := t.Context()
	if _, err := store.CreateTopic(ctx, metastore.Topic{Name: "t"}, [][]int32{{1, 2, 3}}); err != nil {
		t.Fatal(err)
	}
	states, err := store.PartitionStates(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	offline := states[0]
	offline.Leader, offline.LeaderEpoch, offline.ISR, offline.Lost = -1, 1, []int32{}, []int32{1}
	if offline, err = store.CompareAndSwapPartitionState(ctx, states[0], offline); err != nil {
		t.Fatal(err)
	}
	var regs []*metastoretest.Registration
	for id := int32(1); id <= 3; id++ {
		reg, err := store.RegisterBroker(ctx, metastore.BrokerInfo{NodeID: id}, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { reg.Close() })
		regs = append(regs, reg)
	}
	term, err := store.CampaignController(ctx, regs[1])
	if err != nil {
		t.Fatal(err)
	}
	all, err := store.Brokers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	counted := &staleBrokers{Store: store, first: all}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(runCtx, counted, term, nil, slog.New(slog.DiscardHandler))
	}()
	t.Cleanup(func() {
		stop()
		<-done
	})

	await.True(t, 10*time.Second, "two passes to read the live brokers", func() bool { return counted.reads.Load() >= 2 })
	states, err = store.PartitionStates(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if st := states[0]; st.Revision != offline.Revision {
		t.Fatalf("state written while nobody was known to hold the data: %+v", st)
	}

	if _, err := store.AlterTopicConfigs(ctx, "t", map[string]string{"unclean.leader.election.enable": "true"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	await.NoError(t, 10*time.Second, "an unclean election", func() error {
		states, err := store.PartitionStates(ctx, "t")
		if err != nil {
			t.Fatal(err)
		}
		st := states[0]
		if st.Leader < 0 {
			return fmt.Errorf("state %+v", st)
		}
		if st.Leader != 2 || st.LeaderEpoch != 2 || !slices.Equal(st.ISR, []int32{2}) || !slices.Equal(st.Lost, []int32{1}) {
			t.Fatalf("unclean election: %+v, want leader 2 in epoch 2, ISR [2], lost [1]", st)
		}
		return nil
	})
}
