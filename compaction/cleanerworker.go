package compaction

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/topicconfig"
)

// CleanerConfig is what a CleanerWorker needs from the broker hosting it.
type CleanerConfig struct {
	// Disabled is log.cleaner.enable=false: Run returns at once, and the
	// metrics stay at zero.
	Disabled bool
	// Backoff is log.cleaner.backoff.ms, the wait when nothing is due.
	Backoff time.Duration
	// MapBytes is log.cleaner.dedupe.buffer.size, the offset map's size.
	MapBytes int
	// Limiter bounds the bytes read and written per second
	// (log.cleaner.io.max.bytes.per.second); nil is unlimited. It may be
	// shared with other cleaners so that they share the budget.
	Limiter *rate.Limiter
	// Partitions lists the replicas hosted now.
	Partitions func() []Replica
	// TopicConfig is a topic's effective config; a topic it has none for
	// (being created or deleted) is skipped until a later round.
	TopicConfig func(topic string) (topicconfig.Topic, error)
	Now         func() time.Time      // nil: time.Now
	Logger      *slog.Logger          // nil: discard
	Registerer  prometheus.Registerer // nil: the metrics are not exported
}

// CleanerWorker compacts the replicas its broker hosts (leader or
// follower: each replica compacts its own log, as in Kafka) of topics whose
// cleanup.policy includes compact. It cleans the dirtiest due replica, then
// looks again; with nothing due it waits Backoff.
type CleanerWorker struct {
	enabled     bool
	backoff     time.Duration
	mapBytes    int
	limiter     *rate.Limiter
	partitions  func() []Replica
	topicConfig func(string) (topicconfig.Topic, error)
	now         func() time.Time
	logger      *slog.Logger
	life        lifecycle
	// cleaner is used by Run's goroutine only.
	cleaner *Cleaner

	dirtyRatio   *prometheus.GaugeVec
	lagSeconds   *prometheus.GaugeVec
	bytesRead    prometheus.Counter
	bytesWritten prometheus.Counter
	passSeconds  prometheus.Histogram
	lastRun      prometheus.Gauge
	errors       prometheus.Counter
}

