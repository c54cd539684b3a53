package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-broker/strata/api/client"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load generator: measure produce and consume throughput",
	}
	var cpuProfile string
	var stopProfile func() error
	cmd.PersistentFlags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	cmd.PersistentPreRunE = func(*cobra.Command, []string) error {
		if cpuProfile == "" {
			return nil
		}
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("start CPU profile: %w", err)
		}
		stopProfile = func() error {
			pprof.StopCPUProfile()
			return f.Close()
		}
		return nil
	}
	cmd.PersistentPostRunE = func(*cobra.Command, []string) error {
		if stopProfile == nil {
			return nil
		}
		return stopProfile()
	}
	cmd.AddCommand(newBenchProduceCmd(), newBenchConsumeCmd())
	return cmd
}

const mib = 1 << 20

// benchProduceResult is the output of `bench produce --output json`. Field
// names are stable: scripts and BENCHMARKS.md depend on them.
type benchProduceResult struct {
	Topic      string  `json:"topic"`
	Partitions int     `json:"partitions"`
	RecordSize int     `json:"record_size"`
	Acks       string  `json:"acks"`
	Records    int64   `json:"records"` // acknowledged records
	Errors     int64   `json:"errors"`  // failed records
	Bytes      int64   `json:"bytes"`   // value bytes acknowledged
	Seconds    float64 `json:"seconds"`
	RecordsSec float64 `json:"records_per_sec"`
	MiBSec     float64 `json:"mib_per_sec"`
	// Latency of records from Produce to their acknowledgement, in
	// milliseconds, retries included; LatencySamples is how many
	// acknowledged records were timed (failed ones are not).
	LatencyMs      latencyJSON `json:"latency_ms"`
	LatencySamples uint64      `json:"latency_samples"`

	firstErr error // of the failed records, if any
}

