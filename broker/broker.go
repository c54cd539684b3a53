// Package broker is the core of a Strata broker: it hosts partition logs,
// keeps them in step with the topics recorded in the metastore, and serves
// produce, fetch, offset lookup and topic administration. The gRPC and Kafka
// frontends are thin translations onto the methods of Broker.
package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/tiering"
	"github.com/strata-broker/strata/tiering/rlm"
	"github.com/strata-broker/strata/topicconfig"
)

// Config configures a Broker.
type Config struct {
	NodeID  int32
	DataDir string
	// Settings are broker-level settings in Kafka's server.properties keys
	// (log.retention.ms, log.segment.bytes, num.partitions, ...). Those that
	// map to topic configs become the defaults of every topic.
	Settings map[string]string
	Logger   *slog.Logger
	// Registerer receives the broker's metrics; nil means none are exported.
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Replicas sends replica fetches to other brokers; nil means this broker
	// cannot follow (a single-broker cluster).
	Replicas ReplicaClient
	// LeaseValidUntil reports until when the broker's registration in etcd
	// is surely alive; a leader refuses writes past it. Nil: always valid.
	LeaseValidUntil func() time.Time
	// RegistrationEpoch is the etcd revision of the broker's current
	// registration: partition states naming it leader from before then are
	// not acted on. Nil: 0.
	RegistrationEpoch func() int64
	// ObjectStore, when not nil, keeps the sealed segments of topics with
	// remote.storage.enable=true; TieringCacheBytes bounds the on-disk cache
	// of remote reads (zero: 1 GiB).
	ObjectStore       tiering.Store
	TieringCacheBytes int64
}

// The metastore roles below are what parts of the broker need from the
// cluster's metadata store, each sized to one concern so that a component
// (or a fake in a test) deals only with the role it uses. *metastore.Store
// implements all of them.

// TopicStore keeps the topic definitions and reports their changes.
type TopicStore interface {
	CreateTopic(ctx context.Context, t metastore.Topic, assignments [][]int32) (metastore.Topic, error)
	GetTopic(ctx context.Context, name string) (metastore.Topic, error)
	ListTopics(ctx context.Context) ([]metastore.Topic, int64, error)
	AlterTopicConfigs(ctx context.Context, name string, set map[string]string, del []string, validate func(map[string]string) error) (metastore.Topic, error)
	AddPartitions(ctx context.Context, t metastore.Topic, assignments [][]int32) (metastore.Topic, error)
	DeleteTopic(ctx context.Context, name string) error
	WatchTopicsSince(ctx context.Context, known []metastore.Topic, rev int64) <-chan metastore.TopicEvent
}

// PartitionStateStore keeps who leads each partition and who is in sync.
type PartitionStateStore interface {
	PartitionStates(ctx context.Context, topic string) ([]metastore.PartitionState, error)
	CompareAndSwapPartitionState(ctx context.Context, old, next metastore.PartitionState) (metastore.PartitionState, error)
	FollowPartitions(ctx context.Context, fn func(metastore.PartitionsUpdate))
}

// ClusterStore tells which brokers are alive, which one is the controller,
// and the cluster's id.
type ClusterStore interface {
	Brokers(ctx context.Context) ([]metastore.BrokerInfo, error)
	FollowBrokers(ctx context.Context, fn func([]metastore.BrokerInfo))
	Controller(ctx context.Context) (int32, error)
	ClusterID(ctx context.Context) (string, error)
}

// ProducerIDAllocator hands out cluster-wide unique blocks of producer ids.
type ProducerIDAllocator interface {
	AllocateProducerIDs(ctx context.Context, n int64) (first int64, err error)
}

// DeletedTopicStore keeps the records of deleted topics whose objects may
// still be in the object store, until their deletion is finished.
type DeletedTopicStore interface {
	DeletedTopics(ctx context.Context) ([]metastore.DeletedTopic, error)
	DeletedTopic(ctx context.Context, id string) (metastore.DeletedTopic, bool, error)
	FinishTopicDeletion(ctx context.Context, d metastore.DeletedTopic) error
}

// Metastore is every role a whole broker needs.
type Metastore interface {
	TopicStore
	PartitionStateStore
	ClusterStore
	ProducerIDAllocator
	DeletedTopicStore
	group.Store
}

