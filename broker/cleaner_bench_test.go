package broker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/metastore/metastoretest"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
)

// The produce-latency-during-compaction scenario: a compacted topic of 4 MiB
// segments holding a dirty backlog, then acks=all produce at a fixed rate.
const (
	p99Backlog        = 200 << 20 // bytes of keyed records produced before the window
	p99Keys           = 50_000
	p99ValueBytes     = 1024
	p99Rate           = 500 // produce requests per second during the window
	p99RecordsPerReq  = 16
	p99Window         = 10 * time.Second
	p99SegmentBytes   = "4194304"
	p99DirtyRatio     = "0.1"
	p99PrefillRecords = 256 // records per prefill batch
)

// BenchmarkProduceP99DuringCompaction measures acks=all produce latency at a
// fixed load (p99Rate requests/s of 16 × 1 KiB records to one partition,
// each request sent on schedule in its own goroutine, so a slow answer never
// delays the next request) for p99Window, on a compacted topic whose log
// holds a 200 MiB dirty backlog over 50,000 keys; compaction is enabled on
// the topic just before the window, so the cleaner starts on the backlog as
// the window starts. Variants: the broker's cleaner off, on (default
// settings), and on with log.cleaner.io.max.bytes.per.second at 20 MiB/s.
//
// Latency is from the request's scheduled time to Produce's return.
// Reported: p50, p99, p99.9 and max latency; cleaner-MiB, the bytes of the
// segments replaced by the passes that finished in the window (the
// strata_log_cleaner_read_bytes_total counter); backlog-cleaned-MiB, the
// bytes of the backlog's segments already swapped for cleaned ones at the
// end of the window (it counts a pass still running). ns/op is not reported:
// each iteration is one window of fixed length.
func BenchmarkProduceP99DuringCompaction(b *testing.B) {
	for _, tc := range []struct {
		name     string
		settings map[string]string
	}{
		{"cleaner=off", map[string]string{"log.cleaner.enable": "false"}},
		{"cleaner=on", map[string]string{"log.cleaner.backoff.ms": "100"}},
		{"cleaner=on,io.max=20MiB/s", map[string]string{"log.cleaner.backoff.ms": "100",
			"log.cleaner.io.max.bytes.per.second": fmt.Sprint(20 << 20)}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var lat []time.Duration
			var cleanerBytes, backlogCleaned float64
			for range b.N {
				r := runP99Window(b, tc.settings)
				lat = append(lat, r.latencies...)
				cleanerBytes += r.cleanerBytes
				backlogCleaned += float64(r.backlogCleaned)
			}
			slices.Sort(lat)
			q := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(q(0.50), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(q(0.999), "p99.9-ms")
			b.ReportMetric(float64(lat[len(lat)-1])/float64(time.Millisecond), "max-ms")
			b.ReportMetric(cleanerBytes/(1<<20)/float64(b.N), "cleaner-MiB")
			b.ReportMetric(backlogCleaned/(1<<20)/float64(b.N), "backlog-cleaned-MiB")
		})
	}
}

type p99Result struct {
	latencies      []time.Duration
	cleanerBytes   float64 // cleaner read-bytes counter, window end minus start
	backlogCleaned int64   // bytes of backlog segments replaced by the end
}

