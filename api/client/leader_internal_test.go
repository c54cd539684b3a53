package client

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/strata-broker/strata/api/client/clienttest"
	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

func TestRetryDelayIsBounded(t *testing.T) {
	const base, max = 20 * time.Millisecond, time.Second
	for attempt := 1; attempt <= 64; attempt++ {
		want := base << min(attempt-1, 10)
		want = min(want, max)
		for range 20 {
			d := retryDelay(base, max, attempt, nil)
			if d > max {
				t.Fatalf("attempt %d: %v, above the maximum %v", attempt, d, max)
			}
			if lo := time.Duration(float64(want) * (1 - retryJitter)); d < lo {
				t.Fatalf("attempt %d: %v, below %v", attempt, d, lo)
			}
		}
	}
}

// failingCluster is a testCluster whose broker answers every partition with
// a partition error, recording when each attempt came.
func failingCluster(pe *stratav1.PartitionError, attempts *[]time.Time, mu *sync.Mutex) *testCluster {
	send := func(_ context.Context, w *produceWire) (*stratav1.ProduceResponse, error) {
		mu.Lock()
		*attempts = append(*attempts, time.Now())
		mu.Unlock()
		resp := &stratav1.ProduceResponse{}
		for _, p := range w.parts {
			resp.Partitions = append(resp.Partitions, &stratav1.ProducePartitionResult{Partition: p.partition, BaseOffset: -1, Error: pe})
		}
		return resp, nil
	}
	return newTestCluster(fixedCount(1), send)
}

// A partition that keeps failing is retried at least every RetryBackoffMax
// (with jitter), not at ever longer intervals, until its delivery timeout.
func TestRetryBackoffIsBounded(t *testing.T) {
	var mu sync.Mutex
	var attempts []time.Time
	cl := failingCluster(&stratav1.PartitionError{Code: int32(codes.Unavailable), Reason: ReasonLeaderNotAvailable, Message: "election"}, &attempts, &mu)
	const timeout = 500 * time.Millisecond
	p := newProducer(cl, ProducerOptions{Linger: NoLinger, RetryBackoff: time.Millisecond, RetryBackoffMax: 4 * time.Millisecond, DeliveryTimeout: timeout})
	defer p.Close()
	var rs results
	p.Produce(context.Background(), "t", Record{Value: []byte("x")}, rs.cb("x"))
	flush(t, p)
	_, errs, _ := rs.snapshot()
	var perr *PartitionError
	if len(errs) != 1 || !errors.As(errs[0], &perr) || perr.Reason != ReasonLeaderNotAvailable {
		t.Fatalf("errors %v; want the last attempt's LEADER_NOT_AVAILABLE", errs)
	}
	mu.Lock()
	defer mu.Unlock()
	// Doubling without a bound would allow 9 attempts in 500 ms.
	if len(attempts) < 30 {
		t.Fatalf("%d attempts in %v: the backoff is not bounded by 4 ms", len(attempts), timeout)
	}
	for i := 1; i < len(attempts); i++ {
		if gap := attempts[i].Sub(attempts[i-1]); gap > 150*time.Millisecond {
			t.Fatalf("%v between attempts %d and %d, with a 4 ms maximum backoff", gap, i-1, i)
		}
	}
	if got := cl.refreshes.Load(); got < int32(len(attempts))-1 {
		t.Errorf("%d metadata refreshes for %d failed attempts", got, len(attempts))
	}
}

// acks=all shortfalls are retried, as Kafka producers do.
func TestNotEnoughReplicasAndRequestTimedOutAreRetried(t *testing.T) {
	f := newFakeLog(t)
	var calls atomic.Int32
	f.setHook(func(req *stratav1.ProduceRequest) (*stratav1.ProduceResponse, error) {
		var pe *stratav1.PartitionError
		switch calls.Add(1) {
		case 1:
			pe = &stratav1.PartitionError{Code: int32(codes.Unavailable), Reason: ReasonNotEnoughReplicas, Message: "isr 1 < 2"}
		case 2:
			pe = &stratav1.PartitionError{Code: int32(codes.DeadlineExceeded), Reason: ReasonRequestTimedOut, Message: "not replicated in time"}
		default:
			return nil, nil
		}
		return &stratav1.ProduceResponse{Partitions: []*stratav1.ProducePartitionResult{{Partition: req.Partitions[0].Partition, BaseOffset: -1, Error: pe}}}, nil
	})
	p := startProducer(t, f, 1, ProducerOptions{Linger: NoLinger, RetryBackoff: time.Millisecond})
	var rs results
	p.Produce(context.Background(), "t", Record{Value: []byte("x")}, rs.cb("x"))
	flush(t, p)
	got, errs, _ := rs.snapshot()
	if errs[0] != nil || got[0].Offset != 0 {
		t.Fatalf("result %+v, %v", got[0], errs[0])
	}
	if vals := f.partition(0); len(vals) != 1 || calls.Load() != 3 {
		t.Fatalf("stored %v after %d calls; want one record after 3", vals, calls.Load())
	}
}

