package broker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-broker/strata/broker/config"
	partlog "github.com/strata-broker/strata/broker/log"
	"github.com/strata-broker/strata/tiering"
)

// remoteState is what a partition knows of its records in the object
// store: the last manifest it read or wrote, and for which leader epoch.
type remoteState struct {
	mu       sync.Mutex
	manifest *tiering.PartitionManifest // nil: not read yet
	epoch    int32                      // the leader epoch it was read or written in
	// failedAt is when reading the manifest last failed.
	failedAt time.Time
}

// manifestRetry spaces out manifest reads for fetches while they fail.
const manifestRetry = 5 * time.Second

func (p *Partition) remoteManifest() (*tiering.PartitionManifest, int32) {
	p.remote.mu.Lock()
	defer p.remote.mu.Unlock()
	return p.remote.manifest, p.remote.epoch
}

func (p *Partition) setRemoteManifest(m *tiering.PartitionManifest, epoch int32) {
	p.remote.mu.Lock()
	p.remote.manifest, p.remote.epoch = m, epoch
	p.remote.mu.Unlock()
	if m == nil || len(m.Segments) == 0 {
		p.remoteStart.Store(-1)
		return
	}
	p.remoteStart.Store(m.LogStartOffset)
}

// tieringMetrics are the uploader's.
type tieringMetrics struct {
	backlog       *prometheus.GaugeVec
	uploadSeconds prometheus.Histogram
	uploadBytes   prometheus.Counter
	errors        *prometheus.CounterVec
}

func newTieringMetrics(reg prometheus.Registerer) *tieringMetrics {
	m := &tieringMetrics{
		backlog: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_tiering_upload_backlog_bytes",
			Help: "Bytes of sealed segments of tiered partitions this broker leads that are not in the object store yet.",
		}, []string{"topic", "partition"}),
		uploadSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "strata_tiering_upload_seconds",
			Help:    "Time to upload one segment with its indexes and write the manifest naming it.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}),
		uploadBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_tiering_uploaded_bytes_total", Help: "Segment bytes uploaded to the object store.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_tiering_errors_total", Help: "Failed tiering steps, by step.",
		}, []string{"step"}),
	}
	if reg != nil {
		reg.MustRegister(m.backlog, m.uploadSeconds, m.uploadBytes, m.errors)
	}
	return m
}

// defaultTieringIntervalMs is Kafka's remote.log.manager.task.interval.ms.
const defaultTieringIntervalMs = 30_000

// garbageGrace spares recent unreferenced objects from garbage collection:
// they may be an upload whose manifest is being written.
const garbageGrace = 10 * time.Minute

// startTiering sets up the remote reader when the broker has an object
// store.
func (b *Broker) startTiering() error {
	if b.cfg.ObjectStore == nil {
		return nil
	}
	interval, err := settingMs(b.cfg.Settings, "remote.log.manager.task.interval.ms", defaultTieringIntervalMs)
	if err != nil {
		return err
	}
	b.tieringInterval = interval
	cacheBytes := b.cfg.TieringCacheBytes
	if cacheBytes <= 0 {
		cacheBytes = 1 << 30
	}
	b.remote, err = tiering.NewReader(b.cfg.ObjectStore, tiering.ReaderConfig{
		CacheDir:   filepath.Join(b.cfg.DataDir, "tiering-cache"),
		CacheBytes: cacheBytes,
		ReadAhead:  4,
		Workers:    4,
		Registerer: b.cfg.Registerer,
		Logger:     b.logger.With("component", "tiering"),
	})
	if err != nil {
		return fmt.Errorf("broker: tiering: %w", err)
	}
	b.tieringMetrics = newTieringMetrics(b.cfg.Registerer)
	return nil
}