type latencyJSON struct {
	P50  float64 `json:"p50"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

// benchConsumeResult is the output of `bench consume --output json`.
type benchConsumeResult struct {
	Topic      string  `json:"topic"`
	Records    int64   `json:"records"`
	Bytes      int64   `json:"bytes"` // record batch bytes, or value bytes with --decode
	Decoded    bool    `json:"decoded"`
	Seconds    float64 `json:"seconds"`
	RecordsSec float64 `json:"records_per_sec"`
	MiBSec     float64 `json:"mib_per_sec"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func newBenchProduceCmd() *cobra.Command {
	var (
		cf            clientFlags
		pf            producerFlags
		output        outputFormat
		topic         string
		recordSize    int
		records       int64
		duration      time.Duration
		partitions    int32
		replication   int32
		maxBufferedMB int
		throughput    float64
		progressEvery time.Duration
	)
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "Produce records of a fixed size as fast as the broker takes them",
		Long: `Produce unkeyed records of --record-size random bytes (generated once) for
--records records or --duration, creating the topic with --partitions if it
does not exist, and report throughput and the latency of records from
Produce to their acknowledgement (every record is timed while fewer than
the buffered maximum are outstanding). Records go to each partition's
leader; a record retried after a leader change or a broker restart counts
once, with its retries in its latency.

While it runs it prints a line to stderr every --progress-interval, as
kafka-producer-perf-test does: the records acknowledged in that window, their
rate, and the average and maximum latency of the window's timed records.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := pf.options()
			if err != nil {
				return err
			}
			opts.MaxBufferedBytes = maxBufferedMB * mib
			if recordSize < 0 {
				return errors.New("--record-size must not be negative")
			}
			if records < 0 || duration < 0 {
				return errors.New("--records and --duration must not be negative")
			}
			if records == 0 && duration == 0 {
				duration = 10 * time.Second
			}
			ctx := cmd.Context()
			c, err := cf.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			n, err := ensureTopic(cmd, c, topic, partitions, replication)
			if err != nil {
				return err
			}
			if throughput < 0 {
				return errors.New("--throughput must not be negative")
			}
			if progressEvery < 0 {
				return errors.New("--progress-interval must not be negative")
			}
			res, err := benchProduce(ctx, c, topic, recordSize, records, duration, throughput, opts, progressOptions{out: cmd.ErrOrStderr(), every: progressEvery})
			if err != nil {
				return err
			}
			res.Partitions = n
			res.Acks = opts.Acks.String()
			if output == outputJSON {
				err = writeJSON(cmd.OutOrStdout(), res)
			} else {
				writeProduceTable(cmd.OutOrStdout(), res)
			}
			if err == nil && res.Errors > 0 {
				err = fmt.Errorf("%d of %d records failed: %w", res.Errors, res.Errors+res.Records, res.firstErr)
			}
			return err
		},
	}
	fs := cmd.Flags()
	cf.register(fs)
	pf.register(fs, "1", client.DefaultBatchBytes)
	addOutputFlag(fs, &output)
	fs.StringVar(&topic, "topic", "", "topic to produce to (required)")
	fs.IntVar(&recordSize, "record-size", 1024, "value size of each record, bytes")
	fs.Int64Var(&records, "records", 0, "number of records to produce")
	fs.DurationVar(&duration, "duration", 0, "produce for this long (default 10s when --records is not given)")
	fs.Int32Var(&partitions, "partitions", 1, "partitions of the topic if it must be created")
	fs.Int32Var(&replication, "replication-factor", 1, "replication factor of the topic if it must be created")
	fs.IntVar(&maxBufferedMB, "max-buffered-mb", client.DefaultMaxBufferedBytes/mib, "MiB the producer buffers before Produce blocks")
	fs.Float64Var(&throughput, "throughput", 0, "target records per second (0: as fast as possible); below saturation, latencies are the broker's, not the buffer's")
	fs.DurationVar(&progressEvery, "progress-interval", defaultProgressInterval, "print a progress line to stderr this often (0: never)")
	_ = cmd.MarkFlagRequired("topic")
	return cmd
}

// ensureTopic returns the topic's partition count, creating it if missing.
func ensureTopic(cmd *cobra.Command, c *client.Client, topic string, partitions, replication int32) (int, error) {
	ctx, cancel := adminContext(cmd)
	defer cancel()
	d, err := c.DescribeTopic(ctx, topic)
	if status.Code(err) == codes.NotFound {
		d, err = c.CreateTopic(ctx, topic, partitions, replication, nil)
		if status.Code(err) == codes.AlreadyExists { // created meanwhile
			d, err = c.DescribeTopic(ctx, topic)
		}
	}
	if err != nil {
		return 0, err
	}
	return len(d.GetPartitions()), nil
}

// benchRun holds the counters of one produce benchmark. Callbacks are
// prepared once, so producing allocates nothing per record.
type benchRun struct {
	base     time.Time
	hist     latencyHistogram
	window   progressWindow
	acked    atomic.Int64
	failed   atomic.Int64
	errOnce  sync.Once
	firstErr error

	mu   sync.Mutex
	free []*latencySampler
}

// latencySampler times one record at a time; its callback is bound once.
type latencySampler struct {
	start time.Duration // since benchRun.base
	cb    func(client.Result, error)
}

func newBenchRun(samplers int) *benchRun {
	b := &benchRun{base: time.Now(), free: make([]*latencySampler, 0, samplers)}
	for range samplers {
		s := &latencySampler{}
		s.cb = func(_ client.Result, err error) {
			// From Produce to the acknowledgement, retries included: the
			// callback comes once, after the last attempt. A failed
			// record has no acknowledgement to time.
			if err == nil {
				d := time.Since(b.base) - s.start
				b.hist.record(d)
				b.window.timed(d)
			}
			b.done(err)
			b.mu.Lock()
			b.free = append(b.free, s)
			b.mu.Unlock()
		}
		b.free = append(b.free, s)
	}
	return b
}

func (b *benchRun) done(err error) {
	if err == nil {
		b.acked.Add(1)
		b.window.acked()
		return
	}
	b.failed.Add(1)
	b.errOnce.Do(func() { b.firstErr = err })
}

// untimed is the callback of records produced while every sampler is busy.
func (b *benchRun) untimed(_ client.Result, err error) { b.done(err) }

func (b *benchRun) sampler() *latencySampler {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.free)
	if n == 0 {
		return nil
	}
	s := b.free[n-1]
	b.free = b.free[:n-1]
	return s
}

// progressOptions say where and how often benchProduce prints progress
// lines; a zero every prints none.
type progressOptions struct {
	out   io.Writer
	every time.Duration
}

func benchProduce(ctx context.Context, c *client.Client, topic string, recordSize int, records int64, duration time.Duration, throughput float64, opts client.ProducerOptions, progress progressOptions) (benchProduceResult, error) {
	payload := make([]byte, recordSize)
	rng := rand.NewChaCha8([32]byte{})
	_, _ = rng.Read(payload)

	// Enough samplers to time every record the producer can have
	// outstanding: buffered, plus the requests whose callbacks are running
	// (their buffer space is released first).
	buffered := opts.MaxBufferedBytes
	if buffered <= 0 {
		buffered = client.DefaultMaxBufferedBytes
	}
	inFlight := max(opts.MaxInFlight, 1) * client.DefaultMaxRequestBytes
	samplers := min(1<<20, (buffered+inFlight)/(recordSize+16)+4096)
	b := newBenchRun(samplers)
	p := client.NewProducer(c, opts)
	rec := client.Record{Partition: client.AnyPartition, Value: payload}

	// An interrupt ends the run between records; it must not fail the record
	// being handed over.
	sendCtx := context.WithoutCancel(ctx)
	start := time.Now()
	stopProgress := b.window.report(progress.out, progress.every, recordSize)
	var deadline time.Time
	if duration > 0 {
		deadline = start.Add(duration)
	}
	for i := int64(0); records == 0 || i < records; i++ {
		if ctx.Err() != nil {
			break
		}
		if i&255 == 0 {
			if !deadline.IsZero() && time.Now().After(deadline) {
				break
			}
			if throughput > 0 {
				// Pace: record i is due at start + i/throughput.
				due := start.Add(time.Duration(float64(i) / throughput * float64(time.Second)))
				if wait := time.Until(due); wait > 0 {
					select {
					case <-time.After(wait):
					case <-ctx.Done():
					}
				}
			}
		}
		if s := b.sampler(); s != nil {
			s.start = time.Since(b.base)
			p.Produce(sendCtx, topic, rec, s.cb)
		} else {
			p.Produce(sendCtx, topic, rec, b.untimed)
		}
	}
	err := p.Close() // flushes
	elapsed := time.Since(start)
	stopProgress()
	if err != nil {
		return benchProduceResult{}, err
	}
	acked := b.acked.Load()
	res := benchProduceResult{
		Topic:          topic,
		RecordSize:     recordSize,
		Records:        acked,
		Errors:         b.failed.Load(),
		Bytes:          acked * int64(recordSize),
		Seconds:        elapsed.Seconds(),
		LatencySamples: b.hist.count(),
		LatencyMs: latencyJSON{
			P50:  ms(b.hist.quantile(0.50)),
			P99:  ms(b.hist.quantile(0.99)),
			P999: ms(b.hist.quantile(0.999)),
			Max:  ms(time.Duration(b.hist.max.Load())),
		},
	}
	if s := elapsed.Seconds(); s > 0 {
		res.RecordsSec = float64(acked) / s
		res.MiBSec = float64(res.Bytes) / mib / s
	}
	res.firstErr = b.firstErr
	return res, nil
}

func writeProduceTable(w io.Writer, r benchProduceResult) {
	rows := [][2]string{
		{"topic", r.Topic},
		{"partitions", fmt.Sprint(r.Partitions)},
		{"acks", r.Acks},
		{"record size", fmt.Sprintf("%d B", r.RecordSize)},
		{"records", fmt.Sprint(r.Records)},
		{"elapsed", fmt.Sprintf("%.2f s", r.Seconds)},
		{"records/s", fmt.Sprintf("%.0f", r.RecordsSec)},
		{"MiB/s", fmt.Sprintf("%.1f", r.MiBSec)},
		{"latency p50", fmt.Sprintf("%.2f ms", r.LatencyMs.P50)},
		{"latency p99", fmt.Sprintf("%.2f ms", r.LatencyMs.P99)},
		{"latency p99.9", fmt.Sprintf("%.2f ms", r.LatencyMs.P999)},
		{"latency max", fmt.Sprintf("%.2f ms", r.LatencyMs.Max)},
	}
	if r.Errors > 0 {
		rows = append(rows, [2]string{"errors", fmt.Sprint(r.Errors)})
	}
	writeTable(w, rows)
}

// writeTable prints label/value rows, labels left-aligned and values
// right-aligned.
func writeTable(w io.Writer, rows [][2]string) {
	lw, vw := 0, 0
	for _, r := range rows {
		lw, vw = max(lw, len(r[0])), max(vw, len(r[1]))
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%-*s  %*s\n", lw, r[0], vw, r[1])
	}
}

func newBenchConsumeCmd() *cobra.Command {
	var (
		cf       clientFlags
		output   outputFormat
		topic    string
		maxBytes int32
		records  int64
		decode   bool
	)
	cmd := &cobra.Command{
		Use:   "consume",
		Short: "Read a topic from the beginning to its end as fast as possible",
		Long: `Read every partition of --topic from its earliest offset to the high
watermark found on the way, and report throughput. Batches are counted
without decoding records (bytes are record batch bytes) unless --decode, which
decodes every record as a consumer would (bytes are value bytes).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := cf.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			cons, err := client.NewConsumer(c, client.ConsumerOptions{Topic: topic, Start: client.StartEarliest, MaxBytes: maxBytes})
			if err != nil {
				return err
			}
			defer cons.Close()
			res, err := benchConsume(ctx, cons, records, decode)
			if err != nil {
				return err
			}
			res.Topic = topic
			if output == outputJSON {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			writeConsumeTable(cmd.OutOrStdout(), res)
			return nil
		},
	}
	fs := cmd.Flags()
	cf.register(fs)
	addOutputFlag(fs, &output)
	fs.StringVar(&topic, "topic", "", "topic to read (required)")
	fs.Int32Var(&maxBytes, "max-bytes", client.DefaultFetchMaxBytes, "maximum bytes of one fetch response")
	fs.Int64Var(&records, "records", 0, "stop once at least this many records are read (whole fetches count; 0: read to the end)")
	fs.BoolVar(&decode, "decode", false, "decode every record (slower; measures a real consumer)")
	_ = cmd.MarkFlagRequired("topic")
	return cmd
}

