package testenv_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// brokerLoad is one row of `strata brokers list -o json`.
type brokerLoad struct {
	ID       int32 `json:"id"`
	Replicas int   `json:"replicas"`
	Leaders  int   `json:"leaders"`
	Bytes    int64 `json:"bytes"`
}

func brokerLoads(t *testing.T, c *testenv.Cluster) (map[int32]brokerLoad, error) {
	out, errOut, err := testenvtest.RunStrata(t, c.BootstrapServers(), "", "brokers", "list", "-o", "json")
	if err != nil {
		return nil, fmt.Errorf("brokers list: %w: %s", err, errOut)
	}
	var rows []brokerLoad
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		return nil, fmt.Errorf("brokers list: %w: %s", err, out)
	}
	loads := map[int32]brokerLoad{}
	for _, r := range rows {
		loads[r.ID] = r
	}
	return loads, nil
}

// TestRebalanceAndDrain: a fourth broker started into a three-broker
// cluster with an RF=2 topic receives its share of replicas, leaders and
// bytes from `strata cluster rebalance --wait`; `strata brokers drain 1
// --wait` then empties broker 1 (its log directory too). An acks=all
// producer runs throughout, and every record it was acknowledged is read
// back at its offset afterwards.
func TestRebalanceAndDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a four-broker cluster")
	}
	const topic, partitions = "elastic", 6
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	_, adm, seeds := testenvtest.KafkaClient(t, c)
	resp, err := adm.CreateTopic(ctx, partitions, 2, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatal(err)
	}

	// The producer: acks=all, round robin over the partitions, one record
	// at a time, remembering what was acknowledged where.
	pcl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()
	var (
		mu       sync.Mutex
		acked    = map[int32]map[int64]string{}
		produced int
	)
	for p := range int32(partitions) {
		acked[p] = map[int64]string{}
	}
	prodCtx, stopProducing := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var prodErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; prodCtx.Err() == nil; i++ {
			v := "record-" + strconv.Itoa(i)
			r := &kgo.Record{Partition: int32(i % partitions), Value: []byte(v)}
			if err := pcl.ProduceSync(prodCtx, r).FirstErr(); err != nil {
				if prodCtx.Err() == nil {
					prodErr = fmt.Errorf("record %d: %w", i, err)
					return
				}
				return
			}
			mu.Lock()
			acked[r.Partition][r.Offset] = v
			produced++
			mu.Unlock()
		}
	}()
	producedSoFar := func() int {
		mu.Lock()
		defer mu.Unlock()
		return produced
	}
	await.True(t, time.Minute, "the producer to get 600 records acknowledged", func() bool { return producedSoFar() >= 600 })

	b4, err := c.AddBroker(ctx)
	if err != nil {
		t.Fatal(err)
	}
	await.NoError(t, 30*time.Second, "broker 4 to be listed", func() error {
		loads, err := brokerLoads(t, c)
		if err != nil {
			return err
		}
		if _, ok := loads[b4.ID()]; !ok {
			return fmt.Errorf("broker %d not listed: %+v", b4.ID(), loads)
		}
		return nil
	})

	out, errOut, err := testenvtest.RunStrata(t, c.BootstrapServers(), "", "cluster", "rebalance", "--wait", "90s")
	if err != nil {
		t.Fatalf("cluster rebalance: %v: %s\n%s", err, errOut, out)
	}
	t.Logf("cluster rebalance:\n%s", out)
	// 12 replicas over 4 brokers: 3 each; 6 leaders: 1 or 2 each.
	await.NoError(t, 30*time.Second, "broker 4 to hold its share", func() error {
		loads, err := brokerLoads(t, c)
		if err != nil {
			return err
		}
		for id, l := range loads {
			if l.Replicas != 3 || l.Leaders < 1 || l.Leaders > 2 {
				return fmt.Errorf("broker %d: %+v, want 3 replicas and 1-2 leaders: %+v", id, l, loads)
			}
		}
		if loads[b4.ID()].Bytes == 0 {
			return fmt.Errorf("broker 4 lists no bytes: %+v", loads)
		}
		return nil
	})
	if producedSoFar() == 0 {
		t.Fatal("nothing produced")
	}

	out, errOut, err = testenvtest.RunStrata(t, c.BootstrapServers(), "", "brokers", "drain", "1", "--wait", "90s")
	if err != nil {
		t.Fatalf("brokers drain 1: %v: %s\n%s", err, errOut, out)
	}
	t.Logf("brokers drain 1:\n%s", out)
	await.NoError(t, 30*time.Second, "broker 1 to be empty", func() error {
		loads, err := brokerLoads(t, c)
		if err != nil {
			return err
		}
		if l := loads[1]; l.Replicas != 0 || l.Leaders != 0 || l.Bytes != 0 {
			return fmt.Errorf("broker 1 after the drain: %+v", l)
		}
		for _, id := range []int32{2, 3, 4} {
			if l := loads[id]; l.Replicas != 4 || l.Leaders != 2 {
				return fmt.Errorf("broker %d after the drain: %+v, want 4 replicas and 2 leaders: %+v", id, l, loads)
			}
		}
		return nil
	})
	// Kafka's DescribeLogDirs agrees: broker 1 keeps no log, broker 4 has
	// its replicas' bytes.
	dirs, err := adm.DescribeAllLogDirs(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(dirs[1].Sorted()); n != 1 || dirs[1].Sorted()[0].Size() != 0 {
		t.Errorf("broker 1's log dirs after the drain: %+v", dirs[1])
	}
	if dirs[b4.ID()].Sorted()[0].Size() == 0 {
		t.Errorf("broker 4's log dirs: %+v", dirs[b4.ID()])
	}

	// A few more acknowledged records after the drain, then stop.
	after := producedSoFar()
	await.True(t, time.Minute, "the producer to go on after the drain", func() bool { return producedSoFar() >= after+100 })
	stopProducing()
	wg.Wait()
	if prodErr != nil {
		t.Fatalf("acks=all produce failed during the moves: %v", prodErr)
	}

	// Every acknowledged record, at its offset.
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	ccl, err := kgo.NewClient(kgo.SeedBrokers(b4.KafkaAddr()), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer ccl.Close()
	read := map[int32]map[int64]string{}
	remaining := 0
	ends.Each(func(o kadm.ListedOffset) { remaining += int(o.Offset) })
	for remaining > 0 {
		fs := ccl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("reading back: %d records left: %v", remaining, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			if read[r.Partition] == nil {
				read[r.Partition] = map[int64]string{}
			}
			read[r.Partition][r.Offset] = string(r.Value)
			remaining--
		})
	}
	total := 0
	for p, recs := range acked {
		for off, v := range recs {
			if got, ok := read[p][off]; !ok || got != v {
				t.Errorf("partition %d offset %d: acknowledged %q, read %q (present %v)", p, off, v, got, ok)
			}
		}
		end, _ := ends.Lookup(topic, p)
		if int64(len(read[p])) != end.Offset {
			t.Errorf("partition %d: read %d records, end offset %d", p, len(read[p]), end.Offset)
		}
		total += len(recs)
	}
	t.Logf("%d records acknowledged with acks=all, every one read back", total)
}
