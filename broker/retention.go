package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-broker/strata/compaction"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/tiering"
)

// defaultRetentionCheckIntervalMs is log.retention.check.interval.ms when
// the broker settings do not give it. Kafka's default is 300000 (five
// minutes); ours is 30 s because an operator who lowers retention.ms must
// see it take effect within a minute.
const defaultRetentionCheckIntervalMs = 30_000

// Tiers, as the retention metrics label them.
const (
	tierLocal  = "local"
	tierRemote = "remote"
)

// retentionWorker applies time and size retention (retention.ms,
// retention.bytes) to the partitions this broker leads of topics without
// remote storage, every log.retention.check.interval.ms. The policy is
// package compaction's; followers follow the leader's log start (see
// fetcher.followLogStart), so the leader's decision reaches the whole ISR.
// Tiered topics are left to the tiering task (tiering.go), which applies
// the same policy to both tiers and reports to the same metrics.
type retentionWorker struct {
	b        *Broker
	interval time.Duration

	deletedBytes    *prometheus.CounterVec
	deletedSegments *prometheus.CounterVec
	lastRun         prometheus.Gauge

	// mu guards labelled: the topics with metric series, so that those of
	// deleted topics are removed.
	mu       sync.Mutex
	labelled map[string]bool
}

func newRetentionWorker(b *Broker) (*retentionWorker, error) {
	interval, err := settingMs(b.cfg.Settings, "log.retention.check.interval.ms", defaultRetentionCheckIntervalMs)
	if err != nil {
		return nil, err
	}
	w := &retentionWorker{
		b:        b,
		interval: interval,
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
	if reg := b.cfg.Registerer; reg != nil {
		reg.MustRegister(w.deletedBytes, w.deletedSegments, w.lastRun)
	}
	return w, nil
}

// run applies retention every interval until ctx ends.
func (w *retentionWorker) run(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.round(ctx)
	}
}

// round applies retention once to every partition this broker leads.
func (w *retentionWorker) round(ctx context.Context) {
	hosted := map[string]bool{}
	for _, p := range w.b.allPartitions() {
		if ctx.Err() != nil {
			return
		}
		if !hosted[p.Topic] {
			hosted[p.Topic] = true
			w.label(p.Topic)
		}
		w.partition(p)
	}
	w.forgetAllBut(hosted)
	w.lastRun.Set(float64(w.b.now().UnixMilli()) / 1000)
}

// partition applies retention to p if this broker leads it and its topic
// keeps its log on local disk only.
func (w *retentionWorker) partition(p *Partition) {
	b := w.b
	cfg, err := b.TopicConfig(p.Topic)
	if err != nil || cfg.RemoteStorageEnable {
		return
	}
	st, role := p.State()
	if role != roleLeader || !b.leaseOK() {
		return
	}
	before := p.log.Segments()
	d := compaction.LocalRetention(cfg, localSegments(before), p.HighWatermark(), b.now())
	if d.None() {
		return
	}
	if err := p.retainBelow(d.StartOffset, st.LeaderEpoch, b.leaseOK, b.registered()); err != nil {
		if !errors.Is(err, ErrNotLeader) && !errors.Is(err, partlog.ErrLogClosed) {
			b.logger.Warn("retention: cannot delete segments", "topic", p.Topic, "partition", p.Index, "err", err)
		}
		return
	}
	n, bytes := w.reclaimed(p.Topic, tierLocal, before, p.log.Segments())
	b.logger.Info("retention: segments deleted", "topic", p.Topic, "partition", p.Index,
		"segments", n, "bytes", bytes, "log_start_offset", p.log.LogStartOffset(),
		"by_size", d.BySize, "by_time", d.ByTime, "retention.bytes", cfg.RetentionBytes, "retention.ms", cfg.RetentionMs)
}

// retainBelow deletes the segments below offset as the leader of epoch.
// The role is held for the whole call, as for an append, so that a broker
// deposed meanwhile does not move its log start after its successor took
// over.
func (p *Partition) retainBelow(offset int64, epoch int32, leaseOK func() bool, registered int64) error {
	p.roleMu.RLock()
	defer p.roleMu.RUnlock()
	p.mu.Lock()
	err := p.leaderErrLocked()
	if err == nil && (p.leaderEpoch != epoch || p.predatesLocked(registered)) {
		err = fmt.Errorf("%s-%d: leadership changed since epoch %d: %w", p.Topic, p.Index, epoch, ErrNotLeader)
	}
	p.mu.Unlock()
	if err != nil {
		return err
	}
	if !leaseOK() {
		return fmt.Errorf("%s-%d: cannot confirm leadership: broker lease not renewed: %w", p.Topic, p.Index, ErrNotLeader)
	}
	if hw := p.HighWatermark(); offset > hw {
		// The policy never goes past the high watermark, which does not go
		// back while this broker leads; checked so that it never can.
		return fmt.Errorf("%s-%d: retention would delete up to %d, beyond the high watermark %d", p.Topic, p.Index, offset, hw)
	}
	if _, err := p.log.DeleteSegmentsBelow(offset); err != nil {
		return fmt.Errorf("%s-%d: delete segments below %d: %w", p.Topic, p.Index, offset, err)
	}
	// Long polls below the new start end now with OffsetOutOfRange.
	p.wake()
	return nil
}

// reclaimed counts the local segments of before that after no longer has
// (the log deletes from its start only) in the metrics of topic and tier,
// and returns their number and bytes.
func (w *retentionWorker) reclaimed(topic, tier string, before, after []partlog.SegmentInfo) (int, int64) {
	if len(after) == 0 {
		return 0, 0 // a log always has a segment: closed meanwhile
	}
	n, bytes := 0, int64(0)
	for _, s := range before {
		if s.BaseOffset >= after[0].BaseOffset {
			break
		}
		n++
		bytes += s.Size
	}
	w.count(topic, tier, n, bytes)
	return n, bytes
}

// count adds deleted segments to the metrics.
func (w *retentionWorker) count(topic, tier string, segments int, bytes int64) {
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
func (w *retentionWorker) label(topic string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.labelled[topic] {
		return
	}
	w.labelled[topic] = true
	for _, tier := range []string{tierLocal, tierRemote} {
		w.deletedSegments.WithLabelValues(topic, tier)
		w.deletedBytes.WithLabelValues(topic, tier)
	}
}

// forgetAllBut removes the series of topics this broker no longer hosts.
func (w *retentionWorker) forgetAllBut(hosted map[string]bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for topic := range w.labelled {
		if hosted[topic] {
			continue
		}
		delete(w.labelled, topic)
		for _, tier := range []string{tierLocal, tierRemote} {
			w.deletedSegments.DeleteLabelValues(topic, tier)
			w.deletedBytes.DeleteLabelValues(topic, tier)
		}
	}
}

// localSegments describes a local log's segments for the retention policy.
func localSegments(segs []partlog.SegmentInfo) []compaction.Segment {
	out := make([]compaction.Segment, len(segs))
	for i, s := range segs {
		out[i] = compaction.Segment{BaseOffset: s.BaseOffset, NextOffset: s.NextOffset, Size: s.Size, MaxTimestamp: s.MaxTimestamp}
	}
	return out
}

// remoteSegments describes a manifest's segments for the retention policy.
func remoteSegments(segs []tiering.SegmentMeta) []compaction.Segment {
	out := make([]compaction.Segment, len(segs))
	for i, s := range segs {
		out[i] = compaction.Segment{BaseOffset: s.BaseOffset, NextOffset: s.NextOffset, Size: s.Size, MaxTimestamp: s.MaxTimestamp}
	}
	return out
}
