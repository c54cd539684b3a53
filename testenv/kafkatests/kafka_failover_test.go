package kafkatests_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// A Kafka client bootstrapped from one broker follows a leader change: an
// idempotent, acks=all franz-go producer keeps producing while the leader it
// writes to is killed and restarted, and afterwards every acknowledged
// record is in the log exactly once, with no record written twice.
func TestKafkaProducerFollowsFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-broker cluster")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3})
	const topic = "kafka-failover"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Bootstrapped from one broker only: the others come from Metadata.
	seed := c.Brokers()[0].KafkaAddr()
	admCl, err := kgo.NewClient(kgo.SeedBrokers(seed))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	minISR := "2"
	if _, err := adm.CreateTopic(ctx, 2, 3, map[string]*string{"min.insync.replicas": &minISR}, topic); err != nil {
		t.Fatal(err)
	}

	prod, err := kgo.NewClient(kgo.SeedBrokers(seed), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordDeliveryTimeout(90*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var mu sync.Mutex
	acked := map[string]bool{}
	var failed []error
	sent := 0
	produceFor := func(d time.Duration) {
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			v := strconv.Itoa(sent)
			sent++
			prod.Produce(ctx, &kgo.Record{Key: []byte(v), Value: []byte(v)}, func(r *kgo.Record, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed = append(failed, err)
					return
				}
				acked[string(r.Value)] = true
			})
			time.Sleep(2 * time.Millisecond) // pace the load
		}
	}
	ackedCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}

	produceFor(2 * time.Second)
	victim := testenvtest.PartitionLeader(t, c, adm, topic, 0)
	before := ackedCount()
	victim.Kill()
	t.Logf("killed broker %d, the leader of partition 0, after %d acknowledged records", victim.ID(), before)
	produceFor(6 * time.Second)
	if err := victim.Start(ctx); err != nil {
		t.Fatal(err)
	}
	produceFor(2 * time.Second)
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if len(failed) > 0 {
		t.Fatalf("%d records failed, first: %v", len(failed), failed[0])
	}
	if got := ackedCount(); got != sent || got <= before {
		t.Fatalf("%d of %d records acknowledged (%d before the kill)", got, sent, before)
	}

	// Read everything back from a fresh client, from the beginning.
	cons, err := kgo.NewClient(kgo.SeedBrokers(seed), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	seen := map[string]int{}
	total := 0
	for total < sent {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records: %v", total, sent, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen[string(r.Value)]++
			total++
		})
	}
	for v := range acked {
		if seen[v] != 1 {
			t.Errorf("acknowledged record %s is in the log %d times", v, seen[v])
		}
	}
	if total != sent {
		t.Errorf("log holds %d records, %d were produced", total, sent)
	}
	t.Logf("%d records produced across the failover, each read back once", sent)
}