func benchConsume(ctx context.Context, cons *client.Consumer, limit int64, decode bool) (benchConsumeResult, error) {
	res := benchConsumeResult{Decoded: decode}
	start := time.Now()
	for limit == 0 || res.Records < limit {
		if decode {
			recs, err := cons.Poll(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return res, err
			}
			for i := range recs {
				res.Bytes += int64(len(recs[i].Value))
			}
			res.Records += int64(len(recs))
			continue
		}
		batches, err := cons.PollBatches(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, err
		}
		for i := range batches {
			res.Records += int64(batches[i].Records)
			res.Bytes += int64(len(batches[i].Data))
		}
	}
	elapsed := time.Since(start)
	res.Seconds = elapsed.Seconds()
	if s := res.Seconds; s > 0 {
		res.RecordsSec = float64(res.Records) / s
		res.MiBSec = float64(res.Bytes) / mib / s
	}
	return res, nil
}

func writeConsumeTable(w io.Writer, r benchConsumeResult) {
	what := "batch bytes"
	if r.Decoded {
		what = "value bytes"
	}
	writeTable(w, [][2]string{
		{"topic", r.Topic},
		{"records", fmt.Sprint(r.Records)},
		{what, fmt.Sprint(r.Bytes)},
		{"elapsed", fmt.Sprintf("%.2f s", r.Seconds)},
		{"records/s", fmt.Sprintf("%.0f", r.RecordsSec)},
		{"MiB/s", fmt.Sprintf("%.1f", r.MiBSec)},
	})
}
