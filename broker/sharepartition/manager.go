package sharepartition

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/broker/sharegroup"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/topicconfig"
)

// Core is what the manager needs of the broker core; *broker.Broker
// implements it. Reads go through the core's fetch, so share groups read
// the object store's history like any consumer.
type Core interface {
	ShareLeader(topic string, partition int32) (leaderEpoch int32, topicID string, err error)
	Fetch(ctx context.Context, parts []broker.FetchPartition, opts broker.FetchOptions) ([]broker.FetchResult, error)
	ListOffset(topic string, partition int32, ts int64, iso broker.IsolationLevel) (offset, timestamp int64, found bool, err error)
	HostedTopicName(id string) (string, bool)
	ListTopics(ctx context.Context) ([]metastore.Topic, error)
}

// Store is where share-partition state is persisted (metastore/sharestate.go).
type Store interface {
	GetShareState(ctx context.Context, group, topic string, partition int32) (metastore.ShareState, error)
	PutShareState(ctx context.Context, st metastore.ShareState, prevRevision int64) (metastore.ShareState, error)
	ListShareStates(ctx context.Context, group string) ([]metastore.ShareState, error)
	DeleteShareStates(ctx context.Context, group, topic string) (int, error)
}

// GroupConfigs gives a share group's effective configs
// (share.auto.offset.reset, share.record.lock.duration.ms,
// share.isolation.level): its own values or the broker's defaults, from a
// cache cheap enough to ask on every fetch (the broker's).
type GroupConfigs interface {
	GroupConfigs(ctx context.Context, group string) (sharegroup.Configs, error)
}

// Share-session errors, with Kafka's codes' names.
var (
	ErrShareSessionNotFound     = errors.New("share session not found")
	ErrInvalidShareSessionEpoch = errors.New("invalid share session epoch")
	ErrShareSessionLimitReached = errors.New("share session limit reached")
)

// Share sessions' bounds: the partitions one session may hold, and how long
// a session goes unused before a full cache may evict it (its consumer is
// gone: clients fetch every few seconds).
const (
	maxSessionPartitions = 10000
	sessionIdleEviction  = 2 * time.Minute
)

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	Core     Core
	Store    Store
	Groups   GroupConfigs // nil: broker defaults only
	Settings topicconfig.ShareSettings
	Now      func() time.Time // nil: time.Now
	Logger   *slog.Logger
	// StoreTimeout bounds each Store call; zero means DefaultStoreTimeout.
	StoreTimeout time.Duration
}

type partKey struct {
	group, topic string
	partition    int32
}

// sharePart is one share partition with what the manager knows of it.
type sharePart struct {
	key partKey
	// persistMu orders writes of the state; mu guards the rest.
	persistMu sync.Mutex
	mu        sync.Mutex
	loaded    bool
	gone      bool // fenced or reloaded: callers holding it look again
	p         *Partition
	leaderEp  int32
	topicID   string
	rev       int64 // of the persisted state
	stateEp   int32
	// written is the version (Partition.Version) of the state last
	// persisted: changes up to it are durable.
	written uint64
}

type sessionKey struct{ group, member string }

type session struct {
	epoch    int32
	parts    map[metastore.TopicPartition]struct{}
	lastUsed time.Time
	// conn is the client connection that opened the session (0: none
	// known); its close ends the session (ConnectionClosed).
	conn uint64
}

// Manager keeps the share partitions this broker leads and the share
// sessions of the consumers fetching them. It starts no goroutines: locks
// expire when a partition is next looked at, and a waiting fetch wakes at
// the next lock deadline of the partitions it reads.
type Manager struct {
	cfg ManagerConfig

	mu       sync.Mutex
	parts    map[partKey]*sharePart
	sessions map[sessionKey]*session
	// byConn is the sessions each connection opened, so that its close
	// ends them without a walk over every session.
	byConn  map[uint64]map[sessionKey]struct{}
	members Members
	// maxIdleParts: see defaultMaxIdleParts.
	maxIdleParts int
	// changed is closed and replaced when records become available other
	// than by an append (released, expired), to wake waiting fetches.
	changed chan struct{}
}

