package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/metastore"
)

// follower plays broker 2, following partition 0 of topic "r" from the
// broker at addr through a ReplicaClient, as a fetcher does: one receive
// buffer, reused by every fetch.
type follower struct {
	rc     *ReplicaClient
	addr   string
	secret metastore.ReplicaSecret // broker 2's
	recv   []byte
	pos    int64 // the follower's log end offset
}

func newFollower(t *testing.T, addr string, secret metastore.ReplicaSecret) *follower {
	t.Helper()
	rc := NewReplicaClient(nil)
	t.Cleanup(func() { rc.Close() })
	return &follower{rc: rc, addr: addr, secret: secret}
}

// fetch sends one replica fetch from f.pos.
func (f *follower) fetch(ctx context.Context, maxWait time.Duration, minBytes, partBytes int32) (broker.ReplicaFetchResult, error) {
	lastEpoch := int32(-1)
	if f.pos > 0 {
		lastEpoch = 0 // the topic's first and only leader epoch
	}
	results, err := f.rc.ReplicaFetch(ctx, f.addr, broker.ReplicaFetchRequest{
		ReplicaID: 2, Secret: f.secret, MaxWait: maxWait, MinBytes: minBytes, MaxBytes: 1 << 20,
		Partitions: []broker.ReplicaFetchPartition{{
			Topic: "r", Partition: 0, FetchOffset: f.pos, LastFetchedEpoch: lastEpoch, MaxBytes: partBytes,
		}},
		Receive: &f.recv,
	})
	if err != nil {
		return broker.ReplicaFetchResult{}, err
	}
	if len(results) != 1 {
		return broker.ReplicaFetchResult{}, errors.New("not one result")
	}
	return results[0], results[0].Err
}

// TestReplicaFetchGivesBuffersBackAfterSending follows a partition through
// both ends of the replication codec: every record arrives intact, the
// batches alias the follower's receive buffer, and every read buffer of the
// leader returns to the pool, poisoned, only after it was sent.
func TestReplicaFetchGivesBuffersBackAfterSending(t *testing.T) {
	c, pool, addr, secrets := startBrokerWithPeers(t, 2)
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "r", Partitions: 1, ReplicationFactor: 2}); err != nil {
		t.Fatal(err)
	}
	const batches, perBatch = 20, 150 // ~150 KB batches
	for b := range batches {
		produce(t, c, "r", 0, b*perBatch, perBatch)
	}
	total := int64(batches * perBatch)
	f := newFollower(t, addr, secrets[2])
	for f.pos < total {
		res, err := f.fetch(ctx, time.Second, 1, 400<<10)
		if err != nil {
			t.Fatalf("fetch from %d: %v", f.pos, err)
		}
		if len(res.Data) == 0 || !within(f.recv, res.Data) {
			t.Fatalf("fetch from %d: %d bytes, not in the receive buffer", f.pos, len(res.Data))
		}
		if f.pos, err = checkBatches(res.Data, f.pos); err != nil {
			t.Fatal(err)
		}
	}
	// Caught up: the follower's fetch moves the high watermark to the end.
	res, err := f.fetch(ctx, 20*time.Millisecond, 1, 400<<10)
	if err != nil || len(res.Data) != 0 || res.HighWatermark != total {
		t.Fatalf("caught-up fetch: %d bytes, high watermark %d (want %d), %v", len(res.Data), res.HighWatermark, total, err)
	}
	pool.waitAllBack(t, 0)
}

// TestReplicaLongPollGivesBuffersBack: a replica fetch waiting for more than
// there is reads again when an append wakes it, and gives back what it read
// before; one cancelled while waiting gives back what it holds.
func TestReplicaLongPollGivesBuffersBack(t *testing.T) {
	c, pool, addr, secrets := startBrokerWithPeers(t, 2)
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "r", Partitions: 1, ReplicationFactor: 2}); err != nil {
		t.Fatal(err)
	}
	const perBatch = 150
	produce(t, c, "r", 0, 0, perBatch)
	f := newFollower(t, addr, secrets[2])

	// One batch is there; the fetch wants more than one.
	type answer struct {
		res broker.ReplicaFetchResult
		err error
	}
	answers := make(chan answer, 1)
	go func() {
		res, err := f.fetch(ctx, 10*time.Second, perBatch*valueSize*3/2, 1<<20)
		answers <- answer{res, err}
	}()
	waitReads(t, pool, 1)
	produce(t, c, "r", 0, perBatch, perBatch)
	a := <-answers
	if a.err != nil {
		t.Fatal(a.err)
	}
	if next, err := checkBatches(a.res.Data, 0); err != nil || next != 2*perBatch {
		t.Fatalf("read to %d: %v", next, err)
	}
	if gets, _ := pool.counts(); gets < 2 {
		t.Fatalf("%d reads; want one before waiting and one after the append", gets)
	}
	pool.waitAllBack(t, 0)

	// Cancelled while waiting with a batch read.
	gets, _ := pool.counts()
	callCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		res, err := f.fetch(callCtx, 10*time.Second, 10<<20, 1<<20)
		answers <- answer{res, err}
	}()
	waitReads(t, pool, gets+1)
	cancel()
	if a := <-answers; a.err == nil {
		t.Fatal("a cancelled fetch returned no error")
	}
	pool.waitAllBack(t, 0)
}

