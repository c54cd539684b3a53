package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/record"
)

// fakeLog is a send function standing in for the broker: it decodes every
// batch it receives, keeps the values per partition in arrival order and
// answers with dense offsets.
type fakeLog struct {
	t *testing.T

	mu       sync.Mutex
	values   map[int32][]string
	requests []*stratav1.ProduceRequest // record_batches copied
	// hook runs before a request is applied; it may sleep or fail it.
	hook func(*stratav1.ProduceRequest) (*stratav1.ProduceResponse, error)
}

func newFakeLog(t *testing.T) *fakeLog {
	return &fakeLog{t: t, values: make(map[int32][]string)}
}

// sendWire is the producer's send function: the request in protobuf form
// goes to send.
func (f *fakeLog) sendWire(ctx context.Context, w *produceWire) (*stratav1.ProduceResponse, error) {
	return f.send(ctx, w.proto())
}

func (f *fakeLog) send(ctx context.Context, req *stratav1.ProduceRequest) (*stratav1.ProduceResponse, error) {
	// The producer reuses its buffers once the call returns: copy.
	cp := &stratav1.ProduceRequest{Topic: req.Topic, Acks: req.Acks, TimeoutMs: req.TimeoutMs}
	for _, pp := range req.Partitions {
		cp.Partitions = append(cp.Partitions, &stratav1.ProducePartition{
			Partition:     pp.Partition,
			RecordBatches: append([]byte(nil), pp.RecordBatches...),
		})
	}
	f.mu.Lock()
	hook := f.hook
	f.mu.Unlock()
	if hook != nil {
		if resp, err := hook(cp); resp != nil || err != nil {
			return resp, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, cp)
	resp := &stratav1.ProduceResponse{}
	for _, pp := range cp.Partitions {
		base := int64(len(f.values[pp.Partition]))
		it := record.NewBatches(pp.RecordBatches)
		n := int32(0)
		for it.Next() {
			if _, err := record.Validate(it.Bytes()); err != nil {
				f.t.Errorf("invalid batch sent: %v", err)
			}
			err := record.ForEach(it.Bytes(), func(r *record.Record) error {
				f.values[pp.Partition] = append(f.values[pp.Partition], string(r.Value))
				n++
				return nil
			})
			if err != nil {
				f.t.Errorf("decode batch: %v", err)
			}
		}
		if it.Err() != nil {
			f.t.Errorf("batches: %v", it.Err())
		}
		resp.Partitions = append(resp.Partitions, &stratav1.ProducePartitionResult{
			Partition: pp.Partition, BaseOffset: base, RecordCount: n,
		})
	}
	return resp, nil
}

func (f *fakeLog) setHook(h func(*stratav1.ProduceRequest) (*stratav1.ProduceResponse, error)) {
	f.mu.Lock()
	f.hook = h
	f.mu.Unlock()
}

func (f *fakeLog) partition(p int32) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.values[p]...)
}

// batchesOf returns the sizes and record counts of every batch received.
func (f *fakeLog) batchesOf() (sizes, counts []int, partitions []int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, req := range f.requests {
		for _, pp := range req.Partitions {
			it := record.NewBatches(pp.RecordBatches)
			for it.Next() {
				h := it.Header()
				sizes = append(sizes, h.Size())
				counts = append(counts, int(h.RecordCount))
				partitions = append(partitions, pp.Partition)
			}
		}
	}
	return sizes, counts, partitions
}

// countFunc returns a topic's partition count; refresh asks the cluster
// rather than a cache.
type countFunc func(ctx context.Context, topic string, refresh bool) (int32, error)

// sendFunc sends one produce request.
type sendFunc func(context.Context, *produceWire) (*stratav1.ProduceResponse, error)

func fixedCount(n int32) countFunc {
	return func(context.Context, string, bool) (int32, error) { return n, nil }
}

// testCluster is a producerCluster of one broker, node 1, which leads every
// partition: count gives partition counts, send takes the requests.
type testCluster struct {
	count countFunc
	send  sendFunc
	// check, if set, says whether a partition exists after a refresh
	// (nil: it does).
	check func(topic string, partition int32) error
	// refreshes counts the metadata refreshes asked for.
	refreshes atomic.Int32
}

func newTestCluster(count countFunc, send sendFunc) *testCluster {
	return &testCluster{count: count, send: send}
}

func (c *testCluster) partitionCount(ctx context.Context, topic string, refresh bool) (int32, error) {
	return c.count(ctx, topic, refresh)
}

