package client_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-broker/strata/api/client"
	"github.com/strata-broker/strata/api/client/clienttest"
	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/internal/await"
)

// stallBound is how soon work held by a paused leader must be done elsewhere
// once a successor is elected: a third of the default request timeout, which
// the requests would otherwise wait out. The leader checks need about one
// DefaultLeaderCheckInterval.
const stallBound = 10 * time.Second

// waitHeld waits until the broker holds a call of method, so that the test
// knows the client is waiting on the paused broker.
func waitHeld(t *testing.T, s *clienttest.Server, method string) {
	t.Helper()
	await.True(t, stallBound, fmt.Sprintf("broker %d to hold a %s call", s.ID, method), func() bool {
		return s.HeldCalls(method) > 0
	})
}

// A leader that stops answering without closing its connections holds the
// requests sent to it; once the cluster has elected a successor, the
// producer finds it by its leader checks and retries there, long before the
// 30 s request timeout. Every record is acknowledged and stored, and each
// partition keeps its order.
func TestProducerLeavesAPausedLeader(t *testing.T) {
	cl := clienttest.NewCluster(t, 3)
	// Broker 1, the one paused, is the first bootstrap server and so the
	// one the client asks for metadata first.
	c := dial(t, cl.Addrs())
	const topic, parts, n = "paused-leader", 3, 300
	createReplicated(t, c, topic, parts, 3) // leaders 1, 2, 3
	p := newProducer(t, c, client.ProducerOptions{Linger: time.Millisecond, RequestTimeout: 30 * time.Second})
	ctx := testCtx(t)

	type ack struct {
		offset int64
		index  int
	}
	var mu sync.Mutex
	var errs []error
	acks := map[int32][]ack{}
	produce := func(i int) {
		p.Produce(ctx, topic, client.Record{Partition: int32(i % parts), Value: fmt.Appendf(nil, "%d", i)}, func(r client.Result, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("record %d: %w", i, err))
				return
			}
			acks[r.Partition] = append(acks[r.Partition], ack{r.Offset, i})
		})
	}
	for i := range n / 3 {
		produce(i)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	cl.Broker(1).Pause()
	paused := time.Now()
	for i := n / 3; i < n; i++ {
		produce(i)
		if i%20 == 0 {
			time.Sleep(time.Millisecond) // pace the records so the paused leader holds some
		}
	}
	waitHeld(t, cl.Broker(1), stratav1.Strata_Produce_FullMethodName)
	cl.SetLeader(topic, 0, 2) // the election
	flushCtx, cancel := context.WithTimeout(ctx, stallBound)
	defer cancel()
	if err := p.Flush(flushCtx); err != nil {
		t.Fatalf("records not delivered %v after the leader paused: %v", time.Since(paused), err)
	}
	t.Logf("delivered %v after the leader paused", time.Since(paused))

	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 {
		t.Fatalf("%d records failed, first: %v", len(errs), errs[0])
	}
	for part := range int32(parts) {
		stored := storedValues(t, cl, topic, part)
		// Acknowledged records are where their offsets say, in produce
		// order.
		last := ack{-1, -1}
		for _, a := range acks[part] {
			if a.offset <= last.offset || a.index <= last.index {
				t.Fatalf("partition %d: record %d at offset %d acknowledged after record %d at offset %d", part, a.index, a.offset, last.index, last.offset)
			}
			if a.offset >= int64(len(stored)) || stored[a.offset] != strconv.Itoa(a.index) {
				t.Fatalf("partition %d: record %d acknowledged at offset %d, which does not hold it", part, a.index, a.offset)
			}
			last = a
		}
		// At least once: each record is stored, and its first copy comes
		// after the first copies of the records produced before it.
		seen := map[string]bool{}
		prev := -1
		for _, v := range stored {
			if seen[v] {
				continue
			}
			seen[v] = true
			i, _ := strconv.Atoi(v)
			if i <= prev {
				t.Fatalf("partition %d: record %d stored after record %d", part, i, prev)
			}
			prev = i
		}
		for i := int(part); i < n; i += parts {
			if !seen[strconv.Itoa(i)] {
				t.Fatalf("partition %d: record %d acknowledged but not stored", part, i)
			}
		}
	}
}

