// Package rlm is the remote log manager: for the tiered partitions this
// broker leads, it copies sealed segments to the object store and drops
// the local copies once the bucket's manifest names them, expires remote
// segments by retention, compacts them, and collects the objects no
// manifest names; it serves reads below the local log from the bucket,
// and deletes the objects of deleted topics.
//
// As in Kafka's RemoteLogManager, each hosted partition has a copy task
// and an expiration task, each given only what it needs; the manager runs
// them every remote.log.manager.task.interval.ms while the broker leads
// the partition. The manager knows the broker only through the narrow
// interfaces below, so that it runs against fakes and a local-directory
// object store in tests.
package rlm

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/strata-broker/strata/compaction"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/tiering"
	"github.com/strata-broker/strata/topicconfig"
)

// TopicPartition names a partition of one incarnation of a topic.
type TopicPartition struct {
	Topic     string
	TopicID   string
	Partition int32
}

func (tp TopicPartition) layout() tiering.Layout {
	return tiering.Layout{Topic: tp.Topic, TopicID: tp.TopicID}
}

// Log is what the manager uses of a partition's local log; *partlog.Log
// has it.
type Log interface {
	LogStartOffset() int64
	LogEndOffset() int64
	Size() int64
	Segments() []partlog.SegmentInfo
	OpenSealed(base int64) (*partlog.SealedSegment, error)
	DeleteSegmentsBelow(offset int64) (int, error)
	// AbortedTransactions are the aborted transactions of the local
	// segments a read of [from, upTo) must report.
	AbortedTransactions(from, upTo int64) []partlog.AbortedTxn
	// OpenTransactions are the transactions open in the local log: a
	// remote read stops at one the bucket also has open.
	OpenTransactions() []partlog.OpenTxn
}

// Replica is what the manager needs to know of this broker's replica of a
// partition from the broker hosting it.
type Replica interface {
	// Leadership returns the leader epoch of the partition's state and
	// whether this broker leads it (whatever its lease: the manager checks
	// Config.LeaseOK itself where it writes).
	Leadership() (epoch int32, leader bool)
	HighWatermark() int64
	// LastStableOffset is the first offset of the earliest transaction
	// open or with its marker not yet below the high watermark, capped by
	// the high watermark: segments are uploaded only below it.
	LastStableOffset() int64
	// Config is the topic's effective config; an error when the topic is
	// not known any more.
	Config() (topicconfig.Topic, error)
	// TopicManifest is the topic's definition as the bucket records it;
	// false when the topic is not known any more.
	TopicManifest() (tiering.TopicManifest, bool)
}

// DeletedTopics is the metastore's record of deleted topic incarnations
// whose objects are still to be deleted.
type DeletedTopics interface {
	DeletedTopics(ctx context.Context) ([]metastore.DeletedTopic, error)
	DeletedTopic(ctx context.Context, id string) (metastore.DeletedTopic, bool, error)
	FinishTopicDeletion(ctx context.Context, d metastore.DeletedTopic) error
}

// Controllers tells which broker is the cluster's controller.
type Controllers interface {
	// Controller returns the elected controller's id, or -1 if none is.
	Controller(ctx context.Context) (int32, error)
}

