package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-broker/strata/api/client"
	"github.com/strata-broker/strata/api/client/clienttest"
	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/record"
)

// runSuite checks the client against a server at addr: the in-memory
// clienttest server and the real broker run the same tests.
func runSuite(t *testing.T, addr string) {
	t.Run("Admin", func(t *testing.T) { testAdmin(t, dial(t, addr)) })
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, dial(t, addr)) })
	t.Run("StartInsideABatch", func(t *testing.T) { testStartInsideABatch(t, dial(t, addr)) })
	t.Run("StartLatestWithoutFollowEndsAtOnce", func(t *testing.T) { testStartLatest(t, dial(t, addr)) })
	t.Run("Follow", func(t *testing.T) { testFollow(t, dial(t, addr)) })
	t.Run("OutOfRange", func(t *testing.T) { testOutOfRange(t, dial(t, addr)) })
	t.Run("UnknownTopic", func(t *testing.T) { testUnknownTopic(t, dial(t, addr)) })
	t.Run("AcksNone", func(t *testing.T) { testAcksNone(t, dial(t, addr)) })
}

func TestAgainstClienttest(t *testing.T) {
	runSuite(t, clienttest.NewServer(t).Addr)
}

func dial(t *testing.T, addr string) *client.Client {
	t.Helper()
	c, err := client.Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func createTopic(t *testing.T, c *client.Client, name string, partitions int32) {
	t.Helper()
	if _, err := c.CreateTopic(testCtx(t), name, partitions, 1, nil); err != nil {
		t.Fatal(err)
	}
}

func newProducer(t *testing.T, c *client.Client, opts client.ProducerOptions) *client.Producer {
	t.Helper()
	p := client.NewProducer(c, opts)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func newConsumer(t *testing.T, c *client.Client, opts client.ConsumerOptions) *client.Consumer {
	t.Helper()
	cons, err := client.NewConsumer(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cons.Close() })
	return cons
}

// produceAll produces records and waits for all of them; it fails the test
// on any error and returns the results in produce order.
func produceAll(t *testing.T, p *client.Producer, topic string, recs []client.Record) []client.Result {
	t.Helper()
	ctx := testCtx(t)
	out := make([]client.Result, len(recs))
	errs := make([]error, len(recs))
	for i, r := range recs {
		p.Produce(ctx, topic, r, func(res client.Result, err error) { out[i], errs[i] = res, err })
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return out
}

// consumeToEnd polls a non-following consumer until io.EOF.
func consumeToEnd(t *testing.T, cons *client.Consumer) []client.Record {
	t.Helper()
	ctx := testCtx(t)
	var out []client.Record
	for {
		recs, err := cons.Poll(ctx)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, recs...)
	}
}

func testAdmin(t *testing.T, c *client.Client) {
	ctx := testCtx(t)
	d, err := c.CreateTopic(ctx, "admin-topic", 3, 1, map[string]string{"retention.ms": "3600000"})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.GetPartitions()) != 3 || d.GetName() != "admin-topic" {
		t.Fatalf("created %v", d)
	}
	if _, err := c.CreateTopic(ctx, "admin-topic", 3, 1, nil); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("second create: %v", err)
	}
	topics, err := c.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(topics, func(s *stratav1.TopicSummary) bool { return s.GetName() == "admin-topic" }) {
		t.Fatalf("list: %v", topics)
	}
	d, err = c.DescribeTopic(ctx, "admin-topic")
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range d.GetPartitions() {
		if p.GetPartition() != int32(i) {
			t.Fatalf("partitions not sorted: %v", d.GetPartitions())
		}
	}
	if got := override(d.GetConfigs(), "retention.ms"); got != "3600000" {
		t.Fatalf("retention.ms override %q in %v", got, d.GetConfigs())
	}
	configs, err := c.AlterTopicConfigs(ctx, "admin-topic", map[string]string{"cleanup.policy": "compact"}, []string{"retention.ms"})
	if err != nil {
		t.Fatal(err)
	}
	if override(configs, "cleanup.policy") != "compact" || override(configs, "retention.ms") != "" {
		t.Fatalf("after alter: %v", configs)
	}
	if err := c.DeleteTopic(ctx, "admin-topic"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DescribeTopic(ctx, "admin-topic"); status.Code(err) != codes.NotFound {
		t.Fatalf("describe deleted topic: %v", err)
	}
	if err := c.DeleteTopic(ctx, "admin-topic"); status.Code(err) != codes.NotFound {
		t.Fatalf("delete deleted topic: %v", err)
	}
}

