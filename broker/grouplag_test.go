package broker

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-broker/strata/broker/group"
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

// countingScanner counts the scans measuring lag makes.
type countingScanner struct {
	GroupOffsetScanner
	scans atomic.Int64
}

func (s *countingScanner) ScanGroupOffsets(ctx context.Context, maxKeys int, fn func(metastore.GroupOffsets)) (bool, error) {
	s.scans.Add(1)
	return s.GroupOffsetScanner.ScanGroupOffsets(ctx, maxKeys, fn)
}

// Any client can create groups by committing offsets: a measurement reads
// them in one scan, not one read per group, and exports a bounded number of
// series, groups with members first.
func TestGroupLagIsBounded(t *testing.T) {
	b, store := startBrokerWith(t, Config{Settings: map[string]string{"group.initial.rebalance.delay.ms": "0"}})
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "lagging", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		produceOne(t, b, "lagging")
	}
	for i := range 30 {
		if err := b.Groups().CommitOffsets(ctx, fmt.Sprintf("named-%02d", i), "", -1,
			[]metastore.OffsetCommit{{Topic: "lagging", Offset: 1, LeaderEpoch: -1}}); err != nil {
			t.Fatal(err)
		}
	}
	// A live group, last in name order.
	res, err := b.Groups().Join(ctx, group.JoinRequest{Group: "zz-live", ClientID: "c", ProtocolType: "consumer",
		Protocols:      []metastore.GroupProtocol{{Name: "range"}},
		SessionTimeout: 10 * time.Second, RebalanceTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Groups().Sync(ctx, group.SyncRequest{Group: "zz-live", MemberID: res.MemberID, Generation: res.Generation,
		Assignments: map[string][]byte{res.MemberID: nil}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Groups().CommitOffsets(ctx, "zz-live", res.MemberID, res.Generation,
		[]metastore.OffsetCommit{{Topic: "lagging", Offset: 2, LeaderEpoch: -1}}); err != nil {
		t.Fatal(err)
	}

	scanner := &countingScanner{GroupOffsetScanner: store}
	gl := &groupLag{store: scanner, logger: slog.New(slog.DiscardHandler), leaderPartition: b.hosted.leaderPartition, maxSeries: 10}
	lag := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lag"}, []string{"group", "topic", "partition"})
	gl.measure(ctx, lag, nil)
	if n := scanner.scans.Load(); n != 1 {
		t.Errorf("one measurement of 31 groups read the metastore %d times, want one scan", n)
	}
	if n := testutil.CollectAndCount(lag); n != 10 {
		t.Errorf("%d lag series of 31 groups, want the bound of 10", n)
	}
	if got := testutil.ToFloat64(lag.WithLabelValues("zz-live", "lagging", "0")); got != 3 {
		t.Errorf("lag of the group with members = %v, want 3 (it is measured first)", got)
	}
	if !gl.truncated {
		t.Error("a measurement that left groups out does not say so")
	}
}