// A leader that does not know the partition yet (it has not loaded the
// topic) is retried while the metadata says the partition exists.
func TestUnknownPartitionRetriedWhileTheMetadataHasIt(t *testing.T) {
	f := newFakeLog(t)
	var calls atomic.Int32
	f.setHook(func(req *stratav1.ProduceRequest) (*stratav1.ProduceResponse, error) {
		if calls.Add(1) > 2 {
			return nil, nil
		}
		return &stratav1.ProduceResponse{Partitions: []*stratav1.ProducePartitionResult{{
			Partition: req.Partitions[0].Partition, BaseOffset: -1,
			Error: &stratav1.PartitionError{Code: int32(codes.NotFound), Reason: ReasonUnknownTopicOrPartition, Message: "not loaded"},
		}}}, nil
	})
	p := startProducer(t, f, 1, ProducerOptions{Linger: NoLinger, RetryBackoff: time.Millisecond})
	var rs results
	p.Produce(context.Background(), "t", Record{Value: []byte("x")}, rs.cb("x"))
	flush(t, p)
	_, errs, _ := rs.snapshot()
	if errs[0] != nil || calls.Load() != 3 {
		t.Fatalf("error %v after %d calls; want success after 3", errs[0], calls.Load())
	}
}

func dialTest(t *testing.T, addr string) *Client {
	t.Helper()
	c, err := Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestConnectionClosedWhenBrokerLeavesMetadata(t *testing.T) {
	cl := clienttest.NewCluster(t, 3)
	c := dialTest(t, cl.Broker(1).Addr)
	ctx := testContext(t)
	if _, err := c.CreateTopic(ctx, "t", 3, 1, nil); err != nil { // leaders 1, 2, 3
		t.Fatal(err)
	}
	p := NewProducer(c, ProducerOptions{})
	defer p.Close()
	done := make(chan error, 1)
	p.Produce(ctx, "t", Record{Partition: 1, Value: []byte("x")}, func(_ Result, err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	conn2 := c.conns[cl.Broker(2).Addr]
	c.mu.Unlock()
	if conn2 == nil {
		t.Fatal("no connection to broker 2, the leader produced to")
	}

	cl.RemoveBroker(2)
	if err := c.refreshMetadata(ctx, []string{"t"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if s := conn2.GetState(); s != connectivity.Shutdown {
		t.Fatalf("connection to the removed broker is %v, want closed", s)
	}
	c.mu.Lock()
	_, kept := c.conns[cl.Broker(2).Addr]
	boot := c.conns[cl.Broker(1).Addr]
	c.mu.Unlock()
	if kept || boot == nil || boot.GetState() == connectivity.Shutdown {
		t.Fatalf("after the removal: broker 2 kept %v, bootstrap connection %v", kept, boot)
	}
}

// Every partition of a failed leader asks for metadata at once; one request
// answers them, and requests are spaced by minRefreshInterval.
func TestConcurrentRefreshesShareOneRequest(t *testing.T) {
	srv := clienttest.NewServer(t)
	c := dialTest(t, srv.Addr)
	ctx := testContext(t)
	if _, err := c.CreateTopic(ctx, "t", 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.refreshMetadata(ctx, []string{"t"}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	before := srv.MetadataCalls()
	start := time.Now()
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.refreshMetadata(ctx, []string{"t"}, time.Now()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if calls := srv.MetadataCalls() - before; calls > 2 {
		t.Errorf("%d Metadata calls for 20 concurrent refreshes", calls)
	}
	if elapsed := time.Since(start); elapsed < minRefreshInterval*9/10 {
		t.Errorf("refresh %v after the previous one, under the %v spacing", elapsed, minRefreshInterval)
	}
}

// A partition without a leader waits (retrying) until one is elected.
func TestProducerWaitsForALeader(t *testing.T) {
	cl := clienttest.NewCluster(t, 2)
	c := dialTest(t, cl.Broker(1).Addr)
	ctx := testContext(t)
	if _, err := c.CreateTopic(ctx, "t", 1, 2, nil); err != nil {
		t.Fatal(err)
	}
	cl.SetLeader("t", 0, -1)
	p := NewProducer(c, ProducerOptions{})
	defer p.Close()
	done := make(chan error, 1)
	p.Produce(ctx, "t", Record{Value: []byte("x")}, func(_ Result, err error) { done <- err })
	select {
	case err := <-done:
		t.Fatalf("record completed without a leader: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	cl.SetLeader("t", 0, 2)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := len(cl.Batches("t", 0)); got != 1 {
		t.Fatalf("%d batches stored, want 1", got)
	}
}

// A record for a topic the metadata says does not exist fails with
// codes.NotFound at once.
func TestUnknownTopicFailsFromMetadata(t *testing.T) {
	srv := clienttest.NewServer(t)
	c := dialTest(t, srv.Addr)
	p := NewProducer(c, ProducerOptions{})
	defer p.Close()
	done := make(chan error, 1)
	p.Produce(testContext(t), "nope", Record{Value: []byte("x")}, func(_ Result, err error) { done <- err })
	if err := <-done; status.Code(err) != codes.NotFound {
		t.Fatalf("produce to an unknown topic: %v", err)
	}
}
