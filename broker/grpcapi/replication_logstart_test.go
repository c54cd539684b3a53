package grpcapi

import (
	"context"
	"errors"
	"testing"
	"time"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/partlog"
)

// startLeaderCore serves broker 1 over gRPC, with broker 2 registered as a
// peer the test plays, and returns its core and broker 2's replica secret
// too.
func startLeaderCore(t *testing.T) (*broker.Broker, stratav1.StrataClient, string, metastore.ReplicaSecret) {
	t.Helper()
	secrets := map[int32]metastore.ReplicaSecret{}
	b, c, addr := serveBroker(t, testBroker{peers: []int32{2}, secrets: secrets})
	return b, c, addr, secrets[2]
}

// The leader's log start reaches a follower through the replication wire,
// and a fetch below it comes back as an *OffsetOutOfRangeError naming it,
// which the follower's fetcher acts on.
func TestReplicaFetchCarriesLogStart(t *testing.T) {
	b, c, addr, secret := startLeaderCore(t)
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "r", Partitions: 1, ReplicationFactor: 2}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		produce(t, c, "r", 0, i*5, 5)
	}
	f := newFollower(t, addr, secret)
	for f.pos < 20 {
		res, err := f.fetch(ctx, time.Second, 1, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if f.pos, err = checkBatches(res.Data, f.pos); err != nil {
			t.Fatal(err)
		}
	}
	// Caught up: the high watermark reaches the end, and records can go.
	if res, err := f.fetch(ctx, 0, 1, 1<<20); err != nil || res.HighWatermark != 20 || res.LogStartOffset != 0 {
		t.Fatalf("caught-up fetch: high watermark %d, log start %d, %v", res.HighWatermark, res.LogStartOffset, err)
	}
	if low, err := b.DeleteRecords(ctx, "r", 0, 10); err != nil || low != 10 {
		t.Fatalf("DeleteRecords(10) = %d, %v", low, err)
	}
	if res, err := f.fetch(ctx, 0, 1, 1<<20); err != nil || res.LogStartOffset != 10 {
		t.Fatalf("fetch after DeleteRecords: log start %d, %v", res.LogStartOffset, err)
	}

	behind := newFollower(t, addr, secret)
	res, err := behind.fetch(ctx, 0, 1, 1<<20)
	var oor *partlog.OffsetOutOfRangeError
	if !errors.As(err, &oor) || oor.Start != 10 || oor.Offset != 0 || res.LogStartOffset != 10 {
		t.Fatalf("fetch below the log start: %v (log start %d), want *OffsetOutOfRangeError from 10", err, res.LogStartOffset)
	}
	if broker.Classify(err) != broker.KindOffsetOutOfRange {
		t.Fatalf("kind %d", broker.Classify(err))
	}
}
