package broker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-broker/strata/broker/controller"
	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/internal/fakeclock"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/record"
)

// produceErr appends one record with acks=all and returns the partition's
// error.
func produceErr(b *Broker, topic string, partition int32) error {
	bld := record.NewBuilder(time.Now().UnixMilli(), 0)
	bld.Append(&record.Record{Value: []byte("v")})
	batch, err := bld.Build(record.None)
	if err != nil {
		return err
	}
	res, err := b.ProduceWithTimeout(context.Background(), topic, AcksAll, 10*time.Second,
		[]PartitionBatches{{Partition: partition, Batches: append([]byte(nil), batch...)}})
	if err != nil {
		return err
	}
	return res[0].Err
}

// runController elects a controller over c's metastore, as a broker process
// would, until the test ends. It registers as broker 99, which is no
// replica of anything created before.
func runController(t *testing.T, c *coreCluster) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	reg, err := c.store.RegisterBroker(ctx, metastore.BrokerInfo{NodeID: 99, GRPCAddr: coreAddr(99), StartedAt: time.Now()}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	term, err := c.store.CampaignController(ctx, reg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { controller.Run(ctx, c.store, term, nil, slog.New(slog.DiscardHandler)) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		reg.Close()
	})
}

// blockRoll makes the next roll of p's log fail as a full disk fails it: a
// directory stands where the new segment's file goes. It returns the
// directory, whose removal gives the space back.
func blockRoll(t *testing.T, p *Partition) string {
	t.Helper()
	obstacle := filepath.Join(p.log.Dir(), fmt.Sprintf("%020d.log", p.LogEndOffset()))
	if err := os.Mkdir(obstacle, 0o755); err != nil {
		t.Fatal(err)
	}
	return obstacle
}

// A partition whose log meets a storage failure on its leader goes offline
// there: the producer gets KAFKA_STORAGE_ERROR, the broker leaves the ISR and
// the leadership in the metastore, the controller elects another in-sync
// replica, and writes carry on there. Once the storage works again the log
// recovers in place, and the replica comes back as a follower that catches
// up and rejoins the ISR.
func TestStorageFailureMovesLeadershipAndRecovers(t *testing.T) {
	clk := fakeclock.New(time.Now())
	c := startCoreClusterOn(t, 3, map[string]string{"log.dir.failure.retry.ms": "100"}, clk.Now)
	ctx := context.Background()
	if _, err := c.core(1).CreateTopic(ctx, TopicSpec{Name: "o", Partitions: 1, ReplicationFactor: 3,
		Configs: map[string]string{"min.insync.replicas": "2", "segment.ms": "60000"}}); err != nil {
		t.Fatal(err)
	}
	runController(t, c)
	state := func() metastore.PartitionState {
		states, err := c.store.PartitionStates(ctx, "o")
		if err != nil {
			t.Fatal(err)
		}
		return states[0]
	}
	await.True(t, 30*time.Second, "a leader and a full ISR", func() bool {
		st := state()
		return st.Leader > 0 && len(st.ISR) == 3
	})
	before := state()
	old := before.Leader
	appendRecords(t, c.core(old), "o", 0, 5)
	p := c.hosted(old, "o", 0)

	obstacle := blockRoll(t, p)
	clk.Advance(2 * time.Minute) // past segment.ms: the next append rolls
	if err := produceErr(c.core(old), "o", 0); Classify(err) != KindStorageError {
		t.Fatalf("produce when the log cannot roll: %v (kind %d), want a storage error", err, Classify(err))
	}
	await.True(t, 30*time.Second, "another in-sync replica to lead", func() bool {
		st := state()
		return st.Leader > 0 && st.Leader != old && !slices.Contains(st.ISR, old)
	})
	after := state()
	if after.LeaderEpoch < before.LeaderEpoch+2 || len(after.ISR) != 2 {
		t.Fatalf("state %+v after the failure; want the epoch past %d (no leader, then a new one) and the other two in the ISR",
			after, before.LeaderEpoch+1)
	}
	appendRecords(t, c.core(after.Leader), "o", 0, 3)

	// The offline replica says so, to every client.
	for _, err := range []error{produceErr(c.core(old), "o", 0), fetchErr(t, c.core(old), "o", 0)} {
		if Classify(err) != KindStorageError {
			t.Errorf("request to the offline replica: %v (kind %d), want a storage error", err, Classify(err))
		}
	}
	if off := c.core(old).OfflineReplicas(); len(off) != 1 || off[0].Topic != "o" || off[0].Partition != 0 {
		t.Fatalf("offline replicas %+v, want o-0", off)
	}

	if err := os.Remove(obstacle); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second) // past log.dir.failure.retry.ms: recovery is tried
	await.True(t, 30*time.Second, "the recovered replica back in the ISR", func() bool {
		return slices.Contains(state().ISR, old)
	})
	if off := c.core(old).OfflineReplicas(); len(off) != 0 {
		t.Fatalf("offline replicas %+v after recovery, want none", off)
	}
	if _, r := p.State(); r != roleFollower {
		t.Fatalf("recovered replica is %v, want a follower", r)
	}
	leader := c.hosted(state().Leader, "o", 0)
	if p.LogEndOffset() != leader.LogEndOffset() || leader.LogEndOffset() != 8 {
		t.Fatalf("log ends at %d on the recovered replica, %d on the leader; want 8 on both", p.LogEndOffset(), leader.LogEndOffset())
	}
	if n := readCount(t, c.core(state().Leader), "o", 0); n != 8 {
		t.Fatalf("%d records read back, want 8", n)
	}
}

