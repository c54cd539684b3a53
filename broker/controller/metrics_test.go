package controller

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/metastore/metastoretest"
)

// A partition is offline when it has no leader or its leader is not among
// the live brokers; one with a live leader is not, however small its ISR.
func TestMeasureCountsOfflinePartitions(t *testing.T) {
	store := metastoretest.New()
	regs := registerBrokers(t, store, 3)
	if _, err := store.CreateTopic(t.Context(), metastore.Topic{Name: "t"},
		[][]int32{{1, 2}, {2, 3}, {3, 1}}); err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(prometheus.NewRegistry())
	c := newTestController(t, store, regs[1], WithMetrics(m))

	c.measure()
	if got := testutil.ToFloat64(m.offline); got != 0 {
		t.Fatalf("offline before the broker list arrived: %v, want 0 (unknown)", got)
	}
	live := []metastore.BrokerInfo{{NodeID: 1}, {NodeID: 2}, {NodeID: 3}}
	c.brokersChanged(live)
	c.measure()
	if got := testutil.ToFloat64(m.offline); got != 0 {
		t.Fatalf("offline with every leader alive: %v, want 0", got)
	}

	// Partition 1 is led by broker 2 and partition 2 by broker 3; broker 3
	// gone takes only partition 2's leader.
	c.brokersChanged(live[:2])
	c.measure()
	if got := testutil.ToFloat64(m.offline); got != 1 {
		t.Fatalf("offline with broker 3 gone: %v, want 1", got)
	}
	moveLeader(t, store, 0, -1)
	states, err := store.PartitionStates(t.Context(), "t")
	if err != nil {
		t.Fatal(err)
	}
	c.partitions(metastore.PartitionsUpdate{States: states})
	c.measure()
	if got := testutil.ToFloat64(m.offline); got != 2 {
		t.Fatalf("offline with partition 0 leaderless too: %v, want 2", got)
	}
}

// strata_controller_active is 1 for as long as Run acts as controller and
// 0 once it has returned, so that the sum over the brokers is 1.
func TestRunReportsActiveController(t *testing.T) {
	store := metastoretest.New()
	regs := registerBrokers(t, store, 1)
	term, err := store.CampaignController(t.Context(), regs[1])
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(prometheus.NewRegistry())
	if got := testutil.ToFloat64(m.active); got != 0 {
		t.Fatalf("active before Run: %v, want 0", got)
	}
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, store, term, nil, slog.New(slog.DiscardHandler), WithMetrics(m))
	}()
	await.NoError(t, 10*time.Second, "controller to report itself active", func() error {
		if got := testutil.ToFloat64(m.active); got != 1 {
			return fmt.Errorf("active %v", got)
		}
		return nil
	})
	stop()
	<-done
	if got := testutil.ToFloat64(m.active); got != 0 {
		t.Fatalf("active after Run returned: %v, want 0", got)
	}
}