// waitReads waits until the pool has handed out n buffers.
func waitReads(t *testing.T, pool *poisonPool, n int) {
	t.Helper()
	await.True(t, 10*time.Second, fmt.Sprintf("%d reads", n), func() bool {
		gets, _ := pool.counts()
		return gets >= n
	})
}

// ReplicaFetch over gRPC: the follower's secret travels in the call's
// metadata; a call without it, or with another, is PERMISSION_DENIED, and
// one with it is served.
func TestReplicaFetchNeedsTheReplicaSecret(t *testing.T) {
	c, _, addr, secrets := startBrokerWithPeers(t, 2)
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "r", Partitions: 1, ReplicationFactor: 2}); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	rc := stratav1.NewReplicationClient(conn)
	req := &stratav1.ReplicaFetchRequest{ReplicaId: 2, MinBytes: 1, MaxBytes: 1 << 20,
		Partitions: []*stratav1.ReplicaFetchPartition{{Topic: "r", FetchOffset: 0, LastFetchedEpoch: -1, MaxBytes: 1 << 20}}}
	for name, md := range map[string]metadata.MD{
		"without a secret":    nil,
		"with a wrong secret": metadata.Pairs(ReplicaSecretMetadataKey, "not-the-secret"),
		"with two secrets":    metadata.Pairs(ReplicaSecretMetadataKey, "not-the-secret", ReplicaSecretMetadataKey, string(secrets[2])),
	} {
		if _, err := rc.ReplicaFetch(metadata.NewOutgoingContext(ctx, md), req); status.Code(err) != codes.PermissionDenied {
			t.Errorf("ReplicaFetch %s: %v, want PermissionDenied", name, err)
		}
	}
	resp, err := rc.ReplicaFetch(metadata.AppendToOutgoingContext(ctx, ReplicaSecretMetadataKey, string(secrets[2])), req)
	if err != nil {
		t.Fatalf("ReplicaFetch with broker 2's secret: %v", err)
	}
	if pe := resp.GetPartitions()[0].GetError(); pe != nil {
		t.Fatalf("ReplicaFetch with broker 2's secret: %v", pe)
	}
}

// WriteTxnMarkers over gRPC, as one broker's ReplicaClient sends it to
// another: the marker is written for the caller with a broker's secret, and
// each partition's refusal comes back with its kind (a fenced coordinator
// is not a moved leader); without the secret nothing is served.
func TestWriteTxnMarkersOverGRPC(t *testing.T) {
	c, _, addr, secrets := startBrokerWithPeers(t, 2)
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "m", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	rc := NewReplicaClient(nil)
	t.Cleanup(func() { rc.Close() })
	send := func(secret metastore.ReplicaSecret, coordinatorEpoch int32, tps ...metastore.TopicPartition) ([]broker.TxnMarkerPartitionResult, error) {
		res, err := rc.WriteTxnMarkers(ctx, addr, broker.WriteTxnMarkersRequest{BrokerID: 2, Secret: secret, Markers: []broker.TxnMarker{{
			ProducerID: 5, ProducerEpoch: 0, Commit: true, CoordinatorEpoch: coordinatorEpoch, Partitions: tps}}})
		if err != nil {
			return nil, err
		}
		if len(res) != 1 || res[0].ProducerID != 5 || len(res[0].Partitions) != len(tps) {
			t.Fatalf("results %+v for %d partitions", res, len(tps))
		}
		return res[0].Partitions, nil
	}
	m0 := metastore.TopicPartition{Topic: "m", Partition: 0}
	await.True(t, 30*time.Second, "the marker written", func() bool {
		res, err := send(secrets[2], 3, m0)
		if err != nil {
			t.Fatal(err)
		}
		return res[0].Err == nil // the leader may not have opened the partition yet
	})
	res, err := send(secrets[2], 2, m0, metastore.TopicPartition{Topic: "nope", Partition: 0})
	if err != nil {
		t.Fatal(err)
	}
	if k := broker.Classify(res[0].Err); k != broker.KindTransactionCoordinatorFenced {
		t.Fatalf("marker of an older coordinator epoch: %v (kind %d), want TRANSACTION_COORDINATOR_FENCED", res[0].Err, k)
	}
	if k := broker.Classify(res[1].Err); k != broker.KindUnknownTopicOrPartition || res[1].Topic != "nope" {
		t.Fatalf("marker for a missing topic: %+v (kind %d), want UNKNOWN_TOPIC_OR_PARTITION", res[1], k)
	}
	if _, err := send("not-the-secret", 4, m0); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("markers with a wrong secret: %v, want PermissionDenied", err)
	}
}
