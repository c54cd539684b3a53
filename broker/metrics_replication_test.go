package broker

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/internal/fakeclock"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/record"
)

// The replication gauges follow a follower out of the ISR and back: the
// leader reports the partition under-replicated and under its
// min.insync.replicas while the follower is out, the follower's lag in
// offsets and in time since it was last caught up, and counts the shrink
// and the expansion.
func TestReplicationMetricsFollowAFollowerOutAndBack(t *testing.T) {
	clk := fakeclock.New(time.Now())
	c := startCoreClusterOn(t, 2, nil, clk.Now)
	ctx := context.Background()
	if _, err := c.core(1).CreateTopic(ctx, TopicSpec{Name: "h", Partitions: 1, ReplicationFactor: 2,
		Configs: map[string]string{"min.insync.replicas": "2"}}); err != nil {
		t.Fatal(err)
	}
	var leader int32
	await.True(t, 30*time.Second, "a leader and a full ISR", func() bool {
		p := c.hosted(1, "h", 0)
		if p == nil {
			return false
		}
		st, _ := p.State()
		leader = st.Leader
		return leader > 0 && len(st.ISR) == 2
	})
	follower := 3 - leader
	f := strconv.Itoa(int(follower))
	regs := map[int32]*prometheus.Registry{}
	for _, id := range []int32{leader, follower} {
		regs[id] = prometheus.NewPedanticRegistry()
		regs[id].MustRegister(&replicationCollector{b: c.core(id)}, c.core(id).metrics.isr.shrinks, c.core(id).metrics.isr.expands)
	}
	lr := regs[leader]
	want := func(name string, v float64, labels ...string) {
		t.Helper()
		if got := metricValue(t, lr, name, labels...); got != v {
			t.Fatalf("%s%v on the leader: %v, want %v", name, labels, got, v)
		}
	}
	want("strata_leader_partitions", 1)
	want("strata_partitions", 1)
	if got := metricValue(t, regs[follower], "strata_leader_partitions"); got != 0 {
		t.Fatalf("strata_leader_partitions on the follower: %v, want 0", got)
	}
	await.True(t, 30*time.Second, "the follower to count its replica", func() bool {
		return metricValue(t, regs[follower], "strata_partitions") == 1
	})

	appendRecords(t, c.core(leader), "h", 0, 3)
	await.True(t, 30*time.Second, "the leader to see the follower at its end", func() bool {
		return metricValue(t, lr, "strata_replica_lag_offsets", "replica", f) == 0 &&
			hasSample(t, lr, "strata_replica_lag_offsets")
	})
	want("strata_under_replicated_partitions", 0)
	want("strata_under_min_isr_partitions", 0)
	want("strata_replica_lag_seconds", 0, "topic", "h", "partition", "0", "replica", f)

	c.stop(follower)
	lp := c.hosted(leader, "h", 0)
	produceAcks1(t, c.core(leader), "h", 2)
	want("strata_replica_lag_offsets", 2, "replica", f)
	lagMax := c.core(leader).isr.lagMax
	clk.Advance(lagMax + time.Millisecond)
	c.core(leader).isr.shrink(ctx, lp, clk.Now())
	await.True(t, 30*time.Second, "the stopped follower out of the ISR", func() bool {
		st, _ := lp.State()
		return slices.Equal(st.ISR, []int32{leader})
	})
	want("strata_under_replicated_partitions", 1)
	want("strata_under_min_isr_partitions", 1)
	want("strata_replica_lag_seconds", (lagMax + time.Millisecond).Seconds(), "replica", f)
	want("strata_isr_shrinks_total", 1)
	want("strata_isr_expands_total", 0)

	c.start(follower)
	await.True(t, 30*time.Second, "the follower back in the ISR", func() bool {
		st, _ := lp.State()
		return len(st.ISR) == 2
	})
	want("strata_under_replicated_partitions", 0)
	want("strata_under_min_isr_partitions", 0)
	want("strata_isr_expands_total", 1)
	want("strata_isr_shrinks_total", 1)
}

// hasSample reports whether g has at least one sample called name.
func hasSample(t *testing.T, g prometheus.Gatherer, name string) bool {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(families, func(f *dto.MetricFamily) bool { return f.GetName() == name && len(f.GetMetric()) > 0 })
}

// produceAcks1 appends n one-record batches to partition 0 of topic with
// acks=1, which a partition under its min.insync.replicas still takes.
func produceAcks1(t *testing.T, b *Broker, topic string, n int) {
	t.Helper()
	for range n {
		bld := record.NewBuilder(time.Now().UnixMilli(), 0)
		bld.Append(&record.Record{Value: []byte("v")})
		batch, err := bld.Build(record.None)
		if err != nil {
			t.Fatal(err)
		}
		res, err := b.ProduceWithTimeout(context.Background(), topic, AcksLeader, 20*time.Second,
			[]PartitionBatches{{Partition: 0, Batches: batch}})
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Err != nil {
			t.Fatal(res[0].Err)
		}
	}
}

// strata_build_info is exported once, valued 1, with a version and a
// revision label.
func TestBuildInfo(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(newBuildInfo())
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) != 1 || families[0].GetName() != "strata_build_info" || len(families[0].GetMetric()) != 1 {
		t.Fatalf("gathered %v, want one strata_build_info sample", families)
	}
	m := families[0].GetMetric()[0]
	if m.GetGauge().GetValue() != 1 {
		t.Fatalf("strata_build_info = %v, want 1", m.GetGauge().GetValue())
	}
	var names []string
	for _, l := range m.GetLabel() {
		if l.GetValue() == "" {
			t.Errorf("label %s is empty", l.GetName())
		}
		names = append(names, l.GetName())
	}
	if !slices.Equal(names, []string{"revision", "version"}) {
		t.Fatalf("labels %v, want revision and version", names)
	}
}

func TestISRDelta(t *testing.T) {
	for _, c := range []struct {
		name                     string
		prev, next               metastore.PartitionState
		wantShrunk, wantExpanded bool
	}{
		{"unchanged", isrState([]int32{1, 2, 3}, []int32{1, 2, 3}), isrState([]int32{1, 2, 3}, []int32{1, 2, 3}), false, false},
		{"a replica fell out", isrState([]int32{1, 2, 3}, []int32{1, 2, 3}), isrState([]int32{1, 2, 3}, []int32{1, 2}), true, false},
		{"a replica came back", isrState([]int32{1, 2, 3}, []int32{1, 2}), isrState([]int32{1, 2, 3}, []int32{1, 2, 3}), false, true},
		{"one out, another in", isrState([]int32{1, 2, 3}, []int32{1, 2}), isrState([]int32{1, 2, 3}, []int32{1, 3}), true, true},
		{"a move completed", isrState([]int32{1, 2, 3}, []int32{1, 2, 3}), isrState([]int32{1, 2}, []int32{1, 2}), false, false},
	} {
		shrunk, expanded := isrDelta(c.prev, c.next)
		if shrunk != c.wantShrunk || expanded != c.wantExpanded {
			t.Errorf("%s: shrunk %v expanded %v, want %v %v", c.name, shrunk, expanded, c.wantShrunk, c.wantExpanded)
		}
	}
}

func isrState(replicas, isr []int32) metastore.PartitionState {
	return metastore.PartitionState{Replicas: replicas, ISR: isr}
}