// NewManager returns a manager with no share partitions loaded.
func NewManager(cfg ManagerConfig) *Manager {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = DefaultStoreTimeout
	}
	cfg.Store = boundedStore{Store: cfg.Store, timeout: cfg.StoreTimeout}
	if cfg.Settings == (topicconfig.ShareSettings{}) {
		cfg.Settings = topicconfig.DefaultShareSettings
	}
	return &Manager{
		cfg: cfg, parts: map[partKey]*sharePart{}, sessions: map[sessionKey]*session{},
		byConn: map[uint64]map[sessionKey]struct{}{}, maxIdleParts: defaultMaxIdleParts, changed: make(chan struct{}),
	}
}

// TopicName resolves a topic id (ShareFetch names topics by id) among
// the topics this broker hosts.
func (m *Manager) TopicName(id string) (string, bool) { return m.cfg.Core.HostedTopicName(id) }

// LockDuration is the acquisition lock duration a consumer of group is
// told (ShareFetch's AcquisitionLockTimeoutMillis).
func (m *Manager) LockDuration(ctx context.Context, group string) time.Duration {
	cfg, _, _ := m.groupConfig(ctx, group)
	return cfg.LockDuration
}

// groupConfig is group's partition config, initial offset (-1 latest, -2
// earliest, or a timestamp) and isolation level.
func (m *Manager) groupConfig(ctx context.Context, group string) (Config, int64, broker.IsolationLevel) {
	s := m.cfg.Settings
	cfg := Config{LockDuration: s.RecordLockDuration, DeliveryLimit: int16(s.DeliveryCountLimit), MaxRecordLocks: s.PartitionMaxRecordLocks}
	initial, iso := broker.LatestTimestamp, broker.ReadUncommitted
	if m.cfg.Groups == nil {
		return cfg, initial, iso
	}
	gc, err := m.cfg.Groups.GroupConfigs(ctx, group)
	if err != nil {
		m.cfg.Logger.Warn("share group configs unreadable, using the broker's", "group", group, "err", err)
		return cfg, initial, iso
	}
	if gc.RecordLockDuration > 0 {
		cfg.LockDuration = gc.RecordLockDuration
	}
	if gc.IsolationLevel == "read_committed" {
		iso = broker.ReadCommitted
	}
	switch gc.AutoOffsetReset {
	case "earliest":
		initial = broker.EarliestTimestamp
	case "by_duration":
		initial = m.cfg.Now().Add(-gc.ResetDuration).UnixMilli()
	}
	return cfg, initial, iso
}

// partition returns group's share partition of tp, loading it if this
// broker has not got it under the current leader epoch. check reads the
// persisted state to see whether someone else (an admin) changed it.
func (m *Manager) partition(ctx context.Context, group string, tp metastore.TopicPartition, check bool) (*sharePart, error) {
	epoch, topicID, err := m.cfg.Core.ShareLeader(tp.Topic, tp.Partition)
	if err != nil {
		m.drop(partKey{group, tp.Topic, tp.Partition})
		return nil, err
	}
	k := partKey{group, tp.Topic, tp.Partition}
	for range 3 {
		m.mu.Lock()
		sp := m.parts[k]
		var replaced *sharePart
		if sp == nil || sp.leaderEp != epoch || sp.topicID != topicID {
			if len(m.parts) >= m.maxIdleParts {
				m.evictIdlePartsLocked()
			}
			replaced = sp
			sp = &sharePart{key: k, leaderEp: epoch, topicID: topicID}
			m.parts[k] = sp
		}
		m.mu.Unlock()
		if replaced != nil {
			// Of another leader epoch or topic: a read in flight on it
			// must not hand out records the new one may.
			replaced.mu.Lock()
			replaced.gone = true
			replaced.mu.Unlock()
		}
		if check {
			// A write in flight would otherwise look like someone else's.
			sp.persistMu.Lock()
		}
		sp.mu.Lock()
		unlock := func() {
			sp.mu.Unlock()
			if check {
				sp.persistMu.Unlock()
			}
		}
		if sp.gone {
			unlock()
			continue
		}
		if sp.loaded && check {
			st, err := m.cfg.Store.GetShareState(ctx, group, tp.Topic, tp.Partition)
			if err != nil && !errors.Is(err, metastore.ErrShareStateNotFound) {
				unlock()
				return nil, err
			}
			if st.Revision != sp.rev {
				// Changed elsewhere: loaded anew as another sharePart,
				// so that changes made to this one and not yet
				// written fail rather than vanish.
				sp.gone = true
				unlock()
				m.dropPart(sp)
				continue
			}
		}
		if !sp.loaded {
			if err := m.load(ctx, sp); err != nil {
				sp.gone = true
				unlock()
				m.drop(k)
				if errors.Is(err, metastore.ErrConflict) {
					continue
				}
				return nil, err
			}
		}
		unlock()
		return sp, nil
	}
	return nil, fmt.Errorf("share partition %s/%s-%d: state keeps changing while loaded: %w", group, tp.Topic, tp.Partition, broker.ErrLeaderNotAvailable)
}