// Broker hosts partitions. Create it with New, then Start; Close stops it.
type Broker struct {
	cfg            Config
	logger         *slog.Logger
	store          Metastore
	now            func() time.Time
	brokerDefaults map[string]string
	metrics        *metrics
	clusterID      clusterID
	groups         *group.Coordinator

	retention *retentionWorker // see retention.go
	cleaner   *cleanerWorker   // see cleaner.go
	rlm       *rlm.Manager     // tiering, see tiering.go

	// applyMu serialises changes to the hosted topics (open, close, delete);
	// mu guards the map itself and is held only briefly.
	applyMu sync.Mutex
	mu      sync.RWMutex
	topics  map[string]*topic
	closed  bool

	// clusterMu guards the followed cluster view: every partition's state
	// and the live brokers.
	clusterMu     sync.RWMutex
	states        map[tp]metastore.PartitionState
	brokers       []metastore.BrokerInfo
	fetchers      *fetcherManager
	replicaLagMax time.Duration
	controller    int32     // cached controller id, see controllerID
	controllerAt  time.Time // when it was read

	// pidMu guards [pidNext, pidEnd), the block of producer ids taken from
	// the metastore that InitProducerID hands out.
	pidMu            sync.Mutex
	pidNext, pidEnd  int64
	producerIDExpiry time.Duration // producer.id.expiration.ms

	draining  chan struct{} // closed by Drain
	drainOnce sync.Once

	cancel context.CancelFunc
	runCtx context.Context // ends when Close starts
	wg     sync.WaitGroup
}

// background runs fn on its own goroutine, owned by the broker: fn's ctx ends
// when Close starts, and Close waits for fn. After Close it does nothing.
func (b *Broker) background(fn func(ctx context.Context)) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed || b.runCtx == nil {
		return
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		fn(b.runCtx)
	}()
}

// topic is the broker's local view of one topic.
type topic struct {
	meta       metastore.Topic
	cfg        topicconfig.Topic
	partitions []*Partition // nil entries for partitions not hosted here
}

// partitionMetaFile records which topic (by id) a partition directory belongs
// to, so that the directory of a deleted topic is never mistaken for the data
// of a new topic with the same name.
const partitionMetaFile = "partition.metadata"