// override returns the value of a topic-level override, "" when none.
func override(entries []*stratav1.ConfigEntry, name string) string {
	for _, e := range entries {
		if e.GetName() == name && e.GetSource() == "topic" {
			return e.GetValue()
		}
	}
	return ""
}

func testRoundTrip(t *testing.T, c *client.Client) {
	const topic, n = "round-trip", 300
	createTopic(t, c, topic, 3)
	p := newProducer(t, c, client.ProducerOptions{BatchBytes: 4096})
	ts := time.UnixMilli(time.Now().UnixMilli()).Add(-time.Hour)
	var recs []client.Record
	for i := range n {
		r := client.KeyValue([]byte(fmt.Sprintf("key-%d", i%17)), []byte(fmt.Sprintf("value-%d", i)))
		r.Headers = []record.RecordHeader{{Key: "i", Value: []byte(fmt.Sprint(i))}}
		r.Timestamp = ts.Add(time.Duration(i) * time.Millisecond)
		if i%50 == 0 {
			r.Value = nil // a tombstone
		}
		recs = append(recs, r)
	}
	results := produceAll(t, p, topic, recs)
	for i, res := range results {
		if want := record.KeyPartition(recs[i].Key, 3); res.Partition != want {
			t.Fatalf("record %d in partition %d, want %d", i, res.Partition, want)
		}
	}

	got := consumeToEnd(t, newConsumer(t, c, client.ConsumerOptions{Topic: topic}))
	if len(got) != n {
		t.Fatalf("consumed %d records, want %d", len(got), n)
	}
	byPlace := map[[2]int64]client.Record{}
	next := map[int32]int64{}
	for _, r := range got {
		if r.Topic != topic || r.Offset != next[r.Partition] {
			t.Fatalf("record %s/%d@%d, want offset %d: not in offset order", r.Topic, r.Partition, r.Offset, next[r.Partition])
		}
		next[r.Partition]++
		byPlace[[2]int64{int64(r.Partition), r.Offset}] = r
	}
	for i, res := range results {
		r, ok := byPlace[[2]int64{int64(res.Partition), res.Offset}]
		if !ok {
			t.Fatalf("record %d (partition %d offset %d) not consumed", i, res.Partition, res.Offset)
		}
		want := recs[i]
		if !bytes.Equal(r.Key, want.Key) || !bytes.Equal(r.Value, want.Value) || (r.Value == nil) != (want.Value == nil) ||
			!r.Timestamp.Equal(want.Timestamp) || len(r.Headers) != 1 || string(r.Headers[0].Value) != fmt.Sprint(i) {
			t.Fatalf("record %d: consumed %+v, produced %+v", i, r, want)
		}
	}
}

func testStartInsideABatch(t *testing.T, c *client.Client) {
	const topic = "start-inside"
	createTopic(t, c, topic, 1)
	p := newProducer(t, c, client.ProducerOptions{Linger: time.Hour})
	var recs []client.Record
	for i := range 10 {
		recs = append(recs, client.Record{Value: []byte(fmt.Sprint(i))})
	}
	produceAll(t, p, topic, recs) // one batch: offsets 0-9

	got := consumeToEnd(t, newConsumer(t, c, client.ConsumerOptions{Topic: topic, Offsets: map[int32]int64{0: 5}}))
	if len(got) != 5 || got[0].Offset != 5 || string(got[0].Value) != "5" {
		t.Fatalf("from offset 5: %d records, first %+v", len(got), got)
	}

	cons := newConsumer(t, c, client.ConsumerOptions{Topic: topic, Offsets: map[int32]int64{0: 5}})
	ctx := testCtx(t)
	total := 0
	for {
		batches, err := cons.PollBatches(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range batches {
			total += b.Records
		}
	}
	if total != 5 {
		t.Fatalf("PollBatches counted %d records from offset 5, want 5", total)
	}
}

func testStartLatest(t *testing.T, c *client.Client) {
	const topic = "start-latest"
	createTopic(t, c, topic, 2)
	produceAll(t, newProducer(t, c, client.ProducerOptions{}), topic, []client.Record{{Partition: 0, Value: []byte("x")}, {Partition: 1, Value: []byte("y")}})
	got := consumeToEnd(t, newConsumer(t, c, client.ConsumerOptions{Topic: topic, Start: client.StartLatest}))
	if len(got) != 0 {
		t.Fatalf("latest: %d records", len(got))
	}
}

func testFollow(t *testing.T, c *client.Client) {
	const topic, n = "follow", 50
	createTopic(t, c, topic, 2)
	p := newProducer(t, c, client.ProducerOptions{Linger: time.Millisecond})
	produceAll(t, p, topic, []client.Record{{Partition: 0, Value: []byte("old")}})
	ctx := testCtx(t)
	hw, err := c.ListOffsets(ctx, topic, []int32{0, 1}, client.OffsetLatest)
	if err != nil {
		t.Fatal(err)
	}
	cons := newConsumer(t, c, client.ConsumerOptions{Topic: topic, Follow: true, Offsets: hw, MaxWait: 100 * time.Millisecond})

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			p.Produce(ctx, topic, client.Record{Partition: int32(i % 2), Value: []byte(fmt.Sprint(i))}, nil)
			if i%10 == 0 {
				_ = p.Flush(ctx)
			}
		}
		_ = p.Flush(ctx)
	}()
	defer wg.Wait()
	seen := map[string]bool{}
	for len(seen) < n {
		recs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatalf("after %d records: %v", len(seen), err)
		}
		for _, r := range recs {
			if string(r.Value) == "old" {
				t.Fatal("consumed a record from before the start offset")
			}
			seen[string(r.Value)] = true
		}
	}
	if err := cons.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cons.Poll(ctx); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("poll after close: %v", err)
	}
}

