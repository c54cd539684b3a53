package broker

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/internal/fakeclock"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/record"
)

// A replica fetch is served only to the broker it claims to come from: one
// without that broker's registration secret (none, another broker's, a
// made-up one, the previous registration's) is refused with
// ErrClusterAuthorizationFailed and moves neither the high watermark nor
// the ISR, while the follower's own secret does both.
func TestReplicaFetchServesOnlyTheFollowerItClaims(t *testing.T) {
	clk := fakeclock.New(time.Now())
	c := startCoreClusterOn(t, 2, nil, clk.Now)
	ctx := context.Background()
	if _, err := c.core(1).CreateTopic(ctx, TopicSpec{Name: "s", Partitions: 1, ReplicationFactor: 2}); err != nil {
		t.Fatal(err)
	}
	var leader int32
	await.True(t, 30*time.Second, "a leader and a full ISR", func() bool {
		p := c.hosted(1, "s", 0)
		if p == nil {
			return false
		}
		st, _ := p.State()
		leader = st.Leader
		return leader > 0 && len(st.ISR) == 2
	})
	follower := 3 - leader
	appendRecords(t, c.core(leader), "s", 0, 3)
	await.True(t, 30*time.Second, "the follower caught up", func() bool {
		p := c.hosted(follower, "s", 0)
		return p != nil && p.LogEndOffset() == 3
	})
	c.stop(follower)
	lb, lp := c.core(leader), c.hosted(leader, "s", 0)
	leaderProduce(t, lb, "s", 2) // offsets 3 and 4, which only the leader has
	st, _ := lp.State()

	// What the follower would send once it had offsets 3 and 4.
	fetch := func(secret metastore.ReplicaSecret) error {
		_, err := lb.ReplicaFetch(ctx, ReplicaFetchRequest{ReplicaID: follower, Secret: secret, MinBytes: 1, MaxBytes: 1 << 20,
			Partitions: []ReplicaFetchPartition{{Topic: "s", Partition: 0, CurrentLeaderEpoch: st.LeaderEpoch,
				FetchOffset: lp.LogEndOffset(), LastFetchedEpoch: st.LeaderEpoch, MaxBytes: 1 << 20}}})
		return err
	}
	made, err := metastore.NewReplicaSecret()
	if err != nil {
		t.Fatal(err)
	}
	forged := map[string]metastore.ReplicaSecret{
		"none":                  "",
		"the leader's own":      c.regs[leader].ReplicaSecret(),
		"made up":               made,
		"the secret's prefix":   c.regs[follower].ReplicaSecret()[:10],
		"the secret and a tail": c.regs[follower].ReplicaSecret() + "x",
	}
	// Every forged fetch is made with the clock a little further on, so
	// that one recorded would show in the follower's last fetch time.
	refuse := func(when string) {
		t.Helper()
		hw, before := lp.HighWatermark(), followerProgress(lp, follower)
		for name, secret := range forged {
			clk.Advance(time.Millisecond)
			if err := fetch(secret); !errors.Is(err, ErrClusterAuthorizationFailed) {
				t.Errorf("%s: a fetch as broker %d with %s secret: %v, want cluster authorization failed", when, follower, name, err)
			}
			if got := followerProgress(lp, follower); got != before {
				t.Fatalf("%s: a fetch as broker %d with %s secret was recorded: %+v, before %+v", when, follower, name, got, before)
			}
			if got := lp.HighWatermark(); got != hw {
				t.Fatalf("%s: a fetch as broker %d with %s secret moved the high watermark from %d to %d", when, follower, name, hw, got)
			}
		}
	}
	refuse("follower in the ISR")

	// Past replica.lag.time.max.ms the stopped follower leaves the ISR, and
	// forged fetches do not bring it back.
	clk.Advance(lb.isr.lagMax + time.Millisecond)
	lb.isr.shrink(ctx, lp, clk.Now())
	isr := func() []int32 {
		st, _ := lp.State()
		return st.ISR
	}
	await.True(t, 30*time.Second, "the stopped follower out of the ISR", func() bool {
		return slices.Equal(isr(), []int32{leader})
	})
	refuse("follower out of the ISR")
	if got := isr(); !slices.Equal(got, []int32{leader}) {
		t.Fatalf("ISR %v after forged fetches, want only the leader %d", got, leader)
	}

	// A follower that registers again fetches with its new secret; the old
	// one is refused from then on.
	old := c.regs[follower].ReplicaSecret()
	if err := c.regs[follower].Close(); err != nil {
		t.Fatal(err)
	}
	reg, err := c.store.RegisterBroker(ctx, metastore.BrokerInfo{NodeID: follower, GRPCAddr: coreAddr(follower), StartedAt: time.Now()}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	forged["the previous registration's"] = old
	// The leader learns of the registration through its follow.
	await.True(t, 30*time.Second, "the leader to accept the new registration's secret", func() bool {
		return fetch(reg.ReplicaSecret()) == nil
	})
	if got := lp.HighWatermark(); got != lp.LogEndOffset() {
		t.Fatalf("high watermark %d after the follower's own fetch at %d", got, lp.LogEndOffset())
	}
	refuse("after registering again")
	await.True(t, 30*time.Second, "the follower back in the ISR after its own fetch", func() bool {
		return slices.Equal(isr(), []int32{1, 2})
	})
}

// leaderProduce appends n one-record batches with acks=1: they need no
// follower.
func leaderProduce(t *testing.T, b *Broker, topic string, n int) {
	t.Helper()
	for range n {
		bld := record.NewBuilder(time.Now().UnixMilli(), 0)
		bld.Append(&record.Record{Value: []byte("v")})
		batch, err := bld.Build(record.None)
		if err != nil {
			t.Fatal(err)
		}
		res, err := b.ProduceWithTimeout(context.Background(), topic, AcksLeader, 10*time.Second,
			[]PartitionBatches{{Partition: 0, Batches: append([]byte(nil), batch...)}})
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Err != nil {
			t.Fatal(res[0].Err)
		}
	}
}

// followerProgress is what the leader p has recorded of follower id's
// fetches.
func followerProgress(p *Partition, id int32) followerState {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f := p.followers[id]; f != nil {
		return *f
	}
	return followerState{}
}
