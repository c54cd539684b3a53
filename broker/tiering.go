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

	"github.com/strata-broker/strata/compaction"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/tiering"
	"github.com/strata-broker/strata/tiering/objstore"
	"github.com/strata-broker/strata/topicconfig"
)

// remoteState is what a partition knows of its records in the object
// store: the last manifest it read or wrote, and for which leader epoch.
type remoteState struct {
	// writeMu serialises the writers of the partition's manifests: this
	// broker's tiering round for it and DeleteRecords.
	writeMu sync.Mutex

	mu       sync.Mutex
	manifest *tiering.PartitionManifest // nil: not read yet
	epoch    int32                      // the leader epoch it was read or written in
	// failedAt is when reading the manifest last failed.
	failedAt time.Time
	// topicWritten is what the topic manifest last written by this
	// broker said (partition 0's leader writes it).
	topicWritten string
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
	if m == nil {
		p.remoteStart.Store(-1)
		p.remoteHasData.Store(false)
		return
	}
	// Data first: a reader that sees the new start sees whether it holds
	// segments.
	p.remoteHasData.Store(len(m.Segments) > 0)
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
		ReadAhead:  8,
		Workers:    8,
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
	p.remote.writeMu.Lock()
	defer p.remote.writeMu.Unlock()
	m, err := b.leaderManifest(ctx, p, l, epoch)
	if err != nil {
		b.tieringMetrics.errors.WithLabelValues("read_manifest").Inc()
		b.logger.Warn("tiering: cannot read the partition's manifest", "topic", p.Topic, "partition", p.Index, "err", err)
		return
	}
	if p.Index == 0 {
		b.writeTopicManifest(ctx, p)
	}
	m = b.upload(ctx, p, l, m, epoch, labels)
	m = b.compactRemote(ctx, p, l, m, epoch, cfg)
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
	// Segments are uploaded one by one and named in a manifest every few
	// of them: a manifest lists every segment, so writing one per segment
	// would cost a partition with a long backlog quadratic bytes.
	var uploaded []tiering.SegmentMeta
	var uploadedBytes int64
	started := time.Now()
	flush := func() {
		if len(uploaded) == 0 || !b.stillLeader(p, epoch) {
			return
		}
		next := nextManifest(m, epoch)
		next.Segments = append(next.Segments, uploaded...)
		if _, err := tiering.WriteManifest(ctx, b.cfg.ObjectStore, l, &next); err != nil {
			b.tieringMetrics.errors.WithLabelValues("write_manifest").Inc()
			b.logger.Warn("tiering: manifest write failed; retrying next round", "topic", p.Topic, "partition", p.Index, "err", err)
			uploaded, uploadedBytes = nil, 0 // uploaded again next round; these become garbage
			return
		}
		m = &next
		p.setRemoteManifest(m, epoch)
		backlog -= uploadedBytes
		b.tieringMetrics.uploadSeconds.Observe(time.Since(started).Seconds() / float64(len(uploaded)))
		b.tieringMetrics.uploadBytes.Add(float64(uploadedBytes))
		uploaded, uploadedBytes, started = nil, 0, time.Now()
	}
upload:
	for _, s := range pending {
		if ctx.Err() != nil || !b.stillLeader(p, epoch) {
			break upload
		}
		seg, err := p.log.OpenSealed(s.BaseOffset)
		if errors.Is(err, partlog.ErrNotSealed) || errors.Is(err, os.ErrNotExist) {
			break upload // not durable yet, or deleted meanwhile: next round
		}
		if err != nil {
			b.tieringMetrics.errors.WithLabelValues("open_segment").Inc()
			b.logger.Warn("tiering: cannot open segment", "topic", p.Topic, "partition", p.Index, "base", s.BaseOffset, "err", err)
			break upload
		}
		meta, err := tiering.UploadSegment(ctx, b.cfg.ObjectStore, l, p.Index, seg, epoch)
		seg.Close()
		if err != nil {
			b.tieringMetrics.errors.WithLabelValues("upload").Inc()
			b.logger.Warn("tiering: upload failed; retrying next round", "topic", p.Topic, "partition", p.Index, "base", s.BaseOffset, "err", err)
			break upload
		}
		uploaded = append(uploaded, meta)
		uploadedBytes += s.Size
		if len(uploaded) == segmentsPerManifest {
			flush()
		}
	}
	flush()
	return m
}

