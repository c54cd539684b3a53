package testenv_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// produceAcked writes n acks=all records to partition 0 of topic, one
// synchronous produce each, and records their values by offset in acked.
// Each value is padded with pad bytes.
func produceAcked(ctx context.Context, t testing.TB, cl *kgo.Client, topic string, from, n, pad int, acked map[int64]string) {
	t.Helper()
	for i := from; i < from+n; i++ {
		v := "record-" + strconv.Itoa(i) + strings.Repeat(".", pad)
		r, err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(v)}).First()
		if err != nil {
			t.Fatalf("produce %s: %v", v, err)
		}
		acked[r.Offset] = v
	}
}

// checkAcked reads partition 0 of topic from offset 0 with a fresh client and
// fails the test unless every acknowledged record is at its offset.
func checkAcked(ctx context.Context, t testing.TB, c *testenv.Cluster, topic string, acked map[int64]string) {
	t.Helper()
	var end int64
	for off := range acked {
		end = max(end, off+1)
	}
	cons, _, _ := testenvtest.KafkaClient(t, c, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(0)}}))
	got := map[int64]string{}
	var next int64
	for next < end {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read up to offset %d of %d: %v", next, end, ctx.Err())
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			got[r.Offset] = string(r.Value)
			next = max(next, r.Offset+1)
		})
	}
	for off, v := range acked {
		if got[off] != v {
			t.Errorf("offset %d holds %q, acknowledged %q", off, got[off], v)
		}
	}
}

// partitionDetail reads partition 0 of topic from Metadata until ok accepts
// it: a broker's view of etcd can lag a change.
func partitionDetail(t testing.TB, adm *kadm.Client, topic, what string, ok func(kadm.PartitionDetail) error) kadm.PartitionDetail {
	t.Helper()
	var pd kadm.PartitionDetail
	await.NoError(t, 30*time.Second, what, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			return err
		}
		td, found := md.Topics[topic]
		if !found {
			return fmt.Errorf("topic %s not in metadata", topic)
		}
		if pd, found = td.Partitions[0]; !found {
			return fmt.Errorf("partition 0 of %s not in metadata", topic)
		}
		return ok(pd)
	})
	return pd
}

func isrIs(want ...int32) func(kadm.PartitionDetail) error {
	return func(pd kadm.PartitionDetail) error {
		isr := slices.Sorted(slices.Values(pd.ISR))
		if !slices.Equal(isr, slices.Sorted(slices.Values(want))) {
			return fmt.Errorf("leader %d, ISR %v, want ISR %v", pd.Leader, pd.ISR, want)
		}
		return nil
	}
}

func wipe(t testing.TB, b *testenv.Broker) {
	t.Helper()
	if err := os.RemoveAll(b.DataDir()); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(b.DataDir(), 0o755); err != nil {
		t.Fatal(err)
	}
}

// The last in-sync replica of a partition comes back with an empty data
// directory while the other replicas, which hold every acknowledged record,
// are down too. It must not be elected from its empty log (its followers
// would then truncate every record to match it): the partition stays
// offline, with an empty ISR, once every broker is back. Allowing unclean
// election then elects a replica that kept its log, and every acknowledged
// record is read at its offset; the emptied broker catches up and rejoins
// the ISR. On a tiered topic the emptied replica starts at the bucket's end,
// which holds most records: it lacks the local tail all the same.
func TestLostDiskIsNotElected(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-broker cluster")
	}
	t.Run("local", func(t *testing.T) { lostDiskIsNotElected(t, false) })
	t.Run("tiered", func(t *testing.T) { lostDiskIsNotElected(t, true) })
}