// Config configures a Manager.
type Config struct {
	// NodeID is this broker's id.
	NodeID int32
	// Store keeps the segments of tiered topics. Nil: the broker has no
	// object store; the manager then only clears the records of deleted
	// topics (there is no bucket to clean).
	Store tiering.Store
	// DataDir holds the remote read cache and remote compaction's scratch
	// files.
	DataDir string
	// CacheBytes bounds the remote read cache on disk; zero: 1 GiB.
	CacheBytes int64
	// Interval is remote.log.manager.task.interval.ms; zero: 30 s.
	Interval time.Duration
	// LeaseOK reports whether this broker may act as a leader now; nil:
	// always.
	LeaseOK func() bool
	// DeletedTopics and Controllers are the metastore; the controller (any
	// broker while none is elected) deletes deleted topics' objects. A nil
	// DeletedTopics disables that task; a nil Controllers makes this broker
	// always act.
	DeletedTopics DeletedTopics
	Controllers   Controllers
	// CompactionMapBytes sizes the offset map of remote compaction
	// (log.cleaner.dedupe.buffer.size; zero: 128 MiB), and
	// CompactionLimiter, shared with the local cleaner, bounds its I/O
	// (nil: unlimited).
	CompactionMapBytes int
	CompactionLimiter  *rate.Limiter
	// RetentionDeleted counts the segments retention deleted in tier
	// ("local" or "remote"), for the broker's retention metrics; nil: not
	// counted.
	RetentionDeleted func(topic, tier string, segments int, bytes int64)
	// Decompress runs fn, which decompresses stored batches for a request
	// (a lookup by timestamp), within the broker's bound on concurrent
	// decompression; nil: fn runs at once.
	Decompress func(ctx context.Context, fn func() error) error
	// Now is the clock; nil: time.Now.
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Tiers, as the retention metrics label them.
const (
	TierLocal  = "local"
	TierRemote = "remote"
)

const (
	// defaultInterval is Kafka's remote.log.manager.task.interval.ms.
	defaultInterval = 30 * time.Second
	// garbageGrace spares recent unreferenced objects from garbage
	// collection: they may be an upload whose manifest is being written.
	garbageGrace = 10 * time.Minute
	// manifestRetry spaces out manifest reads for fetches while they fail.
	manifestRetry = 5 * time.Second
	// Rounds between the pruning of old manifests, and between garbage
	// collections, of a partition.
	pruneEvery, collectEvery = 10, 60
)

// Manager runs the remote log tasks of the partitions added to it. Create
// it with New; Run drives it.
type Manager struct {
	cfg     Config
	store   tiering.Store
	reader  *tiering.Reader // nil without a store
	metrics *metrics        // nil without a store
	deleter *topicDeleter   // nil without DeletedTopics
	env     *env
	// readFailures counts and logs failed reads for fetches and lookups.
	readFailures *readFailures

	mu    sync.Mutex
	parts map[*Partition]struct{}
}

// env is what every task of every partition shares.
type env struct {
	store          tiering.Store
	metrics        *metrics
	logger         *slog.Logger
	now            func() time.Time
	leaseOK        func() bool
	countRetention func(topic, tier string, segments int, bytes int64)
	// compactDir holds segments downloaded or written by a remote
	// compaction pass; compactor is the pass's cleaner, created on first
	// use (its offset map is large) and only used by the tiering loop.
	compactDir string
	mapBytes   int
	limiter    *rate.Limiter
	compactor  *compaction.Cleaner
}

// New returns a manager; it touches neither the disk nor the store until
// used.
func New(cfg Config) (*Manager, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = defaultInterval
	}
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = 1 << 30
	}
	if cfg.CompactionMapBytes <= 0 {
		cfg.CompactionMapBytes = 128 << 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LeaseOK == nil {
		cfg.LeaseOK = func() bool { return true }
	}
	if cfg.RetentionDeleted == nil {
		cfg.RetentionDeleted = func(string, string, int, int64) {}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Decompress == nil {
		cfg.Decompress = func(_ context.Context, fn func() error) error { return fn() }
	}
	m := &Manager{cfg: cfg, store: cfg.Store, parts: map[*Partition]struct{}{}}
	m.env = &env{
		store: cfg.Store, logger: cfg.Logger, now: cfg.Now, leaseOK: cfg.LeaseOK, countRetention: cfg.RetentionDeleted,
		compactDir: filepath.Join(cfg.DataDir, "tiering-compact"), mapBytes: cfg.CompactionMapBytes, limiter: cfg.CompactionLimiter,
	}
	if cfg.Store != nil {
		var err error
		m.reader, err = tiering.NewReader(cfg.Store, tiering.ReaderConfig{
			CacheDir:   filepath.Join(cfg.DataDir, "tiering-cache"),
			CacheBytes: cfg.CacheBytes,
			ReadAhead:  8,
			Workers:    8,
			Registerer: cfg.Registerer,
			Logger:     cfg.Logger.With("component", "tiering"),
		})
		if err != nil {
			return nil, fmt.Errorf("tiering: remote reader: %w", err)
		}
		m.metrics = newMetrics(cfg.Registerer)
		m.env.metrics = m.metrics
	}
	m.readFailures = &readFailures{logger: cfg.Logger}
	if m.metrics != nil {
		m.readFailures.count = func(topic string) { m.metrics.readErrors.WithLabelValues(topic).Inc() }
	}
	if cfg.DeletedTopics != nil {
		m.deleter = newTopicDeleter(m)
	}
	return m, nil
}

// Enabled reports whether the broker has an object store.
func (m *Manager) Enabled() bool { return m.store != nil }

// SetDeletedTopicGrace changes how long the record of a deleted tiered
// topic outlives its emptied prefix (10 minutes: the garbage grace), for
// tests. Call it before Run.
func (m *Manager) SetDeletedTopicGrace(d time.Duration) {
	if m.deleter != nil {
		m.deleter.grace = d
	}
}

// Add starts managing a hosted partition: the manager's tasks run for it
// while it is tiered and this broker leads it, and the returned Partition
// serves its remote reads. Remove ends it.
func (m *Manager) Add(tp TopicPartition, log Log, r Replica) *Partition {
	p := newPartition(m, tp, log, r)
	m.mu.Lock()
	m.parts[p] = struct{}{}
	m.mu.Unlock()
	return p
}

// Remove stops managing p (its topic was deleted, or the broker no longer
// hosts it). A round already working on it finishes.
func (m *Manager) Remove(p *Partition) {
	if p == nil {
		return
	}
	m.mu.Lock()
	delete(m.parts, p)
	m.mu.Unlock()
	if m.metrics != nil {
		m.metrics.backlog.DeleteLabelValues(p.labels...)
	}
}

func (m *Manager) partitions() []*Partition {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Partition, 0, len(m.parts))
	for p := range m.parts {
		out = append(out, p)
	}
	return out
}

