package testenv_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/testenv"
)

// The partition-scale benchmarks: what a broker's cost in time, memory and
// throughput does as its partition count grows. Sizes come from
// STRATA_SCALE_PARTITIONS (default "100,1000,10000"); each size runs
// STRATA_SCALE_RUNS times (default 1), the sizes alternated, each run on a
// fresh broker. Run them with -benchtime 1x (`make bench-scale`,
// `make bench-scale-rf3`).

const (
	// scaleTopicMax is the most partitions one topic may have
	// (broker.MaxPartitions): a size above it is spread over several
	// topics of at most this many.
	scaleTopicMax = 4000
	// scaleMaxPartitions is the broker's max.partitions for these runs,
	// above the default so that the largest size, its 4-partition
	// comparison topic and the single-topic case all fit.
	scaleMaxPartitions = 100_000
	// scaleRecord is the size of every record value: 1 KiB of random
	// bytes, which no codec can shrink.
	scaleRecord = 1024
	// scalePoll is the interval between Metadata polls: a Metadata of
	// 10,000 partitions is itself work for the broker, so not the 10 ms
	// of internal/await.
	scalePoll = 100 * time.Millisecond
	// scaleWait bounds every wait (creation, a restart's first produce).
	scaleWait = 10 * time.Minute
	// scaleLagMs is replica.lag.time.max.ms on the RF 3 cluster.
	scaleLagMs = 2000
)

// scaleSizes reads STRATA_SCALE_PARTITIONS.
func scaleSizes(b *testing.B) []int {
	raw := os.Getenv("STRATA_SCALE_PARTITIONS")
	if raw == "" {
		raw = "100,1000,10000"
	}
	var sizes []int
	for _, f := range strings.Split(raw, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			b.Fatalf("STRATA_SCALE_PARTITIONS=%q: want positive integers separated by commas", raw)
		}
		sizes = append(sizes, n)
	}
	return sizes
}

// scaleTopics names the topics that hold n partitions: as few as the
// per-topic limit allows, each with its count.
func scaleTopics(prefix string, n int) (names []string, counts []int32) {
	for i := 0; n > 0; i++ {
		k := min(n, scaleTopicMax)
		names = append(names, fmt.Sprintf("%s-%d", prefix, i))
		counts = append(counts, int32(k))
		n -= k
	}
	return names, counts
}

// scaleAdmin is a Kafka client and its admin client on seeds, with
// timeouts long enough for a creation of thousands of partitions.
func scaleAdmin(b *testing.B, seeds []string, opts ...kgo.Opt) (*kgo.Client, *kadm.Client) {
	b.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...),
		kgo.RequestTimeoutOverhead(scaleWait), kgo.RetryTimeout(scaleWait)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(int32(scaleWait.Milliseconds()))
	return cl, adm
}

// createScaleTopics creates the topics, one CreateTopics request each, and
// waits until every partition of them has a leader in Metadata and, when
// fullISR, an ISR of rf replicas. It returns how long that took.
func createScaleTopics(ctx context.Context, b *testing.B, cl *kgo.Client, adm *kadm.Client, names []string, counts []int32, rf int16, fullISR bool) time.Duration {
	b.Helper()
	start := time.Now()
	for i, name := range names {
		t0 := time.Now()
		resp, err := adm.CreateTopic(ctx, counts[i], rf, nil, name)
		scaleLogf("create %s (%d partitions): answered in %.2f s", name, counts[i], time.Since(t0).Seconds())
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			b.Fatalf("create %s (%d partitions): %v", name, counts[i], err)
		}
	}
	want := 0
	for _, c := range counts {
		want += int(c)
	}
	t0 := time.Now()
	waitPartitions(ctx, b, cl, names, want, func(p kmsg.MetadataResponseTopicPartition) bool {
		return p.ErrorCode == 0 && p.Leader >= 0 && (!fullISR || len(p.ISR) >= int(rf))
	})
	scaleLogf("every partition ready %.2f s after the last answer", time.Since(t0).Seconds())
	return time.Since(start)
}

