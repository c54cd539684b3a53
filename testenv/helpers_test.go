package testenv_test

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

func TestMain(m *testing.M) {
	testenvtest.Main(m)
}

const (
	// batchRecords is how many records of one partition go into one produce
	// request's batch.
	batchRecords = 500
	// valueSize is the size of every record value.
	valueSize = 100
	// rpcTimeout bounds every RPC a test makes.
	rpcTimeout = 30 * time.Second
)

// Record i has key "key-<i>" and a value derived from i alone, so any record
// read back can be checked without remembering what was sent.
func recordKey(i int) []byte { return []byte("key-" + strconv.Itoa(i)) }

func recordValue(i int) []byte {
	v := make([]byte, 0, valueSize)
	v = fmt.Appendf(v, "value-%d-", i)
	for j := len(v); j < valueSize; j++ {
		v = append(v, byte('a'+(i+j)%26))
	}
	return v
}

// recordIndex parses a key written by recordKey.
func recordIndex(key []byte) (int, bool) {
	s, ok := strings.CutPrefix(string(key), "key-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	return i, err == nil && i >= 0
}

func createTopic(t testing.TB, c stratav1.StrataClient, name string, partitions int32, configs map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	_, err := c.CreateTopic(ctx, &stratav1.CreateTopicRequest{
		Name:              name,
		Partitions:        partitions,
		ReplicationFactor: 1,
		Configs:           configs,
	})
	if err != nil {
		t.Fatalf("CreateTopic %s: %v", name, err)
	}
}

// ledger remembers which records were sent and where each acknowledged one
// was placed. Record indexes are handed out in order, so every index below
// sent was sent at most once, and no index at or above it was ever sent.
type ledger struct {
	partitions int32

	mu    sync.Mutex
	sent  int
	acked map[int]placement // record index -> where the broker put it
}

type placement struct {
	partition int32
	offset    int64
}

func newLedger(partitions int32) *ledger {
	return &ledger{partitions: partitions, acked: make(map[int]placement)}
}

// take reserves the next n record indexes.
func (l *ledger) take(n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	first := l.sent
	l.sent += n
	return first
}

func (l *ledger) sentCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sent
}

func (l *ledger) ack(idx []int, partition int32, base int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for j, i := range idx {
		l.acked[i] = placement{partition, base + int64(j)}
	}
}

func (l *ledger) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// ackedIn returns, for partition p, offset -> record index of every
// acknowledged record with an offset in [from, to).
func (l *ledger) ackedIn(p int32, from, to int64) map[int64]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[int64]int)
	for i, pl := range l.acked {
		if pl.partition == p && pl.offset >= from && pl.offset < to {
			out[pl.offset] = i
		}
	}
	return out
}

// producer sends records to a topic over gRPC, several requests in flight,
// each request carrying one v2 batch of one partition's records.
type producer struct {
	t      testing.TB
	client stratav1.StrataClient
	topic  string
	led    *ledger
	acks   stratav1.Acks // of every request

	// crashing is set by the test before it kills the broker: from then on a
	// failed request is expected and simply not acknowledged.
	crashing atomic.Bool
	requests atomic.Int64 // acknowledged requests
	failures atomic.Int64 // failed requests
}

type produceJob struct {
	partition int32
	idx       []int
	batch     []byte
}

// produce sends n records (n < 0: until ctx is done) with inflight requests
// outstanding, and returns when every request has finished.
func (p *producer) produce(ctx context.Context, n, inflight int) {
	p.produceWith(ctx, n, inflight, p.send)
}

// produceWith is produce with each request sent by send.
func (p *producer) produceWith(ctx context.Context, n, inflight int, send func(context.Context, produceJob)) {
	jobs := make(chan produceJob)
	var wg sync.WaitGroup
	for range inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				send(ctx, j)
			}
		}()
	}
	p.generate(ctx, n, jobs)
	close(jobs)
	wg.Wait()
}