// The only in-sync replica keeps its leadership through a storage failure:
// nobody else has every committed record. The partition refuses writes and
// reads until its log recovers, then leads again.
func TestStorageFailureOfTheOnlyInSyncReplica(t *testing.T) {
	clk := fakeclock.New(time.Now())
	c := startCoreClusterOn(t, 1, map[string]string{"log.dir.failure.retry.ms": "100"}, clk.Now)
	ctx := context.Background()
	b := c.core(1)
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "s", Partitions: 1, ReplicationFactor: 1,
		Configs: map[string]string{"segment.ms": "60000"}}); err != nil {
		t.Fatal(err)
	}
	appendRecords(t, b, "s", 0, 4)
	p := c.hosted(1, "s", 0)
	before, _ := p.State()

	obstacle := blockRoll(t, p)
	clk.Advance(2 * time.Minute)
	if err := produceErr(b, "s", 0); Classify(err) != KindStorageError {
		t.Fatalf("produce when the log cannot roll: %v, want a storage error", err)
	}
	if err := fetchErr(t, b, "s", 0); Classify(err) != KindStorageError {
		t.Fatalf("fetch from the offline log: %v, want a storage error", err)
	}
	if err := os.Remove(obstacle); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second) // past log.dir.failure.retry.ms: recovery is tried
	await.True(t, 30*time.Second, "the partition back online", func() bool {
		return len(b.OfflineReplicas()) == 0
	})
	if st, r := p.State(); r != roleLeader || st.Leader != 1 || st.LeaderEpoch != before.LeaderEpoch || !slices.Equal(st.ISR, []int32{1}) {
		t.Fatalf("state %+v, role %v after recovery; want %+v and leading", st, r, before)
	}
	appendRecords(t, b, "s", 0, 2)
	if n := readCount(t, b, "s", 0); n != 6 {
		t.Fatalf("%d records read back, want 6", n)
	}
}

// fetchErr fetches a partition from offset 0 and returns its error.
func fetchErr(t *testing.T, b *Broker, topic string, partition int32) error {
	t.Helper()
	res, err := b.Fetch(context.Background(), []FetchPartition{{Topic: topic, Partition: partition}}, FetchOptions{})
	if err != nil {
		return err
	}
	return res[0].Err
}

// readCount reads a partition from its start to its high watermark, a
// segment a fetch, and returns how many records it holds.
func readCount(t *testing.T, b *Broker, topic string, partition int32) int {
	t.Helper()
	n := 0
	for offset := int64(0); ; {
		res, err := b.Fetch(context.Background(), []FetchPartition{{Topic: topic, Partition: partition, Offset: offset}}, FetchOptions{})
		if err != nil || res[0].Err != nil {
			t.Fatalf("fetch %s-%d at %d: %v %v", topic, partition, offset, err, res[0].Err)
		}
		if offset >= res[0].HighWatermark {
			return n
		}
		it := record.NewBatches(res[0].Data)
		for it.Next() {
			err := record.ForEach(it.Bytes(), func(r *record.Record) error {
				if r.Offset >= offset {
					n++
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if it.Err() != nil {
			t.Fatal(it.Err())
		}
		offset = res[0].NextOffset
	}
}

func TestBadLogDirFailureRetryFailsStartup(t *testing.T) {
	_, err := New(Config{NodeID: 1, DataDir: t.TempDir(), Settings: map[string]string{"log.dir.failure.retry.ms": "10"}}, nil)
	if err == nil || !strings.Contains(err.Error(), "log.dir.failure.retry.ms") {
		t.Fatalf("New with log.dir.failure.retry.ms=10: %v, want an error naming the key", err)
	}
}