func (c *testCluster) leaderOf(string, int32) int32 { return 1 }

func (c *testCluster) leaderEpochOf(string, int32) (int32, int32) { return 1, 0 }

func (c *testCluster) refreshMetadata(context.Context, []string, time.Time) error {
	c.refreshes.Add(1)
	return nil
}

func (c *testCluster) refreshMetadataAvoiding(ctx context.Context, topics []string, since time.Time, _ int32) error {
	return c.refreshMetadata(ctx, topics, since)
}

func (c *testCluster) checkPartition(topic string, partition int32) error {
	if c.check == nil {
		return nil
	}
	return c.check(topic, partition)
}

func (c *testCluster) produce(ctx context.Context, _ int32, w *produceWire) (*stratav1.ProduceResponse, error) {
	return c.send(ctx, w)
}

func startProducer(t *testing.T, f *fakeLog, partitions int32, opts ProducerOptions) *Producer {
	t.Helper()
	p := newProducer(newTestCluster(fixedCount(partitions), f.sendWire), opts)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// results collects callback outcomes in callback order.
type results struct {
	mu   sync.Mutex
	got  []Result
	errs []error
	tags []string
}

func (r *results) cb(tag string) func(Result, error) {
	return func(res Result, err error) {
		r.mu.Lock()
		r.got = append(r.got, res)
		r.errs = append(r.errs, err)
		r.tags = append(r.tags, tag)
		r.mu.Unlock()
	}
}

func (r *results) snapshot() ([]Result, []error, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Result(nil), r.got...), append([]error(nil), r.errs...), append([]string(nil), r.tags...)
}

func flush(t *testing.T, p *Producer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestKeyedRecordsGoWhereKafkaPutsThem(t *testing.T) {
	// Partitions for 10 partitions from the murmur2 values Kafka's own
	// tests pin (see record): (murmur2(key) & 0x7fffffff) % 10.
	want := map[string]int32{"21": 0, "foobar": 6, "a-little-bit-long-string": 2, "abc": 7}
	f := newFakeLog(t)
	p := startProducer(t, f, 10, ProducerOptions{})
	var rs results
	for key := range want {
		p.Produce(context.Background(), "t", KeyValue([]byte(key), []byte("v")), rs.cb(key))
	}
	flush(t, p)
	got, errs, tags := rs.snapshot()
	if len(got) != len(want) {
		t.Fatalf("%d results, want %d", len(got), len(want))
	}
	for i, key := range tags {
		if errs[i] != nil {
			t.Fatalf("key %q: %v", key, errs[i])
		}
		if got[i].Partition != want[key] {
			t.Errorf("key %q went to partition %d, Kafka puts it in %d", key, got[i].Partition, want[key])
		}
	}
}

func TestNextStickyPicksAnotherPartitionAtRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	if got := nextSticky(rng, -1, 1); got != 0 {
		t.Fatalf("one partition: got %d", got)
	}
	if got := nextSticky(rng, 0, 1); got != 0 {
		t.Fatalf("one partition, previous 0: got %d", got)
	}
	seen := map[int32]int{}
	for range 10000 {
		p := nextSticky(rng, 2, 5)
		if p == 2 || p < 0 || p >= 5 {
			t.Fatalf("nextSticky(prev 2, n 5) = %d", p)
		}
		seen[p]++
	}
	for _, p := range []int32{0, 1, 3, 4} {
		if seen[p] < 2000 {
			t.Errorf("partition %d picked %d times out of 10000: not uniform", p, seen[p])
		}
	}
}

func TestUnkeyedRecordsStickToAPartitionUntilItsBatchIsSealed(t *testing.T) {
	f := newFakeLog(t)
	// Linger long enough that only size seals batches.
	p := startProducer(t, f, 4, ProducerOptions{BatchBytes: 1000, Linger: time.Hour})
	var rs results
	for i := range 60 {
		value := fmt.Appendf(nil, "%03d", i)
		value = append(value, make([]byte, 97)...)
		p.Produce(context.Background(), "t", Record{Partition: AnyPartition, Value: value}, rs.cb(fmt.Sprint(i)))
	}
	flush(t, p)
	// Where each record went, in produce order.
	where := make([]int32, 60)
	for part := int32(0); part < 4; part++ {
		for _, v := range f.partition(part) {
			var i int
			if _, err := fmt.Sscanf(v[:3], "%03d", &i); err != nil {
				t.Fatal(err)
			}
			where[i] = part
		}
	}
	// Each sticky period fills one batch: 8 records of 100 bytes fit in
	// 1000, and the next period is in another partition.
	run := 1
	for i := 1; i < len(where); i++ {
		if where[i] == where[i-1] {
			run++
			continue
		}
		if run != 8 {
			t.Errorf("record %d: a run of %d records in partition %d, want 8 (one full batch)", i, run, where[i-1])
		}
		run = 1
	}
	if run > 8 {
		t.Errorf("last run of %d records", run)
	}
	// Callbacks report dense offsets per partition, in order.
	got, errs, _ := rs.snapshot()
	next := map[int32]int64{}
	for i, r := range got {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if r.Offset != next[r.Partition] {
			t.Fatalf("partition %d: offset %d, want %d", r.Partition, r.Offset, next[r.Partition])
		}
		next[r.Partition]++
	}
}