// load reads sp's persisted state, or makes the initial one from the
// group's share.auto.offset.reset, and claims it for this leader epoch by
// writing it: from then on the previous leader's writes are refused.
// sp.mu is held.
func (m *Manager) load(ctx context.Context, sp *sharePart) error {
	k := sp.key
	cfg, initial, iso := m.groupConfig(ctx, k.group)
	st, err := m.cfg.Store.GetShareState(ctx, k.group, k.topic, k.partition)
	switch {
	case errors.Is(err, metastore.ErrShareStateNotFound):
	case err != nil:
		return err
	case st.LeaderEpoch > sp.leaderEp:
		return fmt.Errorf("share partition %s/%s-%d: state written under leader epoch %d, this broker's is %d: %w",
			k.group, k.topic, k.partition, st.LeaderEpoch, sp.leaderEp, broker.ErrNotLeader)
	}
	var p *Partition
	if st.Revision != 0 && (st.TopicID == "" || st.TopicID == sp.topicID) {
		p = Restore(cfg, st)
	} else {
		if err := m.checkGroupExists(ctx, k.group); err != nil {
			return err
		}
		start, err := m.initialOffset(k, initial, iso)
		if err != nil {
			return err
		}
		p = NewPartition(cfg, start)
	}
	// Records below the log start are gone: the state moves past them.
	if logStart, _, _, err := m.cfg.Core.ListOffset(k.topic, k.partition, broker.EarliestTimestamp, iso); err == nil {
		p.MoveStart(logStart)
	}
	start, batches := p.Snapshot()
	next := metastore.ShareState{
		Group: k.group, Topic: k.topic, Partition: k.partition, TopicID: sp.topicID,
		StateEpoch: st.StateEpoch, LeaderEpoch: sp.leaderEp, StartOffset: start, Batches: batches,
	}
	written, err := m.cfg.Store.PutShareState(ctx, next, st.Revision)
	if err != nil {
		return fmt.Errorf("claim share partition %s/%s-%d: %w", k.group, k.topic, k.partition, err)
	}
	p.MarkClean()
	sp.p, sp.rev, sp.stateEp, sp.loaded = p, written.Revision, written.StateEpoch, true
	sp.written = p.Version()
	return nil
}

// checkGroupExists refuses to start a share partition for a group no
// member joined, so that a client cannot make the broker write state for
// any group id it names; one metastore read, only when a partition is
// first started for a group.
func (m *Manager) checkGroupExists(ctx context.Context, group string) error {
	m.mu.Lock()
	members := m.members
	m.mu.Unlock()
	if members == nil {
		return nil
	}
	ok, err := members.ShareGroupExists(ctx, group)
	if err != nil {
		return fmt.Errorf("share group %s: %w", group, err)
	}
	if !ok {
		return fmt.Errorf("%w: %s", ErrGroupNotFound, group)
	}
	return nil
}

// initialOffset is where a share group starts on a partition it never
// read: the log end (latest), the log start (earliest) or the first record
// at or after a time (by_duration; the end if there is none).
func (m *Manager) initialOffset(k partKey, initial int64, iso broker.IsolationLevel) (int64, error) {
	off, _, found, err := m.cfg.Core.ListOffset(k.topic, k.partition, initial, iso)
	if err != nil {
		return 0, fmt.Errorf("initial offset of share partition %s/%s-%d: %w", k.group, k.topic, k.partition, err)
	}
	if !found {
		off, _, _, err = m.cfg.Core.ListOffset(k.topic, k.partition, broker.LatestTimestamp, iso)
		if err != nil {
			return 0, fmt.Errorf("initial offset of share partition %s/%s-%d: %w", k.group, k.topic, k.partition, err)
		}
	}
	return off, nil
}

