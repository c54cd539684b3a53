package testenv_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// The replication health metrics, as Prometheus scrapes them: killing a
// follower raises the under-replicated gauge within 10 s (the controller
// takes it out of the ISR once its session expires), and bringing it back
// returns the gauge to zero once it has caught up. Under-min-ISR stays at
// zero throughout (two of three replicas are left, min.insync.replicas is
// 2), the ISR counters count the shrink and the expansion, and exactly one
// broker reports itself controller.
func TestUnderReplicatedGaugeFollowsAKilledFollower(t *testing.T) {
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3})
	client := testenvtest.Dial(t, c.Broker(1).GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	_, err := client.CreateTopic(ctx, &stratav1.CreateTopicRequest{
		Name: "health", Partitions: 1, ReplicationFactor: 3,
		Configs: map[string]string{"min.insync.replicas": "2"},
	})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	sum := func(name string, brokers ...*testenv.Broker) float64 {
		total := 0.0
		for _, b := range brokers {
			if v := metricValue(t, b, name); v > 0 {
				total += v
			}
		}
		return total
	}
	all := c.Brokers()
	var leader, victim *testenv.Broker
	await.NoError(t, 30*time.Second, "one leader and a full ISR", func() error {
		leader, victim = nil, nil
		for _, b := range all {
			switch metricValue(t, b, "strata_leader_partitions") {
			case 1:
				leader = b
			case 0:
				victim = b
			}
		}
		if leader == nil || victim == nil {
			return fmt.Errorf("no leader and follower yet")
		}
		if v := metricValue(t, leader, "strata_under_replicated_partitions"); v != 0 {
			return fmt.Errorf("leader %d reports %v under-replicated partitions", leader.ID(), v)
		}
		return nil
	})
	if got := sum("strata_controller_active", all...); got != 1 {
		t.Fatalf("strata_controller_active summed over the brokers: %v, want 1", got)
	}
	if got := metricValue(t, leader, "strata_build_info"); got != 1 {
		t.Fatalf("strata_build_info: %v, want 1", got)
	}
	shrinks := metricValue(t, leader, "strata_isr_shrinks_total")
	expands := metricValue(t, leader, "strata_isr_expands_total")

	victim.Kill()
	killed := time.Now()
	await.True(t, 10*time.Second, "the under-replicated gauge above zero", func() bool {
		return metricValue(t, leader, "strata_under_replicated_partitions") > 0
	})
	t.Logf("broker %d killed; leader %d reported the partition under-replicated after %v",
		victim.ID(), leader.ID(), time.Since(killed).Round(time.Millisecond))
	if got := metricValue(t, leader, "strata_under_min_isr_partitions"); got != 0 {
		t.Fatalf("under-min-ISR with 2 of 3 replicas in sync (min.insync.replicas=2): %v, want 0", got)
	}
	if got := metricValue(t, leader, "strata_isr_shrinks_total"); got != shrinks+1 {
		t.Fatalf("strata_isr_shrinks_total %v after the follower left, want %v", got, shrinks+1)
	}

	if err := victim.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	await.True(t, 30*time.Second, "the under-replicated gauge back to zero", func() bool {
		return metricValue(t, leader, "strata_under_replicated_partitions") == 0
	})
	if got := metricValue(t, leader, "strata_isr_expands_total"); got != expands+1 {
		t.Fatalf("strata_isr_expands_total %v after the follower returned, want %v", got, expands+1)
	}
}
