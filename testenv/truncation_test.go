package testenv_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// A consumer that read records an unclean election then lost finds out
// where the new leader's log diverged from what it read, as on Kafka: it
// resumes at its position with the epoch of its last record, franz-go asks
// OffsetForLeaderEpoch, and the new leader answers that the epoch ended
// where its own log went on without those records. The client reports the
// loss and resets to exactly that offset (a client without epochs would
// hit OFFSET_OUT_OF_RANGE and reset to an end or start instead).
func TestConsumerDetectsTruncationAfterUncleanElection(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a two-broker cluster")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 2})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	const topic = "diverged"
	cl, adm, seeds := testenvtest.KafkaClient(t, c, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()))
	if _, err := adm.CreateTopic(ctx, 1, 2, nil, topic); err != nil {
		t.Fatal(err)
	}
	pd := awaitPartitions(t, adm, topic, 30*time.Second, "a leader of "+topic, ledByPreferred)[0]
	inSync, behind := pd.Replicas[0], pd.Replicas[1]
	produceEach(ctx, t, cl, topic, 1, 10) // on both replicas
	c.Broker(behind).Kill()
	awaitPartitions(t, adm, topic, 30*time.Second, "the ISR to shrink", func(pd kadm.PartitionDetail) error {
		if !slices.Equal(pd.ISR, []int32{inSync}) {
			return errors.New("ISR is not the leader alone")
		}
		return nil
	})
	produceEach(ctx, t, cl, topic, 1, 10) // offsets 10-19, on the leader only

	// Read all twenty while the leader has them.
	reader, err := kgo.NewClient(kgo.SeedBrokers(seeds...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	var last *kgo.Record
	for n := 0; n < 20; {
		fs := reader.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("read: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) { last, n = r, n+1 })
	}
	reader.Close()
	if last.Offset != 19 {
		t.Fatalf("last record read at %d, want 19", last.Offset)
	}

	c.Broker(inSync).Kill()
	if err := c.Broker(behind).Start(ctx); err != nil {
		t.Fatal(err)
	}
	awaitPartitions(t, adm, topic, 30*time.Second, "the partition to lose its leader", func(pd kadm.PartitionDetail) error {
		if pd.Leader != -1 {
			return errors.New("still led")
		}
		return nil
	})
	res, err := adm.ElectLeaders(ctx, kadm.ElectLiveReplica, kadm.TopicsSet{topic: {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	if r := res[topic][0]; r.Err != nil {
		t.Fatalf("unclean election: %v %s", r.Err, r.ErrMessage)
	}
	awaitPartitions(t, adm, topic, 30*time.Second, "the out-of-sync replica to lead", func(pd kadm.PartitionDetail) error {
		if pd.Leader != behind {
			return fmt.Errorf("want leader %d", behind)
		}
		return nil
	})
	// The new leader's log goes on from 10 in its own epoch.
	produceEach(ctx, t, cl, topic, 1, 5)

	resume := kgo.NewOffset().At(last.Offset + 1).WithEpoch(last.LeaderEpoch)
	consumer, err := kgo.NewClient(kgo.SeedBrokers(seeds...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: resume}}))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	var loss *kgo.ErrDataLoss
	var after []int64
	for loss == nil || len(after) < 5 {
		fs := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("no data loss reported (read %v): %v", after, ctx.Err())
		}
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.As(err, &loss) {
				t.Fatalf("fetch error: %v", err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) { after = append(after, r.Offset) })
	}
	if loss.ConsumedTo != 20 || loss.ResetTo != 10 {
		t.Fatalf("data loss %+v: want consumed to 20, reset to 10 where the logs diverged", loss)
	}
	if !slices.Equal(after, []int64{10, 11, 12, 13, 14}) {
		t.Fatalf("read %v after the reset, want the new leader's 10-14", after)
	}
}
