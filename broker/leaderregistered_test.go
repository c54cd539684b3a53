package broker

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/fakeclock"
	"github.com/strata-broker/strata/metastore"
)

// unreachable is a ClusterStore whose reads of the registrations fail; it
// counts them.
type unreachable struct {
	ClusterStore
	reads atomic.Int32
}

func (u *unreachable) Brokers(context.Context) ([]metastore.BrokerInfo, error) {
	u.reads.Add(1)
	return nil, errors.New("etcd unreachable")
}

func ids(brokers []metastore.BrokerInfo) []int32 {
	var out []int32
	for _, b := range brokers {
		out = append(out, b.NodeID)
	}
	return out
}

// A leader registered before the broker watch delivered it is listed by
// Metadata all the same, from a read of the registrations: the create that
// placed it applied the partition states before the broker watch caught
// up, and Metadata answered LEADER_NOT_AVAILABLE (leader -1) for a
// partition whose leader was registered and leading; franz-go's ListOffsets
// right after the create failed on it (TestReadCommittedConsumersWithoutTransactions,
// about one run in ten).
func TestMetadataListsALeaderTheBrokerWatchHasNotDelivered(t *testing.T) {
	clk := fakeclock.New(time.Now())
	store := &registrations{list: []metastore.BrokerInfo{{NodeID: 1}, {NodeID: 2}, {NodeID: 3}}}
	c := &clusterView{members: store, now: clk.Now, brokers: []metastore.BrokerInfo{{NodeID: 3}},
		states: map[tp]metastore.PartitionState{{Topic: "t", Partition: 0}: {Topic: "t", Partition: 0, Leader: 1, Replicas: []int32{1, 2, 3}}}}
	ctx := context.Background()
	known := map[string]metastore.Topic{"t": {Name: "t", Partitions: 1}}
	md := c.metadata([]string{"t"}, known)
	if got := ids(c.withLeadersRegistered(ctx, md)); !slices.Equal(got, []int32{1, 2, 3}) {
		t.Fatalf("brokers %v, want [1 2 3]: the leader's registration was not read", got)
	}
	// Many requests within an interval share one read.
	for range 100 {
		c.withLeadersRegistered(ctx, c.metadata([]string{"t"}, known))
	}
	if n := store.reads.Load(); n != 1 {
		t.Fatalf("%d reads of the registrations within one interval, want 1", n)
	}
	// Once the watch has delivered every leader, nothing is read.
	clk.Advance(secretReadInterval)
	c.brokers = store.list
	if got := ids(c.withLeadersRegistered(ctx, c.metadata([]string{"t"}, known))); !slices.Equal(got, []int32{1, 2, 3}) || store.reads.Load() != 1 {
		t.Fatalf("brokers %v after %d reads, want [1 2 3] after 1", got, store.reads.Load())
	}
	// A leader registered nowhere stays missing: it is unavailable.
	c.brokers = []metastore.BrokerInfo{{NodeID: 2}, {NodeID: 3}}
	store.list = c.brokers
	if got := ids(c.withLeadersRegistered(ctx, c.metadata([]string{"t"}, known))); !slices.Equal(got, []int32{2, 3}) {
		t.Fatalf("brokers %v, want [2 3]: a leader without a registration was listed", got)
	}

	// Without etcd, Metadata answers from the followed view, and a failed
	// read is not tried again within the interval.
	down := &unreachable{}
	c.members = down
	c.leaderRead = leaderRegistrations{}
	for range 100 {
		if got := ids(c.withLeadersRegistered(ctx, c.metadata([]string{"t"}, known))); !slices.Equal(got, []int32{2, 3}) {
			t.Fatalf("brokers %v without etcd, want the followed [2 3]", got)
		}
	}
	if n := down.reads.Load(); n != 1 {
		t.Fatalf("%d failed reads within one interval, want 1", n)
	}
}
