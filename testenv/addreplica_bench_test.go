package testenv_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// envInt reads a positive integer from the environment, def when unset.
func envInt(b *testing.B, key string, def int) int {
	raw := os.Getenv(key)
	if raw == "" {
		return def
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", key, raw)
	}
	return n
}

// BenchmarkAddReplica measures how long a replica added to a partition
// with a large history takes to join the ISR: of a tiered topic whose
// history is in MinIO (the new replica starts at the bucket's end and
// copies the local tail), of a topic that is not tiered (it copies
// everything), and of the same untiered topic with the joining broker's
// follower.replication.throttled.rate set. STRATA_MOVE_MIB of 1 KiB records
// (default 1024) go to each topic's one partition on broker 1;
// STRATA_MOVE_RUNS (default 3) runs of the three moves, alternated, each to
// an empty replica; the throttled one at STRATA_MOVE_THROTTLE_MIB MiB/s
// (default 50). Reported: the median seconds of each, and the throttled
// copy's rate. Run it with -benchtime 1x (`make bench-move`).
func BenchmarkAddReplica(b *testing.B) {
	mib := envInt(b, "STRATA_MOVE_MIB", 1024)
	runs := envInt(b, "STRATA_MOVE_RUNS", 3)
	throttle := envInt(b, "STRATA_MOVE_THROTTLE_MIB", 50) << 20
	const leaderID, joinerID, throttledID = 1, 2, 3
	c := testenv.NewTestCluster(b, testenv.ClusterOptions{Brokers: 3, MinIO: true,
		BrokerSettings: map[string]string{"remote.log.manager.task.interval.ms": "500"},
		BrokerArgs: func(id int32) []string {
			if id == throttledID {
				return []string{"--config", fmt.Sprintf("follower.replication.throttled.rate=%d", throttle)}
			}
			return nil
		}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	cl, adm, _ := testenvtest.KafkaClient(b, c, kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerBatchMaxBytes(1<<20))
	const tiered, plain = "tiered", "plain"
	testenvtest.CreateKafkaTopic(ctx, b, adm, tiered, 1, map[string]string{
		"remote.storage.enable": "true", "segment.bytes": strconv.Itoa(64 << 20), "local.retention.bytes": strconv.Itoa(64 << 20),
	})
	testenvtest.CreateKafkaTopic(ctx, b, adm, plain, 1, nil)
	for _, topic := range []string{tiered, plain} {
		if l := testenvtest.PartitionLeader(b, c, adm, topic, 0); l.ID() != leaderID {
			b.Fatalf("%s-0 is led by broker %d, want broker %d", topic, l.ID(), leaderID)
		}
	}
	start := time.Now()
	records := mib << 10
	fillPartition(ctx, b, cl, tiered, records, 1024)
	fillPartition(ctx, b, cl, plain, records, 1024)
	b.Logf("%d MiB produced to each topic in %v", mib, time.Since(start).Round(time.Second))
	await.True(b, 30*time.Minute, "the tiered history in the bucket", func() bool {
		m, err := testenvtest.ReadBucketManifest(b, c, tiered, 0)
		return err == nil && m.EndOffset() >= int64(records)-int64(64<<10)
	})
	b.Logf("the tiered history in MinIO %v after the first record", time.Since(start).Round(time.Second))

	ms := clusterMetastore(b, c)
	move := func(topic string, id int32) time.Duration {
		t0 := time.Now()
		addReplica(ctx, b, ms, topic, 0, id)
		await.True(b, 30*time.Minute, fmt.Sprintf("broker %d in the ISR of %s-0", id, topic), func() bool {
			return slices.Contains(isrOf(ctx, b, ms, topic, 0), id)
		})
		return time.Since(t0)
	}
	// reset takes broker id out of the topics' replicas and empties its
	// copies, so the next run adds an empty replica again.
	reset := func(id int32, topics ...string) {
		br := c.Broker(id)
		if err := br.Stop(); err != nil {
			b.Fatal(err)
		}
		for _, topic := range topics {
			await.NoError(b, time.Minute, fmt.Sprintf("broker %d out of %s-0", id, topic), func() error {
				states, err := ms.PartitionStates(ctx, topic)
				if err != nil {
					return err
				}
				old := states[0]
				next := old
				next.Replicas = slices.DeleteFunc(slices.Clone(old.Replicas), func(r int32) bool { return r == id })
				next.ISR = slices.DeleteFunc(slices.Clone(old.ISR), func(r int32) bool { return r == id })
				if _, err := ms.CompareAndSwapPartitionState(ctx, old, next); err != nil && !errors.Is(err, metastore.ErrConflict) {
					b.Fatal(err)
				} else if err != nil {
					return err
				}
				return nil
			})
			if err := os.RemoveAll(filepath.Join(br.DataDir(), topic+"-0")); err != nil {
				b.Fatal(err)
			}
		}
		if err := br.Start(ctx); err != nil {
			b.Fatal(err)
		}
	}
	var tieredRuns, plainRuns, throttledRuns []float64
	b.ResetTimer()
	for i := range runs {
		d := move(tiered, joinerID)
		tieredRuns = append(tieredRuns, d.Seconds())
		_, tail := localSegments(b, c.Broker(joinerID), tiered, 0)
		d2 := move(plain, joinerID)
		plainRuns = append(plainRuns, d2.Seconds())
		d3 := move(plain, throttledID)
		throttledRuns = append(throttledRuns, d3.Seconds())
		b.Logf("run %d: tiered %.2fs (%d MiB copied), untiered %.2fs, throttled at %d MiB/s %.2fs",
			i+1, d.Seconds(), tail>>20, d2.Seconds(), throttle>>20, d3.Seconds())
		reset(joinerID, tiered, plain)
		reset(throttledID, plain)
	}
	b.StopTimer()
	median := func(xs []float64) float64 { slices.Sort(xs); return xs[len(xs)/2] }
	bytes := float64(records) * 1024
	b.ReportMetric(median(tieredRuns), "tiered-s")
	b.ReportMetric(median(plainRuns), "untiered-s")
	b.ReportMetric(median(throttledRuns), "throttled-s")
	b.ReportMetric(bytes/median(throttledRuns)/(1<<20), "throttled-MiB/s")
	b.ReportMetric(float64(mib), "history-MiB")
}
