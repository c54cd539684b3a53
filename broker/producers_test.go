package broker

import (
	"context"
	"errors"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/metastore/metastoretest"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/topicconfig"
)

// idemBatch is an idempotent producer's batch of n records starting at
// sequence seq.
func idemBatch(t *testing.T, pid int64, epoch int16, seq int32, n int) []byte {
	t.Helper()
	bld := record.NewBuilder(time.Now().UnixMilli(), 0)
	bld.SetProducer(pid, epoch, seq)
	for range n {
		bld.Append(&record.Record{Value: []byte("v")})
	}
	out, err := bld.Build(record.None)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), out...)
}

func concatBatches(batches ...[]byte) []byte {
	var out []byte
	for _, b := range batches {
		out = append(out, b...)
	}
	return out
}

// produceTo sends batches to partition 0 of topic with acks=all and returns
// its result. The batches are copied: Produce stamps offsets into them.
func produceTo(t *testing.T, b *Broker, topic string, batches []byte) ProduceResult {
	t.Helper()
	res, err := b.Produce(context.Background(), topic, AcksAll, []PartitionBatches{{Partition: 0, Batches: append([]byte(nil), batches...)}})
	if err != nil {
		t.Fatal(err)
	}
	return res[0]
}

func mustProduce(t *testing.T, b *Broker, topic string, batches []byte) ProduceResult {
	t.Helper()
	res := produceTo(t, b, topic, batches)
	if res.Err != nil {
		t.Fatalf("produce: %v", res.Err)
	}
	return res
}

func partitionEnd(t *testing.T, b *Broker, topic string) int64 {
	t.Helper()
	p, err := b.hosted.partition(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p.LogEndOffset()
}

func createTestTopic(t *testing.T, b *Broker, name string) {
	t.Helper()
	if _, err := b.CreateTopic(context.Background(), TopicSpec{Name: name, Partitions: 1}); err != nil {
		t.Fatal(err)
	}
}

// issueProducerIDs has the cluster issue the producer ids the tests use
// (those below 1000), as InitProducerId would have.
func issueProducerIDs(t *testing.T, store *metastoretest.Store) {
	t.Helper()
	if first, err := store.AllocateProducerIDs(context.Background(), 1000); err != nil || first != 0 {
		t.Fatalf("issue producer ids: block at %d, %v", first, err)
	}
}

// restartableCluster is a metastore and a broker registration, so that brokers
// can be started and restarted on one data directory.
type restartableCluster struct {
	t     *testing.T
	store *metastoretest.Store
	dir   string
}

func newRestartableCluster(t *testing.T) *restartableCluster {
	t.Helper()
	store, dir := startMetastore(t)
	issueProducerIDs(t, store)
	return &restartableCluster{t: t, store: store, dir: dir + "/data"}
}

// start runs a broker on the cluster's data directory; now nil is the real
// clock.
func (c *restartableCluster) start(settings map[string]string, now func() time.Time) *Broker {
	c.t.Helper()
	b, err := New(Config{NodeID: 1, DataDir: c.dir, Settings: settings, Now: now}, c.store)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { b.Close() })
	return b
}

