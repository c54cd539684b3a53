package testenv_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// fillPartition produces n records of size bytes (incompressible) to
// partition 0 of topic.
func fillPartition(ctx context.Context, t testing.TB, cl *kgo.Client, topic string, n, size int) {
	t.Helper()
	const perCall = 256
	for i := 0; i < n; i += perCall {
		recs := make([]*kgo.Record, 0, perCall)
		for range min(perCall, n-i) {
			v := make([]byte, size)
			rand.Read(v)
			recs = append(recs, &kgo.Record{Topic: topic, Value: v})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce to %s: %v", topic, err)
		}
	}
}

// timeToJoin adds the broker that is not the leader of topic's partition 0
// to its replicas and returns how long it took to enter the ISR.
func timeToJoin(ctx context.Context, t testing.TB, c *testenv.Cluster, leader *testenv.Broker, topic string, timeout time.Duration) (time.Duration, *testenv.Broker) {
	t.Helper()
	var joiner *testenv.Broker
	for _, b := range c.Brokers() {
		if b != leader {
			joiner = b
			break
		}
	}
	ms := clusterMetastore(t, c)
	start := time.Now()
	addReplica(ctx, t, ms, topic, 0, joiner.ID())
	await.True(t, timeout, fmt.Sprintf("broker %d in the ISR of %s-0", joiner.ID(), topic), func() bool {
		return slices.Contains(isrOf(ctx, t, ms, topic, 0), joiner.ID())
	})
	return time.Since(start), joiner
}

// A replica catching up is held to the replication throttle's rate, on the
// leader's side (leader.replication.throttled.rate) and on the follower's
// (follower.replication.throttled.rate): a copy the rate says takes seconds
// takes about that, where an unthrottled one takes well under a second.
func TestReplicaCatchUpFollowsTheThrottle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two-broker clusters")
	}
	const (
		records, size = 2048, 1024 // 2 MiB of values
		rate          = 256 << 10
	)
	// The first second's worth goes as a burst; the rest at the rate.
	want := time.Duration(float64(records*size-rate) / rate * float64(time.Second))
	for _, key := range []string{"leader.replication.throttled.rate", "follower.replication.throttled.rate"} {
		t.Run(key, func(t *testing.T) {
			c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 2,
				BrokerSettings: map[string]string{key: fmt.Sprint(rate)}})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cl, adm, _ := testenvtest.KafkaClient(t, c, kgo.ProducerBatchCompression(kgo.NoCompression()))
			testenvtest.CreateKafkaTopic(ctx, t, adm, "copied", 1, nil)
			fillPartition(ctx, t, cl, "copied", records, size)
			leader := testenvtest.PartitionLeader(t, c, adm, "copied", 0)

			took, joiner := timeToJoin(ctx, t, c, leader, "copied", time.Minute)
			side := leader
			if key == "follower.replication.throttled.rate" {
				side = joiner
			}
			throttled := metricValue(t, side, "strata_replication_throttled_bytes_total")
			t.Logf("%d bytes copied in %v at %d B/s (the rate says %v); %.0f bytes counted throttled", records*size, took, rate, want, throttled)
			if took < want*6/10 {
				t.Fatalf("the copy took %v, want about %v: not throttled", took, want)
			}
			if throttled < records*size {
				t.Fatalf("strata_replication_throttled_bytes_total is %.0f, want at least the %d bytes copied", throttled, records*size)
			}
		})
	}
}
