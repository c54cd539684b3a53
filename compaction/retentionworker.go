package compaction

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/topicconfig"
)

// Tiers, as the retention metrics label them.
const (
	TierLocal  = "local"
	TierRemote = "remote"
)

// RetentionConfig is what a RetentionWorker needs from the broker hosting
// it.
type RetentionConfig struct {
	// Interval is log.retention.check.interval.ms.
	Interval time.Duration
	// Partitions lists the replicas hosted now.
	Partitions func() []LeaderReplica
	// TopicConfig is a topic's effective config; a topic it has none for
	// (being created or deleted) is skipped until a later round.
	TopicConfig func(topic string) (topicconfig.Topic, error)
	Now         func() time.Time      // nil: time.Now
	Logger      *slog.Logger          // nil: discard
	Registerer  prometheus.Registerer // nil: the metrics are not exported
}

// RetentionWorker applies time and size retention (retention.ms,
// retention.bytes) to the replicas its broker leads of topics without
// remote storage, every Interval. Followers follow the leader's log start,
// so the leader's decision reaches the whole ISR. Tiered topics are left to
// the tiering task, which applies the same policy to both tiers and reports
// to the same metrics through Reclaimed and Count.
type RetentionWorker struct {
	interval    time.Duration
	partitions  func() []LeaderReplica
	topicConfig func(string) (topicconfig.Topic, error)
	now         func() time.Time
	logger      *slog.Logger
	life        lifecycle

	deletedBytes    *prometheus.CounterVec
	deletedSegments *prometheus.CounterVec
	lastRun         prometheus.Gauge

	// mu guards labelled: the topics with metric series, so that those of
	// deleted topics are removed.
	mu       sync.Mutex
	labelled map[string]bool
}

// NewRetentionWorker creates a worker and registers its metrics; Run
// starts it.
func NewRetentionWorker(cfg RetentionConfig) (*RetentionWorker, error) {
	if cfg.Interval <= 0 {
		return nil, fmt.Errorf("compaction: retention worker: check interval %v, want a positive one", cfg.Interval)
	}
	if cfg.Partitions == nil || cfg.TopicConfig == nil {
		return nil, errors.New("compaction: retention worker: Partitions and TopicConfig are required")
	}
	w := &RetentionWorker{
		interval:    cfg.Interval,
		partitions:  cfg.Partitions,
		topicConfig: cfg.TopicConfig,
		now:         cfg.Now,
		logger:      cfg.Logger,
		deletedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_log_retention_deleted_bytes_total",
			Help: "Bytes reclaimed by retention (retention.ms, retention.bytes and their local.* forms), by topic and tier (local or remote).",
		}, []string{"topic", "tier"}),
		deletedSegments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_log_retention_deleted_segments_total",
			Help: "Segments deleted by retention, by topic and tier (local or remote).",
		}, []string{"topic", "tier"}),
		lastRun: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "strata_log_retention_last_run_timestamp_seconds",
			Help: "When the retention worker last went over this broker's partitions (Unix seconds).",
		}),
		labelled: map[string]bool{},
	}
	if w.now == nil {
		w.now = time.Now
	}
	if w.logger == nil {
		w.logger = slog.New(slog.DiscardHandler)
	}
	if err := register(cfg.Registerer, w.deletedBytes, w.deletedSegments, w.lastRun); err != nil {
		return nil, fmt.Errorf("compaction: retention worker: %w", err)
	}
	return w, nil
}

// Run applies retention every interval until ctx ends or Close is called.
// It returns nil then, and at once after Close; it fails only if already
// running.
func (w *RetentionWorker) Run(ctx context.Context) error {
	return w.life.run(ctx, func(ctx context.Context) {
		t := time.NewTicker(w.interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			w.Round(ctx)
		}
	})
}

// Close stops Run and waits for it to return.
func (w *RetentionWorker) Close() { w.life.close() }

// Round applies retention once to every hosted replica. Run calls it every
// interval; a caller that changed a topic's config can call it to apply the
// change at once.
func (w *RetentionWorker) Round(ctx context.Context) {
	hosted := map[string]bool{}
	for _, r := range w.partitions() {
		if ctx.Err() != nil {
			return
		}
		topic, _ := r.Name()
		if !hosted[topic] {
			hosted[topic] = true
			w.label(topic)
		}
		w.partition(r)
	}
	w.forgetAllBut(hosted)
	w.lastRun.Set(float64(w.now().UnixMilli()) / 1000)
}

