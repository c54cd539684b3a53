// Package broker is the core of a Strata broker: it hosts partition logs,
// keeps them in step with the topics recorded in the metastore, and serves
// produce, fetch, offset lookup and topic administration. The gRPC and Kafka
// frontends are thin translations onto the methods of Broker.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/broker/sharegroup"
	"github.com/strata-broker/strata/broker/txn"
	"github.com/strata-broker/strata/internal/membudget"
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
	// ReplicaSecret is the secret of the broker's current registration,
	// which its replica fetches present to leaders (see
	// metastore.ReplicaSecret). Nil, or empty while unregistered: leaders
	// refuse its fetches.
	ReplicaSecret func() metastore.ReplicaSecret
	// ObjectStore, when not nil, keeps the sealed segments of topics with
	// remote.storage.enable=true; TieringCacheBytes bounds the on-disk cache
	// of remote reads (zero: 1 GiB).
	ObjectStore       tiering.Store
	TieringCacheBytes int64
	// RequestBudget is the memory requests in flight share, Kafka's
	// queued.max.request.bytes; nil means unlimited. Decompressing the
	// batches requests carry takes its share of it (see inflation).
	RequestBudget *membudget.Budget
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

// ProducerIDAllocator hands out cluster-wide unique blocks of producer ids,
// in increasing order, and tells below which id every id was handed out.
type ProducerIDAllocator interface {
	AllocateProducerIDs(ctx context.Context, n int64) (first int64, err error)
	ProducerIDHighWater(ctx context.Context) (int64, error)
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
	ACLStore
	ScramStore
	group.Store
	sharegroup.Store
	GetGroupConfigs(ctx context.Context, group string) (map[string]string, int64, error)
	AlterGroupConfigs(ctx context.Context, group string, set map[string]string, del []string, validate func(map[string]string) error) (map[string]string, error)
	GroupOffsetScanner
	txn.Store
}

// Broker hosts partitions. Create it with New, then Start; Close stops it.
type Broker struct {
	cfg            Config
	logger         *slog.Logger
	store          Metastore
	now            func() time.Time
	brokerDefaults map[string]string
	// offsetsPartitions is offsets.topic.num.partitions, the partition
	// count clients see of the internal topic (see internaltopic.go).
	offsetsPartitions int32
	metrics           *metrics
	clusterID         clusterID
	groups            *group.Coordinator
	shareGroups       *sharegroup.Coordinator // see sharegroups.go
	groupBounds       sharegroup.Bounds
	groupConfigs      groupConfigsCache
	txns              *txn.Coordinator
	txnReload         chan struct{}   // wakes runTransactions when the live brokers change
	authorizer        *acl.Authorizer // nil without authorizer.class.name; see acls.go
	scram             scramUsers      // users' SCRAM credentials; see users.go

	limits    growthLimits     // see growth.go
	retention *retentionWorker // see retention.go
	cleaner   *cleanerWorker   // see cleaner.go
	rlm       *rlm.Manager     // tiering, see tiering.go
	offline   *offlineLogs     // logs a storage failure took offline, see offline.go
	// rackAware is replica.selector.class=RackAwareReplicaSelector: leaders
	// send consumers to an in-sync replica in their rack (readreplica.go).
	rackAware bool

	hosted   hostedTopics
	cluster  clusterView
	isr      isrKeeper
	groupLag groupLag
	fetchers *fetcherManager
	throttle *replicationThrottle
	inflate  *inflation

	pids *producerIDs // see producers.go

	draining  chan struct{} // closed by Drain
	drainOnce sync.Once

	cancel context.CancelFunc
	runCtx context.Context // ends when Close starts
	wg     sync.WaitGroup
}