// waitPartitions polls Metadata of the topics (partitionsNow) until want
// partitions satisfy ok.
func waitPartitions(ctx context.Context, b *testing.B, cl *kgo.Client, names []string, want int, ok func(kmsg.MetadataResponseTopicPartition) bool) {
	b.Helper()
	deadline := time.Now().Add(scaleWait)
	good := 0
	for {
		good = 0
		if parts, err := partitionsNow(ctx, cl, names); err == nil {
			for _, p := range parts {
				if ok(p) {
					good++
				}
			}
		}
		if good >= want {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			b.Fatalf("after %v: %d of %d partitions ready", scaleWait, good, want)
		}
		time.Sleep(scalePoll)
	}
}

// partitionsNow returns the partitions of the topics as a broker answers
// Metadata now, leaving out topics answered with an error (not known to
// that broker yet). It sends a Metadata request each call: kadm's Metadata
// answers from franz-go's cache while its entry is younger than
// MetadataMinAge (5 s by default), so a wait polling through it saw a
// change up to 5 s late, and every wait it timed came out near 5 s.
func partitionsNow(ctx context.Context, cl *kgo.Client, names []string) ([]kmsg.MetadataResponseTopicPartition, error) {
	req := kmsg.NewPtrMetadataRequest()
	for _, name := range names {
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, t)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("metadata of %v: %w", names, err)
	}
	var parts []kmsg.MetadataResponseTopicPartition
	for _, t := range resp.Topics {
		if t.ErrorCode == 0 {
			parts = append(parts, t.Partitions...)
		}
	}
	return parts, nil
}

// procMem is a process's resident set in MiB, VmRSS of /proc/<pid>/status.
func procMem(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				b.Fatalf("VmRSS %q: %v", rest, err)
			}
			return kb / 1024
		}
	}
	b.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// idleCPU is the broker's CPU use in percent of one core over d, from
// /proc/<pid>/stat, with nothing asking anything of it.
func idleCPU(b *testing.B, pid int, d time.Duration) float64 {
	before, _ := procStat(b, pid)
	start := time.Now()
	time.Sleep(d) // the measurement is of d doing nothing
	after, _ := procStat(b, pid)
	return 100 * (after - before) / time.Since(start).Seconds()
}

// scaleValues is a pool of random bytes; record i's value is the 1 KiB
// window at a position derived from i, so no two neighbouring records are
// alike and nothing compresses.
type scaleValues []byte

func newScaleValues() scaleValues {
	v := make([]byte, 1<<20+scaleRecord)
	rand.Read(v)
	return v
}

func (v scaleValues) value(i int) []byte {
	off := (i * 4099) % (1 << 20)
	return v[off : off+scaleRecord]
}

// partitionRef is one partition of the topics, in the order records go
// round-robin.
type partitionRef struct {
	topic     string
	partition int32
}

func allPartitions(names []string, counts []int32) []partitionRef {
	var refs []partitionRef
	for i, name := range names {
		for p := range counts[i] {
			refs = append(refs, partitionRef{name, p})
		}
	}
	return refs
}

// spread is how produceSpread picks each record's partition.
type spread int

const (
	// roundRobin sends record i to partition i mod N: every batch holds one
	// record once N is large, the most a broker can be asked to write per
	// byte.
	roundRobin spread = iota
	// sticky sends keyless records topic after topic and lets the client's
	// default partitioner choose the partition, as a Kafka producer does
	// without keys: it fills one partition's batch, then moves on, so the
	// writes still cover every partition but in batches (franz-go's
	// uniform-bytes partitioner switches every 64 KiB).
	sticky
)

