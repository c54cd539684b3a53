package broker

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-broker/strata/metastore"
)

func TestGroupLagFollowsCommits(t *testing.T) {
	b, _ := startBroker(t)
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "lagging", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		produceOne(t, b, "lagging")
	}
	commit := func(offset int64) {
		t.Helper()
		if err := b.Groups().CommitOffsets(ctx, "readers", "", -1, []metastore.OffsetCommit{{Topic: "lagging", Offset: offset, LeaderEpoch: -1}}); err != nil {
			t.Fatal(err)
		}
	}
	lag := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lag"}, []string{"group", "topic", "partition"})
	commit(2)
	seen := b.groupLag.measure(ctx, lag, nil)
	if got := testutil.ToFloat64(lag.WithLabelValues("readers", "lagging", "0")); got != 3 {
		t.Fatalf("lag with 5 records and offset 2 committed = %v, want 3", got)
	}
	commit(5)
	b.groupLag.measure(ctx, lag, seen)
	if got := testutil.ToFloat64(lag.WithLabelValues("readers", "lagging", "0")); got != 0 {
		t.Fatalf("lag once everything is committed = %v, want 0", got)
	}
	if err := b.Groups().Delete(ctx, "readers"); err != nil {
		t.Fatal(err)
	}
	b.groupLag.measure(ctx, lag, seen)
	if n := testutil.CollectAndCount(lag); n != 0 {
		t.Fatalf("%d lag series left after the group was deleted", n)
	}
}