// A consumer following a partition whose leader pauses moves to the
// successor by its own leader checks (its producer is on another client)
// and goes on from its position.
func TestFollowingConsumerLeavesAPausedLeader(t *testing.T) {
	cl := clienttest.NewCluster(t, 2)
	const topic = "follow-paused"
	c := dial(t, cl.Addrs())
	createReplicated(t, c, topic, 1, 2) // leader 1
	p := newProducer(t, dial(t, cl.Addrs()), client.ProducerOptions{})
	cons := newConsumer(t, c, client.ConsumerOptions{Topic: topic, Partitions: []int32{0}, Follow: true})

	produceAll(t, p, topic, values(0, 10))
	got := pollN(t, cons, 10)
	cl.Broker(1).Pause()
	paused := time.Now()
	cl.SetLeader(topic, 0, 2)
	produceAll(t, p, topic, values(10, 20))
	ctx, cancel := context.WithDeadline(testCtx(t), paused.Add(stallBound))
	defer cancel()
	for len(got) < 20 {
		recs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatalf("poll after %d of 20 records, %v after the leader paused: %v", len(got), time.Since(paused), err)
		}
		got = append(got, recs...)
	}
	t.Logf("followed to the new leader in %v", time.Since(paused))
	for i, r := range got {
		if want := fmt.Sprintf("v%d", i); string(r.Value) != want || r.Offset != int64(i) {
			t.Fatalf("record %d: offset %d value %q, want offset %d value %q", i, r.Offset, r.Value, i, want)
		}
	}
	streams := cl.Broker(2).FetchStreams()
	if len(streams) == 0 {
		t.Fatal("no stream opened on the new leader")
	}
	if off := streams[0].GetPartitions()[0].GetOffset(); off != 10 {
		t.Fatalf("stream on the new leader opened at offset %d, want 10 (the consumer's position)", off)
	}
}

// A consumer reading to the end fetches from the successor of a leader that
// paused mid-way.
func TestConsumerWithoutFollowLeavesAPausedLeader(t *testing.T) {
	cl := clienttest.NewCluster(t, 2)
	const topic = "read-paused"
	c := dial(t, cl.Addrs())
	createReplicated(t, c, topic, 1, 2)
	p := newProducer(t, c, client.ProducerOptions{})
	for i := range 20 {
		produceAll(t, p, topic, values(i, i+1)) // one batch each
	}
	// One batch per fetch, so the pause lands in the middle of the reading.
	cons := newConsumer(t, c, client.ConsumerOptions{Topic: topic, PartitionMaxBytes: 1})
	ctx := testCtx(t)
	var got []client.Record
	for len(got) < 5 {
		recs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, recs...)
	}
	cl.Broker(1).Pause()
	paused := time.Now()
	cl.SetLeader(topic, 0, 2)
	got = append(got, consumeToEnd(t, cons)...)
	if d := time.Since(paused); d > stallBound {
		t.Fatalf("the consumer took %v to read on from the new leader", d)
	}
	if cl.Broker(1).HeldCalls(stratav1.Strata_Fetch_FullMethodName) == 0 {
		t.Fatal("no fetch was held by the paused broker: the test did not exercise the leader check")
	}
	var vals []string
	for i, r := range got {
		if want := fmt.Sprintf("v%d", i); string(r.Value) != want || r.Offset != int64(i) {
			t.Fatalf("record %d: offset %d value %q, want offset %d value %q", i, r.Offset, r.Value, i, want)
		}
		vals = append(vals, string(r.Value))
	}
	if len(got) != 20 {
		t.Fatalf("%d records (%s), want 20", len(got), strings.Join(vals, " "))
	}
}

// ListOffsets asked of a leader that paused is asked again of its successor.
func TestListOffsetsLeavesAPausedLeader(t *testing.T) {
	cl := clienttest.NewCluster(t, 2)
	const topic = "offsets-paused"
	c := dial(t, cl.Addrs())
	createReplicated(t, c, topic, 1, 2)
	produceAll(t, newProducer(t, c, client.ProducerOptions{}), topic, values(0, 3))
	cl.Broker(1).Pause()
	cl.SetLeader(topic, 0, 2)
	ctx, cancel := context.WithTimeout(testCtx(t), stallBound)
	defer cancel()
	got, err := c.ListOffsets(ctx, topic, []int32{0}, client.OffsetLatest)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != 3 {
		t.Fatalf("latest offset %d, want 3", got[0])
	}
	if cl.Broker(1).HeldCalls(stratav1.Strata_ListOffsets_FullMethodName) == 0 {
		t.Fatal("the paused broker held no ListOffsets call: the test did not exercise the leader check")
	}
}
