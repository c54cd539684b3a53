package broker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/strata-broker/strata/compaction"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/topicconfig"
)

// Kafka's log cleaner settings and defaults.
const (
	defaultCleanerBackoffMs  = 15_000    // log.cleaner.backoff.ms
	defaultDedupeBufferBytes = 128 << 20 // log.cleaner.dedupe.buffer.size
)

// cleanerWorker compacts the partitions this broker hosts (leader or
// follower: each replica compacts its own log, as in Kafka) of topics whose
// cleanup.policy includes compact. It cleans the dirtiest due partition,
// then looks again; with nothing due it waits log.cleaner.backoff.ms.
type cleanerWorker struct {
	b        *Broker
	enabled  bool
	backoff  time.Duration
	mapBytes int
	limiter  *rate.Limiter // nil: unlimited
	cleaner  *compaction.Cleaner

	dirtyRatio   *prometheus.GaugeVec
	lagSeconds   *prometheus.GaugeVec
	bytesRead    prometheus.Counter
	bytesWritten prometheus.Counter
	passSeconds  prometheus.Histogram
	lastRun      prometheus.Gauge
	errors       prometheus.Counter
}

func newCleanerWorker(b *Broker) (*cleanerWorker, error) {
	s := b.cfg.Settings
	w := &cleanerWorker{b: b, enabled: true, mapBytes: defaultDedupeBufferBytes}
	var err error
	if w.backoff, err = settingMs(s, "log.cleaner.backoff.ms", defaultCleanerBackoffMs); err != nil {
		return nil, err
	}
	if v, ok := s["log.cleaner.enable"]; ok {
		if w.enabled, err = strconv.ParseBool(v); err != nil {
			return nil, fmt.Errorf("broker: setting log.cleaner.enable=%q: want true or false", v)
		}
	}
	if v, ok := s["log.cleaner.dedupe.buffer.size"]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1024 || n > math.MaxInt32 {
			return nil, fmt.Errorf("broker: setting log.cleaner.dedupe.buffer.size=%q: want bytes, 1024 to %d", v, math.MaxInt32)
		}
		w.mapBytes = int(n)
	}
	if v, ok := s["log.cleaner.io.max.bytes.per.second"]; ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return nil, fmt.Errorf("broker: setting log.cleaner.io.max.bytes.per.second=%q: want a positive number of bytes", v)
		}
		if f < math.MaxInt32 {
			// A burst of a quarter second, but at least one read chunk.
			w.limiter = rate.NewLimiter(rate.Limit(f), max(int(f/4), 1<<20))
		}
	}
	w.dirtyRatio = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "strata_log_cleaner_dirty_ratio",
		Help: "Share of a compacted partition's cleanable bytes not yet compacted (Kafka's dirty ratio).",
	}, []string{"topic", "partition"})
	w.lagSeconds = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "strata_log_cleaner_compaction_lag_seconds",
		Help: "Age of the newest record of the oldest segment not yet compacted, by partition; 0 when all is clean.",
	}, []string{"topic", "partition"})
	w.bytesRead = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "strata_log_cleaner_read_bytes_total", Help: "Bytes of segments the cleaner rewrote.",
	})
	w.bytesWritten = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "strata_log_cleaner_written_bytes_total", Help: "Bytes of the cleaned segments that replaced them; read minus written is what compaction reclaimed.",
	})
	w.passSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "strata_log_cleaner_pass_seconds", Help: "Duration of one compaction pass over a partition.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
	})
	w.lastRun = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "strata_log_cleaner_last_run_timestamp_seconds", Help: "When the cleaner last completed a pass (Unix seconds).",
	})
	w.errors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "strata_log_cleaner_errors_total", Help: "Compaction passes that failed.",
	})
	if reg := b.cfg.Registerer; reg != nil {
		reg.MustRegister(w.dirtyRatio, w.lagSeconds, w.bytesRead, w.bytesWritten, w.passSeconds, w.lastRun, w.errors)
	}
	return w, nil
}

// run cleans until ctx ends.
func (w *cleanerWorker) run(ctx context.Context) {
	if !w.enabled {
		return
	}
	for {
		cleaned := w.cleanDirtiest(ctx)
		if cleaned {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(w.backoff):
		}
	}
}

// candidate is a partition due for cleaning.
type candidate struct {
	p      *Partition
	dirt   compaction.Dirt
	policy compaction.Policy
}

