package testenv_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// BenchmarkColdRead measures a consumer replaying a tiered partition whose
// records are only in MinIO, against the raw GET throughput of the same
// MinIO for the same bytes, in one run. 1 GiB of 1 KiB records
// (STRATA_COLD_MIB to change it) go to one partition with 8 MiB segments
// and a local retention of one segment; the broker is then restarted (its
// chunk cache starts empty) and a franz-go consumer reads from offset 0.
// Reported: the time from the consumer's start to its first record; cold
// MB/s, the segment bytes over the time from the first record to the last
// (startup is in the first figure); raw GET MB/s, the same segment objects
// read whole, one after another, with minio-go, the faster of two passes;
// and the ratio of the two. A replay of a few hundred MiB measures mostly
// the start (every process faulting in its buffers), not the rate a long
// replay keeps.
func BenchmarkColdRead(b *testing.B) {
	c := testenv.NewTestCluster(b, testenv.ClusterOptions{Brokers: 1, MinIO: true,
		BrokerSettings: map[string]string{"remote.log.manager.task.interval.ms": "200"},
		ExtraArgs:      []string{"--pprof"}}) // the profiles below
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	br := c.Brokers()[0]
	cl, err := kgo.NewClient(kgo.SeedBrokers(br.KafkaAddr()), kgo.DefaultProduceTopic("cold"),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerBatchMaxBytes(256<<10))
	if err != nil {
		b.Fatal(err)
	}
	v := func(s string) *string { return &s }
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, map[string]*string{
		"remote.storage.enable": v("true"), "segment.bytes": v("8388608"), "local.retention.bytes": v("8388608"),
	}, "cold"); err != nil {
		b.Fatal(err)
	}
	records := 1 << 20 // 1 GiB: long enough for the steady state to outweigh the reader's start
	if mb, err := strconv.Atoi(os.Getenv("STRATA_COLD_MIB")); err == nil && mb > 0 {
		records = mb << 10
	}
	value := make([]byte, 1024)
	for i := 0; i < records; i += 1024 {
		recs := make([]*kgo.Record, 1024)
		for j := range recs {
			recs[j] = &kgo.Record{Value: value}
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
	cl.Close()
	var remoteEnd int64
	s3 := c.MinIO().S3()
	await.True(b, 5*time.Minute, "the bucket to hold the records", func() bool {
		m, err := testenvtest.ReadBucketManifest(b, c, "cold", 0)
		remoteEnd = m.EndOffset()
		return err == nil && remoteEnd >= int64(records)*7/8
	})
	m, err := testenvtest.ReadBucketManifest(b, c, "cold", 0)
	if err != nil {
		b.Fatal(err)
	}

	// Raw GETs of the same objects.
	mc := s3Client(b, s3)
	// Twice, keeping the faster: the first pass also warms MinIO up (its
	// buffers, the page cache), which the broker's read should not be
	// compared against.
	var rawBytes int64
	var rawSecs float64
	var rawUse cpuUse
	for pass := 0; pass < 2; pass++ {
		var n int64
		cpu := startCPU(b, c.MinIO().Pid(), br.Pid())
		start := time.Now()
		for _, s := range m.Segments {
			obj, err := mc.GetObject(ctx, s3.Bucket, testenv.ObjectStorePrefix+"/"+s.Key, minio.GetObjectOptions{})
			if err != nil {
				b.Fatal(err)
			}
			k, err := io.Copy(io.Discard, obj)
			obj.Close()
			if err != nil {
				b.Fatal(err)
			}
			n += k
		}
		secs := time.Since(start).Seconds()
		if use := cpu.stop(secs); pass == 0 || secs < rawSecs {
			rawBytes, rawSecs, rawUse = n, secs, use
		}
	}

	// The consumer, against a broker whose cache is empty.
	if err := br.Restart(ctx); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	cons, err := kgo.NewClient(kgo.SeedBrokers(br.KafkaAddr()), kgo.ConsumeTopics("cold"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxPartitionBytes(8<<20), kgo.FetchMaxBytes(64<<20))
	if err != nil {
		b.Fatal(err)
	}
	defer cons.Close()
	if path := os.Getenv("STRATA_BENCH_PROFILE"); path != "" {
		// A CPU profile of the broker while it serves the cold reads.
		go saveURL(b, "http://"+br.HTTPAddr()+"/debug/pprof/profile?seconds=3", path)
	}
	if path := os.Getenv("STRATA_BENCH_CLIENT_PROFILE"); path != "" {
		// A CPU profile of the consumer (this process) over the cold read.
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	coldCPU := startCPU(b, c.MinIO().Pid(), br.Pid())
	start := time.Now()
	var first time.Duration
	var readBytes int64
	next := int64(0)
	for next < m.EndOffset() {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			b.Fatalf("read %d of %d records", next, m.EndOffset())
		}
		fs.EachRecord(func(r *kgo.Record) {
			if first == 0 {
				first = time.Since(start)
			}
			readBytes += int64(len(r.Value)) + 70 // what the record takes in its batch, roughly
			next = r.Offset + 1
		})
	}
	coldSecs := time.Since(start).Seconds()
	coldUse := coldCPU.stop(coldSecs)
	if path := os.Getenv("STRATA_BENCH_ALLOCS"); path != "" {
		// Where the broker allocated, since it started: the cold read.
		saveURL(b, "http://"+br.HTTPAddr()+"/debug/pprof/allocs", path)
	}
	b.StopTimer()
	coldMBs := float64(rawBytes) / 1e6 / (coldSecs - first.Seconds()) // the same bytes the raw GETs read
	rawMBs := float64(rawBytes) / 1e6 / rawSecs
	b.ReportMetric(coldMBs, "cold_MB/s")
	b.ReportMetric(rawMBs, "raw_get_MB/s")
	b.ReportMetric(coldMBs/rawMBs, "ratio")
	b.ReportMetric(float64(first.Microseconds())/1000, "first_record_ms")
	if n := metricValue(b, br, "strata_tiering_remote_read_seconds_count"); n > 0 {
		b.Logf("remote GETs: %.0f, mean %.1f ms; cache hits %.0f, misses %.0f (of which refetches %.0f)", n,
			1000*metricValue(b, br, "strata_tiering_remote_read_seconds_sum")/n,
			metricValue(b, br, "strata_tiering_cache_hits_total"), metricValue(b, br, "strata_tiering_cache_misses_total"),
			metricValue(b, br, "strata_tiering_cache_refetches_total"))
	}
	b.Logf("%d segments, %d MiB in the bucket; raw GETs %.2fs, cold consumer %.2fs (first record after %v)",
		len(m.Segments), rawBytes>>20, rawSecs, coldSecs, first.Round(time.Millisecond))
	// Where the two cores went: CPU seconds per GB moved, by process.
	gb := float64(rawBytes) / 1e9
	b.Logf("raw GETs: %s", rawUse.per(gb))
	b.Logf("cold read: %s", coldUse.per(gb))
	b.ReportMetric(coldUse.minio/gb, "cold_minio_cpu_s/GB")
	b.ReportMetric(coldUse.broker/gb, "cold_broker_cpu_s/GB")
	b.ReportMetric(coldUse.client/gb, "cold_consumer_cpu_s/GB")
	b.ReportMetric(rawUse.minio/gb, "raw_minio_cpu_s/GB")
}

// saveURL writes what url returns to path; failures are logged, not fatal:
// it serves profiles taken beside the measurement.
func saveURL(tb testing.TB, url, path string) {
	resp, err := http.Get(url)
	if err != nil {
		tb.Log(err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		tb.Log(err)
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		tb.Log(err)
	}
}

// cpuUse is the CPU time MinIO, the broker and this process (the client:
// minio-go or the consumer) used over a phase of wall seconds.
type cpuUse struct {
	minio, broker, client, wall float64
	// brokerFaults are the broker's minor page faults: memory it touched
	// for the first time, which costs CPU that profiles show in syscalls.
	brokerFaults float64
}

func (u cpuUse) per(gb float64) string {
	return fmt.Sprintf("CPU s/GB: MinIO %.2f, broker %.2f, client %.2f; cores busy %.2f of %d; broker page faults %.0f/GB",
		u.minio/gb, u.broker/gb, u.client/gb, (u.minio+u.broker+u.client)/u.wall, runtime.NumCPU(), u.brokerFaults/gb)
}

type cpuMark struct {
	tb                  testing.TB
	minioPid, brokerPid int
	at                  cpuUse
}

func startCPU(tb testing.TB, minioPid, brokerPid int) cpuMark {
	m := cpuMark{tb: tb, minioPid: minioPid, brokerPid: brokerPid}
	m.at = m.read()
	return m
}

func (m cpuMark) read() cpuUse {
	broker, faults := procStat(m.tb, m.brokerPid)
	minio, _ := procStat(m.tb, m.minioPid)
	return cpuUse{minio: minio, broker: broker, client: selfCPU(m.tb), brokerFaults: faults}
}

func (m cpuMark) stop(wall float64) cpuUse {
	now := m.read()
	return cpuUse{minio: now.minio - m.at.minio, broker: now.broker - m.at.broker, client: now.client - m.at.client, wall: wall,
		brokerFaults: now.brokerFaults - m.at.brokerFaults}
}

// procStat is a process's user and system CPU seconds (clock ticks of
// 1/100 s, Linux's USER_HZ) and its minor page faults, from /proc.
func procStat(tb testing.TB, pid int) (cpu, minorFaults float64) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, minflt 10, utime 14 and stime 15.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	minflt, _ := strconv.ParseFloat(f[7], 64)
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100, minflt
}

func selfCPU(tb testing.TB) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