// tieringLoop uploads and applies retention for the tiered partitions this
// broker leads, every remote.log.manager.task.interval.ms.
func (b *Broker) tieringLoop(ctx context.Context) {
	if b.remote == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.remote.Run(ctx)
	}()
	defer func() { <-done }() // ctx has ended: the read-ahead stops
	t := time.NewTicker(b.tieringInterval)
	defer t.Stop()
	for round := 0; ; round++ {
		for _, p := range b.allPartitions() {
			if ctx.Err() != nil {
				return
			}
			b.tierPartition(ctx, p, round)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (b *Broker) tierPartition(ctx context.Context, p *Partition, round int) {
	cfg, err := b.TopicConfig(p.Topic)
	if err != nil || !cfg.RemoteStorageEnable {
		return
	}
	st, role := p.State()
	labels := []string{p.Topic, fmt.Sprint(p.Index)}
	if role != roleLeader || !b.leaseOK() {
		b.tieringMetrics.backlog.DeleteLabelValues(labels...)
		return
	}
	epoch := st.LeaderEpoch
	l := tiering.Layout{Topic: p.Topic, TopicID: p.topicID}
	m, err := b.leaderManifest(ctx, p, l, epoch)
	if err != nil {
		b.tieringMetrics.errors.WithLabelValues("read_manifest").Inc()
		b.logger.Warn("tiering: cannot read the partition's manifest", "topic", p.Topic, "partition", p.Index, "err", err)
		return
	}
	if p.Index == 0 && round%20 == 0 {
		b.writeTopicManifest(ctx, p, cfg)
	}
	m = b.upload(ctx, p, l, m, epoch, labels)
	m = b.remoteRetention(ctx, p, l, m, epoch, cfg)
	b.localRetention(p, m, cfg)
	if round%10 == 9 {
		if err := tiering.PruneManifests(ctx, b.cfg.ObjectStore, l, p.Index); err != nil {
			b.tieringMetrics.errors.WithLabelValues("prune_manifests").Inc()
		}
	}
	if round%60 == 59 {
		b.collectGarbage(ctx, p, l, m)
	}
}

// leaderManifest returns the manifest to build on in epoch: read from the
// bucket when this broker has not read or written one in this epoch.
func (b *Broker) leaderManifest(ctx context.Context, p *Partition, l tiering.Layout, epoch int32) (*tiering.PartitionManifest, error) {
	if m, e := p.remoteManifest(); m != nil && e == epoch {
		return m, nil
	}
	m, _, found, err := tiering.LatestManifest(ctx, b.cfg.ObjectStore, l, p.Index)
	if err != nil {
		return nil, err
	}
	if !found {
		m = tiering.PartitionManifest{Topic: p.Topic, TopicID: p.topicID, Partition: p.Index, Seq: -1,
			LeaderEpoch: epoch, LogStartOffset: p.log.LogStartOffset()}
	}
	if m.LeaderEpoch > epoch {
		return nil, fmt.Errorf("the bucket has a manifest of leader epoch %d, newer than this leader's %d", m.LeaderEpoch, epoch)
	}
	p.setRemoteManifest(&m, epoch)
	return &m, nil
}

// next returns a copy of m to write as the epoch's next manifest.
func nextManifest(m *tiering.PartitionManifest, epoch int32) tiering.PartitionManifest {
	n := *m
	n.Segments = slices.Clone(m.Segments)
	if n.LeaderEpoch == epoch {
		n.Seq++
	} else {
		n.LeaderEpoch, n.Seq = epoch, 0
	}
	return n
}

// stillLeader reports whether this broker still leads p in epoch: a
// manifest is written only then (a deposed leader's would be ignored
// anyway, being of an older epoch, but need not be written).
func (b *Broker) stillLeader(p *Partition, epoch int32) bool {
	st, role := p.State()
	return role == roleLeader && st.LeaderEpoch == epoch && b.leaseOK()
}

// upload copies the sealed segments below the high watermark that the
// manifest does not have yet, one manifest per segment.
func (b *Broker) upload(ctx context.Context, p *Partition, l tiering.Layout, m *tiering.PartitionManifest, epoch int32, labels []string) *tiering.PartitionManifest {
	hw := p.HighWatermark()
	var pending []partlog.SegmentInfo
	backlog := int64(0)
	for _, s := range p.log.Segments() {
		if !s.Sealed || s.NextOffset <= m.EndOffset() {
			continue
		}
		backlog += s.Size
		if s.NextOffset <= hw {
			pending = append(pending, s)
		}
	}
	defer func() { b.tieringMetrics.backlog.WithLabelValues(labels...).Set(float64(backlog)) }()
	for _, s := range pending {
		if ctx.Err() != nil || !b.stillLeader(p, epoch) {
			return m
		}
		start := time.Now()
		seg, err := p.log.OpenSealed(s.BaseOffset)
		if errors.Is(err, partlog.ErrNotSealed) || errors.Is(err, os.ErrNotExist) {
			return m // not durable yet, or deleted meanwhile: next round
		}
		if err != nil {
			b.tieringMetrics.errors.WithLabelValues("open_segment").Inc()
			b.logger.Warn("tiering: cannot open segment", "topic", p.Topic, "partition", p.Index, "base", s.BaseOffset, "err", err)
			return m
		}
		meta, err := tiering.UploadSegment(ctx, b.cfg.ObjectStore, l, p.Index, seg, epoch)
		seg.Close()
		if err != nil {
			b.tieringMetrics.errors.WithLabelValues("upload").Inc()
			b.logger.Warn("tiering: upload failed; retrying next round", "topic", p.Topic, "partition", p.Index, "base", s.BaseOffset, "err", err)
			return m
		}
		next := nextManifest(m, epoch)
		next.Segments = append(next.Segments, meta)
		if !b.stillLeader(p, epoch) {
			return m
		}
		if _, err := tiering.WriteManifest(ctx, b.cfg.ObjectStore, l, &next); err != nil {
			b.tieringMetrics.errors.WithLabelValues("write_manifest").Inc()
			b.logger.Warn("tiering: manifest write failed; retrying next round", "topic", p.Topic, "partition", p.Index, "err", err)
			return m
		}
		m = &next
		p.setRemoteManifest(m, epoch)
		backlog -= s.Size
		b.tieringMetrics.uploadSeconds.Observe(time.Since(start).Seconds())
		b.tieringMetrics.uploadBytes.Add(float64(s.Size))
		b.logger.Debug("tiering: segment uploaded", "topic", p.Topic, "partition", p.Index, "base", meta.BaseOffset, "next", meta.NextOffset, "bytes", meta.Size)
	}
	return m
}

// localRetention deletes local segments that are safe in the bucket (named
// by the manifest) and past local.retention.ms or local.retention.bytes.
func (b *Broker) localRetention(p *Partition, m *tiering.PartitionManifest, cfg config.Topic) {
	remoteEnd := m.EndOffset()
	segs := p.log.Segments()
	if len(segs) < 2 {
		return
	}
	total := int64(0)
	for _, s := range segs {
		total += s.Size
	}
	limitBytes, limitMs := cfg.EffectiveLocalRetentionBytes(), cfg.EffectiveLocalRetentionMs()
	now := b.now().UnixMilli()
	keepFrom := int64(-1)
	for _, s := range segs[:len(segs)-1] { // never the active segment
		if s.NextOffset > remoteEnd {
			break // not safe in the bucket yet
		}
		tooBig := limitBytes >= 0 && total > limitBytes
		tooOld := limitMs >= 0 && s.MaxTimestamp >= 0 && now-s.MaxTimestamp > limitMs
		if !tooBig && !tooOld {
			break
		}
		total -= s.Size
		keepFrom = s.NextOffset
	}
	if keepFrom < 0 {
		return
	}
	if _, err := p.log.DeleteSegmentsBelow(keepFrom); err != nil {
		b.tieringMetrics.errors.WithLabelValues("local_retention").Inc()
		b.logger.Warn("tiering: local retention failed", "topic", p.Topic, "partition", p.Index, "err", err)
		return
	}
}

// remoteRetention drops remote segments past retention.ms or beyond
// retention.bytes (counted over the whole log): the manifest that leaves
// them out is written first, then their objects are deleted. Objects a
// crash left between the two are found by collectGarbage.
func (b *Broker) remoteRetention(ctx context.Context, p *Partition, l tiering.Layout, m *tiering.PartitionManifest, epoch int32, cfg config.Topic) *tiering.PartitionManifest {
	if !cfg.DeleteEnabled() || len(m.Segments) == 0 {
		return m
	}
	localAbove := int64(0)
	for _, s := range p.log.Segments() {
		if s.BaseOffset >= m.EndOffset() {
			localAbove += s.Size
		}
	}
	total := m.Bytes() + localAbove
	now := b.now().UnixMilli()
	drop := 0
	for _, s := range m.Segments {
		tooBig := cfg.RetentionBytes >= 0 && total > cfg.RetentionBytes
		tooOld := cfg.RetentionMs >= 0 && s.MaxTimestamp >= 0 && now-s.MaxTimestamp > cfg.RetentionMs
		if !tooBig && !tooOld {
			break
		}
		total -= s.Size
		drop++
	}
	if drop == 0 || !b.stillLeader(p, epoch) {
		return m
	}
	next := nextManifest(m, epoch)
	dropped := next.Segments[:drop]
	next.Segments = slices.Clone(next.Segments[drop:])
	next.LogStartOffset = dropped[len(dropped)-1].NextOffset
	if _, err := tiering.WriteManifest(ctx, b.cfg.ObjectStore, l, &next); err != nil {
		b.tieringMetrics.errors.WithLabelValues("write_manifest").Inc()
		return m
	}
	p.setRemoteManifest(&next, epoch)
	// The whole log's start moved: nothing below it may stay readable
	// locally either.
	if p.log.LogStartOffset() < next.LogStartOffset {
		if err := p.log.AdvanceLogStart(min(next.LogStartOffset, p.log.LogEndOffset())); err != nil {
			b.logger.Warn("tiering: cannot advance the local log start", "topic", p.Topic, "partition", p.Index, "err", err)
		}
	}
	var keys []string
	for _, s := range dropped {
		keys = append(keys, s.Key, s.IndexKey, s.TimeIndexKey)
	}
	if err := b.cfg.ObjectStore.Delete(ctx, keys...); err != nil {
		b.tieringMetrics.errors.WithLabelValues("delete_segments").Inc()
	}
	b.logger.Info("tiering: remote segments deleted by retention", "topic", p.Topic, "partition", p.Index,
		"segments", drop, "log_start_offset", next.LogStartOffset)
	return &next
}

// collectGarbage deletes segment objects no manifest names: uploads of a
// crashed or deposed leader, deletions a crash interrupted.
func (b *Broker) collectGarbage(ctx context.Context, p *Partition, l tiering.Layout, m *tiering.PartitionManifest) {
	keys, err := tiering.Garbage(ctx, b.cfg.ObjectStore, l, p.Index, m, b.now(), garbageGrace)
	if err != nil || len(keys) == 0 {
		return
	}
	if err := b.cfg.ObjectStore.Delete(ctx, keys...); err != nil {
		b.tieringMetrics.errors.WithLabelValues("collect_garbage").Inc()
		return
	}
	b.logger.Info("tiering: deleted objects no manifest names", "topic", p.Topic, "partition", p.Index, "objects", len(keys))
}

// writeTopicManifest records the topic's definition in the bucket, so that
// it can be restored from there.
func (b *Broker) writeTopicManifest(ctx context.Context, p *Partition, cfg config.Topic) {
	b.mu.RLock()
	t := b.topics[p.Topic]
	b.mu.RUnlock()
	if t == nil {
		return
	}
	tm := tiering.TopicManifest{
		Name: t.meta.Name, ID: t.meta.ID, Partitions: t.meta.Partitions,
		ReplicationFactor: t.meta.ReplicationFactor, Configs: maps.Clone(t.meta.Configs),
	}
	if err := tiering.WriteTopicManifest(ctx, b.cfg.ObjectStore, tm); err != nil {
		b.tieringMetrics.errors.WithLabelValues("write_topic_manifest").Inc()
	}
}

// remoteRead serves a fetch below the local log start from the bucket.
func (b *Broker) remoteRead(ctx context.Context, p *Partition, offset int64, maxBytes int) (tiering.ReadResult, bool, error) {
	if b.remote == nil {
		return tiering.ReadResult{}, false, nil
	}
	m, _ := p.remoteManifest()
	if m == nil {
		return tiering.ReadResult{}, false, nil
	}
	i := m.SegmentFor(offset)
	if i < 0 || offset >= m.EndOffset() {
		return tiering.ReadResult{}, false, nil
	}
	res, err := b.remote.Read(ctx, m.Segments, i, offset, maxBytes)
	return res, true, err
}

// ensureRemote reads a tiered partition's manifest if this broker has none
// yet (after a restart, or on becoming leader, before the tiering task's
// first round): until then its log start would be the local one, and a
// consumer asking for older offsets would be told they are gone.
func (b *Broker) ensureRemote(ctx context.Context, p *Partition) {
	if b.remote == nil {
		return
	}
	if m, _ := p.remoteManifest(); m != nil {
		return
	}
	cfg, err := b.TopicConfig(p.Topic)
	if err != nil || !cfg.RemoteStorageEnable {
		return
	}
	st, _ := p.State()
	l := tiering.Layout{Topic: p.Topic, TopicID: p.topicID}
	// While the store is down, fetches must not each wait for it.
	p.remote.mu.Lock()
	if time.Since(p.remote.failedAt) < manifestRetry {
		p.remote.mu.Unlock()
		return
	}
	p.remote.mu.Unlock()
	m, _, found, err := tiering.LatestManifest(ctx, b.cfg.ObjectStore, l, p.Index)
	if err != nil {
		p.remote.mu.Lock()
		p.remote.failedAt = time.Now()
		p.remote.mu.Unlock()
		b.logger.Warn("tiering: cannot read the partition's manifest", "topic", p.Topic, "partition", p.Index, "err", err)
		return
	}
	if !found {
		m = tiering.PartitionManifest{Topic: p.Topic, TopicID: p.topicID, Partition: p.Index, Seq: -1,
			LeaderEpoch: st.LeaderEpoch, LogStartOffset: p.log.LogStartOffset()}
	}
	// Recorded under no epoch (-1): the uploader reads the manifest again
	// before building on it in its own.
	p.setRemoteManifest(&m, -1)
}