func lostDiskIsNotElected(t *testing.T, tiered bool) {
	opts := testenv.ClusterOptions{Brokers: 3}
	configs := map[string]string{"min.insync.replicas": "2"}
	records, pad := 200, 0
	if tiered {
		opts.MinIO = true
		opts.BrokerSettings = map[string]string{"log.segment.min.bytes": "1024", "remote.log.manager.task.interval.ms": "200"}
		configs["remote.storage.enable"] = "true"
		configs["segment.bytes"] = "16384"
		configs["local.retention.bytes"] = "32768"
		records, pad = 400, 300
	}
	c := testenv.NewTestCluster(t, opts)
	const topic = "lost-disk"
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cl, adm, _ := testenvtest.KafkaClient(t, c, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordDeliveryTimeout(60*time.Second))
	testenvtest.CreateKafkaTopic(ctx, t, adm, topic, 3, configs)
	acked := map[int64]string{}
	produceAcked(ctx, t, cl, topic, 0, records, pad, acked)
	if tiered {
		var end int64
		await.True(t, 30*time.Second, "the bucket to hold most records", func() bool {
			end = testenvtest.BucketEnd(t, c, topic, 0)
			return end >= int64(records)/2
		})
		t.Logf("the bucket holds offsets below %d of %d", end, records)
	}

	last := testenvtest.PartitionLeader(t, c, adm, topic, 0)
	var others []*testenv.Broker
	for _, b := range c.Brokers() {
		if b != last {
			others = append(others, b)
		}
	}
	// The followers go first, so the leader is left as the ISR's only
	// member: the one the controller waits for when it goes too.
	for _, b := range others {
		b.Kill()
	}
	partitionDetail(t, adm, topic, "the ISR to shrink to the leader", isrIs(last.ID()))
	last.Kill()
	wipe(t, last)
	t.Logf("broker %d, the last in-sync replica, lost its disk; brokers %d and %d hold the %d acknowledged records",
		last.ID(), others[0].ID(), others[1].ID(), len(acked))

	for _, b := range append([]*testenv.Broker{last}, others...) {
		if err := b.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Offline, or (what happened before brokers released their lost logs)
	// led by the emptied broker with the others truncated to it.
	pd := partitionDetail(t, adm, topic, "the partition to be offline, or led with a full ISR", func(pd kadm.PartitionDetail) error {
		if (pd.Leader < 0 && len(pd.ISR) == 0) || (pd.Leader >= 0 && len(pd.ISR) == 3) {
			return nil
		}
		return fmt.Errorf("leader %d, ISR %v", pd.Leader, pd.ISR)
	})
	t.Logf("with every broker back: leader %d, ISR %v, replicas %v", pd.Leader, pd.ISR, pd.Replicas)
	if tail := last.LogTail(1000); !strings.Contains(tail, "partition directory is missing") || !strings.Contains(tail, topic) {
		t.Errorf("broker %d logged nothing about the partition it lost (its log: %s)", last.ID(), last.LogPath())
	}
	if pd.Leader >= 0 {
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		end, _ := ends.Lookup(topic, 0)
		t.Fatalf("broker %d was elected with nobody known to hold the partition's records; the partition ends at offset %d (%v), %d records were acknowledged",
			pd.Leader, end.Offset, end.Err, len(acked))
	}

	unclean := "true"
	resp, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "unclean.leader.election.enable", Value: &unclean}}, topic)
	if err == nil {
		var r kadm.AlterConfigsResponse
		if r, err = resp.On(topic, nil); err == nil {
			err = r.Err
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	pd = partitionDetail(t, adm, topic, "an unclean election", func(pd kadm.PartitionDetail) error {
		if pd.Leader < 0 {
			return fmt.Errorf("leader %d, ISR %v", pd.Leader, pd.ISR)
		}
		return nil
	})
	if pd.Leader == last.ID() {
		t.Fatalf("broker %d, whose log was lost, was elected", last.ID())
	}
	checkAcked(ctx, t, c, topic, acked)
	partitionDetail(t, adm, topic, "the emptied broker to catch up and rejoin the ISR", isrIs(1, 2, 3))
}

// A follower that comes back with an empty data directory catches up from
// the leader and rejoins the ISR; alone with the records it copied (the
// other two replicas killed), it is elected and serves every acknowledged
// record at its offset.
func TestFollowerWithLostDiskCatchesUp(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-broker cluster")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3})
	const topic = "lost-follower-disk"
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cl, adm, _ := testenvtest.KafkaClient(t, c, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordDeliveryTimeout(60*time.Second))
	testenvtest.CreateKafkaTopic(ctx, t, adm, topic, 3, map[string]string{"min.insync.replicas": "2"})
	acked := map[int64]string{}
	produceAcked(ctx, t, cl, topic, 0, 200, 0, acked)

	leader := testenvtest.PartitionLeader(t, c, adm, topic, 0)
	var follower, other *testenv.Broker
	for _, b := range c.Brokers() {
		switch {
		case b == leader:
		case follower == nil:
			follower = b
		default:
			other = b
		}
	}
	follower.Kill()
	wipe(t, follower)
	if err := follower.Start(ctx); err != nil {
		t.Fatal(err)
	}
	produceAcked(ctx, t, cl, topic, 200, 100, 0, acked)
	partitionDetail(t, adm, topic, "the emptied follower to rejoin the ISR", isrIs(1, 2, 3))

	leader.Kill()
	other.Kill()
	pd := partitionDetail(t, adm, topic, "the emptied follower to be elected", func(pd kadm.PartitionDetail) error {
		if pd.Leader != follower.ID() {
			return fmt.Errorf("leader %d, ISR %v", pd.Leader, pd.ISR)
		}
		return nil
	})
	t.Logf("broker %d leads, ISR %v", pd.Leader, pd.ISR)
	checkAcked(ctx, t, c, topic, acked)
}
