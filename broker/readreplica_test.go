package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/topicconfig"
)

// rackSet returns the racks of a partition's replicas in a cluster started
// with startCoreClusterIn(racks).
func rackSet(racks []string, replicas []int32) map[string]bool {
	out := map[string]bool{}
	for _, id := range replicas {
		out[racks[id-1]] = true
	}
	return out
}

// New topics and new partitions put each partition's replicas in distinct
// racks; round-robin by id put partition 0 of this cluster on brokers 1
// and 2, both in rack a.
func TestCreateTopicPlacesReplicasAcrossRacks(t *testing.T) {
	racks := []string{"a", "a", "b", "b"}
	c := startCoreClusterIn(t, racks, nil, nil)
	ctx := context.Background()
	admin := c.core(1)
	d, err := admin.CreateTopic(ctx, TopicSpec{Name: "spread", Partitions: 4, ReplicationFactor: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.CreatePartitions(ctx, "spread", 8, nil, false); err != nil {
		t.Fatal(err)
	}
	states, err := c.store.PartitionStates(ctx, "spread")
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 8 {
		t.Fatalf("%d partitions, want 8", len(states))
	}
	leaders := map[int32]int{}
	for _, st := range states {
		if got := rackSet(racks, st.Replicas); len(got) != 2 {
			t.Errorf("partition %d: replicas %v in racks %v, want both racks", st.Partition, st.Replicas, got)
		}
		leaders[st.Leader]++
	}
	for id := int32(1); id <= 4; id++ {
		if leaders[id] != 2 {
			t.Errorf("leaders per broker %v, want 2 each", leaders)
		}
	}
	// The description CreateTopic returned shows the same placement.
	for _, p := range d.Partitions {
		if !slices.Equal(p.Replicas, states[p.Partition].Replicas) {
			t.Errorf("partition %d: described %v, stored %v", p.Partition, p.Replicas, states[p.Partition].Replicas)
		}
	}
}

// rackCluster is a three-broker core cluster in racks a, b, c with follower
// fetching on, and a topic "r" of one partition led by broker 1 (rack a)
// and replicated to brokers 2 and 3, holding n committed records that every
// follower knows to be committed.
func rackCluster(t *testing.T, selector string, n int) *coreCluster {
	t.Helper()
	settings := map[string]string{}
	if selector != "" {
		settings["replica.selector.class"] = selector
	}
	c := startCoreClusterIn(t, []string{"a", "b", "c"}, settings, nil)
	if _, err := c.core(1).CreateTopic(context.Background(), TopicSpec{Name: "r", Partitions: 1, ReplicationFactor: 3,
		Configs: map[string]string{"min.insync.replicas": "3"}}); err != nil {
		t.Fatal(err)
	}
	for id := int32(1); id <= 3; id++ {
		await.True(t, 30*time.Second, fmt.Sprint("broker ", id, " hosting r-0"), func() bool { return c.hosted(id, "r", 0) != nil })
	}
	await.True(t, 30*time.Second, "broker 1 leading r-0", func() bool {
		_, err := c.core(1).hosted.leaderPartition("r", 0)
		return err == nil
	})
	appendRecords(t, c.core(1), "r", 0, n)
	for id := int32(2); id <= 3; id++ {
		await.True(t, 30*time.Second, fmt.Sprint("broker ", id, " knowing ", n, " records committed"), func() bool {
			return c.hosted(id, "r", 0).HighWatermark() == int64(n)
		})
	}
	return c
}

func fetchOne(t *testing.T, b *Broker, offset int64, opts FetchOptions) FetchResult {
	t.Helper()
	res, err := b.Fetch(context.Background(), []FetchPartition{{Topic: "r", Partition: 0, Offset: offset}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res[0]
}

func recordsIn(t *testing.T, res FetchResult, from int64) int {
	t.Helper()
	n := 0
	it := record.NewBatches(res.Data)
	for it.Next() {
		if err := record.ForEach(it.Bytes(), func(r *record.Record) error {
			if r.Offset >= from {
				n++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// A leader sends a consumer naming another rack to the in-sync replica
// there, and keeps consumers of its own rack, of a rack without a replica
// and naming none.
func TestLeaderPrefersReplicaInConsumersRack(t *testing.T) {
	c := rackCluster(t, topicconfig.RackAwareReplicaSelector, 5)
	leader := c.core(1)
	for rack, want := range map[string]int32{"b": 2, "c": 3, "a": -1, "d": -1, "": -1} {
		res := fetchOne(t, leader, 0, FetchOptions{FollowerReads: true, ClientRack: rack, RedirectToRackReplica: true})
		if res.Err != nil || res.PreferredReadReplica != want {
			t.Fatalf("rack %q: preferred %d, err %v; want %d", rack, res.PreferredReadReplica, res.Err, want)
		}
		if want >= 0 && (len(res.Data) > 0 || res.HighWatermark != 5) {
			t.Fatalf("rack %q: a redirect carries %d bytes, high watermark %d", rack, len(res.Data), res.HighWatermark)
		}
		if want < 0 && recordsIn(t, res, 0) != 5 {
			t.Fatalf("rack %q: the leader returned %d records, want 5", rack, recordsIn(t, res, 0))
		}
		// A client that cannot act on a redirect (the gRPC API) is served.
		if res := fetchOne(t, leader, 0, FetchOptions{FollowerReads: true, ClientRack: rack}); res.PreferredReadReplica != -1 || recordsIn(t, res, 0) != 5 {
			t.Fatalf("rack %q without redirects: preferred %d, %d records", rack, res.PreferredReadReplica, recordsIn(t, res, 0))
		}
	}
	// A replica that does not have the offset is not preferred.
	if res := fetchOne(t, leader, 6, FetchOptions{FollowerReads: true, ClientRack: "b", RedirectToRackReplica: true}); res.PreferredReadReplica != -1 {
		t.Fatalf("offset 6 past every log: preferred %d", res.PreferredReadReplica)
	}
	// Nor one whose broker left the cluster (unregistered, and so soon out
	// of the ISR too).
	c.stop(2)
	if err := c.regs[2].Close(); err != nil {
		t.Fatal(err)
	}
	await.True(t, 30*time.Second, "the leader to stop preferring broker 2 once it is unregistered", func() bool {
		return fetchOne(t, leader, 0, FetchOptions{FollowerReads: true, ClientRack: "b", RedirectToRackReplica: true}).PreferredReadReplica == -1
	})
}

// Without replica.selector.class (Kafka's default) consumers stay on the
// leader, and followers still serve those that come to them.
func TestNoPreferredReplicaWithoutSelector(t *testing.T) {
	c := rackCluster(t, "", 3)
	if res := fetchOne(t, c.core(1), 0, FetchOptions{FollowerReads: true, ClientRack: "b", RedirectToRackReplica: true}); res.PreferredReadReplica != -1 || recordsIn(t, res, 0) != 3 {
		t.Fatalf("preferred %d, %d records; want the leader's 3", res.PreferredReadReplica, recordsIn(t, res, 0))
	}
	if res := fetchOne(t, c.core(2), 0, FetchOptions{FollowerReads: true, ClientRack: "b"}); res.Err != nil || recordsIn(t, res, 0) != 3 {
		t.Fatalf("follower: %d records, %v", recordsIn(t, res, 0), res.Err)
	}
}

func TestFollowerServesConsumersUpToItsHighWatermark(t *testing.T) {
	c := rackCluster(t, topicconfig.RackAwareReplicaSelector, 4)
	follower := c.core(2)

	// Only fetches allowing it are served by a follower.
	if res := fetchOne(t, follower, 0, FetchOptions{ClientRack: "b"}); !errors.Is(res.Err, ErrNotLeader) {
		t.Fatalf("fetch without follower reads: %v, want ErrNotLeader", res.Err)
	}
	before := testutil.ToFloat64(follower.metrics.consumerBytes.WithLabelValues(rackSame))
	res := fetchOne(t, follower, 0, FetchOptions{FollowerReads: true, ClientRack: "b"})
	if res.Err != nil || res.PreferredReadReplica != -1 || res.HighWatermark != 4 || recordsIn(t, res, 0) != 4 {
		t.Fatalf("follower: %d records, high watermark %d, preferred %d, %v", recordsIn(t, res, 0), res.HighWatermark, res.PreferredReadReplica, res.Err)
	}
	if got := testutil.ToFloat64(follower.metrics.consumerBytes.WithLabelValues(rackSame)) - before; got != float64(len(res.Data)) {
		t.Fatalf("same-rack bytes grew by %v, want %d", got, len(res.Data))
	}
	otherBefore := testutil.ToFloat64(follower.metrics.consumerBytes.WithLabelValues(rackOther))
	res = fetchOne(t, follower, 0, FetchOptions{FollowerReads: true, ClientRack: "c"})
	if got := testutil.ToFloat64(follower.metrics.consumerBytes.WithLabelValues(rackOther)) - otherBefore; got != float64(len(res.Data)) || got == 0 {
		t.Fatalf("cross-rack bytes grew by %v, want %d", got, len(res.Data))
	}

	// At and past its high watermark a follower has nothing yet, which is
	// not out of range: it may lag the leader.
	for _, off := range []int64{4, 50} {
		if res := fetchOne(t, follower, off, FetchOptions{FollowerReads: true}); res.Err != nil || len(res.Data) != 0 {
			t.Fatalf("offset %d: %d bytes, %v; want none and no error", off, len(res.Data), res.Err)
		}
	}
	if res := fetchOne(t, follower, -1, FetchOptions{FollowerReads: true}); res.Err == nil {
		t.Fatal("offset -1 was not out of range")
	}

	// A consumer waiting on the follower is answered once the follower
	// learns that new records are committed.
	got := make(chan FetchResult, 1)
	go func() {
		res, err := follower.Fetch(context.Background(), []FetchPartition{{Topic: "r", Partition: 0, Offset: 4}},
			FetchOptions{FollowerReads: true, MinBytes: 1, MaxWait: 30 * time.Second})
		if err != nil {
			res = []FetchResult{{Err: err}}
		}
		got <- res[0]
	}()
	appendRecords(t, c.core(1), "r", 0, 2)
	select {
	case res := <-got:
		if res.Err != nil || recordsIn(t, res, 4) == 0 {
			t.Fatalf("long poll on the follower: %d records, %v", recordsIn(t, res, 4), res.Err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a consumer waiting on the follower was not woken by its high watermark")
	}
}

// With follower fetching on, a follower's fetch that moves the high
// watermark (its log end was the last the ISR lacked) is answered at once
// with it, not at the end of its long poll: consumers reading from the
// follower would otherwise see every record a poll (500 ms) late.
func TestReplicaFetchAnswersANewHighWatermarkAtOnce(t *testing.T) {
	c := startCoreClusterIn(t, []string{"a", "b"}, map[string]string{"replica.selector.class": topicconfig.RackAwareReplicaSelector}, nil)
	ctx := context.Background()
	if _, err := c.core(1).CreateTopic(ctx, TopicSpec{Name: "r", Partitions: 1, ReplicationFactor: 2}); err != nil {
		t.Fatal(err)
	}
	await.True(t, 30*time.Second, "broker 1 leading r-0 with both replicas in sync", func() bool {
		p := c.hosted(1, "r", 0)
		if p == nil {
			return false
		}
		st, r := p.State()
		return r == roleLeader && len(st.ISR) == 2
	})
	appendRecords(t, c.core(1), "r", 0, 2)
	await.True(t, 30*time.Second, "broker 2 knowing the records committed", func() bool {
		p := c.hosted(2, "r", 0)
		return p != nil && p.HighWatermark() == 2
	})
	// Broker 2 stops fetching; this test fetches in its place.
	c.stop(2)
	leader, lp := c.core(1), c.hosted(1, "r", 0)
	leaderProduce(t, leader, "r", 1) // offset 2, which the ISR lacks
	st, _ := lp.State()
	fetch := func(offset int64) ReplicaFetchResult {
		t.Helper()
		// Well inside the 30 s poll: a fetch that waits it out fails.
		callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		res, err := leader.ReplicaFetch(callCtx, ReplicaFetchRequest{ReplicaID: 2, Secret: c.regs[2].ReplicaSecret(),
			MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 30 * time.Second,
			Partitions: []ReplicaFetchPartition{{Topic: "r", TopicID: st.TopicID, Partition: 0, CurrentLeaderEpoch: st.LeaderEpoch,
				FetchOffset: offset, LastFetchedEpoch: st.LeaderEpoch, MaxBytes: 1 << 20}}})
		if err != nil {
			t.Fatalf("replica fetch at %d: %v", offset, err)
		}
		if res[0].Err != nil {
			t.Fatalf("replica fetch at %d: %v", offset, res[0].Err)
		}
		return res[0]
	}
	if res := fetch(2); len(res.Data) == 0 || res.HighWatermark != 2 {
		t.Fatalf("fetch at 2: %d bytes, high watermark %d; want offset 2 and 2", len(res.Data), res.HighWatermark)
	}
	// Having offset 2, the follower's fetch commits it: nothing new to
	// send but the high watermark.
	if res := fetch(3); len(res.Data) != 0 || res.HighWatermark != 3 {
		t.Fatalf("fetch at 3: %d bytes, high watermark %d; want none and 3", len(res.Data), res.HighWatermark)
	}
}