// partition applies retention to r if the broker leads it and its topic
// keeps its log on local disk only.
func (w *RetentionWorker) partition(r LeaderReplica) {
	topic, index := r.Name()
	cfg, err := w.topicConfig(topic)
	if err != nil || cfg.RemoteStorageEnable {
		return
	}
	epoch, ok := r.LeaderEpoch()
	if !ok {
		return
	}
	log := r.Log()
	before := log.Segments()
	// Up to the last stable offset, not Kafka's high watermark: a
	// transaction still open must not lose its first records before a
	// read_committed consumer could read them.
	d := LocalRetention(cfg, LocalSegments(before), lastStableOffset(r), w.now())
	if d.None() {
		return
	}
	if err := r.RetainBelow(d.StartOffset, epoch); err != nil {
		if !errors.Is(err, ErrLeadershipLost) && !errors.Is(err, partlog.ErrLogClosed) {
			w.logger.Warn("retention: cannot delete segments", "topic", topic, "partition", index, "err", err)
		}
		return
	}
	n, bytes := w.Reclaimed(topic, TierLocal, before, log.Segments())
	w.logger.Info("retention: segments deleted", "topic", topic, "partition", index,
		"segments", n, "bytes", bytes, "log_start_offset", log.LogStartOffset(),
		"by_size", d.BySize, "by_time", d.ByTime, "retention.bytes", cfg.RetentionBytes, "retention.ms", cfg.RetentionMs)
}

// Reclaimed counts the local segments of before that after no longer has
// (a log deletes from its start only) in the metrics of topic and tier,
// and returns their number and bytes.
func (w *RetentionWorker) Reclaimed(topic, tier string, before, after []partlog.SegmentInfo) (int, int64) {
	n, bytes := Deleted(before, after)
	w.Count(topic, tier, n, bytes)
	return n, bytes
}

// Deleted counts the segments of before, and their bytes, that after no
// longer has: a log deletes from its start only.
func Deleted(before, after []partlog.SegmentInfo) (segments int, bytes int64) {
	if len(after) == 0 {
		return 0, 0 // a log always has a segment: closed meanwhile
	}
	for _, s := range before {
		if s.BaseOffset >= after[0].BaseOffset {
			break
		}
		segments++
		bytes += s.Size
	}
	return segments, bytes
}

// Count adds deleted segments to the metrics.
func (w *RetentionWorker) Count(topic, tier string, segments int, bytes int64) {
	if segments == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.labelled[topic] = true
	w.deletedSegments.WithLabelValues(topic, tier).Add(float64(segments))
	w.deletedBytes.WithLabelValues(topic, tier).Add(float64(bytes))
}

// label creates a hosted topic's series at zero, so that dashboards show
// zeros rather than gaps before its first deletion.
func (w *RetentionWorker) label(topic string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.labelled[topic] {
		return
	}
	w.labelled[topic] = true
	for _, tier := range []string{TierLocal, TierRemote} {
		w.deletedSegments.WithLabelValues(topic, tier)
		w.deletedBytes.WithLabelValues(topic, tier)
	}
}

// forgetAllBut removes the series of topics the broker no longer hosts.
func (w *RetentionWorker) forgetAllBut(hosted map[string]bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for topic := range w.labelled {
		if hosted[topic] {
			continue
		}
		delete(w.labelled, topic)
		for _, tier := range []string{TierLocal, TierRemote} {
			w.deletedSegments.DeleteLabelValues(topic, tier)
			w.deletedBytes.DeleteLabelValues(topic, tier)
		}
	}
}

// LocalSegments describes a local log's segments for the retention policy.
func LocalSegments(segs []partlog.SegmentInfo) []Segment {
	out := make([]Segment, len(segs))
	for i, s := range segs {
		out[i] = Segment{BaseOffset: s.BaseOffset, NextOffset: s.NextOffset, Size: s.Size, MaxTimestamp: s.MaxTimestamp}
	}
	return out
}
