package testenv_test

import (
	"context"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/testenv"
)

const (
	// hostileProducerIDs is how many distinct producer ids the attacks
	// below send, as the measurement that found the unbounded state did.
	hostileProducerIDs = 300_000
	// hostileBatchesPerRequest batches, one per producer id, go into each
	// produce request (about 70 KB).
	hostileBatchesPerRequest = 1000
	// producerStateCap is the broker's default producer.state.max.entries.
	producerStateCap = 10_000
	// producerAttackGrowth bounds how much the broker's peak resident memory
	// may grow during an attack of hostileProducerIDs ids. Before producer
	// ids were checked and the state was capped, 300,000 ids took it from
	// 40 to 91 MiB (made-up ids) and 93 MiB (issued ones); now about 10 MiB.
	producerAttackGrowth = 24 << 20
	// producerRestartGrowth bounds the peak of a broker restarted on the
	// log those ids were written to, over the first start's resident
	// memory. A restart on an empty log is itself about 16 MiB over;
	// rebuilding 300,000 producers' state from the log took it 68 MiB over,
	// 10,000 of them about 19.
	producerRestartGrowth = 40 << 20
)

// A client that makes up producer ids gets UNKNOWN_PRODUCER_ID for each of
// them and leaves no state behind: an id counts only once the cluster has
// issued it (InitProducerId). A broker used to keep state for every id it
// saw, for producer.id.expiration.ms (a day).
func TestUnissuedProducerIDsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker; skipped with -short")
	}
	dev := testenv.StartDev(t, testenv.DevOptions{})
	testenv.LimitMemory(t, dev.Pid(), 1<<30)
	cl := pidClient(t, dev, "made-up")

	watch := testenv.WatchKafka(dev.KafkaAddr)
	rss0, _, err := testenv.Memory(dev.Pid())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	codes := map[int16]int{}
	for sent := 0; sent < hostileProducerIDs; sent += hostileBatchesPerRequest {
		ids := make([]int64, hostileBatchesPerRequest)
		for i := range ids {
			// Anything from the top half of the id space: far above what
			// a cluster has issued.
			ids[i] = math.MaxInt64/2 + rng.Int64N(math.MaxInt64/2)
		}
		codes[pidProduce(t, cl, "made-up", ids)]++
	}
	slowest, answered, failures := watch.Stop()
	_, peak, err := testenv.Memory(dev.Pid())
	if err != nil {
		t.Fatalf("the broker is gone after the attack: %v", err)
	}
	t.Logf("%d made-up producer ids: answers %v; peak RSS %d MiB (from %d MiB); watcher: %d answered, slowest %v",
		hostileProducerIDs, codes, peak>>20, rss0>>20, answered, slowest)

	if codes[kerr.UnknownProducerID.Code] != hostileProducerIDs/hostileBatchesPerRequest {
		t.Errorf("answers by error code %v: want every request refused with UNKNOWN_PRODUCER_ID (%d)", codes, kerr.UnknownProducerID.Code)
	}
	if end := pidLogEnd(t, cl, "made-up"); end != 0 {
		t.Errorf("log end offset %d: batches of made-up producer ids were written", end)
	}
	if n := pidMetric(t, dev, "strata_producer_state_entries"); n != 0 {
		t.Errorf("strata_producer_state_entries = %v, want 0", n)
	}
	if peak-rss0 > producerAttackGrowth {
		t.Errorf("peak RSS grew by %d MiB, bound %d MiB", (peak-rss0)>>20, producerAttackGrowth>>20)
	}
	pidCheckWatch(t, slowest, answered, failures)
}

// Producer ids the cluster did issue still cost bounded state: each
// partition keeps at most producer.state.max.entries producers, evicting
// the least recently used, and rebuilds no more than that from its log
// when the broker starts again.
func TestProducerStateBoundedPerPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker; skipped with -short")
	}
	dev := testenv.StartDev(t, testenv.DevOptions{})
	testenv.LimitMemory(t, dev.Pid(), 1<<30)
	cl := pidClient(t, dev, "issued")

	// A long-lived cluster has issued millions of ids; a client can guess
	// ones below that mark without asking for them.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := metastore.Dial(ctx, []string{dev.EtcdAddr}, metastore.DefaultPrefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	first, err := store.AllocateProducerIDs(ctx, metastore.MaxProducerIDBlock)
	store.Close()
	if err != nil {
		t.Fatal(err)
	}

	watch := testenv.WatchKafka(dev.KafkaAddr)
	rss0, _, err := testenv.Memory(dev.Pid())
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, 0, hostileBatchesPerRequest)
	for next := first; next < first+hostileProducerIDs; {
		ids = ids[:0]
		for range hostileBatchesPerRequest {
			ids = append(ids, next)
			next++
		}
		if code := pidProduce(t, cl, "issued", ids); code != 0 {
			t.Fatalf("batches of issued producer ids refused: %v", kerr.ErrorForCode(code))
		}
	}
	slowest, answered, failures := watch.Stop()
	_, peak, err := testenv.Memory(dev.Pid())
	if err != nil {
		t.Fatalf("the broker is gone after the attack: %v", err)
	}
	entries := pidMetric(t, dev, "strata_producer_state_entries")
	t.Logf("%d issued producer ids: %v state entries; peak RSS %d MiB (from %d MiB); watcher: %d answered, slowest %v",
		hostileProducerIDs, entries, peak>>20, rss0>>20, answered, slowest)
	if entries < 0 || entries > producerStateCap {
		t.Errorf("strata_producer_state_entries = %v, want at most %d", entries, producerStateCap)
	}
	if peak-rss0 > producerAttackGrowth {
		t.Errorf("peak RSS grew by %d MiB, bound %d MiB", (peak-rss0)>>20, producerAttackGrowth>>20)
	}
	pidCheckWatch(t, slowest, answered, failures)

	// The state rebuilt from the log at start is bounded too.
	dev.Stop()
	dev.Restart(t)
	// The partition rebuilds its producer state when it opens, before it
	// serves.
	await.NoError(t, 30*time.Second, "the partition to serve again", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, "issued")
		if err != nil {
			return err
		}
		return ends.Error()
	})
	_, peak, err = testenv.Memory(dev.Pid())
	if err != nil {
		t.Fatal(err)
	}
	entries = pidMetric(t, dev, "strata_producer_state_entries")
	t.Logf("after a restart: %v state entries, peak RSS %d MiB", entries, peak>>20)
	if entries > producerStateCap {
		t.Errorf("strata_producer_state_entries = %v after a restart, want at most %d", entries, producerStateCap)
	}
	if peak > rss0+producerRestartGrowth {
		t.Errorf("peak RSS %d MiB after a restart, bound %d MiB", peak>>20, (rss0+producerRestartGrowth)>>20)
	}
}

