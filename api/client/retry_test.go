package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// unavailableFor fails partitions with Unavailable (the whole request for the
// first wholeFailures calls, then each partition for partFailures calls) and
// lets the rest through. It counts the calls.
func unavailableFor(wholeFailures, partFailures int, calls *atomic.Int32) func(*stratav1.ProduceRequest) (*stratav1.ProduceResponse, error) {
	return func(req *stratav1.ProduceRequest) (*stratav1.ProduceResponse, error) {
		n := int(calls.Add(1))
		switch {
		case n <= wholeFailures:
			return nil, status.Error(codes.Unavailable, "broker is shutting down")
		case n <= wholeFailures+partFailures:
			resp := &stratav1.ProduceResponse{}
			for _, pp := range req.Partitions {
				resp.Partitions = append(resp.Partitions, &stratav1.ProducePartitionResult{
					Partition: pp.Partition, BaseOffset: -1,
					Error: &stratav1.PartitionError{Code: int32(codes.Unavailable), Message: "log unavailable"},
				})
			}
			return resp, nil
		}
		return nil, nil
	}
}

func TestUnavailableRequestsAreRetriedInOrder(t *testing.T) {
	f := newFakeLog(t)
	var calls atomic.Int32
	f.setHook(unavailableFor(3, 3, &calls))
	p := startProducer(t, f, 2, ProducerOptions{BatchBytes: 200, Linger: NoLinger, RetryBackoff: time.Millisecond})
	var rs results
	const n = 200
	for i := range n {
		p.Produce(context.Background(), "t", Record{Partition: int32(i % 2), Value: fmt.Appendf(nil, "%03d", i)}, rs.cb(fmt.Sprint(i)))
	}
	flush(t, p)
	if c := calls.Load(); c <= 6 {
		t.Fatalf("%d requests: the failures were not all hit", c)
	}
	for part := int32(0); part < 2; part++ {
		vals := f.partition(part)
		if len(vals) != n/2 {
			t.Fatalf("partition %d holds %d records, want %d (each once)", part, len(vals), n/2)
		}
		for j, v := range vals {
			if want := fmt.Sprintf("%03d", 2*j+int(part)); v != want {
				t.Fatalf("partition %d position %d holds %s, want %s: retries reordered records", part, j, v, want)
			}
		}
	}
	got, errs, tags := rs.snapshot()
	if len(got) != n {
		t.Fatalf("%d callbacks for %d records", len(got), n)
	}
	seen := map[string]bool{}
	next := map[int32]int64{}
	for i, r := range got {
		if errs[i] != nil {
			t.Fatalf("record %s: %v", tags[i], errs[i])
		}
		if seen[tags[i]] {
			t.Fatalf("record %s called back twice", tags[i])
		}
		seen[tags[i]] = true
		if r.Offset != next[r.Partition] {
			t.Fatalf("record %s: partition %d offset %d, want %d", tags[i], r.Partition, r.Offset, next[r.Partition])
		}
		next[r.Partition]++
	}
}

func TestRetriesStopAtTheDeliveryTimeout(t *testing.T) {
	f := newFakeLog(t)
	var calls atomic.Int32
	f.setHook(unavailableFor(1<<30, 0, &calls))
	const timeout = 100 * time.Millisecond
	p := startProducer(t, f, 1, ProducerOptions{Linger: NoLinger, DeliveryTimeout: timeout, RetryBackoff: 5 * time.Millisecond})
	var rs results
	start := time.Now()
	for i := range 3 {
		p.Produce(context.Background(), "t", Record{Value: []byte{byte(i)}}, rs.cb(fmt.Sprint(i)))
	}
	flush(t, p)
	if elapsed := time.Since(start); elapsed < timeout {
		t.Errorf("records failed after %v, before their delivery timeout of %v", elapsed, timeout)
	}
	if c := calls.Load(); c < 3 {
		t.Errorf("%d requests in %v: not retried", c, timeout)
	}
	_, errs, _ := rs.snapshot()
	if len(errs) != 3 {
		t.Fatalf("%d callbacks for 3 records", len(errs))
	}
	for _, err := range errs {
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "broker is shutting down") {
			t.Errorf("record failed with %v; want the last attempt's Unavailable error", err)
		}
	}
	if vals := f.partition(0); len(vals) != 0 {
		t.Errorf("partition holds %v", vals)
	}
}

// A whole request that timed out is retried: with failover, a broker that
// vanished mid-call is normal. The retry may duplicate (at least once).
func TestDeadlineExceededIsRetried(t *testing.T) {
	f := newFakeLog(t)
	var calls atomic.Int32
	f.setHook(func(*stratav1.ProduceRequest) (*stratav1.ProduceResponse, error) {
		if calls.Add(1) <= 2 {
			return nil, status.Error(codes.DeadlineExceeded, "timed out")
		}
		return nil, nil
	})
	p := startProducer(t, f, 1, ProducerOptions{Linger: NoLinger, RetryBackoff: time.Millisecond})
	var rs results
	p.Produce(context.Background(), "t", Record{Value: []byte("x")}, rs.cb("x"))
	flush(t, p)
	got, errs, _ := rs.snapshot()
	if len(errs) != 1 || errs[0] != nil || got[0].Offset != 0 {
		t.Fatalf("results %v, errors %v", got, errs)
	}
	if c := calls.Load(); c != 3 {
		t.Fatalf("%d requests, want 3 (two timed out)", c)
	}
}

