package testenv_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// clusterMetastore reads and writes the cluster's partition states directly
// in etcd.
func clusterMetastore(t testing.TB, c *testenv.Cluster) *metastore.Store {
	t.Helper()
	return metastore.New(testenvtest.EtcdClient(t, c), c.EtcdPrefix(), nil)
}

// addReplica appends broker id to a partition's replicas in etcd, as a
// reassignment does when a move starts: the broker opens the partition's
// log and follows the leader, which adds it to the ISR once caught up.
func addReplica(ctx context.Context, t testing.TB, ms *metastore.Store, topic string, p int32, id int32) {
	t.Helper()
	await.NoError(t, 30*time.Second, fmt.Sprintf("broker %d added to the replicas of %s-%d", id, topic, p), func() error {
		states, err := ms.PartitionStates(ctx, topic)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(states, func(st metastore.PartitionState) bool { return st.Partition == p })
		if i < 0 {
			return fmt.Errorf("no partition %d of %s", p, topic)
		}
		old := states[i]
		if slices.Contains(old.Replicas, id) {
			return nil
		}
		next := old
		next.Replicas = append(slices.Clone(old.Replicas), id)
		_, err = ms.CompareAndSwapPartitionState(ctx, old, next)
		if errors.Is(err, metastore.ErrConflict) {
			return fmt.Errorf("state changed meanwhile: %w", err)
		}
		if err != nil {
			t.Fatalf("add broker %d to %s-%d: %v", id, topic, p, err)
		}
		return nil
	})
}

// isrOf reads a partition's ISR from etcd.
func isrOf(ctx context.Context, t testing.TB, ms *metastore.Store, topic string, p int32) []int32 {
	t.Helper()
	states, err := ms.PartitionStates(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range states {
		if st.Partition == p {
			return st.ISR
		}
	}
	t.Fatalf("no partition %d of %s", p, topic)
	return nil
}

// localSegments returns the base offsets of a partition's segment files on
// a broker's disk, ascending, and their total size.
func localSegments(t testing.TB, b *testenv.Broker, topic string, p int32) ([]int64, int64) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(b.DataDir(), fmt.Sprintf("%s-%d", topic, p), "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	var bases []int64
	var size int64
	for _, f := range files {
		base, err := strconv.ParseInt(strings.TrimSuffix(filepath.Base(f), ".log"), 10, 64)
		if err != nil {
			continue // not a segment (a cleaner's temporary file)
		}
		if fi, err := os.Stat(f); err == nil {
			bases = append(bases, base)
			size += fi.Size()
		}
	}
	slices.Sort(bases)
	return bases, size
}

// A replica added to a tiered partition whose history is in the bucket
// starts its local log where the bucket's copy ends: it copies only the
// tail from the leader, joins the ISR, and once it leads serves every
// record, the old ones from the bucket.
func TestAddedReplicaOfTieredTopicStartsAtTheBucketsEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a two-broker cluster with MinIO")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 2, MinIO: true,
		BrokerSettings: map[string]string{"log.segment.min.bytes": "1024", "remote.log.manager.task.interval.ms": "200"}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const topic = "moving"
	cl, adm, seeds := testenvtest.KafkaClient(t, c, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.NoCompression()))
	testenvtest.CreateKafkaTopic(ctx, t, adm, topic, 1, map[string]string{
		"remote.storage.enable": "true", "segment.bytes": "16384", "local.retention.bytes": "32768",
	})
	value := func(i int) []byte { return fmt.Appendf(nil, "%06d-%0150d", i, i) }
	produce := func(from, to int) {
		t.Helper()
		for i := from; i < to; i += 100 {
			var recs []*kgo.Record
			for j := i; j < min(i+100, to); j++ {
				recs = append(recs, &kgo.Record{Value: value(j)})
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	const history, tail = 3000, 300
	produce(0, history)

	leader := testenvtest.PartitionLeader(t, c, adm, topic, 0)
	var joiner *testenv.Broker
	for _, b := range c.Brokers() {
		if b != leader {
			joiner = b
		}
	}
	var end int64
	await.True(t, 60*time.Second, "most of the history uploaded to the bucket", func() bool {
		end = testenvtest.BucketEnd(t, c, topic, 0)
		return end >= history*3/4
	})

	ms := clusterMetastore(t, c)
	addReplica(ctx, t, ms, topic, 0, joiner.ID())
	produce(history, history+tail)
	await.True(t, 60*time.Second, fmt.Sprintf("broker %d in the ISR", joiner.ID()), func() bool {
		return slices.Contains(isrOf(ctx, t, ms, topic, 0), joiner.ID())
	})
	bases, size := localSegments(t, joiner, topic, 0)
	if len(bases) == 0 || bases[0] < end {
		t.Fatalf("the added replica's segments start at %v, want at or after the bucket's end %d when it was added", bases, end)
	}
	t.Logf("the added replica holds %d bytes in %d segments from offset %d; the bucket ended at %d", size, len(bases), bases[0], end)

	// The added replica leads: the old records come from the bucket.
	leader.Kill()
	await.True(t, 30*time.Second, fmt.Sprintf("broker %d to lead", joiner.ID()), func() bool {
		md, err := kadm.NewClient(cl).Metadata(ctx, topic)
		return err == nil && md.Topics[topic].Partitions[0].Leader == joiner.ID()
	})
	cons, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	for next := 0; next < history+tail; {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records from the added replica", next, history+tail)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset != int64(next) || string(r.Value) != string(value(next)) {
				t.Fatalf("record at offset %d is %.20q..., want offset %d", r.Offset, r.Value, next)
			}
			next++
		})
	}
}
