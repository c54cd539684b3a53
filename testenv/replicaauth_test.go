package testenv_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/broker/grpcapi"
	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// A caller that claims to be a paused follower in ReplicaFetch, without
// that broker's registration secret, is refused: it cannot acknowledge an
// acks=all write on the follower's behalf nor keep it in the ISR, so the
// produce is not acknowledged, the follower leaves the ISR, and when the
// leader then dies no acknowledged record is lost. (Before the secret, the
// forged fetch got the produce acknowledged at once, the follower stayed in
// the ISR, and the follower, elected after the leader was killed, lacked
// the acknowledged record.)
func TestForgedReplicaFetchCannotAcknowledgeWrites(t *testing.T) {
	const lag = 2 * time.Second // replica.lag.time.max.ms
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3,
		BrokerSettings: map[string]string{"replica.lag.time.max.ms": fmt.Sprint(lag.Milliseconds())}})
	clients := map[int32]stratav1.StrataClient{}
	for _, b := range c.Brokers() {
		clients[b.ID()] = testenvtest.Dial(t, b.GRPCAddr())
	}
	ctx := context.Background()
	if _, err := clients[1].CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "spoof", Partitions: 1, ReplicationFactor: 2,
		Configs: map[string]string{"min.insync.replicas": "2"}}); err != nil {
		t.Fatal(err)
	}
	// state asks broker id for the partition's leader, epoch and ISR.
	state := func(id int32) (*stratav1.PartitionInfo, error) {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		md, err := clients[id].Metadata(ctx, &stratav1.MetadataRequest{Topics: []string{"spoof"}})
		if err != nil {
			return nil, err
		}
		if len(md.GetTopics()) != 1 || len(md.GetTopics()[0].GetPartitions()) != 1 {
			return nil, fmt.Errorf("metadata %v", md)
		}
		return md.GetTopics()[0].GetPartitions()[0], nil
	}
	var st *stratav1.PartitionInfo
	await.True(t, 20*time.Second, "a leader and both replicas in sync", func() bool {
		var err error
		st, err = state(1)
		return err == nil && st.GetLeader() > 0 && len(st.GetIsr()) == 2
	})
	leader := st.GetLeader()
	follower := st.GetReplicas()[0]
	if follower == leader {
		follower = st.GetReplicas()[1]
	}

	// produce sends one record with acks=all and returns its offset once
	// acknowledged.
	produce := func(ctx context.Context, value string) (int64, error) {
		resp, err := clients[leader].Produce(ctx, &stratav1.ProduceRequest{Topic: "spoof", Acks: stratav1.Acks_ACKS_ALL,
			TimeoutMs: 15_000, Partitions: []*stratav1.ProducePartition{{Partition: 0, Records: []*stratav1.Record{{Value: []byte(value)}}}}})
		if err != nil {
			return -1, err
		}
		if pe := resp.GetPartitions()[0].GetError(); pe != nil {
			return -1, fmt.Errorf("%s: %s", pe.GetReason(), pe.GetMessage())
		}
		return resp.GetPartitions()[0].GetBaseOffset(), nil
	}
	// acked holds the value of every record acknowledged, by offset.
	acked := map[int64]string{}
	for i := range 3 {
		v := fmt.Sprint("before-", i)
		off, err := produce(ctx, v)
		if err != nil {
			t.Fatal(err)
		}
		acked[off] = v
	}

	if err := c.Broker(follower).Pause(); err != nil {
		t.Fatal(err)
	}
	// While the produce waits, play the follower: fetch from the leader's
	// log end as it grows, as broker `follower` would, with no secret and
	// then with a made-up one.
	type outcome struct {
		offset int64
		err    error
	}
	produced := make(chan outcome, 1)
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	go func() {
		off, err := produce(pctx, "while-paused")
		produced <- outcome{off, err}
	}()
	conn, err := grpc.NewClient(c.Broker(leader).GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	spoofer := stratav1.NewReplicationClient(conn)
	pos := int64(len(acked))
	var out outcome
	forged := []metadata.MD{nil, metadata.Pairs(grpcapi.ReplicaSecretMetadataKey, "guessed")}
	for i, served := 0, 0; ; i++ {
		done := false
		select {
		case out = <-produced:
			done = true
		default:
		}
		if done {
			break
		}
		fctx, fcancel := context.WithTimeout(metadata.NewOutgoingContext(ctx, forged[i%2]), 2*time.Second)
		resp, err := spoofer.ReplicaFetch(fctx, &stratav1.ReplicaFetchRequest{ReplicaId: follower, MaxWaitMs: 200, MinBytes: 1, MaxBytes: 1 << 20,
			Partitions: []*stratav1.ReplicaFetchPartition{{Topic: "spoof", Partition: 0, CurrentLeaderEpoch: st.GetLeaderEpoch(),
				FetchOffset: pos, LastFetchedEpoch: st.GetLeaderEpoch(), MaxBytes: 1 << 20}}})
		fcancel()
		if err == nil {
			if served++; served == 1 {
				t.Errorf("a forged ReplicaFetch claiming to be broker %d was served", follower)
			}
			for it := record.NewBatches(resp.GetPartitions()[0].GetRecordBatches()); it.Next(); {
				h := it.Header()
				pos = h.LastOffset() + 1
			}
			continue
		}
		if code := status.Code(err); code != codes.PermissionDenied {
			t.Fatalf("forged ReplicaFetch claiming to be broker %d: %v, want PermissionDenied", follower, err)
		}
		if i >= 1 {
			out = <-produced // both kinds refused: let the produce run its course
			break
		}
	}
	if out.err == nil {
		acked[out.offset] = "while-paused"
		t.Errorf("an acks=all produce was acknowledged (offset %d) while the only other ISR member was paused", out.offset)
	} else {
		t.Logf("the acks=all produce was not acknowledged: %v", out.err)
	}
	st, err = state(leader)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(st.GetIsr(), follower) {
		t.Errorf("the paused follower %d is still in the ISR %v", follower, st.GetIsr())
	}

	// The leader fails; the follower comes back, then the leader.
	c.Broker(leader).Kill()
	if err := c.Broker(follower).Resume(); err != nil {
		t.Fatal(err)
	}
	if err := c.Broker(leader).Start(ctx); err != nil {
		t.Fatal(err)
	}
	other := 6 - leader - follower // the broker that was never stopped
	await.True(t, 20*time.Second, "a leader, with the resumed follower back in sync", func() bool {
		st, err = state(other)
		return err == nil && st.GetLeader() > 0 && len(st.GetIsr()) == 2
	})
	got := fetchFrom(t, testenvtest.Dial(t, c.Broker(st.GetLeader()).GRPCAddr()), "spoof", 0, 0)
	if got.err != nil {
		t.Fatalf("reading the partition from its leader %d: %v", st.GetLeader(), got.err)
	}
	have := map[int64]string{}
	for _, r := range got.records {
		have[r.Offset] = string(r.Value)
	}
	for off, v := range acked {
		if have[off] != v {
			t.Errorf("offset %d was acknowledged with %q; leader %d has %q", off, v, st.GetLeader(), have[off])
		}
	}
}
