package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/strata-broker/strata/api/client"
	"github.com/strata-broker/strata/api/client/clienttest"
	"github.com/strata-broker/strata/record"
)

// The whole suite against a cluster of three, bootstrapped from one broker:
// the suite's topics have their partitions led by different brokers.
func TestAgainstClienttestCluster(t *testing.T) {
	runSuite(t, clienttest.NewCluster(t, 3).Broker(2).Addr)
}

// A cluster that does not serve Metadata (brokers from before replication)
// is the bootstrap broker leading everything.
func TestAgainstClienttestWithoutMetadata(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.SetMetadataUnimplemented(true)
	runSuite(t, srv.Addr)
}

// storedValues decodes the values stored in a partition of the fake cluster,
// in offset order.
func storedValues(t *testing.T, cl *clienttest.Cluster, topic string, partition int32) []string {
	t.Helper()
	var out []string
	for _, b := range cl.Batches(topic, partition) {
		err := record.ForEach(b, func(r *record.Record) error {
			out = append(out, string(r.Value))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func valuesOf(recs []client.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Value))
	}
	return out
}

func names(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

func createReplicated(t *testing.T, c *client.Client, name string, partitions, rf int32) {
	t.Helper()
	if _, err := c.CreateTopic(testCtx(t), name, partitions, rf, nil); err != nil {
		t.Fatal(err)
	}
}

func TestProducerMovesToTheNewLeaderAfterNotLeader(t *testing.T) {
	cl := clienttest.NewCluster(t, 3)
	c := dial(t, cl.Broker(3).Addr)
	createReplicated(t, c, "moves", 3, 3)
	if l := cl.Leader("moves", 0); l != 1 {
		t.Fatalf("partition 0 led by %d, want 1", l)
	}
	p := newProducer(t, c, client.ProducerOptions{})
	produceAll(t, p, "moves", values(0, 10))

	// The client's metadata still names broker 1: its next request gets
	// NOT_LEADER_OR_FOLLOWER and must go to broker 2.
	cl.SetLeader("moves", 0, 2)
	before := len(cl.Broker(1).ProducedPartitions())
	res := produceAll(t, p, "moves", values(10, 20))
	if got := len(cl.Broker(1).ProducedPartitions()); got <= before {
		t.Fatalf("broker 1 got no request after the move: the refusal path was not exercised")
	}
	if len(cl.Broker(2).ProducedPartitions()) == 0 {
		t.Fatal("broker 2, the new leader, got no request")
	}
	for i, r := range res {
		if r.Partition != 0 || r.Offset != int64(10+i) {
			t.Fatalf("record %d: %+v, want partition 0 offset %d", 10+i, r, 10+i)
		}
	}
	if got, want := storedValues(t, cl, "moves", 0), valuesOf(values(0, 20)); !slices.Equal(got, want) {
		t.Fatalf("partition 0 holds %q, want %q (each record once, in order)", got, want)
	}
}

// The partitions of a topic with the same leader go in one request.
func TestProducerGroupsPartitionsByLeader(t *testing.T) {
	cl := clienttest.NewCluster(t, 2)
	c := dial(t, cl.Broker(1).Addr)
	createReplicated(t, c, "grouped", 4, 1) // leaders 1, 2, 1, 2
	p := newProducer(t, c, client.ProducerOptions{Linger: time.Hour})
	var recs []client.Record
	for part := range int32(4) {
		recs = append(recs, client.Record{Partition: part, Value: []byte("x")})
	}
	produceAll(t, p, "grouped", recs) // Flush seals all four at once
	for id, want := range map[int32][]int32{1: {0, 2}, 2: {1, 3}} {
		got := cl.Broker(id).ProducedPartitions()
		if len(got) != 1 {
			t.Fatalf("broker %d got %d requests %v, want one", id, len(got), got)
		}
		slices.Sort(got[0])
		if !slices.Equal(got[0], want) {
			t.Errorf("broker %d got partitions %v, want %v", id, got[0], want)
		}
	}
}

// Leaders move again and again while records flow: each partition keeps its
// records in produce order, each once, with callbacks in order.
func TestPartitionOrderHoldsAcrossLeaderMoves(t *testing.T) {
	cl := clienttest.NewCluster(t, 3)
	c := dial(t, cl.Broker(1).Addr)
	const topic, parts, n = "order", 4, 3000
	createReplicated(t, c, topic, parts, 3)
	p := newProducer(t, c, client.ProducerOptions{BatchBytes: 300, Linger: time.Millisecond, MaxInFlight: 5})

	ctx := testCtx(t)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // 60 moves, each partition's leader going round the brokers
		defer wg.Done()
		for i := range 60 {
			time.Sleep(5 * time.Millisecond) // pace the moves so records flow between them
			cl.SetLeader(topic, int32(i%parts), int32((i/parts)%3)+1)
		}
	}()

	var mu sync.Mutex
	var errs []error
	last := map[int32]int64{}
	for part := range int32(parts) {
		last[part] = -1
	}
	for i := range n {
		part := int32(i % parts)
		p.Produce(ctx, topic, client.Record{Partition: part, Value: fmt.Appendf(nil, "%d", i)}, func(r client.Result, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			if r.Offset != last[r.Partition]+1 {
				errs = append(errs, fmt.Errorf("record %d: partition %d offset %d after %d: callbacks out of order", i, r.Partition, r.Offset, last[r.Partition]))
			}
			last[r.Partition] = r.Offset
		})
		if i%10 == 0 {
			time.Sleep(time.Millisecond) // spread over the moves
		}
	}
	wg.Wait()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	mu.Unlock()
	for part := range int32(parts) {
		got := storedValues(t, cl, topic, part)
		if len(got) != n/parts {
			t.Fatalf("partition %d holds %d records, want %d", part, len(got), n/parts)
		}
		for j, v := range got {
			if want := fmt.Sprint(j*parts + int(part)); v != want {
				t.Fatalf("partition %d position %d holds %s, want %s: reordered or duplicated", part, j, v, want)
			}
		}
	}
}

// A leader broker that dies (gone from the metadata, its connections
// refused) loses no acknowledged record: they are retried on the new leader.
func TestProducerSurvivesTheLeaderBrokerDying(t *testing.T) {
	cl := clienttest.NewCluster(t, 3)
	c := dial(t, cl.Addrs())
	createReplicated(t, c, "dies", 3, 3)
	p := newProducer(t, c, client.ProducerOptions{Linger: time.Millisecond})
	ctx := testCtx(t)
	const n = 600
	var mu sync.Mutex
	var errs []error
	for i := range n {
		if i == n/3 {
			cl.RemoveBroker(1)
		}
		p.Produce(ctx, "dies", client.Record{Partition: int32(i % 3), Value: fmt.Appendf(nil, "v%d", i)}, func(_ client.Result, err error) {
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
		if i%20 == 0 {
			time.Sleep(time.Millisecond) // pace the records so some are in flight when the broker dies
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	// At least once: a request in flight when the broker stopped may have
	// been appended and retried.
	seen := map[string]bool{}
	for part := range int32(3) {
		for _, v := range storedValues(t, cl, "dies", part) {
			seen[v] = true
		}
	}
	for i := range n {
		if !seen[fmt.Sprintf("v%d", i)] {
			t.Fatalf("v%d acknowledged but not stored", i)
		}
	}
}

func TestFollowingConsumerResumesOnTheNewLeader(t *testing.T) {
	cl := clienttest.NewCluster(t, 2)
	c := dial(t, cl.Broker(1).Addr)
	createReplicated(t, c, "follow-move", 2, 2)
	p := newProducer(t, c, client.ProducerOptions{})
	cons := newConsumer(t, c, client.ConsumerOptions{Topic: "follow-move", Partitions: []int32{0}, Follow: true})

	produceAll(t, p, "follow-move", values(0, 10))
	got := pollN(t, cons, 10)
	cl.SetLeader("follow-move", 0, 2)
	produceAll(t, p, "follow-move", values(10, 20))
	got = append(got, pollN(t, cons, 10)...)
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

// A consumer following several partitions keeps one stream per leader, and
// a move of one partition leaves nothing behind.
func TestFollowingConsumerReadsEveryLeader(t *testing.T) {
	cl := clienttest.NewCluster(t, 3)
	c := dial(t, cl.Broker(1).Addr)
	createReplicated(t, c, "fan", 6, 3)
	p := newProducer(t, c, client.ProducerOptions{})
	cons := newConsumer(t, c, client.ConsumerOptions{Topic: "fan", Follow: true})
	var recs []client.Record
	for i := range 60 {
		recs = append(recs, client.Record{Partition: int32(i % 6), Value: fmt.Appendf(nil, "a%d", i)})
	}
	produceAll(t, p, "fan", recs)
	got := pollN(t, cons, 60)
	for id := int32(1); id <= 3; id++ {
		if n := len(cl.Broker(id).FetchStreams()); n != 1 {
			t.Errorf("broker %d served %d streams, want 1", id, n)
		}
	}
	cl.SetLeader("fan", 4, 1) // was 2
	recs = recs[:0]
	for i := range 60 {
		recs = append(recs, client.Record{Partition: int32(i % 6), Value: fmt.Appendf(nil, "b%d", i)})
	}
	produceAll(t, p, "fan", recs)
	got = append(got, pollN(t, cons, 60)...)
	seen := map[string]int{}
	next := map[int32]int64{}
	for _, r := range got {
		seen[string(r.Value)]++
		if r.Offset != next[r.Partition] {
			t.Fatalf("partition %d: offset %d, want %d", r.Partition, r.Offset, next[r.Partition])
		}
		next[r.Partition]++
	}
	if len(seen) != 120 || len(got) != 120 {
		t.Fatalf("%d records, %d distinct; want 120 once each", len(got), len(seen))
	}
}

func TestConsumerWithoutFollowResumesOnTheNewLeader(t *testing.T) {
	cl := clienttest.NewCluster(t, 2)
	c := dial(t, cl.Broker(1).Addr)
	createReplicated(t, c, "read-move", 1, 2)
	p := newProducer(t, c, client.ProducerOptions{})
	for i := range 20 {
		produceAll(t, p, "read-move", values(i, i+1)) // one batch each
	}
	// One batch per fetch, so the move lands in the middle of the reading.
	cons := newConsumer(t, c, client.ConsumerOptions{Topic: "read-move", PartitionMaxBytes: 1})
	ctx := testCtx(t)
	var got []client.Record
	for len(got) < 5 {
		recs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, recs...)
	}
	cl.SetLeader("read-move", 0, 2)
	got = append(got, consumeToEnd(t, cons)...)
	for i, r := range got {
		if want := fmt.Sprintf("v%d", i); string(r.Value) != want || r.Offset != int64(i) {
			t.Fatalf("record %d: offset %d value %q, want offset %d value %q", i, r.Offset, r.Value, i, want)
		}
	}
	if len(got) != 20 {
		t.Fatalf("%d records, want 20", len(got))
	}
}

func TestListOffsetsAsksTheLeader(t *testing.T) {
	cl := clienttest.NewCluster(t, 2)
	c := dial(t, cl.Broker(1).Addr)
	createReplicated(t, c, "offsets", 2, 2)
	p := newProducer(t, c, client.ProducerOptions{})
	produceAll(t, p, "offsets", []client.Record{{Partition: 0, Value: []byte("a")}, {Partition: 1, Value: []byte("b")}, {Partition: 1, Value: []byte("c")}})
	ctx := testCtx(t)
	if _, err := c.ListOffsets(ctx, "offsets", []int32{0, 1}, client.OffsetLatest); err != nil {
		t.Fatal(err)
	}
	cl.SetLeader("offsets", 0, 2)
	cl.SetLeader("offsets", 1, 1)
	got, err := c.ListOffsets(ctx, "offsets", []int32{0, 1}, client.OffsetLatest)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != 1 || got[1] != 2 {
		t.Fatalf("latest offsets %v, want 0:1 1:2", got)
	}
}

// Admin calls go to any broker that answers: the first bootstrap server is
// down, the second answers.
func TestAdminCallsFallBackToAnotherBootstrapServer(t *testing.T) {
	srv := clienttest.NewServer(t)
	c := dial(t, "127.0.0.1:1,"+srv.Addr)
	createTopic(t, c, "fallback", 1)
	topics, err := c.ListTopics(testCtx(t))
	if err != nil || len(topics) != 1 {
		t.Fatalf("list: %v, %v", topics, err)
	}
	p := newProducer(t, c, client.ProducerOptions{})
	produceAll(t, p, "fallback", values(0, 3))
	if got := consumeToEnd(t, newConsumer(t, c, client.ConsumerOptions{Topic: "fallback"})); len(got) != 3 {
		t.Fatalf("consumed %d records, want 3", len(got))
	}
}

func TestDialRefusesAnEmptyAddressList(t *testing.T) {
	if _, err := client.Dial(context.Background(), " , "); err == nil {
		t.Fatal("Dial accepted no address")
	}
}