// produceSpread sends records records of 1 KiB over parts as how says, and
// returns the MiB/s from the first timed send to the last acknowledgement.
// First, untimed, it sends one record to every partition and waits for
// them: what is measured is a producer that has been running, not its
// start (loading the metadata of every partition, its producer id, the
// first batch of each partition), which at 10,000 partitions is a fixed
// cost of a fraction of a second that would weigh differently at every
// size.
func produceSpread(ctx context.Context, b *testing.B, seeds []string, parts []partitionRef, records int, values scaleValues, how spread) float64 {
	b.Helper()
	opts := []kgo.Opt{kgo.SeedBrokers(seeds...), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerLinger(5 * time.Millisecond), kgo.MaxBufferedRecords(64 << 10), kgo.ProducerBatchMaxBytes(1 << 20)}
	if how == roundRobin {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	var failed atomic.Pointer[error]
	done := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.CompareAndSwap(nil, &err)
		}
	}
	flush := func() {
		if err := cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		if err := failed.Load(); err != nil {
			b.Fatalf("produce: %v", *err)
		}
	}
	var topics []string
	for _, p := range parts {
		if len(topics) == 0 || topics[len(topics)-1] != p.topic {
			topics = append(topics, p.topic)
		}
	}
	// Before the warm-up, which reads back what the settling dropped of
	// the partitions' last pages (a write into a page not in memory
	// reads it first): timed, those reads would fall on the spread runs,
	// thousands of them, and on four partitions hardly at all.
	settleWrites(b)
	if how == sticky {
		// This client reaches a partition only where its partitioner
		// sends it, so every partition is warmed through a manual one.
		produceSpread(ctx, b, seeds, parts, 0, values, roundRobin)
		for i, t := range topics {
			cl.Produce(ctx, &kgo.Record{Topic: t, Value: values.value(i)}, done)
		}
	} else {
		for i, p := range parts {
			cl.Produce(ctx, &kgo.Record{Topic: p.topic, Partition: p.partition, Value: values.value(i)}, done)
		}
	}
	flush()
	start := time.Now()
	for i := range records {
		r := &kgo.Record{Value: values.value(i)}
		if how == roundRobin {
			p := parts[i%len(parts)]
			r.Topic, r.Partition = p.topic, p.partition
		} else {
			r.Topic = topics[i%len(topics)]
		}
		cl.Produce(ctx, r, done)
	}
	flush()
	return float64(records) * scaleRecord / (1 << 20) / time.Since(start).Seconds()
}

// settleWrites starts a timed produce from the same state as every other:
// the earlier runs' dirty pages written back, and, with
// STRATA_SCALE_DROP_CACHES=1 (root only; it empties the whole machine's
// page cache), free memory to write into. Without it a gigabyte written
// after a few others runs on a full page cache, whose reclaim costs more
// per byte than the writes it makes room for: the last of three produces
// ran at a third of the speed of the first.
func settleWrites(b *testing.B) {
	b.Helper()
	syscall.Sync()
	if os.Getenv("STRATA_SCALE_DROP_CACHES") != "1" {
		return
	}
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("1"), 0); err != nil {
		b.Fatalf("STRATA_SCALE_DROP_CACHES=1: %v", err)
	}
}

// consumeAll reads the topics from the start until it has records records
// and returns the MiB/s from the client's start to the last record.
func consumeAll(ctx context.Context, b *testing.B, seeds []string, names []string, records int) float64 {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(names...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<20))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	start := time.Now()
	got := 0
	for got < records {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			b.Fatalf("consumed %d of %d records", got, records)
		}
		fs.EachError(func(t string, p int32, err error) { b.Fatalf("fetch %s/%d: %v", t, p, err) })
		got += fs.NumRecords()
	}
	return float64(records) * scaleRecord / (1 << 20) / time.Since(start).Seconds()
}