// background runs fn on its own goroutine, owned by the broker: fn's ctx ends
// when Close starts, and Close waits for fn. After Close it does nothing.
func (b *Broker) background(fn func(ctx context.Context)) {
	b.hosted.whileOpen(func() {
		if b.runCtx == nil {
			return
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			fn(b.runCtx)
		}()
	})
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
	limits, err := newGrowthLimits(cfg.Settings, logger, cfg.Registerer)
	if err != nil {
		return nil, err
	}
	lagMs, err := settingMs(cfg.Settings, "replica.lag.time.max.ms", 30000)
	if err != nil {
		return nil, err
	}
	pidExpiry, err := settingMs(cfg.Settings, "producer.id.expiration.ms", defaultProducerIDExpirationMs)
	if err != nil {
		return nil, err
	}
	pidMax, err := topicconfig.ProducerStateMaxEntries(cfg.Settings)
	if err != nil {
		return nil, fmt.Errorf("broker: settings: %w", err)
	}
	openWorkers, err := topicconfig.RecoveryThreads(cfg.Settings)
	if err != nil {
		return nil, fmt.Errorf("broker: settings: %w", err)
	}
	b := &Broker{
		limits:         limits,
		cfg:            cfg,
		logger:         logger,
		store:          store,
		now:            now,
		brokerDefaults: defaults,
		draining:       make(chan struct{}),
		scram:          newScramUsers(),
	}
	if b.authorizer, err = newAuthorizer(cfg.Settings); err != nil {
		return nil, err
	}
	if b.rackAware, err = topicconfig.ReplicaSelectorRackAware(cfg.Settings); err != nil {
		return nil, fmt.Errorf("broker: settings: %w", err)
	}
	if b.groups, err = newGroupCoordinator(b); err != nil {
		return nil, err
	}
	if b.offsetsPartitions, err = b.settingInt(OffsetsTopicPartitionsKey, defaultOffsetsTopicPartitions); err != nil {
		return nil, err
	}
	if b.shareGroups, err = newShareGroupCoordinator(b); err != nil {
		return nil, err
	}
	if b.txns, err = newTxnCoordinator(b); err != nil {
		return nil, err
	}
	b.txnReload = make(chan struct{}, 1)
	b.inflate = newInflation(cfg.RequestBudget)
	if b.retention, err = newRetentionWorker(b); err != nil {
		return nil, err
	}
	if b.cleaner, err = newCleanerWorker(b); err != nil {
		return nil, err
	}
	if b.rlm, err = b.newRemoteLogManager(); err != nil {
		return nil, err
	}
	if b.offline, err = newOfflineLogs(b); err != nil {
		return nil, fmt.Errorf("broker: settings: %w", err)
	}
	b.metrics = newMetrics(b, cfg.Registerer)
	if b.throttle, err = newReplicationThrottle(cfg.Settings, now, cfg.Registerer); err != nil {
		return nil, fmt.Errorf("broker: settings: %w", err)
	}
	b.pids = newProducerIDs(b, store.ProducerIDHighWater, store.AllocateProducerIDs, cfg.Registerer)
	b.fetchers = newFetcherManager(b)
	b.cluster = clusterView{
		partitions: store,
		members:    store,
		logger:     logger,
		now:        now,
		states:     map[tp]metastore.PartitionState{},
	}
	b.hosted = hostedTopics{
		nodeID:         cfg.NodeID,
		dataDir:        cfg.DataDir,
		brokerDefaults: defaults,
		logger:         logger,
		now:            now,
		store:          store,
		cluster:        &b.cluster,
		fetchers:       b.fetchers,
		rlm:            b.rlm,
		registered:     b.registered,
		remoteReplica:  func(p *Partition) rlm.Replica { return tieredReplica{p, b} },
		isr:            b.metrics.isr,
		openWorkers:    openWorkers,
		fileLimit:      openFileLimit,
		producerState: partlog.ProducerStateConfig{
			Expiry:     pidExpiry,
			MaxEntries: pidMax,
			Evicted:    func(n int) { b.pids.evictions.Add(float64(n)) },
		},
		topics: make(map[string]*topic),
		byID:   make(map[string]string),
	}
	b.hosted.files = limits.files
	b.isr = isrKeeper{
		store:   store,
		lagMax:  lagMs,
		logger:  logger,
		cluster: &b.cluster,
		hosted:  &b.hosted,
	}
	b.groupLag = groupLag{
		store:           store,
		registerer:      cfg.Registerer,
		logger:          logger,
		leaderPartition: b.hosted.leaderPartition,
	}
	b.inflate.reserve(logger)
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
	ready := b.cluster.follow(runCtx, &b.wg, b.hosted.applyStates, func() {
		b.fetchers.brokersChanged()
		b.txnBrokersChanged()
	})
	select {
	case <-ready:
	case <-ctx.Done():
		cancel()
		b.wg.Wait()
		return fmt.Errorf("broker: load cluster state: %w", ctx.Err())
	}
	if b.authorizer != nil {
		select {
		case <-b.followACLs(runCtx, &b.wg):
		case <-ctx.Done():
			cancel()
			b.wg.Wait()
			return fmt.Errorf("broker: load ACLs: %w", ctx.Err())
		}
	}
	select {
	case <-b.followScram(runCtx, &b.wg):
	case <-ctx.Done():
		cancel()
		b.wg.Wait()
		return fmt.Errorf("broker: load SCRAM credentials: %w", ctx.Err())
	}
	topics, rev, err := b.store.ListTopics(ctx)
	if err != nil {
		cancel()
		b.wg.Wait()
		return fmt.Errorf("broker: load topics: %w", err)
	}
	// Every topic at once: their logs open together (see applyTopics).
	if err := b.hosted.applyTopics(topics); err != nil {
		b.logger.Error("cannot open every partition", "err", err)
	}
	b.hosted.removeOrphanDirs(topics)

	b.wg.Add(5)
	go func() {
		defer b.wg.Done()
		b.rlm.Run(runCtx)
	}()
	go func() {
		defer b.wg.Done()
		b.isr.run(runCtx)
	}()
	go func() {
		defer b.wg.Done()
		b.groups.Run(runCtx)
	}()
	go func() {
		defer b.wg.Done()
		b.hosted.watch(runCtx, topics, rev)
	}()
	go func() {
		defer b.wg.Done()
		b.hosted.flushLoop(runCtx)
	}()
	b.background(b.groupLag.Run)
	b.background(b.shareGroups.Run)
	b.background(b.runTransactions)
	b.background(b.retention.run)
	b.background(b.cleaner.run)
	b.background(b.offline.run)
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
	if !b.hosted.markClosed() {
		return nil
	}
	b.Drain()
	if b.cancel != nil {
		b.cancel()
	}
	b.wg.Wait()
	b.retention.Close()
	b.cleaner.Close()
	b.fetchers.close()
	b.inflate.close()
	return b.hosted.closeAll()
}

// PartitionCount returns the number of partitions of a topic hosted here.
func (b *Broker) PartitionCount(topicName string) (int32, error) {
	return b.hosted.PartitionCount(topicName)
}

// TopicConfig returns the effective config of a topic hosted here.
func (b *Broker) TopicConfig(topicName string) (topicconfig.Topic, error) {
	return b.hosted.TopicConfig(topicName)
}