type partitionMeta struct {
	TopicID   string `json:"topic_id"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

// New creates a broker. It does not touch the disk or the metastore until Start.
func New(cfg Config, store Metastore) (*Broker, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("broker: data dir is required")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	defaults, err := topicconfig.BrokerDefaults(cfg.Settings)
	if err != nil {
		return nil, fmt.Errorf("broker: settings: %w", err)
	}
	if _, _, err := topicconfig.Resolve(nil, defaults); err != nil {
		return nil, fmt.Errorf("broker: settings: %w", err)
	}
	lagMs, err := settingMs(cfg.Settings, "replica.lag.time.max.ms", 30000)
	if err != nil {
		return nil, err
	}
	pidExpiry, err := settingMs(cfg.Settings, "producer.id.expiration.ms", defaultProducerIDExpirationMs)
	if err != nil {
		return nil, err
	}
	b := &Broker{
		replicaLagMax:  lagMs,
		states:         map[tp]metastore.PartitionState{},
		cfg:            cfg,
		logger:         logger,
		store:          store,
		now:            now,
		brokerDefaults: defaults,
		topics:         make(map[string]*topic),
		draining:       make(chan struct{}),
	}
	b.producerIDExpiry = pidExpiry
	if b.groups, err = newGroupCoordinator(b); err != nil {
		return nil, err
	}
	if b.retention, err = newRetentionWorker(b); err != nil {
		return nil, err
	}
	if b.cleaner, err = newCleanerWorker(b); err != nil {
		return nil, err
	}
	if b.rlm, err = b.newRemoteLogManager(); err != nil {
		return nil, err
	}
	b.metrics = newMetrics(b, cfg.Registerer)
	b.fetchers = newFetcherManager(b)
	return b, nil
}

// settingMs reads a broker setting in milliseconds.
func settingMs(settings map[string]string, key string, def int64) (time.Duration, error) {
	v, ok := settings[key]
	if !ok {
		return time.Duration(def) * time.Millisecond, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 || n > math.MaxInt64/int64(time.Millisecond) {
		return 0, fmt.Errorf("broker: setting %s=%q: must be a positive number of milliseconds: %w", key, v, ErrInvalidConfig)
	}
	return time.Duration(n) * time.Millisecond, nil
}

// leaseOK reports whether this broker may act as a leader now.
func (b *Broker) leaseOK() bool {
	if b.cfg.LeaseValidUntil == nil {
		return true
	}
	return b.now().Before(b.cfg.LeaseValidUntil())
}

// Start loads the topics from the metastore, opens (and recovers) the logs of
// the partitions this broker hosts, and starts the background work: following
// topic changes and flushing logs. It returns once the broker can serve.
func (b *Broker) Start(ctx context.Context) error {
	if err := os.MkdirAll(b.cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("broker: data dir: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	b.cancel, b.runCtx = cancel, runCtx
	// The partition states decide what this broker hosts: follow them first.
	ready := b.followCluster(runCtx)
	select {
	case <-ready:
	case <-ctx.Done():
		cancel()
		b.wg.Wait()
		return fmt.Errorf("broker: load cluster state: %w", ctx.Err())
	}
	topics, rev, err := b.store.ListTopics(ctx)
	if err != nil {
		cancel()
		b.wg.Wait()
		return fmt.Errorf("broker: load topics: %w", err)
	}
	for _, t := range topics {
		if err := b.applyTopic(t); err != nil {
			b.logger.Error("cannot open topic", "topic", t.Name, "err", err)
		}
	}
	b.removeOrphanDirs(topics)

	b.wg.Add(5)
	go func() {
		defer b.wg.Done()
		b.rlm.Run(runCtx)
	}()
	go func() {
		defer b.wg.Done()
		b.isrLoop(runCtx)
	}()
	go func() {
		defer b.wg.Done()
		b.groups.Run(runCtx)
	}()
	go func() {
		defer b.wg.Done()
		b.watchTopics(runCtx, topics, rev)
	}()
	go func() {
		defer b.wg.Done()
		b.flushLoop(runCtx)
	}()
	b.background(b.groupLagLoop)
	b.background(b.retention.run)
	b.background(b.cleaner.run)
	return nil
}

// Drain ends waiting fetches and makes new ones return without waiting, so
// that listeners can stop gracefully; produce and fetch still work until
// Close.
func (b *Broker) Drain() { b.drainOnce.Do(func() { close(b.draining) }) }

// Draining reports whether Drain was called.
func (b *Broker) Draining() bool {
	select {
	case <-b.draining:
		return true
	default:
		return false
	}
}

// Close stops background work and closes every log (writing indexes and
// syncing), so that the next start needs no recovery.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.Drain()
	if b.cancel != nil {
		b.cancel()
	}
	b.wg.Wait()
	b.retention.Close()
	b.cleaner.Close()
	b.fetchers.close()

	// After any change in progress (an admin call's) has finished: it saw
	// closed=false and may have opened logs that must be closed here too.
	b.applyMu.Lock()
	defer b.applyMu.Unlock()
	b.mu.Lock()
	topics := b.topics
	b.topics = map[string]*topic{}
	b.mu.Unlock()
	var errs []error
	for _, t := range topics {
		for _, p := range t.partitions {
			if p == nil {
				continue
			}
			if err := p.log.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close %s-%d: %w", p.Topic, p.Index, err))
			}
			p.wake()
		}
	}
	return errors.Join(errs...)
}

// watchTopics applies every topic change recorded in the metastore.
// It starts right after the listing Start loaded, so a topic deleted or
// created in between is not missed.
func (b *Broker) watchTopics(ctx context.Context, known []metastore.Topic, rev int64) {
	for ev := range b.store.WatchTopicsSince(ctx, known, rev) {
		switch ev.Type {
		case metastore.TopicPut:
			if err := b.applyTopic(ev.Topic); err != nil {
				b.logger.Error("cannot apply topic change", "topic", ev.Topic.Name, "err", err)
			}
		case metastore.TopicDeleted:
			b.applyDelete(ctx, ev.Topic.Name)
		}
	}
}

// applyDelete removes a topic reported deleted by the watch, unless the
// metastore has it again: a delete event can arrive after the topic was
// created anew (by this broker's own admin call, applied at once), and must
// not take the new topic's data with it.
func (b *Broker) applyDelete(ctx context.Context, name string) {
	// The incarnation held before asking: if another is applied meanwhile
	// (an admin call creating the topic anew), it must survive this delete.
	held := ""
	b.mu.RLock()
	if cur := b.topics[name]; cur != nil {
		held = cur.meta.ID
	}
	b.mu.RUnlock()
	if held == "" {
		return
	}
	t, err := b.store.GetTopic(ctx, name)
	switch {
	case err == nil:
		if err := b.applyTopic(t); err != nil {
			b.logger.Error("cannot apply topic", "topic", name, "err", err)
		}
	case errors.Is(err, metastore.ErrTopicNotFound):
		b.removeTopic(name, held)
	default:
		// Unsure: keep the data. The next event or resync settles it.
		b.logger.Warn("topic delete event not applied: cannot confirm it", "topic", name, "err", err)
	}
}

// flushInterval is how often the flush policy (flush.ms) is checked. It bounds
// how late an interval flush can be; flush.messages is enforced on append.
const flushInterval = 100 * time.Millisecond

func (b *Broker) flushLoop(ctx context.Context) {
	b.everyPartition(ctx, flushInterval, func(_ time.Time, p *Partition) {
		// A failed log reported its first failure itself; it stays failed.
		if err := p.log.MaybeFlush(); err != nil && !errors.Is(err, partlog.ErrLogClosed) && !errors.Is(err, partlog.ErrLogFailed) {
			b.logger.Error("flush failed", "topic", p.Topic, "partition", p.Index, "err", err)
		}
	})
}

// everyPartition calls fn for each hosted partition every interval, until
// ctx ends.
func (b *Broker) everyPartition(ctx context.Context, interval time.Duration, fn func(now time.Time, p *Partition)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := b.now()
		for _, p := range b.allPartitions() {
			fn(now, p)
		}
	}
}

func (b *Broker) allPartitions() []*Partition {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var out []*Partition
	for _, t := range b.topics {
		for _, p := range t.partitions {
			if p != nil {
				out = append(out, p)
			}
		}
	}
	return out
}

func logConfig(c topicconfig.Topic) partlog.Config {
	ms := func(v int64) time.Duration {
		if v <= 0 || v >= math.MaxInt64/int64(time.Millisecond) {
			return 0
		}
		return time.Duration(v) * time.Millisecond
	}
	flushMessages := c.FlushMessages
	if flushMessages == math.MaxInt64 {
		flushMessages = 0
	}
	segmentMs := c.SegmentMs
	if c.CompactEnabled() {
		// As Kafka: the active segment is never compacted, so it rolls by
		// max.compaction.lag.ms too, bounding how long a record can stay
		// uncompacted.
		segmentMs = min(segmentMs, c.MaxCompactionLagMs)
	}
	return partlog.Config{
		SegmentBytes:       c.SegmentBytes,
		SegmentMs:          ms(segmentMs),
		IndexIntervalBytes: int(c.IndexIntervalBytes),
		FlushMessages:      flushMessages,
		FlushInterval:      ms(c.FlushMs),
		MaxMessageBytes:    int(c.MaxMessageBytes),
	}
}

// applyTopic makes the local state match t: it opens the logs of partitions
// this broker hosts and applies config changes. It is idempotent.
func (b *Broker) applyTopic(t metastore.Topic) error {
	cfg, _, err := topicconfig.Resolve(t.Configs, b.brokerDefaults)
	if err != nil {
		// A stored topic is served even when its overrides no longer agree
		// with the broker defaults: Resolve falls back per key, and refusing
		// would take acknowledged data offline.
		b.logger.Warn("topic config does not resolve cleanly; using fallbacks", "topic", t.Name, "err", err)
	}
	// One change at a time (the watch and admin calls both apply changes):
	// two changes to one topic interleaving could delete the directory the
	// other is creating. b.mu is taken only to read and swap map entries, so
	// produce and fetch never wait for a log to open, recover or be deleted.
	b.applyMu.Lock()
	defer b.applyMu.Unlock()
	b.mu.RLock()
	cur, closed := b.topics[t.Name], b.closed
	b.mu.RUnlock()
	if closed {
		return ErrBrokerClosed
	}
	if cur != nil && t.Revision != 0 && t.Revision < cur.meta.Revision {
		return nil // an older event than what we hold
	}
	if cur != nil && cur.meta.ID != t.ID {
		// The topic was deleted and created again while we were not looking.
		b.mu.Lock()
		delete(b.topics, t.Name)
		b.mu.Unlock()
		b.dropPartitions(t.Name, cur)
		cur = nil
	}

	states, err := b.topicStates(t)
	if err != nil {
		return err
	}
	lc := logConfig(cfg)
	parts := make([]*Partition, max(int(t.Partitions), 0))
	if cur != nil {
		copy(parts, cur.partitions)
	}
	var errs []error
	for i, p := range parts {
		if p != nil {
			p.log.SetConfig(lc)
			continue
		}
		// A broker hosts the partitions it is a replica of.
		if !slices.Contains(states[i].Replicas, b.cfg.NodeID) {
			continue
		}
		np, err := b.openPartition(t, int32(i), lc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		// Its role is set before anyone can find it.
		b.applyPartitionState(np, states[i])
		parts[i] = np
	}
	b.mu.Lock()
	b.topics[t.Name] = &topic{meta: t, cfg: cfg, partitions: parts}
	b.mu.Unlock()
	// States may have changed while the logs opened: apply the latest.
	for i, p := range parts {
		if p == nil {
			continue
		}
		if st, ok := b.cachedState(t.Name, int32(i)); ok {
			b.applyPartitionState(p, st)
		} else {
			b.applyPartitionState(p, states[i])
		}
	}
	return errors.Join(errs...)
}

func (b *Broker) partitionDir(topic string, p int32) string {
	return filepath.Join(b.cfg.DataDir, fmt.Sprintf("%s-%d", topic, p))
}

func (b *Broker) openPartition(t metastore.Topic, p int32, lc partlog.Config) (*Partition, error) {
	dir := b.partitionDir(t.Name, p)
	metaPath := filepath.Join(dir, partitionMetaFile)
	if raw, err := os.ReadFile(metaPath); err == nil {
		var m partitionMeta
		if err := json.Unmarshal(raw, &m); err != nil || m.TopicID == "" {
			// Never delete what we cannot identify: it may be this topic's data.
			return nil, fmt.Errorf("partition %s-%d: unreadable %s (move it aside to serve the partition): %v",
				t.Name, p, metaPath, err)
		}
		if m.TopicID != t.ID {
			b.logger.Warn("removing partition directory of an older topic with the same name",
				"dir", dir, "topic_id", m.TopicID, "current_topic_id", t.ID)
			if err := os.RemoveAll(dir); err != nil {
				return nil, fmt.Errorf("remove stale %s: %w", dir, err)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("partition dir: %w", err)
	}
	if _, err := os.Stat(metaPath); errors.Is(err, os.ErrNotExist) {
		raw, _ := json.Marshal(partitionMeta{TopicID: t.ID, Topic: t.Name, Partition: p})
		if err := partlog.PublishFile(dir, partitionMetaFile, raw); err != nil {
			return nil, err
		}
	}
	l, err := partlog.Open(partlog.Options{
		Dir:    dir,
		Config: lc,
		Logger: b.logger.With("topic", t.Name, "partition", p),
		Now:    b.now,
	})
	if err != nil {
		return nil, fmt.Errorf("open log %s-%d: %w", t.Name, p, err)
	}
	if err := b.rlm.StartAtRemoteEnd(context.Background(), topicPartition(t, p), remoteEnabled(t, b.brokerDefaults), l); err != nil {
		l.Close()
		return nil, err
	}
	np := newPartition(t.Name, t.ID, p, l, b.cfg.NodeID)
	np.remote = b.rlm.Add(topicPartition(t, p), l, tieredReplica{np, b})
	b.initProducerState(np)
	return np, nil
}

// removeTopic drops the local partitions of a topic. With a non-empty id it
// removes only that incarnation of the topic, so a caller holding an old id
// cannot remove a topic created anew under the same name.
func (b *Broker) removeTopic(name, id string) {
	b.applyMu.Lock()
	defer b.applyMu.Unlock()
	b.mu.Lock()
	t := b.topics[name]
	if t == nil || (id != "" && t.meta.ID != id) {
		b.mu.Unlock()
		return
	}
	delete(b.topics, name)
	b.mu.Unlock()
	b.dropPartitions(name, t)
	b.logger.Info("topic removed", "topic", name)
}

// dropPartitions closes a removed topic's logs and deletes their directories.
// It runs outside b.mu: closing and deleting a large partition takes time,
// and produce and fetch on other topics must not wait for it.
func (b *Broker) dropPartitions(name string, t *topic) {
	for _, p := range t.partitions {
		if p == nil {
			continue
		}
		// Stop serving it (waiting producers and polls return, the fetcher
		// lets go) before its log closes under them.
		p.drop()
		b.fetchers.remove(p)
		b.rlm.Remove(p.remote)
		if err := p.log.Close(); err != nil {
			b.logger.Warn("close deleted partition", "topic", name, "partition", p.Index, "err", err)
		}
		dir := p.log.Dir()
		if err := os.RemoveAll(dir); err != nil {
			b.logger.Error("remove deleted partition", "dir", dir, "err", err)
		}
	}
}

var partitionDirRE = regexp.MustCompile(`^(.+)-([0-9]+)$`)

// removeOrphanDirs deletes partition directories of topics that no longer
// exist (deleted while this broker was down). Only directories carrying a
// partition.metadata file are considered, so nothing else in the data dir is
// ever touched.
func (b *Broker) removeOrphanDirs(topics []metastore.Topic) {
	live := make(map[string]string, len(topics))
	partitions := make(map[string]int32, len(topics))
	for _, t := range topics {
		live[t.Name] = t.ID
		partitions[t.Name] = t.Partitions
	}
	entries, err := os.ReadDir(b.cfg.DataDir)
	if err != nil {
		b.logger.Warn("cannot list data dir", "err", err)
		return
	}
	for _, e := range entries {
		m := partitionDirRE.FindStringSubmatch(e.Name())
		if !e.IsDir() || m == nil {
			continue
		}
		dir := filepath.Join(b.cfg.DataDir, e.Name())
		raw, err := os.ReadFile(filepath.Join(dir, partitionMetaFile))
		if err != nil {
			continue
		}
		var pm partitionMeta
		if json.Unmarshal(raw, &pm) != nil {
			continue
		}
		idx, _ := strconv.Atoi(m[2])
		if id, ok := live[pm.Topic]; ok && id == pm.TopicID && int32(idx) < partitions[pm.Topic] {
			continue
		}
		b.logger.Info("removing partition directory of a deleted topic", "dir", dir)
		if err := os.RemoveAll(dir); err != nil {
			b.logger.Error("remove orphan partition dir", "dir", dir, "err", err)
		}
	}
}

// partition returns the hosted partition or ErrUnknownTopicOrPartition.
func (b *Broker) partition(topicName string, p int32) (*Partition, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return nil, ErrBrokerClosed
	}
	t := b.topics[topicName]
	if t == nil {
		return nil, fmt.Errorf("topic %q: %w", topicName, ErrUnknownTopicOrPartition)
	}
	if p < 0 || int(p) >= len(t.partitions) || t.partitions[p] == nil {
		return nil, fmt.Errorf("topic %q has no partition %d (it has %d): %w", topicName, p, t.meta.Partitions, ErrUnknownTopicOrPartition)
	}
	return t.partitions[p], nil
}

// leaderPartition returns a partition this broker leads: consumers read
// from leaders only, whose high watermark is authoritative. A partition of a
// known topic that is not hosted here is ErrNotLeader, so clients refresh
// their metadata rather than give up.
func (b *Broker) leaderPartition(topicName string, p int32) (*Partition, error) {
	part, err := b.partition(topicName, p)
	if err != nil {
		if st, ok := b.cachedState(topicName, p); ok && st.Leader != b.cfg.NodeID && errors.Is(err, ErrUnknownTopicOrPartition) {
			if st.Leader < 0 {
				return nil, fmt.Errorf("%s-%d: %w", topicName, p, ErrLeaderNotAvailable)
			}
			return nil, fmt.Errorf("%s-%d: leader is broker %d: %w", topicName, p, st.Leader, ErrNotLeader)
		}
		return nil, err
	}
	if err := part.checkLeader(); err != nil {
		return nil, err
	}
	return part, nil
}

// PartitionCount returns the number of partitions of a topic.
func (b *Broker) PartitionCount(topicName string) (int32, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	t := b.topics[topicName]
	if t == nil {
		return 0, fmt.Errorf("topic %q: %w", topicName, ErrUnknownTopicOrPartition)
	}
	return t.meta.Partitions, nil
}

// TopicConfig returns the effective configuration of a topic.
func (b *Broker) TopicConfig(topicName string) (topicconfig.Topic, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	t := b.topics[topicName]
	if t == nil {
		return topicconfig.Topic{}, fmt.Errorf("topic %q: %w", topicName, ErrUnknownTopicOrPartition)
	}
	return t.cfg, nil
}
