package broker

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/fakeclock"
	"github.com/strata-broker/strata/metastore"
)

// registrations is a ClusterStore whose Brokers is etcd's answer; it counts
// the reads.
type registrations struct {
	ClusterStore
	list  []metastore.BrokerInfo
	reads atomic.Int32
}

func (r *registrations) Brokers(context.Context) ([]metastore.BrokerInfo, error) {
	r.reads.Add(1)
	return r.list, nil
}

// A follower registered just before the leader's broker watch delivered it
// is recognised by its secret all the same: the leader confirms a secret
// its followed view lacks with a read of the registrations. Before, such a
// follower was refused for as long as the watch lagged, stayed in the ISR
// without a record, and was elected after the leader was cut off: 404,000
// records acknowledged with acks=1 were lost (a fresh-clone CI run of
// TestLeaderCutOffFromEtcdStopsTakingWrites).
func TestReplicaSecretConfirmedWhenTheWatchLags(t *testing.T) {
	secret, err := metastore.NewReplicaSecret()
	if err != nil {
		t.Fatal(err)
	}
	other, err := metastore.NewReplicaSecret()
	if err != nil {
		t.Fatal(err)
	}
	clk := fakeclock.New(time.Now())
	store := &registrations{list: []metastore.BrokerInfo{{NodeID: 1, Epoch: 5}, {NodeID: 2, Epoch: 6, ReplicaSecret: secret}}}
	c := &clusterView{members: store, now: clk.Now, brokers: []metastore.BrokerInfo{{NodeID: 1, Epoch: 5}}}
	ctx := context.Background()
	if !c.replicaSecretMatches(ctx, 2, secret) {
		t.Fatal("broker 2's secret refused while only etcd had its registration")
	}
	// A wrong secret is refused whichever list is read, and a flood of them
	// costs etcd one read per interval.
	for range 100 {
		if c.replicaSecretMatches(ctx, 2, other) {
			t.Fatal("another secret accepted for broker 2")
		}
		if c.replicaSecretMatches(ctx, 3, secret) {
			t.Fatal("broker 2's secret accepted for broker 3")
		}
	}
	if n := store.reads.Load(); n != 1 {
		t.Fatalf("%d reads of the registrations within one interval, want 1", n)
	}
	clk.Advance(secretReadInterval)
	c.replicaSecretMatches(ctx, 2, other)
	if n := store.reads.Load(); n != 2 {
		t.Fatalf("%d reads after the interval, want 2", n)
	}
	// Once the watch has delivered it, the followed view answers alone.
	c.brokers = store.list
	if !c.replicaSecretMatches(ctx, 2, secret) || store.reads.Load() != 2 {
		t.Fatalf("followed registration not used (reads %d)", store.reads.Load())
	}

	// Broker 2 registers again with a new secret; the watch still has the
	// old registration. The new secret is confirmed by a read, and from
	// then the old one is refused: the read's registration is the newer.
	clk.Advance(secretReadInterval)
	store.list = []metastore.BrokerInfo{{NodeID: 1, Epoch: 5}, {NodeID: 2, Epoch: 9, ReplicaSecret: other}}
	if !c.replicaSecretMatches(ctx, 2, other) {
		t.Fatal("the new registration's secret refused")
	}
	if c.replicaSecretMatches(ctx, 2, secret) {
		t.Fatal("the replaced registration's secret accepted")
	}
}
