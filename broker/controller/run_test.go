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