// cleanDirtiest measures every compacted partition, updates the metrics and
// cleans the dirtiest one that is due. It reports whether it cleaned.
func (w *cleanerWorker) cleanDirtiest(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	now := w.b.now()
	w.dirtyRatio.Reset()
	w.lagSeconds.Reset()
	var best *candidate
	for _, p := range w.b.allPartitions() {
		cfg, err := w.b.TopicConfig(p.Topic)
		if err != nil || !cfg.CompactEnabled() {
			continue
		}
		pol := cleanPolicy(cfg)
		segs := p.log.Segments()
		if compaction.ShouldRoll(segs, p.HighWatermark(), pol, now) {
			if err := p.log.Roll(); err != nil && !errors.Is(err, partlog.ErrLogClosed) {
				w.b.logger.Warn("log cleaner: cannot roll the active segment", "topic", p.Topic, "partition", p.Index, "err", err)
			}
			continue // the rolled segment is sealed in the background: cleanable next round
		}
		d := compaction.Inspect(segs, p.log.LogStartOffset(), p.log.CleanerOffset(), p.HighWatermark(), pol, now)
		labels := []string{p.Topic, strconv.Itoa(int(p.Index))}
		w.dirtyRatio.WithLabelValues(labels...).Set(d.Ratio())
		w.lagSeconds.WithLabelValues(labels...).Set(dirtyLag(segs, d, now).Seconds())
		if d.Due(pol) && (best == nil || d.Ratio() > best.dirt.Ratio()) {
			best = &candidate{p: p, dirt: d, policy: pol}
		}
	}
	if best == nil {
		return false
	}
	if w.cleaner == nil {
		// The map is allocated on the first pass: a broker without
		// compacted topics never pays for it.
		w.cleaner = &compaction.Cleaner{Map: compaction.NewOffsetMap(w.mapBytes), Limiter: w.limiter, Now: w.b.now}
	}
	started := time.Now()
	st, err := w.cleaner.Clean(ctx, compaction.Local(best.p.log), best.dirt, best.policy)
	p := best.p
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, partlog.ErrLogClosed) || errors.Is(err, partlog.ErrCleanStale) {
			return false // stopping, the partition went away, or it changed under the pass: next round
		}
		w.errors.Inc()
		w.b.logger.Warn("log cleaner: pass failed", "topic", p.Topic, "partition", p.Index, "err", err)
		return false
	}
	w.passSeconds.Observe(time.Since(started).Seconds())
	w.bytesRead.Add(float64(st.BytesRead))
	w.bytesWritten.Add(float64(st.BytesWritten))
	w.lastRun.Set(float64(w.b.now().Unix()))
	w.b.logger.Info("log cleaner: compacted", "topic", p.Topic, "partition", p.Index,
		"dirty_ratio", fmt.Sprintf("%.2f", best.dirt.Ratio()), "cleaned_to", st.CleanedTo, "segments", st.Segments,
		"bytes_before", st.BytesRead, "bytes_after", st.BytesWritten, "records_read", st.RecordsRead,
		"records_kept", st.RecordsKept, "tombstones_dropped", st.TombstonesDropped, "took", time.Since(started).Round(time.Millisecond))
	return st.Segments > 0
}

// cleanPolicy is a topic config's compaction settings.
func cleanPolicy(c topicconfig.Topic) compaction.Policy {
	return compaction.Policy{
		MinCleanableDirtyRatio: c.MinCleanableDirtyRatio,
		MinCompactionLag:       msDuration(c.MinCompactionLagMs),
		MaxCompactionLag:       msDuration(c.MaxCompactionLagMs),
		DeleteRetention:        msDuration(c.DeleteRetentionMs),
		SegmentBytes:           c.SegmentBytes,
	}
}

// msDuration converts milliseconds, saturating where Kafka's "forever"
// values (Long.MAX_VALUE) would overflow a time.Duration.
func msDuration(ms int64) time.Duration {
	if ms >= math.MaxInt64/int64(time.Millisecond) {
		return math.MaxInt64
	}
	return time.Duration(ms) * time.Millisecond
}

// dirtyLag is how long the oldest dirty segment's newest record has waited
// for compaction.
func dirtyLag(segs []partlog.SegmentInfo, d compaction.Dirt, now time.Time) time.Duration {
	if d.DirtyBytes == 0 {
		return 0
	}
	for _, s := range segs {
		if s.NextOffset > d.FirstDirty && s.MaxTimestamp >= 0 {
			return max(0, now.Sub(time.UnixMilli(s.MaxTimestamp)))
		}
	}
	return 0
}