// defaultMaxIdleParts is how many share partitions the manager keeps
// before it drops those nobody holds records of: their state is persisted,
// and a later fetch loads it again. Without it, fetches naming ever new
// groups would grow the map without end.
const defaultMaxIdleParts = 10000

// evictIdlePartsLocked drops the loaded share partitions with no acquired
// records and nothing left to persist. m.mu is held; a partition busy at
// the moment is skipped (its lock is taken before m.mu elsewhere).
func (m *Manager) evictIdlePartsLocked() {
	for k, sp := range m.parts {
		if !sp.mu.TryLock() {
			continue
		}
		if sp.loaded && !sp.p.Dirty() && !sp.p.Held() {
			sp.gone = true
			delete(m.parts, k)
		}
		sp.mu.Unlock()
	}
}

func (m *Manager) drop(k partKey) {
	m.mu.Lock()
	sp := m.parts[k]
	delete(m.parts, k)
	m.mu.Unlock()
	if sp != nil {
		sp.mu.Lock()
		sp.gone = true
		sp.mu.Unlock()
	}
}

// dropPart forgets sp if it is still the manager's share partition of its
// key (sp.gone is set).
func (m *Manager) dropPart(sp *sharePart) {
	m.mu.Lock()
	if m.parts[sp.key] == sp {
		delete(m.parts, sp.key)
	}
	m.mu.Unlock()
}

// persist makes sp's changes up to version upTo (Partition.Version, read
// with the change) durable, writing the state unless a write since did.
// It fails if they cannot be: a refused write (the partition has a new
// leader, or an admin set its state) drops sp, and a dropped sp's
// unwritten changes are lost; the next request loads it again, or is told
// this broker does not lead it.
func (m *Manager) persist(ctx context.Context, sp *sharePart, upTo uint64) error {
	sp.persistMu.Lock()
	defer sp.persistMu.Unlock()
	sp.mu.Lock()
	if sp.written >= upTo {
		sp.mu.Unlock()
		return nil
	}
	if sp.gone {
		sp.mu.Unlock()
		return fmt.Errorf("share partition %s/%s-%d dropped before its state was written: %w", sp.key.group, sp.key.topic, sp.key.partition, broker.ErrNotLeader)
	}
	start, batches := sp.p.Snapshot()
	version := sp.p.Version()
	sp.p.MarkClean()
	k := sp.key
	st := metastore.ShareState{
		Group: k.group, Topic: k.topic, Partition: k.partition, TopicID: sp.topicID,
		StateEpoch: sp.stateEp, LeaderEpoch: sp.leaderEp, StartOffset: start, Batches: batches,
	}
	rev := sp.rev
	sp.mu.Unlock()
	written, err := m.cfg.Store.PutShareState(ctx, st, rev)
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if err == nil {
		sp.rev, sp.written = written.Revision, version
		return nil
	}
	if errors.Is(err, metastore.ErrConflict) {
		sp.gone = true
		m.dropPart(sp)
		m.cfg.Logger.Info("share partition state changed elsewhere; dropped", "group", k.group, "topic", k.topic, "partition", k.partition, "err", err)
		return fmt.Errorf("%w: %w", broker.ErrNotLeader, err)
	}
	sp.p.dirty = true
	return err
}

// wake tells waiting fetches that records may have become available.
func (m *Manager) wake() {
	m.mu.Lock()
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
}

func (m *Manager) changedCh() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

// parseBatches reads the headers of the batches in data.
func parseBatches(data []byte) ([]Batch, []int) {
	var out []Batch
	var ends []int
	it := record.NewBatches(data)
	for it.Next() {
		h := it.Header()
		out = append(out, Batch{BaseOffset: h.BaseOffset, LastOffset: h.LastOffset(), Control: h.Control()})
		ends = append(ends, it.Position())
	}
	return out, ends
}