// NewCleanerWorker creates a worker and registers its metrics; Run starts
// it.
func NewCleanerWorker(cfg CleanerConfig) (*CleanerWorker, error) {
	if cfg.Backoff <= 0 {
		return nil, fmt.Errorf("compaction: cleaner worker: backoff %v, want a positive one", cfg.Backoff)
	}
	if cfg.MapBytes <= 0 {
		return nil, fmt.Errorf("compaction: cleaner worker: dedupe buffer of %d bytes, want a positive size", cfg.MapBytes)
	}
	if cfg.Partitions == nil || cfg.TopicConfig == nil {
		return nil, errors.New("compaction: cleaner worker: Partitions and TopicConfig are required")
	}
	w := &CleanerWorker{
		enabled:     !cfg.Disabled,
		backoff:     cfg.Backoff,
		mapBytes:    cfg.MapBytes,
		limiter:     cfg.Limiter,
		partitions:  cfg.Partitions,
		topicConfig: cfg.TopicConfig,
		now:         cfg.Now,
		logger:      cfg.Logger,
	}
	if w.now == nil {
		w.now = time.Now
	}
	if w.logger == nil {
		w.logger = slog.New(slog.DiscardHandler)
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
	if err := register(cfg.Registerer, w.dirtyRatio, w.lagSeconds, w.bytesRead, w.bytesWritten, w.passSeconds, w.lastRun, w.errors); err != nil {
		return nil, fmt.Errorf("compaction: cleaner worker: %w", err)
	}
	return w, nil
}

// Run cleans until ctx ends or Close is called. It returns nil then, and at
// once when disabled or after Close; it fails only if already running.
func (w *CleanerWorker) Run(ctx context.Context) error {
	if !w.enabled {
		return nil
	}
	return w.life.run(ctx, func(ctx context.Context) {
		for {
			if w.cleanDirtiest(ctx) {
				continue
			}
			t := time.NewTimer(w.backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	})
}

// Close stops Run and waits for it to return.
func (w *CleanerWorker) Close() { w.life.close() }

// candidate is a replica due for cleaning.
type candidate struct {
	r      Replica
	dirt   Dirt
	policy Policy
}

// cleanDirtiest measures every compacted replica, updates the metrics and
// cleans the dirtiest one that is due. It reports whether it cleaned.
func (w *CleanerWorker) cleanDirtiest(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	now := w.now()
	w.dirtyRatio.Reset()
	w.lagSeconds.Reset()
	var best *candidate
	for _, r := range w.partitions() {
		topic, index := r.Name()
		cfg, err := w.topicConfig(topic)
		if err != nil || !cfg.CompactEnabled() {
			continue
		}
		pol := TopicPolicy(cfg)
		log := r.Log()
		segs := log.Segments()
		upper := lastStableOffset(r)
		if ShouldRoll(segs, upper, pol, now) {
			if err := log.Roll(); err != nil && !errors.Is(err, partlog.ErrLogClosed) {
				w.logger.Warn("log cleaner: cannot roll the active segment", "topic", topic, "partition", index, "err", err)
			}
			continue // the rolled segment is sealed in the background: cleanable next round
		}
		d := Inspect(segs, log.LogStartOffset(), log.CleanerOffset(), upper, pol, now)
		labels := []string{topic, strconv.Itoa(int(index))}
		w.dirtyRatio.WithLabelValues(labels...).Set(d.Ratio())
		w.lagSeconds.WithLabelValues(labels...).Set(dirtyLag(segs, d, now).Seconds())
		if d.Due(pol) && (best == nil || d.Ratio() > best.dirt.Ratio()) {
			best = &candidate{r: r, dirt: d, policy: pol}
		}
	}
	if best == nil {
		return false
	}
	if w.cleaner == nil {
		// The map is allocated on the first pass: a broker without
		// compacted topics never pays for it.
		w.cleaner = &Cleaner{Map: NewOffsetMap(w.mapBytes), Limiter: w.limiter, Now: w.now}
	}
	// The pass's duration is measured on the real clock: the injected one
	// may stand still.
	started := time.Now()
	st, err := w.cleaner.Clean(ctx, Local(best.r.Log()), best.dirt, best.policy)
	topic, index := best.r.Name()
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, partlog.ErrLogClosed) || errors.Is(err, partlog.ErrCleanStale) {
			return false // stopping, the partition went away, or it changed under the pass: next round
		}
		w.errors.Inc()
		w.logger.Warn("log cleaner: pass failed", "topic", topic, "partition", index, "err", err)
		return false
	}
	w.passSeconds.Observe(time.Since(started).Seconds())
	w.bytesRead.Add(float64(st.BytesRead))
	w.bytesWritten.Add(float64(st.BytesWritten))
	w.lastRun.Set(float64(w.now().Unix()))
	w.logger.Info("log cleaner: compacted", "topic", topic, "partition", index,
		"dirty_ratio", fmt.Sprintf("%.2f", best.dirt.Ratio()), "cleaned_to", st.CleanedTo, "segments", st.Segments,
		"bytes_before", st.BytesRead, "bytes_after", st.BytesWritten, "records_read", st.RecordsRead,
		"records_kept", st.RecordsKept, "tombstones_dropped", st.TombstonesDropped,
		"aborted_dropped", st.AbortedDropped, "markers_dropped", st.MarkersDropped, "took", time.Since(started).Round(time.Millisecond))
	return st.Segments > 0
}

// TopicPolicy is a topic config's compaction settings.
func TopicPolicy(c topicconfig.Topic) Policy {
	return Policy{
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
func dirtyLag(segs []partlog.SegmentInfo, d Dirt, now time.Time) time.Duration {
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