func TestBatchesStayWithinBatchBytes(t *testing.T) {
	f := newFakeLog(t)
	const batchBytes = 10 << 10
	p := startProducer(t, f, 1, ProducerOptions{BatchBytes: batchBytes, Linger: time.Hour})
	value := make([]byte, 1024)
	for range 50 {
		p.Produce(context.Background(), "t", Record{Partition: 0, Value: value}, nil)
	}
	flush(t, p)
	sizes, counts, _ := f.batchesOf()
	total := 0
	for i, s := range sizes {
		if s > batchBytes {
			t.Errorf("batch %d is %d bytes, over %d", i, s, batchBytes)
		}
		if i < len(sizes)-1 && counts[i] != 9 {
			t.Errorf("batch %d has %d records of 1 KiB, want 9 (a 10th does not fit in 10 KiB)", i, counts[i])
		}
		total += counts[i]
	}
	if total != 50 {
		t.Errorf("%d records sent, want 50", total)
	}
}

func TestLingerSendsWithoutFlush(t *testing.T) {
	f := newFakeLog(t)
	const linger = 30 * time.Millisecond
	p := startProducer(t, f, 1, ProducerOptions{Linger: linger})
	done := make(chan Result, 1)
	start := time.Now()
	p.Produce(context.Background(), "t", Record{Value: []byte("x")}, func(r Result, err error) {
		if err != nil {
			t.Error(err)
		}
		done <- r
	})
	select {
	case r := <-done:
		if elapsed := time.Since(start); elapsed < linger {
			t.Errorf("record sent after %v, before its linger of %v", elapsed, linger)
		}
		if r.Offset != 0 || r.Partition != 0 || r.Topic != "t" {
			t.Errorf("result %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("record never sent: linger did not expire the batch")
	}
}

func TestNoLingerSendsImmediately(t *testing.T) {
	f := newFakeLog(t)
	p := startProducer(t, f, 1, ProducerOptions{Linger: NoLinger})
	done := make(chan error, 1)
	p.Produce(context.Background(), "t", Record{Value: []byte("x")}, func(_ Result, err error) { done <- err })
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("record never sent")
	}
}

// The broker handles concurrent calls concurrently, so with several requests
// in flight the producer must still append a partition's batches in order.
func TestPartitionOrderKeptWithRequestsInFlight(t *testing.T) {
	f := newFakeLog(t)
	var rngMu sync.Mutex
	rng := rand.New(rand.NewPCG(3, 4))
	f.setHook(func(*stratav1.ProduceRequest) (*stratav1.ProduceResponse, error) {
		rngMu.Lock()
		d := time.Duration(rng.IntN(2000)) * time.Microsecond
		rngMu.Unlock()
		time.Sleep(d) // a random service time, so requests in flight finish out of order
		return nil, nil
	})
	p := startProducer(t, f, 4, ProducerOptions{BatchBytes: 512, Linger: NoLinger, MaxInFlight: 5})
	var rs results
	const n = 2000
	for i := range n {
		part := int32(i % 4)
		p.Produce(context.Background(), "t", Record{Partition: part, Value: []byte(fmt.Sprintf("%d", i))}, rs.cb(fmt.Sprint(i)))
	}
	flush(t, p)
	for part := int32(0); part < 4; part++ {
		vals := f.partition(part)
		if len(vals) != n/4 {
			t.Fatalf("partition %d has %d records, want %d", part, len(vals), n/4)
		}
		for j, v := range vals {
			if want := fmt.Sprint(j*4 + int(part)); v != want {
				t.Fatalf("partition %d position %d holds %s, want %s: batches reordered", part, j, v, want)
			}
		}
	}
	got, errs, tags := rs.snapshot()
	last := map[int32]int64{0: -1, 1: -1, 2: -1, 3: -1}
	for i, r := range got {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if r.Offset != last[r.Partition]+1 {
			t.Fatalf("callback for record %s: partition %d offset %d after %d: callbacks out of order", tags[i], r.Partition, r.Offset, last[r.Partition])
		}
		last[r.Partition] = r.Offset
	}
}

// Batches sealed while their partition's request is in flight go together
// in the next request, with offsets counted across them.
func TestBatchesQueuedBehindAnInFlightRequestShareTheNext(t *testing.T) {
	f := newFakeLog(t)
	release := make(chan struct{})
	first := true
	var mu sync.Mutex
	f.setHook(func(*stratav1.ProduceRequest) (*stratav1.ProduceResponse, error) {
		mu.Lock()
		wait := first
		first = false
		mu.Unlock()
		if wait {
			<-release
		}
		return nil, nil
	})
	p := startProducer(t, f, 1, ProducerOptions{BatchBytes: 300, Linger: NoLinger})
	var rs results
	value := make([]byte, 100)
	for i := range 20 {
		p.Produce(context.Background(), "t", Record{Partition: 0, Value: value}, rs.cb(fmt.Sprint(i)))
	}
	close(release)
	flush(t, p)
	f.mu.Lock()
	nreq := len(f.requests)
	f.mu.Unlock()
	_, counts, _ := f.batchesOf()
	if nreq >= len(counts) {
		t.Errorf("%d requests for %d batches: queued batches were not combined", nreq, len(counts))
	}
	got, errs, _ := rs.snapshot()
	for i, r := range got {
		if errs[i] != nil || r.Offset != int64(i) {
			t.Fatalf("result %d: %+v, %v; want offset %d", i, r, errs[i], i)
		}
	}
}

func TestProduceBlocksWhenBufferIsFull(t *testing.T) {
	f := newFakeLog(t)
	release := make(chan struct{})
	f.setHook(func(*stratav1.ProduceRequest) (*stratav1.ProduceResponse, error) {
		<-release
		return nil, nil
	})
	// Three records of 1 KiB fit in the bound, a fourth does not.
	p := startProducer(t, f, 1, ProducerOptions{MaxBufferedBytes: 3584, Linger: NoLinger})
	value := make([]byte, 1024)
	var rs results
	for i := range 3 {
		p.Produce(context.Background(), "t", Record{Value: value}, rs.cb(fmt.Sprint(i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	blocked := make(chan error, 1)
	p.Produce(ctx, "t", Record{Value: value}, func(_ Result, err error) { blocked <- err })
	select {
	case err := <-blocked:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("produce over the buffer bound: %v, want deadline exceeded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("produce over the buffer bound neither blocked until its deadline nor failed")
	}
	close(release)
	flush(t, p)
	_, errs, _ := rs.snapshot()
	if len(errs) != 3 {
		t.Fatalf("%d callbacks, want 3", len(errs))
	}
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestAcksNoneGivesUnknownOffsets(t *testing.T) {
	f := newFakeLog(t)
	p := startProducer(t, f, 1, ProducerOptions{Acks: AcksNone})
	var rs results
	p.Produce(context.Background(), "t", Record{Value: []byte("x")}, rs.cb("x"))
	flush(t, p)
	got, errs, _ := rs.snapshot()
	if errs[0] != nil || got[0].Offset != -1 {
		t.Fatalf("acks=0 result %+v, %v; want offset -1", got[0], errs[0])
	}
	if a := f.requests[0].Acks; a != stratav1.Acks_ACKS_NONE {
		t.Fatalf("request acks %v", a)
	}
}

func TestDefaultAcksIsAll(t *testing.T) {
	f := newFakeLog(t)
	p := startProducer(t, f, 1, ProducerOptions{})
	p.Produce(context.Background(), "t", Record{Value: []byte("x")}, nil)
	flush(t, p)
	if a := f.requests[0].Acks; a != stratav1.Acks_ACKS_ALL {
		t.Fatalf("request acks %v, want ACKS_ALL", a)
	}
}

func TestProduceErrorsKeepTheirCode(t *testing.T) {
	f := newFakeLog(t)
	p := startProducer(t, f, 2, ProducerOptions{})

	f.setHook(func(*stratav1.ProduceRequest) (*stratav1.ProduceResponse, error) {
		return nil, status.Error(codes.Internal, "broker failed")
	})
	var rs results
	p.Produce(context.Background(), "t", Record{Partition: 1, Value: []byte("x")}, rs.cb("rpc"))
	flush(t, p)

	f.setHook(func(req *stratav1.ProduceRequest) (*stratav1.ProduceResponse, error) {
		return &stratav1.ProduceResponse{Partitions: []*stratav1.ProducePartitionResult{{
			Partition: req.Partitions[0].Partition, BaseOffset: -1,
			Error: &stratav1.PartitionError{Code: int32(codes.FailedPrecondition), Message: "not enough replicas"},
		}}}, nil
	})
	p.Produce(context.Background(), "t", Record{Partition: 0, Value: []byte("x")}, rs.cb("partition"))
	flush(t, p)

	p.Produce(context.Background(), "t", Record{Partition: 7, Value: []byte("x")}, rs.cb("range"))

	_, errs, _ := rs.snapshot()
	if len(errs) != 3 {
		t.Fatalf("%d callbacks", len(errs))
	}
	if status.Code(errs[0]) != codes.Internal || !strings.Contains(errs[0].Error(), `topic "t" partition 1`) {
		t.Errorf("rpc failure: %v (code %v)", errs[0], status.Code(errs[0]))
	}
	var perr *PartitionError
	if !errors.As(errs[1], &perr) || perr.Code != codes.FailedPrecondition || perr.Partition != 0 || status.Code(errs[1]) != codes.FailedPrecondition {
		t.Errorf("partition failure: %v", errs[1])
	}
	if status.Code(errs[2]) != codes.InvalidArgument {
		t.Errorf("partition 7 of 2: %v", errs[2])
	}
}

func TestUnknownTopicFailsTheRecord(t *testing.T) {
	f := newFakeLog(t)
	counts := func(context.Context, string, bool) (int32, error) {
		return 0, fmt.Errorf("describe topic: %w", status.Error(codes.NotFound, "no such topic"))
	}
	p := newProducer(newTestCluster(counts, f.sendWire), ProducerOptions{})
	defer p.Close()
	var rs results
	p.Produce(context.Background(), "nope", Record{Value: []byte("x")}, rs.cb("x"))
	_, errs, _ := rs.snapshot()
	if len(errs) != 1 || status.Code(errs[0]) != codes.NotFound {
		t.Fatalf("errors %v", errs)
	}
}

func TestCloseFlushesThenRefuses(t *testing.T) {
	f := newFakeLog(t)
	p := newProducer(newTestCluster(fixedCount(1), f.sendWire), ProducerOptions{Linger: time.Hour})
	var rs results
	p.Produce(context.Background(), "t", Record{Value: []byte("a")}, rs.cb("a"))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p.Produce(context.Background(), "t", Record{Value: []byte("b")}, rs.cb("b"))
	got, errs, _ := rs.snapshot()
	if len(got) != 2 || errs[0] != nil || got[0].Offset != 0 {
		t.Fatalf("results %+v %v", got, errs)
	}
	if !errors.Is(errs[1], ErrClosed) {
		t.Fatalf("produce after close: %v", errs[1])
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestParseAcks(t *testing.T) {
	for in, want := range map[string]Acks{"all": AcksAll, "-1": AcksAll, "1": AcksLeader, "0": AcksNone, "ALL": AcksAll} {
		got, err := ParseAcks(in)
		if err != nil || got != want {
			t.Errorf("ParseAcks(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseAcks("2"); err == nil {
		t.Error("ParseAcks(2) succeeded")
	}
}

// Produce itself must not allocate per record once batches are recycled: the
// load generator and any high-rate user depend on it.
func TestProduceDoesNotAllocatePerRecord(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	f := newFakeLog(t)
	// No request during the measurement: the fake broker allocates, and
	// AllocsPerRun counts every goroutine.
	p := startProducer(t, f, 1, ProducerOptions{Linger: time.Hour, BatchBytes: 8 << 20})
	value := make([]byte, 1024)
	r := Record{Partition: AnyPartition, Value: value}
	cb := func(Result, error) {}
	ctx := context.Background()
	for range 4000 { // warm up: batches, buffers, topic state
		p.Produce(ctx, "t", r, cb)
	}
	flush(t, p)
	allocs := testing.AllocsPerRun(2000, func() { p.Produce(ctx, "t", r, cb) })
	// Sealing a batch costs a few allocations (its done channel, the
	// request); per record it must round to nothing.
	if allocs > 0.5 {
		t.Errorf("Produce allocates %.2f times per record", allocs)
	}
}