// Run runs the tasks until ctx ends, and returns once all of its
// goroutines have.
func (m *Manager) Run(ctx context.Context) {
	var wg sync.WaitGroup
	if m.deleter != nil {
		wg.Go(func() { m.deleter.run(ctx) })
	}
	if m.reader != nil {
		wg.Go(func() { m.reader.Run(ctx) })
		m.loop(ctx)
	}
	wg.Wait()
}

// loop runs the copy and expiration tasks of every partition every
// interval.
func (m *Manager) loop(ctx context.Context) {
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for round := 0; ; round++ {
		for _, p := range m.partitions() {
			if ctx.Err() != nil {
				return
			}
			p.round(ctx, round)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// metrics are the tiering tasks'.
type metrics struct {
	backlog       *prometheus.GaugeVec
	uploadSeconds prometheus.Histogram
	uploadBytes   prometheus.Counter
	errors        *prometheus.CounterVec
	readErrors    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
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
		readErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_tiering_remote_read_errors_total",
			Help: "Reads of the object store for fetches and offset lookups that failed for want of the store (down, unreachable, an object missing), by topic; clients are told to retry.",
		}, []string{"topic"}),
	}
	for _, s := range allSteps() {
		m.errors.WithLabelValues(string(s))
	}
	if reg != nil {
		reg.MustRegister(m.backlog, m.uploadSeconds, m.uploadBytes, m.errors, m.readErrors)
	}
	return m
}

// tieringStep is a step label of strata_tiering_errors_total.
type tieringStep string

const (
	stepWriteManifest      tieringStep = "write_manifest"
	stepDeleteSegments     tieringStep = "delete_segments"
	stepCompact            tieringStep = "compact"
	stepOpenSegment        tieringStep = "open_segment"
	stepUpload             tieringStep = "upload"
	stepLocalRetention     tieringStep = "local_retention"
	stepWriteTopicManifest tieringStep = "write_topic_manifest"
	stepPruneManifests     tieringStep = "prune_manifests"
	stepCollectGarbage     tieringStep = "collect_garbage"
	stepReadManifest       tieringStep = "read_manifest"
	stepDeleteTopic        tieringStep = "delete_topic"
)

// allSteps lists every tieringStep, so that each series exists, at zero,
// from the start: an alert on their rate sees no gap.
func allSteps() []tieringStep {
	return []tieringStep{stepWriteManifest, stepDeleteSegments, stepCompact, stepOpenSegment, stepUpload, stepLocalRetention, stepWriteTopicManifest, stepPruneManifests, stepCollectGarbage, stepReadManifest, stepDeleteTopic}
}

// failed counts a failed step; a manager without a store has no metrics
// but still runs the deleted-topic task.
func (m *metrics) failed(step tieringStep) {
	if m != nil {
		m.errors.WithLabelValues(string(step)).Inc()
	}
}
