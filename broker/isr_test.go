package broker

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/internal/fakeclock"
)

// A follower that stops fetching leaves the ISR once replica.lag.time.max.ms
// has passed on the leader's clock since it was last caught up, and not
// before: the decision follows the broker's clock, so a fake one makes it
// at an exact time, with no real wait.
func TestISRShrinksPastReplicaLagOnTheBrokerClock(t *testing.T) {
	clk := fakeclock.New(time.Now())
	// The default replica.lag.time.max.ms, 30 s: on the real clock the
	// test would wait that long.
	c := startCoreClusterOn(t, 2, nil, clk.Now)
	ctx := context.Background()
	if _, err := c.core(1).CreateTopic(ctx, TopicSpec{Name: "i", Partitions: 1, ReplicationFactor: 2}); err != nil {
		t.Fatal(err)
	}
	var leader, follower int32
	await.True(t, 30*time.Second, "a leader and a full ISR", func() bool {
		p := c.hosted(1, "i", 0)
		if p == nil {
			return false
		}
		st, _ := p.State()
		leader = st.Leader
		return leader > 0 && len(st.ISR) == 2
	})
	follower = 3 - leader
	appendRecords(t, c.core(leader), "i", 0, 3)
	await.True(t, 30*time.Second, "the follower caught up", func() bool {
		p := c.hosted(follower, "i", 0)
		return p != nil && p.LogEndOffset() == 3
	})
	lp := c.hosted(leader, "i", 0)
	isr := func() []int32 {
		st, _ := lp.State()
		return st.ISR
	}

	c.stop(follower)
	clk.Advance(c.core(leader).isr.lagMax)
	c.core(leader).isr.shrink(ctx, lp, clk.Now())
	if got := isr(); len(got) != 2 {
		t.Fatalf("ISR %v at replica.lag.time.max.ms after the follower stopped, want both replicas still", got)
	}

	clk.Advance(time.Millisecond)
	c.core(leader).isr.shrink(ctx, lp, clk.Now())
	// The background check may have been making the same change.
	await.True(t, 30*time.Second, "the stopped follower out of the ISR", func() bool {
		return slices.Equal(isr(), []int32{leader})
	})
}
