package broker

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/await"
)

// Replicas in the ISR are never throttled: at a rate of one byte a second
// on both sides, which would hold every batch after the first for about a
// minute, acks=all produce (20 s timeout each) to an RF=2 partition goes on
// as fast as without a throttle.
func TestReplicationThrottleSparesTheISR(t *testing.T) {
	c := startCoreCluster(t, 2, map[string]string{
		"leader.replication.throttled.rate": "1", "follower.replication.throttled.rate": "1",
	})
	leader := c.core(1)
	if _, err := leader.CreateTopic(context.Background(), TopicSpec{Name: "hot", Partitions: 1, ReplicationFactor: 2}); err != nil {
		t.Fatal(err)
	}
	appendRecords(t, leader, "hot", 0, 20)
	if st, _ := c.hosted(1, "hot", 0).State(); len(st.ISR) != 2 {
		t.Fatalf("ISR %v after acks=all produce, want both replicas", st.ISR)
	}
}

// A replica added to a partition within its leader's term (a move) fetches
// at once and joins the ISR.
func TestReplicaAddedWithinATermJoinsTheISR(t *testing.T) {
	c := startCoreCluster(t, 2, nil)
	ctx := context.Background()
	leader := c.core(1)
	if _, err := leader.CreateTopic(ctx, TopicSpec{Name: "m", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	appendRecords(t, leader, "m", 0, 10)
	states, err := c.store.PartitionStates(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	old := states[0]
	if !slices.Equal(old.Replicas, []int32{1}) {
		t.Fatalf("replicas %v, want [1]", old.Replicas)
	}
	next := old
	next.Replicas = []int32{1, 2}
	if _, err := c.store.CompareAndSwapPartitionState(ctx, old, next); err != nil {
		t.Fatal(err)
	}
	await.True(t, 30*time.Second, "broker 2 in the ISR", func() bool {
		st, _ := c.hosted(1, "m", 0).State()
		return slices.Contains(st.ISR, 2)
	})
	if st, _ := c.hosted(1, "m", 0).State(); st.LeaderEpoch != old.LeaderEpoch {
		t.Fatalf("leader epoch %d, want %d: the replica joined within the term", st.LeaderEpoch, old.LeaderEpoch)
	}
	if p := c.hosted(2, "m", 0); p == nil || p.LogEndOffset() != 10 {
		t.Fatalf("broker 2's replica %v does not hold the 10 records", p)
	}
}