// firstProduce produces one record to p until the broker acknowledges it,
// and returns when it did.
func firstProduce(ctx context.Context, b *testing.B, seeds []string, p partitionRef) time.Time {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }),
		kgo.RecordRetries(1<<20), kgo.RecordDeliveryTimeout(scaleWait))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	deadline := time.Now().Add(scaleWait)
	for {
		err := cl.ProduceSync(ctx, &kgo.Record{Topic: p.topic, Partition: p.partition, Value: []byte("after restart")}).FirstErr()
		if err == nil {
			return time.Now()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			b.Fatalf("produce to %s/%d after a restart: %v", p.topic, p.partition, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scaleFigures are one run's measurements at one size.
type scaleFigures map[string]float64

// scaleColumns are the figures in the order of the table, with their units.
var scaleColumns = []struct{ key, unit string }{
	{"create", "s"},
	{"idle-rss", "MiB"},
	{"idle-cpu", "%"},
	{"produce-all", "MiB/s"},
	{"produce-sticky", "MiB/s"},
	{"produce-4", "MiB/s"},
	{"consume-all", "MiB/s"},
	{"kill-healthy", "s"},
	{"kill-produce", "s"},
	{"stop", "s"},
	{"stop-healthy", "s"},
	{"stop-produce", "s"},
	{"run", "s"},
}

// BenchmarkPartitionScale measures one `strata dev` broker (embedded etcd,
// RF 1) holding N partitions, for each N of STRATA_SCALE_PARTITIONS, in
// topics of at most 4,000 partitions (the per-topic limit). Per run, on a
// fresh broker:
//
//   - create: from the first CreateTopics request until every partition has
//     a leader in Metadata;
//   - idle RSS (VmRSS) and idle CPU (% of one core over
//     STRATA_SCALE_IDLE_SECONDS, default 10) of the broker after that;
//   - produce-all: STRATA_SCALE_MIB MiB (default 256) of 1 KiB random
//     records from one franz-go producer, record i to partition i mod N
//     (round-robin over every partition: one record per batch), MiB/s to
//     the last acknowledgement; produce-sticky: the same bytes without
//     keys, the client's default partitioner spreading them over every
//     partition; produce-4: the same bytes round-robin over a topic of 4
//     partitions. Each producer first sends one record to every partition
//     it will write, untimed (see produceSpread); consume-all: as many
//     records read back from offset 0 by one consumer of every topic;
//   - kill-healthy, kill-produce: after SIGKILL, from the restart to
//     /healthz and to the first acknowledged produce to the last partition;
//     stop: how long a SIGTERM took to end the process; stop-healthy,
//     stop-produce: the same after that clean stop.
//
// With STRATA_SCALE_SINGLE (default 4000, 0 to skip) it also times the
// creation of one topic of that many partitions on a fresh broker per run
// (create-single). STRATA_SCALE_PROFILE=dir saves a CPU profile of the
// broker from the first CreateTopics, dir/create-<N>-<run>.pprof, of
// STRATA_SCALE_PROFILE_SECONDS (default 10). STRATA_SCALE_DROP_CACHES=1 empties
// the page cache before each produce (see settleWrites). The brokers' data goes
// under $TMPDIR: the filesystem there decides much of the create and stop
// figures (BENCHMARKS.md).
func BenchmarkPartitionScale(b *testing.B) {
	sizes := scaleSizes(b)
	runs := envInt(b, "STRATA_SCALE_RUNS", 1)
	mib := envInt(b, "STRATA_SCALE_MIB", 256)
	idle := time.Duration(envInt(b, "STRATA_SCALE_IDLE_SECONDS", 10)) * time.Second
	single := 4000
	if raw := os.Getenv("STRATA_SCALE_SINGLE"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 0 || n > scaleTopicMax {
			b.Fatalf("STRATA_SCALE_SINGLE=%q: want 0 to %d", raw, scaleTopicMax)
		}
		single = n
	}
	profiles := os.Getenv("STRATA_SCALE_PROFILE")
	profileSecs := envInt(b, "STRATA_SCALE_PROFILE_SECONDS", 10)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Hour)
	defer cancel()
	values := newScaleValues()
	records := mib << 10

	figures := map[int][]scaleFigures{}
	var singles []float64
	for run := range runs {
		for _, n := range sizes {
			f := partitionScaleRun(ctx, b, n, records, idle, values, profiles, profileSecs, run)
			figures[n] = append(figures[n], f)
			scaleLogf("run %d, %d partitions: %s", run+1, n, f)
		}
		if single > 0 {
			dev := scaleDev(b)
			cl, adm := scaleAdmin(b, []string{dev.KafkaAddr})
			took := createScaleTopics(ctx, b, cl, adm, []string{"single"}, []int32{int32(single)}, 1, false)
			cl.Close()
			dev.Stop()
			singles = append(singles, took.Seconds())
			scaleLogf("run %d, one topic of %d partitions: created in %.2f s", run+1, single, took.Seconds())
		}
	}

	var table strings.Builder
	fmt.Fprintf(&table, "\n%-12s", "partitions")
	for _, c := range scaleColumns {
		fmt.Fprintf(&table, " %18s", c.key+" "+c.unit)
	}
	for _, n := range sizes {
		fmt.Fprintf(&table, "\n%-12d", n)
		for _, c := range scaleColumns {
			var v []float64
			for _, f := range figures[n] {
				v = append(v, f[c.key])
			}
			m := median(v)
			fmt.Fprintf(&table, " %18.2f", m)
			if c.key != "run" {
				b.ReportMetric(m, fmt.Sprintf("p%d-%s-%s", n, c.key, strings.ReplaceAll(c.unit, "%", "pct")))
			}
		}
	}
	if len(singles) > 0 {
		fmt.Fprintf(&table, "\none topic of %d partitions: created in %.2f s (median of %v)", single, median(singles), singles)
		b.ReportMetric(median(singles), fmt.Sprintf("single%d-create-s", single))
	}
	scaleLogf("medians of %d run(s), 1 KiB records, %d MiB per throughput figure:%s", runs, mib, table.String())
}

// scaleDev starts a broker for one run, with its profiles served and room
// for the partitions.
func scaleDev(b *testing.B) *testenv.Dev {
	b.Helper()
	return testenv.StartDev(b, testenv.DevOptions{ExtraArgs: []string{"--pprof",
		"--config", "max.partitions=" + strconv.Itoa(scaleMaxPartitions)}})
}

func (f scaleFigures) String() string {
	var parts []string
	for _, c := range scaleColumns {
		parts = append(parts, fmt.Sprintf("%s %.2f %s", c.key, f[c.key], c.unit))
	}
	return strings.Join(parts, ", ")
}

// partitionScaleRun is one run at n partitions on a fresh broker, stopped
// at its end.
func partitionScaleRun(ctx context.Context, b *testing.B, n, records int, idle time.Duration, values scaleValues, profiles string, profileSecs, run int) scaleFigures {
	b.Helper()
	runStart := time.Now()
	f := scaleFigures{}
	dev := scaleDev(b)
	defer dev.Stop()
	seeds := []string{dev.KafkaAddr}
	cl, adm := scaleAdmin(b, seeds)
	defer cl.Close()

	names, counts := scaleTopics("scale", n)
	var profiled sync.WaitGroup
	if profiles != "" {
		// A profile of a fixed length, from just before the first
		// CreateTopics: it covers the creation when the creation takes
		// less (STRATA_SCALE_PROFILE_SECONDS, default 10), and the idle
		// measurement waits for it to end.
		profiled.Add(1)
		go func() {
			defer profiled.Done()
			saveURL(b, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", dev.HTTPAddr, profileSecs),
				filepath.Join(profiles, fmt.Sprintf("create-%d-%d.pprof", n, run+1)))
		}()
		time.Sleep(200 * time.Millisecond) // the profile has started
	}
	f["create"] = createScaleTopics(ctx, b, cl, adm, names, counts, 1, false).Seconds()

	profiled.Wait() // the profiler's own signals would count as idle CPU

	f["idle-rss"] = procMem(b, dev.Pid())
	f["idle-cpu"] = idleCPU(b, dev.Pid(), idle)

	parts := allPartitions(names, counts)
	f["produce-all"] = produceSpread(ctx, b, seeds, parts, records, values, roundRobin)
	f["produce-sticky"] = produceSpread(ctx, b, seeds, parts, records, values, sticky)
	createScaleTopics(ctx, b, cl, adm, []string{"four"}, []int32{4}, 1, false)
	f["produce-4"] = produceSpread(ctx, b, seeds, allPartitions([]string{"four"}, []int32{4}), records, values, roundRobin)
	f["consume-all"] = consumeAll(ctx, b, seeds, names, records)

	last := parts[len(parts)-1]
	dev.Kill()
	start := time.Now()
	dev.Restart(b)
	f["kill-healthy"] = time.Since(start).Seconds()
	f["kill-produce"] = firstProduce(ctx, b, seeds, last).Sub(start).Seconds()

	start = time.Now()
	dev.Stop()
	f["stop"] = time.Since(start).Seconds()
	start = time.Now()
	dev.Restart(b)
	f["stop-healthy"] = time.Since(start).Seconds()
	f["stop-produce"] = firstProduce(ctx, b, seeds, last).Sub(start).Seconds()
	f["run"] = time.Since(runStart).Seconds()
	return f
}

// BenchmarkPartitionScaleRF3 measures a three-broker cluster (etcd and
// every broker its own process, RF 3) holding N partitions, for each N of
// STRATA_SCALE_PARTITIONS, alternated over STRATA_SCALE_RUNS runs, a fresh
// cluster per run:
//
//   - create: from the first CreateTopics request until every partition has
//     a leader and an ISR of three in Metadata;
//   - after STRATA_SCALE_RF3_MIB MiB (default 16) of 1 KiB records went
//     round-robin over the partitions, broker 3 is killed (SIGKILL);
//     shrink: from the kill until no partition has broker 3 as leader or
//     in its ISR (replica.lag.time.max.ms is 2 s here, not Kafka's 30);
//     then more of the same is produced with acks=1 while it is down, so
//     it has something to catch up;
//   - restart-healthy: from its start to /healthz;
//   - catch-up: from its start until every partition's ISR holds three
//     replicas again.
func BenchmarkPartitionScaleRF3(b *testing.B) {
	sizes := scaleSizes(b)
	runs := envInt(b, "STRATA_SCALE_RUNS", 1)
	mib := envInt(b, "STRATA_SCALE_RF3_MIB", 16)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Hour)
	defer cancel()
	values := newScaleValues()
	keys := []string{"create", "shrink", "restart-healthy", "catch-up", "run"}
	figures := map[int]map[string][]float64{}
	for run := range runs {
		for _, n := range sizes {
			f := rf3ScaleRun(ctx, b, n, mib<<10, values)
			if figures[n] == nil {
				figures[n] = map[string][]float64{}
			}
			var line []string
			for _, k := range keys {
				figures[n][k] = append(figures[n][k], f[k])
				line = append(line, fmt.Sprintf("%s %.2f s", k, f[k]))
			}
			scaleLogf("run %d, %d partitions RF 3: %s", run+1, n, strings.Join(line, ", "))
		}
	}
	var table strings.Builder
	fmt.Fprintf(&table, "\n%-12s", "partitions")
	for _, k := range keys {
		fmt.Fprintf(&table, " %16s", k+" s")
	}
	for _, n := range sizes {
		fmt.Fprintf(&table, "\n%-12d", n)
		for _, k := range keys {
			m := median(figures[n][k])
			fmt.Fprintf(&table, " %16.2f", m)
			if k != "run" {
				b.ReportMetric(m, fmt.Sprintf("p%d-rf3-%s-s", n, k))
			}
		}
	}
	scaleLogf("three brokers, RF 3, medians of %d run(s):%s", runs, table.String())
}

func rf3ScaleRun(ctx context.Context, b *testing.B, n, records int, values scaleValues) map[string]float64 {
	b.Helper()
	runStart := time.Now()
	f := map[string]float64{}
	c := testenv.NewTestCluster(b, testenv.ClusterOptions{Brokers: 3,
		BrokerSettings: map[string]string{"max.partitions": strconv.Itoa(scaleMaxPartitions),
			// A killed follower leaves the ISR in seconds, not Kafka's 30.
			"replica.lag.time.max.ms": strconv.Itoa(scaleLagMs)}})
	// Closed at the end of the run, not of the benchmark: one cluster at a
	// time on the machine.
	defer func() {
		if err := c.Close(); err != nil {
			b.Errorf("close cluster: %v", err)
		}
	}()
	var seeds []string
	for _, br := range c.Brokers() {
		seeds = append(seeds, br.KafkaAddr())
	}
	cl, adm := scaleAdmin(b, seeds)
	defer cl.Close()
	names, counts := scaleTopics("scale", n)
	f["create"] = createScaleTopics(ctx, b, cl, adm, names, counts, 3, true).Seconds()

	parts := allPartitions(names, counts)
	produceSpread(ctx, b, seeds, parts, records, values, roundRobin)
	victim := c.Brokers()[2]
	victim.Kill()
	killed := time.Now()
	// Until the ISR has shrunk everywhere the restarted broker would have
	// nothing to rejoin. The produce comes after: timed together, a
	// client's own retries and metadata refreshes for the partitions the
	// dead broker led would count as the cluster's.
	waitPartitions(ctx, b, cl, names, n, func(p kmsg.MetadataResponseTopicPartition) bool {
		return p.ErrorCode == 0 && p.Leader >= 0 && p.Leader != victim.ID() && !slices.Contains(p.ISR, victim.ID())
	})
	f["shrink"] = time.Since(killed).Seconds()
	produceLeaderAcks(ctx, b, seeds, parts, records, values)

	start := time.Now()
	if err := victim.Start(ctx); err != nil {
		b.Fatal(err)
	}
	f["restart-healthy"] = time.Since(start).Seconds()
	waitPartitions(ctx, b, cl, names, n, func(p kmsg.MetadataResponseTopicPartition) bool {
		return p.ErrorCode == 0 && p.Leader >= 0 && len(p.ISR) == 3
	})
	f["catch-up"] = time.Since(start).Seconds()
	f["run"] = time.Since(runStart).Seconds()
	return f
}

// produceLeaderAcks is produceSpread with acks=1 (so not idempotent): it
// goes on while a follower is down, before the ISR has shrunk. Partitions
// led by the killed broker take a new leader meanwhile; franz-go retries
// until they have one.
func produceLeaderAcks(ctx context.Context, b *testing.B, seeds []string, parts []partitionRef, records int, values scaleValues) {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerLinger(5*time.Millisecond),
		kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(), kgo.RecordDeliveryTimeout(scaleWait))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	var failed atomic.Pointer[error]
	for i := range records {
		p := parts[i%len(parts)]
		cl.Produce(ctx, &kgo.Record{Topic: p.topic, Partition: p.partition, Value: values.value(i)}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.CompareAndSwap(nil, &err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	if err := failed.Load(); err != nil && !errors.Is(*err, context.Canceled) {
		b.Fatalf("produce while a broker is down: %v", *err)
	}
}

// scaleLogf prints a line of the scale benchmarks' results to standard
// output, which `go test` shows whole: testing keeps only the first ten
// lines of a benchmark's b.Log output, and the restarts' own log lines
// fill those.
func scaleLogf(format string, args ...any) {
	fmt.Printf(format+"\n", args...)
}