// runP99Window runs one broker through the scenario; only the window is
// timed.
func runP99Window(b *testing.B, settings map[string]string) p99Result {
	b.StopTimer()
	ctx := context.Background()
	br, reg, stop := startBenchBroker(b, settings)
	defer stop()
	const topic = "p99"
	if _, err := br.CreateTopic(ctx, TopicSpec{Name: topic, Partitions: 1, Configs: map[string]string{
		// delete while the backlog is written, so no cleaner touches it yet
		"cleanup.policy": "delete", "segment.bytes": p99SegmentBytes, "min.cleanable.dirty.ratio": p99DirtyRatio,
	}}); err != nil {
		b.Fatal(err)
	}
	p, err := br.hosted.partition(topic, 0)
	if err != nil {
		b.Fatal(err)
	}
	gen := newKeyedGen(1)
	for p.log.Size() < p99Backlog {
		if err := benchProduce(ctx, br, topic, AcksLeader, gen.batch(p99PrefillRecords)); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.log.Flush(); err != nil { // sealed, durable: cleanable
		b.Fatal(err)
	}
	if _, err := br.AlterTopicConfigs(ctx, topic, map[string]string{"cleanup.policy": "compact"}, nil, false); err != nil {
		b.Fatal(err)
	}
	if cfg, err := br.TopicConfig(topic); err != nil || !cfg.CompactEnabled() {
		b.Fatalf("topic config after alter: %+v, %v", cfg, err)
	}
	backlog := p.log.Segments()
	backlog = backlog[:len(backlog)-1] // the active segment is never cleaned
	readBefore := metricValue(b, reg, "strata_log_cleaner_read_bytes_total")

	// Requests are built before the window: the window measures the broker.
	n := int(p99Window.Seconds() * p99Rate)
	reqs := make([][]byte, n)
	for i := range reqs {
		reqs[i] = gen.batch(p99RecordsPerReq)
	}
	lat := make([]time.Duration, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	interval := time.Second / p99Rate
	b.StartTimer()
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		wg.Go(func() {
			if err := benchProduce(ctx, br, topic, AcksAll, reqs[i]); err != nil {
				errs <- err
			}
			lat[i] = time.Since(due)
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	res := p99Result{latencies: lat, cleanerBytes: metricValue(b, reg, "strata_log_cleaner_read_bytes_total") - readBefore}
	res.backlogCleaned = replacedBytes(backlog, p.log.Segments())
	return res
}

// replacedBytes is the size of the segments of before that are no longer in
// after as they were.
func replacedBytes(before, after []partlog.SegmentInfo) int64 {
	type id struct{ base, next, size int64 }
	kept := map[id]bool{}
	for _, s := range after {
		kept[id{s.BaseOffset, s.NextOffset, s.Size}] = true
	}
	var n int64
	for _, s := range before {
		if !kept[id{s.BaseOffset, s.NextOffset, s.Size}] {
			n += s.Size
		}
	}
	return n
}

func benchProduce(ctx context.Context, br *Broker, topic string, acks Acks, batch []byte) error {
	res, err := br.Produce(ctx, topic, acks, []PartitionBatches{{Partition: 0, Batches: batch}})
	if err != nil {
		return err
	}
	return res[0].Err
}

// keyedGen builds uncompressed batches of 1 KiB records with keys drawn at
// random from p99Keys.
type keyedGen struct {
	rng   *rand.Rand
	value []byte
	bld   *record.Builder
}

func newKeyedGen(seed uint64) *keyedGen {
	g := &keyedGen{rng: rand.New(rand.NewPCG(seed, seed+1)), value: make([]byte, p99ValueBytes)}
	for i := range g.value {
		g.value[i] = 'a' + byte(g.rng.IntN(26))
	}
	g.bld = record.NewBuilder(0, 0)
	return g
}

// batch returns a new batch of n records (a copy: Produce stamps it).
func (g *keyedGen) batch(n int) []byte {
	ts := time.Now().UnixMilli()
	g.bld.Reset(ts, n*(p99ValueBytes+32))
	for range n {
		g.bld.Append(&record.Record{Timestamp: ts, Key: fmt.Appendf(nil, "key-%05d", g.rng.IntN(p99Keys)), Value: g.value})
	}
	out, err := g.bld.Build(record.None)
	if err != nil {
		panic(err) // n > 0 records always build
	}
	return slices.Clone(out)
}

// startBenchBroker runs broker 1 with settings on an in-memory metastore,
// its data in b's temporary directory, as startBrokerWith does for tests, with
// its metrics in the returned registry; stop closes everything.
func startBenchBroker(b *testing.B, settings map[string]string) (*Broker, prometheus.Gatherer, func()) {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	var closers []func() error
	stop := func() {
		for _, c := range slices.Backward(closers) {
			c()
		}
	}
	fail := func(err error) {
		stop()
		b.Fatal(err)
	}
	store := metastoretest.New()
	reg, err := store.RegisterBroker(ctx, metastore.BrokerInfo{NodeID: 1}, 10*time.Second)
	if err != nil {
		fail(err)
	}
	closers = append(closers, reg.Close)
	metrics := prometheus.NewRegistry()
	br, err := New(Config{NodeID: 1, DataDir: dir + "/data", Settings: settings, Registerer: metrics}, store)
	if err != nil {
		fail(err)
	}
	if err := br.Start(ctx); err != nil {
		fail(err)
	}
	closers = append(closers, br.Close)
	return br, metrics, stop
}