// A franz-go producer, idempotent by default, keeps its producer id across
// a restart of the broker: the id it was issued before is still accepted,
// and every record is in the log exactly once.
func TestIdempotentProducerAcrossRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker; skipped with -short")
	}
	dev := testenv.StartDev(t, testenv.DevOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(dev.KafkaAddr), kgo.DefaultProduceTopic("idem"),
		kgo.RecordRetries(math.MaxInt32), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "idem"); err != nil {
		t.Fatal(err)
	}
	const perRound = 500
	produce := func(from int) {
		t.Helper()
		for i := from; i < from+perRound; i++ {
			r := &kgo.Record{Value: []byte(strconv.Itoa(i))}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
		}
	}
	produce(0)
	id, epoch, err := cl.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dev.Stop()
	dev.Restart(t)
	produce(perRound)
	if id2, epoch2, err := cl.ProducerID(ctx); err != nil || id2 != id || epoch2 != epoch {
		t.Fatalf("producer id %d/%d after the restart (%v), was %d/%d: the broker made the client start over", id2, epoch2, err, id, epoch)
	}

	consumer, err := kgo.NewClient(kgo.SeedBrokers(dev.KafkaAddr), kgo.ConsumeTopics("idem"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	seen := map[string]int{}
	for n := 0; n < 2*perRound; {
		fs := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("%d of %d records read: %v", n, 2*perRound, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen[string(r.Value)]++
			if r.ProducerID != id {
				t.Errorf("record %s written by producer %d, want %d", r.Value, r.ProducerID, id)
			}
			n++
		})
	}
	for i := range 2 * perRound {
		if c := seen[strconv.Itoa(i)]; c != 1 {
			t.Errorf("record %d is in the log %d times", i, c)
		}
	}
}

// pidClient is a Kafka client of dev with a one-partition topic.
func pidClient(t *testing.T, dev *testenv.Dev, topic string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(dev.KafkaAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	return cl
}

// pidProduce sends one produce request to partition 0 of topic holding one
// idempotent batch (epoch 0, sequence 0, one record) per producer id, and
// returns the partition's error code.
func pidProduce(t *testing.T, cl *kgo.Client, topic string, ids []int64) int16 {
	t.Helper()
	var batches []byte
	now := time.Now().UnixMilli()
	for _, id := range ids {
		bld := record.NewBuilder(now, 0)
		bld.SetProducer(id, 0, 0)
		bld.Append(&record.Record{Timestamp: now, Value: []byte("x")})
		out, err := bld.Build(record.None)
		if err != nil {
			t.Fatal(err)
		}
		batches = append(batches, out...)
	}
	req := kmsg.NewPtrProduceRequest()
	req.Acks = 1
	req.TimeoutMillis = 10_000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batches
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// pidLogEnd is partition 0's log end offset.
func pidLogEnd(t *testing.T, cl *kgo.Client, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := ends.Lookup(topic, 0)
	if !ok || o.Err != nil {
		t.Fatalf("end offset of %s-0: %v", topic, o.Err)
	}
	return o.Offset
}

// pidMetric scrapes dev's /metrics for the sum of a metric's series, -1
// when it has none.
func pidMetric(t *testing.T, dev *testenv.Dev, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + dev.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	sum, found := 0.0, false
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum, found = sum+v, true
		}
	}
	if !found {
		return -1
	}
	return sum
}

// pidCheckWatch fails t unless the well-behaved client was answered within a
// second every time during an attack.
func pidCheckWatch(t *testing.T, slowest time.Duration, answered int, failures []string) {
	t.Helper()
	if len(failures) > 0 {
		t.Errorf("the watching client failed %d times: %v", len(failures), failures)
	}
	if answered == 0 || slowest > time.Second {
		t.Errorf("the watching client: %d answered, slowest %v; want every answer within 1s", answered, slowest)
	}
}