func testOutOfRange(t *testing.T, c *client.Client) {
	const topic = "out-of-range"
	createTopic(t, c, topic, 1)
	produceAll(t, newProducer(t, c, client.ProducerOptions{}), topic, []client.Record{{Value: []byte("x")}})
	cons := newConsumer(t, c, client.ConsumerOptions{Topic: topic, Offsets: map[int32]int64{0: 1000}})
	_, err := cons.Poll(testCtx(t))
	var perr *client.PartitionError
	if status.Code(err) != codes.OutOfRange || !errors.As(err, &perr) || perr.Offset != 1000 {
		t.Fatalf("poll at offset 1000 of 1: %v", err)
	}
}

func testUnknownTopic(t *testing.T, c *client.Client) {
	cons := newConsumer(t, c, client.ConsumerOptions{Topic: "no-such-topic"})
	if _, err := cons.Poll(testCtx(t)); status.Code(err) != codes.NotFound {
		t.Fatalf("consume unknown topic: %v", err)
	}
	p := newProducer(t, c, client.ProducerOptions{})
	done := make(chan error, 1)
	p.Produce(testCtx(t), "no-such-topic", client.Record{Value: []byte("x")}, func(_ client.Result, err error) { done <- err })
	if err := <-done; status.Code(err) != codes.NotFound {
		t.Fatalf("produce to unknown topic: %v", err)
	}
}

func testAcksNone(t *testing.T, c *client.Client) {
	const topic = "acks-none"
	createTopic(t, c, topic, 1)
	res := produceAll(t, newProducer(t, c, client.ProducerOptions{Acks: client.AcksNone}), topic,
		[]client.Record{{Value: []byte("a")}, {Value: []byte("b")}})
	for _, r := range res {
		if r.Offset != -1 {
			t.Fatalf("acks=0 result %+v, want offset -1", r)
		}
	}
	if got := consumeToEnd(t, newConsumer(t, c, client.ConsumerOptions{Topic: topic})); len(got) != 2 {
		t.Fatalf("consumed %d records", len(got))
	}
}

// The consumer checks CRCs itself: a batch damaged after the broker stored it
// is a DataLoss error naming the offsets, not garbage records.
func TestConsumerReportsCorruptBatchWithOffsets(t *testing.T) {
	srv := clienttest.NewServer(t)
	c := dial(t, srv.Addr)
	createTopic(t, c, "corrupt", 1)
	p := newProducer(t, c, client.ProducerOptions{Linger: time.Hour})
	produceAll(t, p, "corrupt", []client.Record{{Value: []byte("a")}, {Value: []byte("b")}})
	produceAll(t, p, "corrupt", []client.Record{{Value: []byte("c")}})
	base, next := srv.CorruptBatch("corrupt", 0, 1)

	cons := newConsumer(t, c, client.ConsumerOptions{Topic: "corrupt"})
	ctx := testCtx(t)
	recs, err := cons.Poll(ctx)
	if err != nil || len(recs) != 2 {
		t.Fatalf("first poll: %d records, %v; want the 2 intact ones", len(recs), err)
	}
	_, err = cons.Poll(ctx)
	var perr *client.PartitionError
	if !errors.As(err, &perr) || perr.Code != codes.DataLoss || perr.Offset != base || perr.NextOffset != next {
		t.Fatalf("poll of the corrupt batch: %v", err)
	}
}