// segmentsPerManifest is how many uploaded segments one manifest write
// names at most.
const segmentsPerManifest = 8

// localRetention deletes local segments that are safe in the bucket (named
// by the manifest) and past local.retention.ms or local.retention.bytes
// (see compaction.TieredLocalRetention).
func (b *Broker) localRetention(p *Partition, m *tiering.PartitionManifest, cfg topicconfig.Topic) {
	before := p.log.Segments()
	d := compaction.TieredLocalRetention(cfg, localSegments(before), p.HighWatermark(), m.EndOffset(), b.now())
	if d.None() {
		return
	}
	if _, err := p.log.DeleteSegmentsBelow(d.StartOffset); err != nil {
		b.tieringMetrics.errors.WithLabelValues("local_retention").Inc()
		b.logger.Warn("tiering: local retention failed", "topic", p.Topic, "partition", p.Index, "err", err)
		return
	}
	b.retention.reclaimed(p.Topic, tierLocal, before, p.log.Segments())
}

// remoteRetention drops remote segments past retention.ms or beyond
// retention.bytes (counted over the whole log; see
// compaction.RemoteRetention): the manifest that leaves them out is written
// first, then their objects are deleted. Objects a crash left between the
// two are found by collectGarbage.
func (b *Broker) remoteRetention(ctx context.Context, p *Partition, l tiering.Layout, m *tiering.PartitionManifest, epoch int32, cfg topicconfig.Topic) *tiering.PartitionManifest {
	if len(m.Segments) == 0 {
		return m
	}
	localOnly := compaction.LocalOnlyBytes(localSegments(p.log.Segments()), m.EndOffset())
	d := compaction.RemoteRetention(cfg, remoteSegments(m.Segments), localOnly, p.HighWatermark(), b.now())
	if d.None() || !b.stillLeader(p, epoch) {
		return m
	}
	next := nextManifest(m, epoch)
	dropped := next.Segments[:d.Segments]
	next.Segments = slices.Clone(next.Segments[d.Segments:])
	next.LogStartOffset = d.StartOffset
	if _, err := tiering.WriteManifest(ctx, b.cfg.ObjectStore, l, &next); err != nil {
		b.tieringMetrics.errors.WithLabelValues("write_manifest").Inc()
		return m
	}
	p.setRemoteManifest(&next, epoch)
	// The whole log's start moved: nothing below it may stay readable
	// locally either.
	if p.log.LogStartOffset() < next.LogStartOffset {
		before := p.log.Segments()
		if _, err := p.log.DeleteSegmentsBelow(min(next.LogStartOffset, p.log.LogEndOffset())); err != nil {
			b.logger.Warn("tiering: cannot advance the local log start", "topic", p.Topic, "partition", p.Index, "err", err)
		} else {
			b.retention.reclaimed(p.Topic, tierLocal, before, p.log.Segments())
		}
	}
	var keys []string
	for _, s := range dropped {
		keys = append(keys, s.Key, s.IndexKey, s.TimeIndexKey)
	}
	if err := b.cfg.ObjectStore.Delete(ctx, keys...); err != nil {
		// collectGarbage deletes them later.
		b.tieringMetrics.errors.WithLabelValues("delete_segments").Inc()
	} else {
		b.retention.count(p.Topic, tierRemote, d.Segments, d.Bytes)
	}
	b.logger.Info("tiering: remote segments deleted by retention", "topic", p.Topic, "partition", p.Index,
		"segments", d.Segments, "bytes", d.Bytes, "log_start_offset", next.LogStartOffset, "by_size", d.BySize, "by_time", d.ByTime)
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
// it can be restored from there: by partition 0's leader, before its first
// upload and whenever the definition changes.
func (b *Broker) writeTopicManifest(ctx context.Context, p *Partition) {
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
	fp := fmt.Sprint(tm.Partitions, tm.ReplicationFactor, tm.Configs) // maps print sorted
	p.remote.mu.Lock()
	same := p.remote.topicWritten == fp
	p.remote.mu.Unlock()
	if same {
		return
	}
	if err := tiering.WriteTopicManifest(ctx, b.cfg.ObjectStore, tm); err != nil {
		b.tieringMetrics.errors.WithLabelValues("write_topic_manifest").Inc()
		return
	}
	p.remote.mu.Lock()
	p.remote.topicWritten = fp
	p.remote.mu.Unlock()
}

// remoteRead serves a fetch below the local log start from the bucket.
// With a pool, the bytes are gathered in one of its buffers, returned as
// the second result when the data is a slice of it (the caller gives it
// back once the data is sent), or given back at once.
func (b *Broker) remoteRead(ctx context.Context, p *Partition, offset int64, maxBytes int, pool BufferPool) (tiering.ReadResult, *[]byte, bool, error) {
	var res tiering.ReadResult
	var buf *[]byte
	remote, err := b.withRemoteSegment(p, offset, func(segs []tiering.SegmentMeta, i int) error {
		var window []byte
		if pool != nil {
			buf = pool.Get(maxBytes)
			window = *buf
		}
		var err error
		res, err = b.remote.Read(ctx, segs, i, offset, maxBytes, window)
		if buf != nil && (err != nil || !res.InBuf) {
			// The data is not in buf (it lacked room, or nothing was read).
			pool.Put(buf)
			buf = nil
		}
		return err
	})
	return res, buf, remote, err
}

// withRemoteSegment calls read with the partition's remote segments and
// the one holding offset, and reports whether the bucket holds offset (if
// not, read is not called: the local log has it, or nothing does).
//
// A read races with compaction and retention, which write a new manifest
// and then delete the objects the old one named: an object gone under a
// manifest that has since been replaced is read again through the new one.
func (b *Broker) withRemoteSegment(p *Partition, offset int64, read func(segs []tiering.SegmentMeta, i int) error) (bool, error) {
	if b.remote == nil {
		return false, nil
	}
	m, _ := p.remoteManifest()
	for attempt := 0; ; attempt++ {
		if m == nil {
			return false, nil
		}
		if offset < m.LogStartOffset {
			return true, &partlog.OffsetOutOfRangeError{Offset: offset, Start: m.LogStartOffset, End: p.HighWatermark()}
		}
		i := m.SegmentFor(offset)
		if i < 0 || offset >= m.EndOffset() {
			return false, nil
		}
		err := read(m.Segments, i)
		if errors.Is(err, objstore.ErrNotFound) && attempt < 3 {
			if now, _ := p.remoteManifest(); now != m {
				m = now
				continue
			}
		}
		return true, err
	}
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

// startAtRemoteEnd starts an empty local log of a tiered partition where
// the object store's copy ends: the partition of a topic restored from the
// bucket, or a replica whose disk was replaced. Its history is served from
// the bucket; a log starting at 0 instead would hand out offsets again.
func (b *Broker) startAtRemoteEnd(t metastore.Topic, p int32, l *partlog.Log) error {
	if b.cfg.ObjectStore == nil || l.LogEndOffset() != 0 {
		return nil
	}
	cfg, _, err := topicconfig.Resolve(t.Configs, b.brokerDefaults)
	if err != nil || !cfg.RemoteStorageEnable {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, _, found, err := tiering.LatestManifest(ctx, b.cfg.ObjectStore, tiering.Layout{Topic: t.Name, TopicID: t.ID}, p)
	if err != nil {
		return fmt.Errorf("partition %s-%d: an empty log of a tiered topic needs the object store's manifest: %w", t.Name, p, err)
	}
	if !found || m.EndOffset() == 0 {
		return nil
	}
	b.logger.Info("tiering: empty local log starts where the object store's copy ends", "topic", t.Name, "partition", p, "offset", m.EndOffset())
	return l.TruncateFullyAndStartAt(m.EndOffset())
}

// RestoreTopic recreates a topic from the object store: its newest
// incarnation there, with the same id, partition count, replication factor
// and configs. Each partition's log starts where its copy in the bucket
// ends, with a leader epoch above the ones its remote segments were written
// in, and its history is read from the bucket. An incarnation whose
// deletion is pending (its objects are being deleted) is refused.
func (b *Broker) RestoreTopic(ctx context.Context, name string) (TopicDescription, error) {
	if b.cfg.ObjectStore == nil {
		return TopicDescription{}, fmt.Errorf("%w: restoring a topic needs the brokers to run with an object store (--object-store)", ErrInvalidRequest)
	}
	tm, err := tiering.FindTopic(ctx, b.cfg.ObjectStore, name)
	if errors.Is(err, tiering.ErrNoTopic) {
		return TopicDescription{}, fmt.Errorf("topic %q: %w: %v", name, ErrUnknownTopicOrPartition, err)
	}
	if err != nil {
		return TopicDescription{}, fmt.Errorf("restore topic %q: %w", name, err)
	}
	if err := b.checkNotPendingDeletion(ctx, tm.Name, tm.ID); err != nil {
		return TopicDescription{}, err
	}
	l := tiering.Layout{Topic: tm.Name, TopicID: tm.ID}
	epochs := make([]int32, tm.Partitions)
	for p := range tm.Partitions {
		m, _, found, err := tiering.LatestManifest(ctx, b.cfg.ObjectStore, l, p)
		if err != nil {
			return TopicDescription{}, fmt.Errorf("restore topic %q: %w", name, err)
		}
		if found {
			top := m.LeaderEpoch
			for _, s := range m.Segments {
				top = max(top, s.LeaderEpoch)
				for _, e := range s.Epochs {
					top = max(top, e.Epoch)
				}
			}
			epochs[p] = top + 1
		}
	}
	configs := maps.Clone(tm.Configs)
	if configs == nil {
		configs = map[string]string{}
	}
	configs["remote.storage.enable"] = "true"
	desc, err := b.CreateTopic(ctx, TopicSpec{
		Name: tm.Name, Partitions: tm.Partitions, ReplicationFactor: tm.ReplicationFactor,
		Configs: configs, ID: tm.ID, LeaderEpochs: epochs,
	})
	if err != nil {
		return TopicDescription{}, err
	}
	b.logger.Info("topic restored from the object store", "topic", tm.Name, "topic_id", tm.ID, "partitions", tm.Partitions)
	return desc, nil
}

// remoteOffsetForTimestamp finds the first offset below the local log start
// whose record timestamp is at least ts: in the first remote segment whose
// largest timestamp reaches ts, from the batch its time index points to,
// decoding records. found is false when no remote record qualifies.
func (b *Broker) remoteOffsetForTimestamp(ctx context.Context, p *Partition, ts int64) (offset, timestamp int64, found bool, err error) {
	if b.remote == nil {
		return 0, 0, false, nil
	}
	m, _ := p.remoteManifest()
	if m == nil {
		return 0, 0, false, nil
	}
	localStart := p.log.LogStartOffset()
	for i, seg := range m.Segments {
		if seg.BaseOffset >= localStart {
			break // the local log has it
		}
		if seg.MaxTimestamp < ts {
			continue
		}
		start, err := b.remote.TimeIndexStart(ctx, seg, ts)
		if err != nil {
			return 0, 0, false, err
		}
		for start < min(seg.NextOffset, localStart) {
			res, err := b.remote.Read(ctx, m.Segments, i, start, 1<<20, nil)
			if err != nil {
				return 0, 0, false, err
			}
			if len(res.Data) == 0 {
				break
			}
			it := record.NewBatches(res.Data)
			for it.Next() {
				err := record.ForEach(it.Bytes(), func(r *record.Record) error {
					if !found && r.Offset >= start && r.Timestamp >= ts {
						offset, timestamp, found = r.Offset, r.Timestamp, true
					}
					return nil
				})
				if err != nil {
					return 0, 0, false, fmt.Errorf("%w: %v", tiering.ErrCorrupt, err)
				}
				if found {
					return offset, timestamp, true, nil
				}
			}
			start = res.NextOffset
		}
	}
	return 0, 0, false, nil
}