func TestInitProducerID(t *testing.T) {
	c := newRestartableCluster(t)
	b := c.start(nil, nil)
	ctx := context.Background()
	seen := map[int64]bool{}
	for range producerIDBlockSize + 10 { // crosses a block boundary
		id, epoch, err := b.InitProducerID(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if id < 0 || epoch != 0 || seen[id] {
			t.Fatalf("InitProducerID = %d, %d (seen before: %v)", id, epoch, seen[id])
		}
		seen[id] = true
	}
	if _, _, err := b.InitProducerID(ctx, "txn-1"); !errors.Is(err, ErrTransactionsUnsupported) || Classify(err) != KindTransactionsUnsupported {
		t.Fatalf("transactional id: %v", err)
	}
	// A restarted broker takes a new block: none of the ids repeat.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = c.start(nil, nil)
	for range 10 {
		id, _, err := b.InitProducerID(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if seen[id] {
			t.Fatalf("id %d handed out again after a restart", id)
		}
		seen[id] = true
	}
}

// A retried batch (the producer did not get the answer) is not written
// again, and is answered with the offsets it was written at.
func TestIdempotentRetryReturnsOriginalOffsets(t *testing.T) {
	b, store := startBroker(t)
	issueProducerIDs(t, store)
	createTestTopic(t, b, "t")
	pid, epoch, err := b.InitProducerID(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	produceOne(t, b, "t") // offset 0, not idempotent
	first := idemBatch(t, pid, epoch, 0, 3)
	orig := mustProduce(t, b, "t", first)
	if orig.BaseOffset != 1 || orig.LastOffset != 3 {
		t.Fatalf("first append at %d..%d, want 1..3", orig.BaseOffset, orig.LastOffset)
	}
	produceOne(t, b, "t") // offset 4: the retry is not the latest append
	end := partitionEnd(t, b, "t")

	retry := mustProduce(t, b, "t", first)
	if retry.BaseOffset != orig.BaseOffset || retry.LastOffset != orig.LastOffset || retry.Records != 3 {
		t.Fatalf("retry answered %+v, want offsets %d..%d and 3 records", retry, orig.BaseOffset, orig.LastOffset)
	}
	if got := partitionEnd(t, b, "t"); got != end {
		t.Fatalf("retry wrote: log end %d, was %d", got, end)
	}

	// Any of the last five batches is recognised, not only the latest.
	var offsets []ProduceResult
	batches := [][]byte{first}
	seq := int32(3)
	for range 5 {
		batch := idemBatch(t, pid, epoch, seq, 2)
		batches = append(batches, batch)
		offsets = append(offsets, mustProduce(t, b, "t", batch))
		seq += 2
	}
	end = partitionEnd(t, b, "t")
	if res := mustProduce(t, b, "t", batches[1]); res.BaseOffset != offsets[0].BaseOffset {
		t.Fatalf("retry of the fifth latest batch answered at %d, want %d", res.BaseOffset, offsets[0].BaseOffset)
	}
	// The sixth latest is forgotten: a retry that old is out of sequence.
	if res := produceTo(t, b, "t", batches[0]); !errors.Is(res.Err, ErrOutOfOrderSequence) {
		t.Fatalf("retry of an evicted batch: %v, want ErrOutOfOrderSequence", res.Err)
	}
	if got := partitionEnd(t, b, "t"); got != end {
		t.Fatalf("retries wrote: log end %d, was %d", got, end)
	}
}

func TestOutOfOrderSequenceRefused(t *testing.T) {
	b, store := startBroker(t)
	issueProducerIDs(t, store)
	createTestTopic(t, b, "t")
	mustProduce(t, b, "t", idemBatch(t, 7, 0, 0, 3))
	end := partitionEnd(t, b, "t")
	for _, seq := range []int32{4, 2, 1, 100} {
		res := produceTo(t, b, "t", idemBatch(t, 7, 0, seq, 1))
		if !errors.Is(res.Err, ErrOutOfOrderSequence) || Classify(res.Err) != KindOutOfOrderSequence {
			t.Fatalf("sequence %d after 0..2: %v, want ErrOutOfOrderSequence", seq, res.Err)
		}
	}
	if got := partitionEnd(t, b, "t"); got != end {
		t.Fatalf("refused batches were written: log end %d, was %d", got, end)
	}
	mustProduce(t, b, "t", idemBatch(t, 7, 0, 3, 1))
}

func TestLowerProducerEpochFenced(t *testing.T) {
	b, store := startBroker(t)
	issueProducerIDs(t, store)
	createTestTopic(t, b, "t")
	mustProduce(t, b, "t", idemBatch(t, 7, 1, 0, 3))
	end := partitionEnd(t, b, "t")
	res := produceTo(t, b, "t", idemBatch(t, 7, 0, 3, 1))
	if !errors.Is(res.Err, ErrInvalidProducerEpoch) || Classify(res.Err) != KindInvalidProducerEpoch {
		t.Fatalf("older epoch: %v, want ErrInvalidProducerEpoch", res.Err)
	}
	if got := partitionEnd(t, b, "t"); got != end {
		t.Fatalf("fenced batch was written: log end %d, was %d", got, end)
	}
	// A newer epoch starts afresh, at any sequence; then the old one is
	// fenced even at what would have been its next sequence.
	mustProduce(t, b, "t", idemBatch(t, 7, 2, 40, 1))
	if res := produceTo(t, b, "t", idemBatch(t, 7, 1, 3, 1)); !errors.Is(res.Err, ErrInvalidProducerEpoch) {
		t.Fatalf("epoch 1 after 2: %v", res.Err)
	}
	mustProduce(t, b, "t", idemBatch(t, 7, 2, 41, 1))
}

func TestUnknownProducerAcceptedAtAnySequence(t *testing.T) {
	b, store := startBroker(t)
	issueProducerIDs(t, store)
	createTestTopic(t, b, "t")
	mustProduce(t, b, "t", idemBatch(t, 99, 3, 1000, 2))
	mustProduce(t, b, "t", idemBatch(t, 100, 0, 0, 1))
	if res := produceTo(t, b, "t", idemBatch(t, 99, 3, 1000+3, 1)); !errors.Is(res.Err, ErrOutOfOrderSequence) {
		t.Fatalf("gap after an accepted first batch: %v", res.Err)
	}
	mustProduce(t, b, "t", idemBatch(t, 99, 3, 1002, 1))
}

// Sequences wrap from MaxInt32 to 0, as in Kafka.
func TestSequenceWrapsAround(t *testing.T) {
	b, store := startBroker(t)
	issueProducerIDs(t, store)
	createTestTopic(t, b, "t")
	mustProduce(t, b, "t", idemBatch(t, 5, 0, math.MaxInt32-1, 3)) // MaxInt32-1, MaxInt32, 0
	if res := produceTo(t, b, "t", idemBatch(t, 5, 0, 0, 1)); !errors.Is(res.Err, ErrOutOfOrderSequence) {
		t.Fatalf("sequence 0 again: %v", res.Err)
	}
	mustProduce(t, b, "t", idemBatch(t, 5, 0, 1, 1))
}

// A request may carry several batches for a partition: each is checked in
// order, counting the earlier ones; duplicates among them are not written.
func TestIdempotentSeveralBatchesInOneRequest(t *testing.T) {
	b, store := startBroker(t)
	issueProducerIDs(t, store)
	createTestTopic(t, b, "t")
	b1, b2, b3 := idemBatch(t, 8, 0, 0, 2), idemBatch(t, 8, 0, 2, 2), idemBatch(t, 8, 0, 4, 1)
	res := mustProduce(t, b, "t", concatBatches(b1, b2))
	if res.BaseOffset != 0 || res.LastOffset != 3 {
		t.Fatalf("two batches at %d..%d, want 0..3", res.BaseOffset, res.LastOffset)
	}
	// The whole request retried.
	if res := mustProduce(t, b, "t", concatBatches(b1, b2)); res.BaseOffset != 0 || res.LastOffset != 3 || partitionEnd(t, b, "t") != 4 {
		t.Fatalf("retried request answered %d..%d, log end %d", res.BaseOffset, res.LastOffset, partitionEnd(t, b, "t"))
	}
	// A retried batch followed by a new one: only the new one is written.
	res = mustProduce(t, b, "t", concatBatches(b2, b3))
	if res.BaseOffset != 2 || res.LastOffset != 4 || partitionEnd(t, b, "t") != 5 {
		t.Fatalf("retry plus new batch answered %d..%d, log end %d; want 2..4, 5", res.BaseOffset, res.LastOffset, partitionEnd(t, b, "t"))
	}
	// A gap in the second batch refuses the first too.
	if res := produceTo(t, b, "t", concatBatches(idemBatch(t, 8, 0, 5, 1), idemBatch(t, 8, 0, 7, 1))); !errors.Is(res.Err, ErrOutOfOrderSequence) || partitionEnd(t, b, "t") != 5 {
		t.Fatalf("gap inside a request: %v, log end %d", res.Err, partitionEnd(t, b, "t"))
	}
}

// A retried batch after a new one in the same request: the new one is
// written, the retry answered at its original offsets, and the request's
// answer spans both.
func TestIdempotentRetryAfterNewBatchInOneRequest(t *testing.T) {
	b, store := startBroker(t)
	issueProducerIDs(t, store)
	createTestTopic(t, b, "t")
	b1, b2, b3 := idemBatch(t, 8, 0, 0, 2), idemBatch(t, 8, 0, 2, 2), idemBatch(t, 8, 0, 4, 1)
	mustProduce(t, b, "t", concatBatches(b1, b2))
	res := mustProduce(t, b, "t", concatBatches(b3, b2))
	if res.BaseOffset != 4 || res.LastOffset != 4 || res.Records != 3 || partitionEnd(t, b, "t") != 5 {
		t.Fatalf("new batch plus retry answered %+v, log end %d; want 4..4, 3 records, log end 5", res, partitionEnd(t, b, "t"))
	}
	// Two retries around a new batch: only the middle one is written.
	b4 := idemBatch(t, 8, 0, 5, 1)
	res = mustProduce(t, b, "t", concatBatches(b1, b4, b3))
	if res.BaseOffset != 0 || res.LastOffset != 5 || res.Records != 4 || partitionEnd(t, b, "t") != 6 {
		t.Fatalf("retry, new batch, retry answered %+v, log end %d; want 0..5, 4 records, log end 6", res, partitionEnd(t, b, "t"))
	}
}

// Batches of several producers in one request for a partition are each
// checked against their own producer's sequence, counting that producer's
// earlier batches in the request.
func TestIdempotentProducersInterleavedInOneRequest(t *testing.T) {
	b, store := startBroker(t)
	issueProducerIDs(t, store)
	createTestTopic(t, b, "t")
	mustProduce(t, b, "t", concatBatches(idemBatch(t, 8, 0, 0, 1), idemBatch(t, 9, 0, 10, 1), idemBatch(t, 8, 0, 1, 1), idemBatch(t, 10, 0, 0, 1), idemBatch(t, 9, 0, 11, 1)))
	end := partitionEnd(t, b, "t")
	// Producer 9's third batch leaves a gap: the whole request is refused.
	res := produceTo(t, b, "t", concatBatches(idemBatch(t, 8, 0, 2, 1), idemBatch(t, 9, 0, 12, 1), idemBatch(t, 10, 0, 1, 1), idemBatch(t, 9, 0, 14, 1)))
	if !errors.Is(res.Err, ErrOutOfOrderSequence) || !strings.Contains(res.Err.Error(), "producer 9") || partitionEnd(t, b, "t") != end {
		t.Fatalf("gap of the second producer: %v, log end %d, want ErrOutOfOrderSequence naming producer 9 and log end %d", res.Err, partitionEnd(t, b, "t"), end)
	}
	// Producer 10's second batch in a request that is a retry of producer
	// 9's last: only producer 10's is written.
	res = mustProduce(t, b, "t", concatBatches(idemBatch(t, 9, 0, 11, 1), idemBatch(t, 10, 0, 1, 1)))
	if res.BaseOffset != 4 || res.LastOffset != end || partitionEnd(t, b, "t") != end+1 {
		t.Fatalf("retry plus another producer's batch answered %+v, log end %d; want %d..%d, log end %d", res, partitionEnd(t, b, "t"), 4, end, end+1)
	}
}

// Producer state is rebuilt from the log when the broker starts again.
func TestIdempotentStateSurvivesRestart(t *testing.T) {
	c := newRestartableCluster(t)
	b := c.start(nil, nil)
	createTestTopic(t, b, "t")
	first := idemBatch(t, 11, 2, 0, 3)
	orig := mustProduce(t, b, "t", first)
	mustProduce(t, b, "t", idemBatch(t, 12, 0, 50, 1))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = c.start(nil, nil)
	await.True(t, 10*time.Second, "partition led after restart", func() bool {
		p, err := b.hosted.partition("t", 0)
		return err == nil && p.checkLeader() == nil
	})
	p, err := b.hosted.partition("t", 0)
	if err != nil {
		t.Fatal(err)
	}
	p.producers.mu.Lock()
	loaded := p.producers.loaded
	p.producers.mu.Unlock()
	if loaded != (partlog.ProducerLoad{SnapshotOffset: 4}) {
		t.Fatalf("producer state after a clean restart loaded %+v, want the snapshot of the log end (4) and no segment read", loaded)
	}
	if res := mustProduce(t, b, "t", first); res.BaseOffset != orig.BaseOffset || res.LastOffset != orig.LastOffset {
		t.Fatalf("retry after restart answered %d..%d, want %d..%d", res.BaseOffset, res.LastOffset, orig.BaseOffset, orig.LastOffset)
	}
	if got := partitionEnd(t, b, "t"); got != 4 {
		t.Fatalf("log end %d after the retry, want 4", got)
	}
	if res := produceTo(t, b, "t", idemBatch(t, 11, 2, 5, 1)); !errors.Is(res.Err, ErrOutOfOrderSequence) {
		t.Fatalf("gap after restart: %v", res.Err)
	}
	if res := produceTo(t, b, "t", idemBatch(t, 11, 1, 3, 1)); !errors.Is(res.Err, ErrInvalidProducerEpoch) {
		t.Fatalf("older epoch after restart: %v", res.Err)
	}
	mustProduce(t, b, "t", idemBatch(t, 11, 2, 3, 1))
	mustProduce(t, b, "t", idemBatch(t, 12, 0, 51, 1))
}

// A producer not seen for producer.id.expiration.ms is forgotten: its next
// batch is accepted at any sequence.
func TestIdleProducerExpires(t *testing.T) {
	c := newRestartableCluster(t)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	b := c.start(map[string]string{"producer.id.expiration.ms": "60000"}, clock)
	createTestTopic(t, b, "t")
	mustProduce(t, b, "t", idemBatch(t, 3, 0, 0, 1))
	if res := produceTo(t, b, "t", idemBatch(t, 3, 0, 9, 1)); !errors.Is(res.Err, ErrOutOfOrderSequence) {
		t.Fatalf("gap: %v", res.Err)
	}
	mu.Lock()
	now = now.Add(61 * time.Second)
	mu.Unlock()
	mustProduce(t, b, "t", idemBatch(t, 3, 0, 9, 1))
	p, err := b.hosted.partition("t", 0)
	if err != nil {
		t.Fatal(err)
	}
	if n := p.producers.len(); n != 1 {
		t.Fatalf("%d producers remembered, want 1 (the expired entry swept)", n)
	}
}

// Concurrent requests of one producer with the same batch write it once;
// concurrent producers each keep their own sequence.
func TestIdempotentConcurrentProducers(t *testing.T) {
	b, store := startBroker(t)
	issueProducerIDs(t, store)
	createTestTopic(t, b, "t")

	batch := idemBatch(t, 1, 0, 0, 4)
	var wg sync.WaitGroup
	results := make([]ProduceResult, 8)
	for i := range results {
		wg.Go(func() { results[i] = produceTo(t, b, "t", batch) })
	}
	wg.Wait()
	for i, res := range results {
		if res.Err != nil || res.BaseOffset != 0 || res.LastOffset != 3 {
			t.Fatalf("request %d: %+v, want offsets 0..3", i, res)
		}
	}
	if got := partitionEnd(t, b, "t"); got != 4 {
		t.Fatalf("log end %d: the batch was written more than once", got)
	}

	// Several producers, each sending its batches in order and every batch
	// twice at once (a retry racing the original).
	const producers, batches = 6, 20
	for pid := int64(100); pid < 100+producers; pid++ {
		wg.Go(func() {
			for seq := int32(0); seq < batches; seq++ {
				batch := idemBatch(t, pid, 0, seq, 1)
				var inner sync.WaitGroup
				for range 2 {
					inner.Go(func() {
						if res := produceTo(t, b, "t", batch); res.Err != nil {
							t.Errorf("producer %d seq %d: %v", pid, seq, res.Err)
						}
					})
				}
				inner.Wait()
			}
		})
	}
	wg.Wait()
	if got, want := partitionEnd(t, b, "t"), int64(4+producers*batches); got != want {
		t.Fatalf("log end %d, want %d: each batch exactly once", got, want)
	}
	// Each producer's batches are in the log once each, in sequence order.
	p, err := b.hosted.partition("t", 0)
	if err != nil {
		t.Fatal(err)
	}
	next := map[int64]int32{}
	for off := int64(4); off < p.LogEndOffset(); {
		rr, err := p.log.Read(off, 1<<20, p.LogEndOffset())
		if err != nil {
			t.Fatal(err)
		}
		it := record.NewBatches(rr.Data)
		for it.Next() {
			h := it.Header()
			if h.BaseSequence != next[h.ProducerID] {
				t.Fatalf("producer %d: sequence %d at offset %d, want %d", h.ProducerID, h.BaseSequence, h.BaseOffset, next[h.ProducerID])
			}
			next[h.ProducerID]++
		}
		off = rr.NextOffset
	}
}

// A follower keeps the producer state of the batches it copies, so that as
// the new leader it recognises a retry; after a truncation it forgets what
// was truncated.
func TestFollowerTracksProducerState(t *testing.T) {
	p := testPartition(t, 2)
	now := time.Now()
	p.applyState(metastore.PartitionState{Topic: "t", Leader: 1, LeaderEpoch: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}, Revision: 1}, now, 0)
	replicate := func(batch []byte) {
		t.Helper()
		record.SetBaseOffset(batch, p.LogEndOffset())
		record.SetPartitionLeaderEpoch(batch, 1)
		if err := p.appendReplicated(batch); err != nil {
			t.Fatal(err)
		}
	}
	b1, b2 := idemBatch(t, 4, 0, 0, 2), idemBatch(t, 4, 0, 2, 3)
	replicate(b1)
	replicate(b2)
	if err := p.log.TruncateTo(2); err != nil { // b2 diverged from the leader
		t.Fatal(err)
	}
	if err := p.rebuildProducerState(); err != nil {
		t.Fatal(err)
	}

	p.applyState(metastore.PartitionState{Topic: "t", Leader: 2, LeaderEpoch: 2, Replicas: []int32{1, 2}, ISR: []int32{2}, Revision: 2}, now, 0)
	ok := func() bool { return true }
	res, _, err := p.leaderAppend(idemBatch(t, 4, 0, 0, 2), AcksLeader, 1, ok, 0)
	if err != nil || res.FirstOffset != 0 || res.LastOffset != 1 || p.LogEndOffset() != 2 {
		t.Fatalf("retry of a replicated batch: %+v, %v, log end %d", res, err, p.LogEndOffset())
	}
	res, _, err = p.leaderAppend(idemBatch(t, 4, 0, 2, 3), AcksLeader, 1, ok, 0)
	if err != nil || res.FirstOffset != 2 || res.LastOffset != 4 || res.Batches != 1 {
		t.Fatalf("the truncated batch sent again: %+v, %v; want it written at 2..4", res, err)
	}
}

// A batch naming a producer id the cluster never issued is refused with
// UNKNOWN_PRODUCER_ID and nothing of its request's partition is written;
// ids InitProducerId handed out, here or on another broker, are accepted.
func TestUnissuedProducerIDRefused(t *testing.T) {
	b, store := startBroker(t)
	createTestTopic(t, b, "t")
	ctx := context.Background()
	// An id a little above the mark, as a client keeps across a cluster
	// rebuilt under it, is adopted: accepted, and never issued to another.
	mustProduce(t, b, "t", idemBatch(t, 5, 0, 0, 1))
	id, _, err := b.InitProducerID(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if id <= 5 {
		t.Fatalf("InitProducerID issued %d after id 5 was adopted", id)
	}
	mustProduce(t, b, "t", idemBatch(t, id, 0, 0, 1))
	high, err := store.ProducerIDHighWater(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// One id far above the mark spoils its partition's whole request.
	far := high + adoptWindow
	if res := produceTo(t, b, "t", concatBatches(idemBatch(t, id, 0, 1, 1), idemBatch(t, far, 0, 0, 1))); !errors.Is(res.Err, ErrUnknownProducerID) || Classify(res.Err) != KindUnknownProducerID {
		t.Fatalf("request with id %d, %d above the mark: %v", far, adoptWindow, res.Err)
	}
	if got := partitionEnd(t, b, "t"); got != 2 {
		t.Fatalf("log end %d, want 2: a refused request wrote something", got)
	}
	if after, err := store.ProducerIDHighWater(ctx); err != nil || after != high {
		t.Fatalf("mark %d (%v) after a refused id, want %d unchanged", after, err, high)
	}
	// Another broker issues the next block: this one learns of it from
	// the metastore when a producer uses it, and the window counts from
	// the new mark.
	other, err := store.AllocateProducerIDs(ctx, producerIDBlockSize)
	if err != nil {
		t.Fatal(err)
	}
	mustProduce(t, b, "t", concatBatches(idemBatch(t, id, 0, 1, 1), idemBatch(t, other+producerIDBlockSize-1, 0, 0, 1)))
	if res := produceTo(t, b, "t", idemBatch(t, other+producerIDBlockSize+adoptWindow, 0, 0, 1)); !errors.Is(res.Err, ErrUnknownProducerID) {
		t.Fatalf("id past every block and the window: %v", res.Err)
	}
	// Batches without a producer id are not affected.
	produceOne(t, b, "t")
}

// An id issued while a metastore read is under way is not refused on the
// word of that read: only a read that started after the question counts.
func TestIssuedIDsReadAfterTheQuestion(t *testing.T) {
	var highWater atomic.Int64
	entered, release := make(chan struct{}), make(chan struct{})
	var reads atomic.Int32
	ids := issuedIDs{turn: make(chan struct{}, 1), read: func(ctx context.Context) (int64, error) {
		if reads.Add(1) == 1 {
			hw := highWater.Load() // the read happens before the allocation
			close(entered)
			<-release
			return hw, nil
		}
		return highWater.Load(), nil
	}}
	ctx := context.Background()
	first := make(chan bool)
	go func() {
		ok, err := ids.wasIssued(ctx, 10)
		if err != nil {
			t.Error(err)
		}
		first <- ok
	}()
	select {
	case <-entered:
	case ok := <-first:
		t.Fatalf("id 10 answered (issued: %v) without reading the metastore", ok)
	}
	highWater.Store(1000) // another broker issues [0, 1000)
	second := make(chan bool)
	go func() {
		ok, err := ids.wasIssued(ctx, 10)
		if err != nil {
			t.Error(err)
		}
		second <- ok
	}()
	close(release)
	if <-first {
		t.Error("asked before the id was issued: issued")
	}
	if !<-second {
		t.Error("asked after the id was issued: refused on an older read")
	}
	// Now known: no read at all, and made-up ids cost one read each.
	before := reads.Load()
	if ok, _ := ids.wasIssued(ctx, 999); !ok || reads.Load() != before {
		t.Fatalf("id 999 below the known mark: %v after %d reads", ok, reads.Load()-before)
	}
	for range 3 {
		if ok, _ := ids.wasIssued(ctx, 1000); ok {
			t.Fatal("id 1000 issued")
		}
	}
	if n := reads.Load() - before; n != 3 {
		t.Fatalf("%d reads for 3 questions about a made-up id", n)
	}
}

// Each partition remembers at most producer.state.max.entries producers;
// an evicted producer is treated like an expired one (its next batch starts
// it at any sequence), and the metrics count the entries and evictions.
func TestProducerStateCappedLeastRecentlyUsed(t *testing.T) {
	reg := prometheus.NewRegistry()
	b, store := startBrokerWith(t, Config{Settings: map[string]string{"producer.state.max.entries": "2"}, Registerer: reg})
	issueProducerIDs(t, store)
	createTestTopic(t, b, "t")
	mustProduce(t, b, "t", idemBatch(t, 1, 0, 0, 1))
	mustProduce(t, b, "t", idemBatch(t, 2, 0, 0, 1))
	mustProduce(t, b, "t", idemBatch(t, 1, 0, 1, 1)) // 2 is the least recently used
	if res := produceTo(t, b, "t", idemBatch(t, 2, 0, 5, 1)); !errors.Is(res.Err, ErrOutOfOrderSequence) {
		t.Fatalf("gap of a remembered producer: %v", res.Err)
	}
	mustProduce(t, b, "t", idemBatch(t, 3, 0, 0, 1)) // evicts 2
	mustProduce(t, b, "t", idemBatch(t, 2, 0, 5, 1)) // unknown again: any sequence
	if res := produceTo(t, b, "t", idemBatch(t, 3, 0, 5, 1)); !errors.Is(res.Err, ErrOutOfOrderSequence) {
		t.Fatalf("gap of producer 3, remembered: %v", res.Err)
	}
	// Producers 2 and 3 are remembered; 2, then 1, were evicted.
	if n := gathered(t, reg, "strata_producer_state_entries"); n != 2 {
		t.Errorf("strata_producer_state_entries = %v, want 2", n)
	}
	if n := gathered(t, reg, "strata_producer_state_evictions_total"); n != 2 {
		t.Errorf("strata_producer_state_evictions_total = %v, want 2", n)
	}
	if res := produceTo(t, b, "t", idemBatch(t, 5000+adoptWindow, 0, 0, 1)); !errors.Is(res.Err, ErrUnknownProducerID) {
		t.Fatalf("made-up id: %v", res.Err)
	}
	if n := gathered(t, reg, "strata_produce_unknown_producer_id_total"); n != 1 {
		t.Errorf("strata_produce_unknown_producer_id_total = %v, want 1", n)
	}
}

// A bad producer.state.max.entries stops the broker from starting, naming
// the key; unset, it is the bound partitions opened without a broker have.
func TestProducerStateMaxEntriesSetting(t *testing.T) {
	if n, err := topicconfig.ProducerStateMaxEntries(nil); err != nil || n != partlog.DefaultMaxProducerEntries {
		t.Errorf("default producer.state.max.entries %d, %v; partitions default to %d", n, err, partlog.DefaultMaxProducerEntries)
	}
	for _, v := range []string{"0", "-1", "lots", "4294967296"} {
		_, err := New(Config{NodeID: 1, DataDir: t.TempDir(), Settings: map[string]string{"producer.state.max.entries": v}}, metastoretest.New())
		if err == nil || !strings.Contains(err.Error(), "producer.state.max.entries") {
			t.Errorf("producer.state.max.entries=%s: %v", v, err)
		}
	}
}

// gathered is the value of a metric without labels in reg, -1 if absent.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) != 1 {
			continue
		}
		m := mf.GetMetric()[0]
		if m.GetCounter() != nil {
			return m.GetCounter().GetValue()
		}
		return m.GetGauge().GetValue()
	}
	return -1
}

// Leader and follower alike snapshot the producer state when their log has
// rolled, keeping the two newest snapshots; a rebuild after a truncation
// starts from the newest snapshot at or below the cut and reads only what
// follows it.
func TestProducerSnapshotAtRoll(t *testing.T) {
	for _, role := range []string{"leader", "follower"} {
		t.Run(role, func(t *testing.T) {
			l, err := partlog.Open(partlog.Options{Dir: t.TempDir(), Config: partlog.Config{SegmentBytes: 1024}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			self := int32(1)
			if role == "follower" {
				self = 2
			}
			p := newPartition("t", "id-1", 0, l, self)
			p.applyState(metastore.PartitionState{Topic: "t", Leader: 1, LeaderEpoch: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}, Revision: 1}, time.Now(), 0)
			if err := p.rebuildProducerState(); err != nil {
				t.Fatal(err)
			}
			write := func(batch []byte) {
				t.Helper()
				if role == "leader" {
					if _, _, err := p.leaderAppend(batch, AcksLeader, 1, func() bool { return true }, 0); err != nil {
						t.Fatal(err)
					}
					return
				}
				record.SetBaseOffset(batch, p.LogEndOffset())
				record.SetPartitionLeaderEpoch(batch, 1)
				if err := p.appendReplicated(batch); err != nil {
					t.Fatal(err)
				}
			}
			for i := range int32(40) {
				write(idemBatch(t, 7, 0, 3*i, 3))
			}
			snaps := snapshotOffsets(t, l.Dir())
			if len(p.log.Segments()) < 4 || len(snaps) != 2 {
				t.Fatalf("%d segments, snapshots %v; want several segments and the newest two snapshots", len(p.log.Segments()), snaps)
			}
			cut := snaps[1] + 3 // the batch after the newest snapshot stays
			if err := p.log.TruncateTo(cut); err != nil {
				t.Fatal(err)
			}
			if err := p.rebuildProducerState(); err != nil {
				t.Fatal(err)
			}
			if got := p.producers.loaded; got.SnapshotOffset != snaps[1] || got.Bytes != int64(len(idemBatch(t, 7, 0, 0, 3))) {
				t.Fatalf("rebuild after truncating to %d: %+v, want the snapshot at %d and one batch read", cut, got, snaps[1])
			}
			e := p.producers.table.Get(7, time.Now())
			if e == nil || len(e.Batches) != partlog.MaxProducerBatches || e.Batches[len(e.Batches)-1].LastOffset != cut-1 {
				t.Fatalf("producer 7 after the rebuild: %+v, want its last five batches ending at %d", e, cut-1)
			}
		})
	}
}

func snapshotOffsets(t *testing.T, dir string) []int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int64
	for _, e := range entries {
		if stem, ok := strings.CutSuffix(e.Name(), ".snapshot"); ok {
			off, err := strconv.ParseInt(stem, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			offs = append(offs, off)
		}
	}
	return offs
}