// counter is a partition count lookup whose answer the test changes; it
// records whether each lookup asked for a refresh.
type counter struct {
	n         atomic.Int32
	missing   atomic.Bool // the topic does not exist
	mu        sync.Mutex
	refreshes []bool
}

func (c *counter) count(_ context.Context, _ string, refresh bool) (int32, error) {
	c.mu.Lock()
	c.refreshes = append(c.refreshes, refresh)
	c.mu.Unlock()
	if c.missing.Load() {
		return 0, status.Error(codes.NotFound, "no such topic")
	}
	return c.n.Load(), nil
}

func (c *counter) check(string, int32) error {
	if c.missing.Load() {
		return status.Error(codes.NotFound, "no such topic")
	}
	return nil
}

func (c *counter) lookups() []bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]bool(nil), c.refreshes...)
}

// produceKeyed produces one record keyed "foobar" (partition 6 of 10, 0 of 2
// with Kafka's partitioner) and returns its outcome.
func produceKeyed(t *testing.T, p *Producer) (Result, error) {
	t.Helper()
	var rs results
	p.Produce(context.Background(), "t", KeyValue([]byte("foobar"), []byte("v")), rs.cb("foobar"))
	flush(t, p)
	got, errs, _ := rs.snapshot()
	if len(got) != 1 {
		t.Fatalf("%d callbacks", len(got))
	}
	return got[0], errs[0]
}

func TestTopicRecreatedWithMorePartitionsAfterNotFound(t *testing.T) {
	f := newFakeLog(t)
	var c counter
	c.n.Store(2)
	cluster := newTestCluster(c.count, f.sendWire)
	cluster.check = c.check
	p := newProducer(cluster, ProducerOptions{Linger: NoLinger})
	t.Cleanup(func() { _ = p.Close() })
	if r, err := produceKeyed(t, p); err != nil || r.Partition != 0 {
		t.Fatalf("first record: %+v, %v", r, err)
	}
	// The topic is deleted (the metadata says so: the record fails at once
	// rather than being retried), then re-created with 10 partitions.
	c.missing.Store(true)
	f.setHook(func(req *stratav1.ProduceRequest) (*stratav1.ProduceResponse, error) {
		return &stratav1.ProduceResponse{Partitions: []*stratav1.ProducePartitionResult{{
			Partition: req.Partitions[0].Partition, BaseOffset: -1,
			Error: &stratav1.PartitionError{Code: int32(codes.NotFound), Message: "unknown topic"},
		}}}, nil
	})
	if _, err := produceKeyed(t, p); status.Code(err) != codes.NotFound {
		t.Fatalf("record to the deleted topic: %v", err)
	}
	f.setHook(nil)
	c.missing.Store(false)
	c.n.Store(10)
	if r, err := produceKeyed(t, p); err != nil || r.Partition != 6 {
		t.Fatalf("record after NotFound: %+v, %v; want partition 6 of 10", r, err)
	}
	if got := c.lookups(); len(got) != 2 || got[0] || !got[1] {
		t.Fatalf("lookups (refresh flags) %v; want a first one from the cache, then one refresh", got)
	}
}

func TestPartitionCountRefreshedAfterMetadataMaxAge(t *testing.T) {
	f := newFakeLog(t)
	var c counter
	c.n.Store(2)
	const maxAge = 20 * time.Millisecond
	p := newProducer(newTestCluster(c.count, f.sendWire), ProducerOptions{Linger: NoLinger, MetadataMaxAge: maxAge})
	t.Cleanup(func() { _ = p.Close() })
	if r, err := produceKeyed(t, p); err != nil || r.Partition != 0 {
		t.Fatalf("first record: %+v, %v", r, err)
	}
	c.n.Store(10)
	time.Sleep(2 * maxAge) // the cached count grows older than maxAge
	if r, err := produceKeyed(t, p); err != nil || r.Partition != 6 {
		t.Fatalf("record after the max age: %+v, %v; want partition 6 of 10", r, err)
	}
	// A shrink keeps the old partitions' state but spreads over the new count.
	c.n.Store(2)
	time.Sleep(2 * maxAge)
	if r, err := produceKeyed(t, p); err != nil || r.Partition != 0 {
		t.Fatalf("record after shrinking: %+v, %v; want partition 0 of 2", r, err)
	}
}

func TestCloseContextFailsPendingRecordsWhenItEnds(t *testing.T) {
	// A hung broker: requests never answer until cancelled.
	var calls atomic.Int32
	send := func(ctx context.Context, _ *produceWire) (*stratav1.ProduceResponse, error) {
		calls.Add(1)
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	p := newProducer(newTestCluster(fixedCount(1), send), ProducerOptions{BatchBytes: 200, Linger: NoLinger})
	var rs results
	const n = 20 // several batches: one in flight, the others queued behind it
	for i := range n {
		p.Produce(context.Background(), "t", Record{Value: make([]byte, 50)}, rs.cb(fmt.Sprint(i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := p.CloseContext(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("CloseContext: %v, want deadline exceeded", err)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Fatalf("CloseContext took %v", elapsed)
	}
	_, errs, tags := rs.snapshot()
	if len(errs) != n {
		t.Fatalf("%d callbacks for %d records", len(errs), n)
	}
	for i, err := range errs {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("record %s: %v, want CloseContext's deadline", tags[i], err)
		}
	}
	if c := calls.Load(); c != 1 {
		t.Errorf("%d requests sent; the queued batches should fail unsent", c)
	}
	if err := p.Close(); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second close: %v", err)
	}
}