// generate builds batches of batchRecords records per partition, placing
// each record by its key as Kafka's default partitioner would.
func (p *producer) generate(ctx context.Context, n int, jobs chan<- produceJob) {
	pending := make([][]int, p.led.partitions)
	emit := func(part int32) bool {
		idx := pending[part]
		pending[part] = nil
		b := record.NewBuilder(time.Now().UnixMilli(), len(idx)*(valueSize+32))
		for _, i := range idx {
			b.Append(&record.Record{Key: recordKey(i), Value: recordValue(i)})
		}
		batch, err := b.Build(record.None)
		if err != nil {
			p.t.Errorf("build batch: %v", err)
			return false
		}
		select {
		case jobs <- produceJob{partition: part, idx: idx, batch: batch}:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for k := 0; n < 0 || k < n; k++ {
		if ctx.Err() != nil {
			return
		}
		i := p.led.take(1)
		part := record.KeyPartition(recordKey(i), p.led.partitions)
		pending[part] = append(pending[part], i)
		if len(pending[part]) == batchRecords && !emit(part) {
			return
		}
	}
	for part := range pending {
		if len(pending[part]) > 0 && !emit(int32(part)) {
			return
		}
	}
}

func (p *producer) send(ctx context.Context, j produceJob) {
	rctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	resp, err := p.client.Produce(rctx, &stratav1.ProduceRequest{
		Topic:     p.topic,
		Acks:      p.acks,
		TimeoutMs: int32(rpcTimeout / time.Millisecond),
		Partitions: []*stratav1.ProducePartition{
			{Partition: j.partition, RecordBatches: j.batch},
		},
	})
	if err == nil {
		err = checkProduce(resp, j)
	}
	if err != nil {
		p.failures.Add(1)
		if !p.crashing.Load() && ctx.Err() == nil {
			p.t.Errorf("produce %d records to partition %d: %v", len(j.idx), j.partition, err)
		}
		return
	}
	p.led.ack(j.idx, j.partition, resp.Partitions[0].BaseOffset)
	p.requests.Add(1)
}

func checkProduce(resp *stratav1.ProduceResponse, j produceJob) error {
	if len(resp.Partitions) != 1 {
		return fmt.Errorf("response has %d partitions, want 1", len(resp.Partitions))
	}
	r := resp.Partitions[0]
	switch {
	case r.Error != nil:
		return fmt.Errorf("partition error %s: %s", codes.Code(r.Error.Code), r.Error.Message)
	case r.Partition != j.partition:
		return fmt.Errorf("response for partition %d", r.Partition)
	case int(r.RecordCount) != len(j.idx):
		return fmt.Errorf("record_count %d, sent %d", r.RecordCount, len(j.idx))
	case r.BaseOffset < 0:
		return fmt.Errorf("base_offset %d", r.BaseOffset)
	}
	return nil
}

// produceUntilKilled keeps producing with inflight requests outstanding, and
// SIGKILLs the broker once at least afterRequests more requests have been
// acknowledged, so the kill lands in the middle of the stream. It returns
// after every request has finished.
func (p *producer) produceUntilKilled(kill func(), afterRequests int64, inflight int) {
	p.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.produce(ctx, -1, inflight)
	}()
	defer func() { cancel(); <-done }() // also when the wait fails the test
	target := p.requests.Load() + afterRequests
	await.True(p.t, 60*time.Second, "stream to make progress", func() bool { return p.requests.Load() >= target })
	p.crashing.Store(true)
	acked := p.led.ackedCount()
	kill()
	cancel()
	<-done
	p.crashing.Store(false)
	p.t.Logf("killed the broker mid-stream: %d records acknowledged before the kill, %d in all; %d requests failed",
		acked, p.led.ackedCount(), p.failures.Load())
}

// fetched is what fetchFrom read from one partition.
type fetched struct {
	records []record.Record // in offset order, keys and values copied
	hw      int64           // high watermark of the last response
	err     error           // the error that stopped reading, if any
}

// fetchFrom reads partition p of topic from offset from up to its high
// watermark with Fetch. It stops at the first error (RPC or partition error)
// and returns what it read before it. Every batch returned, even with an
// error, must pass its CRC check: a broker never hands out damaged bytes.
func fetchFrom(t testing.TB, c stratav1.StrataClient, topic string, p int32, from int64) fetched {
	t.Helper()
	var out fetched
	off := from
	for {
		ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
		resp, err := c.Fetch(ctx, &stratav1.FetchRequest{
			Partitions: []*stratav1.FetchPartition{{Topic: topic, Partition: p, Offset: off, MaxBytes: 1 << 20}},
			MaxBytes:   4 << 20,
		})
		cancel()
		if err != nil {
			out.err = err
			return out
		}
		if len(resp.Partitions) != 1 {
			t.Fatalf("fetch %s-%d at %d: %d partitions in response", topic, p, off, len(resp.Partitions))
		}
		// Batches that come with a partition error are read too: they must
		// be intact.
		pr := resp.Partitions[0]
		out.hw = pr.HighWatermark
		next := off
		it := record.NewBatches(pr.RecordBatches)
		for it.Next() {
			b := it.Bytes()
			h, err := record.Validate(b)
			if err != nil {
				t.Fatalf("fetch %s-%d at %d: the broker returned a damaged batch at offset %d: %v", topic, p, off, it.Header().BaseOffset, err)
			}
			recs, err := record.Decode(b)
			if err != nil {
				t.Fatalf("fetch %s-%d at %d: decode batch at offset %d: %v", topic, p, off, h.BaseOffset, err)
			}
			if len(recs) != int(h.RecordCount) || (len(recs) > 0 && recs[len(recs)-1].Offset != h.LastOffset()) {
				t.Fatalf("fetch %s-%d: batch at %d has %d records, header says %d ending at %d",
					topic, p, h.BaseOffset, len(recs), h.RecordCount, h.LastOffset())
			}
			for _, r := range recs {
				if r.Offset < next {
					continue // the first batch may start before the requested offset
				}
				r.Key = bytes.Clone(r.Key)
				r.Value = bytes.Clone(r.Value)
				r.Headers = nil
				out.records = append(out.records, r)
				next = r.Offset + 1
			}
		}
		if err := it.Err(); err != nil {
			t.Fatalf("fetch %s-%d at %d: %d bytes of batches end badly: %v", topic, p, off, len(pr.RecordBatches), err)
		}
		if pr.Error != nil {
			out.err = status.Error(codes.Code(pr.Error.Code), pr.Error.Message)
			return out
		}
		if next >= out.hw {
			return out
		}
		if next == off {
			t.Fatalf("fetch %s-%d at %d: no records below high watermark %d (next_offset %d)", topic, p, off, out.hw, pr.NextOffset)
		}
		off = next
	}
}

// checkPartition checks records read from partition p starting at offset
// from, up to (not including) to: offsets are dense (from, from+1, …, to-1),
// every record is one this test sent, at most once, placed by its key, and
// intact; and every acknowledged record in [from, to) is there, at the offset
// its acknowledgement gave, with its key and value.
func checkPartition(t testing.TB, led *ledger, p int32, from, to int64, recs []record.Record) {
	t.Helper()
	if int64(len(recs)) != to-from {
		t.Errorf("partition %d: %d records in [%d, %d), want %d", p, len(recs), from, to, to-from)
	}
	sent := led.sentCount()
	seen := make(map[int]int64)
	errs := 0
	report := func(format string, args ...any) {
		t.Helper()
		if errs++; errs <= 10 {
			t.Errorf(format, args...)
		}
	}
	for j, r := range recs {
		if want := from + int64(j); r.Offset != want {
			report("partition %d: record %d has offset %d, want %d (offsets not dense)", p, j, r.Offset, want)
			continue
		}
		i, ok := recordIndex(r.Key)
		if !ok || i >= sent {
			report("partition %d offset %d: key %q was never sent", p, r.Offset, r.Key)
			continue
		}
		if prev, dup := seen[i]; dup {
			report("partition %d: record %d at offsets %d and %d", p, i, prev, r.Offset)
		}
		seen[i] = r.Offset
		if got := record.KeyPartition(r.Key, led.partitions); got != p {
			report("partition %d offset %d: key %q belongs to partition %d", p, r.Offset, r.Key, got)
		}
		if !bytes.Equal(r.Value, recordValue(i)) {
			report("partition %d offset %d: key %q has value %q, want %q", p, r.Offset, r.Key, r.Value, recordValue(i))
		}
	}
	missing := 0
	for off, i := range led.ackedIn(p, from, to) {
		j := off - from
		if j >= int64(len(recs)) || recs[j].Offset != off {
			missing++
			report("partition %d: acknowledged record %d at offset %d is missing", p, i, off)
			continue
		}
		if got, _ := recordIndex(recs[j].Key); got != i || !bytes.Equal(recs[j].Key, recordKey(i)) {
			report("partition %d offset %d: holds key %q, acknowledged there was %q", p, off, recs[j].Key, recordKey(i))
		}
	}
	if errs > 10 {
		t.Errorf("partition %d: %d more errors not shown (%d acknowledged records missing)", p, errs-10, missing)
	}
}

// verifyTopic reads every partition of topic from offset 0 and checks it (see
// checkPartition). It returns each partition's log end offset (its high
// watermark) and checks that every acknowledged offset is below it.
func verifyTopic(t testing.TB, c stratav1.StrataClient, topic string, led *ledger) []int64 {
	t.Helper()
	ends := make([]int64, led.partitions)
	unacked := 0
	for p := range led.partitions {
		f := fetchFrom(t, c, topic, p, 0)
		if f.err != nil {
			t.Fatalf("fetch %s-%d: %v", topic, p, f.err)
		}
		checkPartition(t, led, p, 0, f.hw, f.records)
		if beyond := led.ackedIn(p, f.hw, 1<<62); len(beyond) > 0 {
			t.Errorf("partition %d: %d acknowledged records at or above the high watermark %d", p, len(beyond), f.hw)
		}
		unacked += len(f.records) - len(led.ackedIn(p, 0, f.hw))
		ends[p] = f.hw
	}
	t.Logf("topic %s: log ends %v; %d acknowledged records, %d present but never acknowledged",
		topic, ends, led.ackedCount(), unacked)
	return ends
}

// produceAfterRestart produces one more batch per partition and checks the
// new records continue each partition's log densely from ends.
func produceAfterRestart(t testing.TB, c stratav1.StrataClient, topic string, led *ledger, ends []int64) {
	t.Helper()
	before := led.sentCount()
	p := &producer{t: t, client: c, topic: topic, led: led, acks: stratav1.Acks_ACKS_ALL}
	p.produce(context.Background(), 3*batchRecords, 4)
	after := led.sentCount()
	for part := range led.partitions {
		got := led.ackedIn(part, 0, 1<<62)
		var n int
		for off, i := range got {
			if i < before || i >= after {
				continue
			}
			n++
			if off < ends[part] {
				t.Errorf("partition %d: record %d produced after restart got offset %d, below the old log end %d", part, i, off, ends[part])
			}
		}
		for off := ends[part]; off < ends[part]+int64(n); off++ {
			if i, ok := got[off]; !ok || i < before {
				t.Errorf("partition %d: after restart offset %d is not one of the %d new records (old log end %d)", part, off, n, ends[part])
				break
			}
		}
	}
}
