// Package group is the consumer-group coordinator: Kafka's classic group
// protocol (join, sync, heartbeat, leave) with committed offsets kept in the
// metastore. Assignment is the clients' (the leader's assignor); the
// coordinator relays protocol metadata and assignments untouched.
//
// Group state lives in memory on the coordinating broker and is written to
// the metastore when a join phase ends (before the new generation is handed
// out), when a generation becomes stable and when the group empties, so
// another broker taking over (after the coordinator's death) reads it back
// and carries on with the same members and generation.
//
// Every write is a compare-and-swap on the revision this coordinator last
// wrote or read. A coordinator that loses one, or that finds the stored
// revision moved when its timers are about to act, was replaced: it steps
// down for the group (forgets it, tells waiting members NOT_COORDINATOR)
// and never writes its own state over the newer one.
package group

import (
	"cmp"
	"container/list"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/topicconfig"
)

// Store is what the coordinator keeps in the metastore; *metastore.Store
// implements it.
type Store interface {
	CommitOffsets(ctx context.Context, group, memberID string, generation int32, offsets []metastore.OffsetCommit) error
	FetchOffsets(ctx context.Context, group string) ([]metastore.OffsetCommit, error)
	DeleteOffsets(ctx context.Context, group, topic string, partitions []int32) error
	GetGroup(ctx context.Context, group string) (metastore.GroupMeta, error)
	PutGroup(ctx context.Context, meta metastore.GroupMeta, prevRevision int64) (metastore.GroupMeta, error)
	ListGroups(ctx context.Context) ([]metastore.GroupMeta, error)
	DeleteGroup(ctx context.Context, group string) error
	ExpireGroupOffsets(ctx context.Context, now time.Time, retention time.Duration) ([]string, error)
	CommitTxnOffsets(ctx context.Context, group string, producer metastore.TxnProducer, memberID string, generation int32, offsets []metastore.OffsetCommit) error
	FetchOffsetsAndPending(ctx context.Context, group string) ([]metastore.OffsetCommit, []metastore.TopicPartition, error)
	CompleteTxnOffsets(ctx context.Context, group string, producerID int64, commit bool) ([]metastore.TopicPartition, error)
	// GetShareGroup tells whether a share group has the id (a group id
	// names one kind of group).
	GetShareGroup(ctx context.Context, group string) (metastore.ShareGroupMeta, error)
}

// Group states, as Kafka names them (DescribeGroups reports them).
const (
	StateEmpty               = "Empty"
	StatePreparingRebalance  = "PreparingRebalance"
	StateCompletingRebalance = "CompletingRebalance"
	StateStable              = "Stable"
	StateDead                = "Dead"
)

// Config tunes the coordinator with Kafka's broker settings.
type Config struct {
	// InitialRebalanceDelay is group.initial.rebalance.delay.ms: a new group
	// waits this long for more members before its first generation.
	InitialRebalanceDelay time.Duration
	// MinSessionTimeout and MaxSessionTimeout bound what members may ask
	// (group.min.session.timeout.ms, group.max.session.timeout.ms).
	MinSessionTimeout, MaxSessionTimeout time.Duration
	// OffsetsRetention is offsets.retention.minutes: offsets of a group
	// without members are deleted this long after its last commit.
	OffsetsRetention time.Duration
	// MaxMetadataBytes is offset.metadata.max.bytes: a committed offset's
	// metadata may be this long at most; a longer one is refused for its
	// partition (OFFSET_METADATA_TOO_LARGE) and not written. Zero means
	// DefaultMaxMetadataBytes; negative allows no metadata at all.
	MaxMetadataBytes int
	// MaxSize is group.max.size: members, and member ids handed out and not
	// yet used (KIP-394's pending members), per group. A new member beyond
	// it is refused (GROUP_MAX_SIZE_REACHED). Zero means DefaultMaxSize.
	MaxSize int
	// MaxPendingMembers bounds the pending member ids of all groups
	// together; handing out one more forgets the oldest. Zero means
	// DefaultMaxPendingMembers.
	MaxPendingMembers int
	// PartitionExists says whether a topic partition exists; offsets of
	// others are refused (UNKNOWN_TOPIC_OR_PARTITION) and not written. nil:
	// every partition exists.
	PartitionExists func(topic string, partition int32) bool
	// Owns says whether this broker coordinates the group now; groups it
	// stops owning are dropped from memory, their waiting members told
	// NOT_COORDINATOR. It is asked before each request and each tick, so
	// it should be false as soon as this broker may have lost its place
	// (its lease in the metastore expired).
	Owns func(group string) bool
	// Topics lists the topics that exist, for the consumer group
	// protocol's assignors and regular expressions. nil: none.
	Topics func() []TopicInfo
	// ConsumerSessionTimeout is group.consumer.session.timeout.ms,
	// ConsumerHeartbeatInterval group.consumer.heartbeat.interval.ms;
	// zero means Kafka's defaults. They are the defaults of the groups'
	// own consumer.session.timeout.ms and consumer.heartbeat.interval.ms.
	ConsumerSessionTimeout, ConsumerHeartbeatInterval time.Duration
	// ConsumerTimeouts returns a consumer group's session timeout and
	// heartbeat interval (its group configs, or the broker's defaults),
	// asked at each heartbeat, so it should be cheap (cached). nil, an
	// error or a zero value: the broker's.
	ConsumerTimeouts func(ctx context.Context, group string) (session, heartbeat time.Duration, err error)
	// ConsumerAssignors is group.consumer.assignors, the default first;
	// empty means uniform then range.
	ConsumerAssignors []string
	Now               func() time.Time
	Logger            *slog.Logger
}

// Defaults are Kafka's.
const (
	DefaultInitialRebalanceDelay = 3 * time.Second
	DefaultMinSessionTimeout     = 6 * time.Second
	DefaultMaxSessionTimeout     = 30 * time.Minute
	DefaultOffsetsRetention      = 7 * 24 * time.Hour
	DefaultMaxMetadataBytes      = topicconfig.DefaultOffsetMetadataMaxBytes
)

// DefaultMaxSize is group.max.size when unset (see topicconfig for why it
// is bounded).
const DefaultMaxSize = topicconfig.DefaultGroupMaxSize

// DefaultMaxPendingMembers bounds the member ids handed out with
// MEMBER_ID_REQUIRED and not used yet, over all groups. A client uses its id
// within a round trip; ids that wait longer were abandoned, or asked for
// only to fill memory, and the oldest go first.
const DefaultMaxPendingMembers = 10_000

// maxCachedMetadata is the longest metadata the coordinator keeps in memory
// to recognise a commit that changes nothing; an offset committed with
// longer metadata is always written.
const maxCachedMetadata = 256

// Coordinator runs the groups this broker coordinates.
type Coordinator struct {
	store  Store
	cfg    Config
	logger *slog.Logger

	mu     sync.Mutex
	groups map[string]*group
	// pending lists every group's pending member ids, oldest first
	// (*pendingMember), so that the oldest can go when there are too many.
	pending *list.List
	// nextExpiry is when Tick next looks for expired offsets; zero until
	// Run starts or the first Tick.
	nextExpiry time.Time
}

type group struct {
	name         string
	state        string
	protocolType string
	protocol     string
	generation   int32
	leader       string
	members      map[string]*member
	// pending are member ids handed out with MEMBER_ID_REQUIRED and not
	// yet used: their elements in Coordinator.pending.
	pending map[string]*list.Element
	// joinDeadline ends the join phase (PreparingRebalance); syncDeadline
	// the wait for the leader's assignment (CompletingRebalance).
	joinDeadline time.Time
	syncDeadline time.Time
	// initialDelay: a new group's first join phase, which waits
	// InitialRebalanceDelay for more members.
	initialDelay bool
	revision     int64 // of the group's meta key in the metastore
	// busy is set while the group's state is being written or its
	// ownership confirmed, with c.mu released: no one else touches the
	// group until it is closed, so what is written is what is acted on.
	busy chan struct{}
	// stored are the offsets this coordinator knows to be in the metastore:
	// a commit that changes none of them (an idle consumer's auto-commit)
	// is answered without writing. A partition's entry goes when a
	// transactional offset is committed for it: its transaction's end,
	// which may run on another broker, may change the stored offset.
	stored map[partitionKey]storedOffset
	// txnSeq counts the group's transactional commits, so that a plain
	// commit written meanwhile is not cached (see commitValid).
	txnSeq uint64
	// cg is the state of a group of the consumer protocol (KIP-848); nil
	// for a classic group, whose members are in members.
	cg *consumerGroup
}

// size is the number of the group's members, of either protocol.
func (g *group) size() int {
	if g.cg != nil {
		return len(g.cg.members)
	}
	return len(g.members)
}

// pendingMember is a member id handed out with MEMBER_ID_REQUIRED, until it
// joins or expires.
type pendingMember struct {
	group   *group
	id      string
	expires time.Time
}

type partitionKey struct {
	topic     string
	partition int32
}

type storedOffset struct {
	offset      int64
	leaderEpoch int32
	metadata    string
}

type member struct {
	id, instanceID, clientID, clientHost string
	sessionTimeout, rebalanceTimeout     time.Duration
	protocolType                         string
	protocols                            []metastore.GroupProtocol
	assignment                           []byte
	deadline                             time.Time // session expiry
	joinWait                             chan joinOutcome
	syncWait                             chan syncOutcome
}

type joinOutcome struct {
	res JoinResult
	err error
}

type syncOutcome struct {
	assignment []byte
	err        error
}

// New returns a coordinator; Run (or, in tests, Tick) drives its timers.
func New(store Store, cfg Config) *Coordinator {
	if cfg.InitialRebalanceDelay < 0 {
		cfg.InitialRebalanceDelay = 0
	}
	if cfg.MinSessionTimeout <= 0 {
		cfg.MinSessionTimeout = DefaultMinSessionTimeout
	}
	if cfg.MaxSessionTimeout <= 0 {
		cfg.MaxSessionTimeout = DefaultMaxSessionTimeout
	}
	if cfg.OffsetsRetention <= 0 {
		cfg.OffsetsRetention = DefaultOffsetsRetention
	}
	if cfg.MaxMetadataBytes == 0 {
		cfg.MaxMetadataBytes = DefaultMaxMetadataBytes
	}
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = DefaultMaxSize
	}
	if cfg.MaxPendingMembers <= 0 {
		cfg.MaxPendingMembers = DefaultMaxPendingMembers
	}
	if cfg.Owns == nil {
		cfg.Owns = func(string) bool { return true }
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Coordinator{store: store, cfg: cfg, logger: logger, groups: map[string]*group{}, pending: list.New()}
}

// tick is how often session expiry and join and sync deadlines are checked.
const tick = 100 * time.Millisecond

// expiryInterval is how often expired offsets are looked for.
const expiryInterval = 10 * time.Minute

// Run calls Tick every tick until ctx ends, then drops every group, telling
// the members waiting on one that this coordinator is gone.
func (c *Coordinator) Run(ctx context.Context) {
	t := time.NewTicker(tick)
	defer t.Stop()
	c.mu.Lock()
	c.nextExpiry = c.cfg.Now().Add(expiryInterval)
	c.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			c.mu.Lock()
			for _, g := range c.groups {
				c.failWaitersLocked(g, ErrCoordinatorNotAvailable)
				c.forgetLocked(g)
			}
			c.mu.Unlock()
			return
		case <-t.C:
		}
		c.Tick(ctx)
	}
}

// Tick does what the passing of time does to the groups, as of Config.Now:
// members whose session ran out leave, join and sync phases past their
// deadline end, groups this broker stopped owning are dropped, and once
// every expiry interval old offsets are expired. It returns once the groups
// it emptied are stored. Run calls it every tick; a test that sets
// Config.Now calls it instead of running Run, so that sessions and
// rebalances time out exactly when the test moves the clock, with no real
// wait.
func (c *Coordinator) Tick(ctx context.Context) {
	now := c.cfg.Now()
	c.mu.Lock()
	names := make([]string, 0, len(c.groups))
	for name := range c.groups {
		names = append(names, name)
	}
	for _, name := range names {
		g := c.groups[name]
		if g == nil || g.busy != nil {
			continue // gone meanwhile, or its writer will look again
		}
		if !c.cfg.Owns(name) {
			c.stepDownLocked(g, ErrNotCoordinator)
			continue
		}
		for _, e := range g.pending {
			if pm := e.Value.(*pendingMember); now.After(pm.expires) {
				c.removePendingLocked(g, pm.id)
			}
		}
		if c.idleLocked(g) {
			// Nothing of an empty group lives only here: its state and
			// offsets are in the metastore, read back when it is used
			// again. Keeping it would let any client grow this map with
			// group ids.
			c.forgetLocked(g)
			continue
		}
		if !c.dueLocked(g, now) {
			continue
		}
		// Acting on time is acting for the group: a coordinator that was
		// paused may have been replaced meanwhile, without its Owns having
		// noticed yet. The stored revision tells.
		if !c.confirmLocked(ctx, g) {
			continue
		}
		c.expireLocked(ctx, g, now)
	}
	expireOffsets := false
	switch {
	case c.nextExpiry.IsZero():
		c.nextExpiry = now.Add(expiryInterval)
	case now.After(c.nextExpiry):
		c.nextExpiry = now.Add(expiryInterval)
		expireOffsets = true
	}
	c.mu.Unlock()
	if expireOffsets {
		if expired, err := c.store.ExpireGroupOffsets(ctx, now, c.cfg.OffsetsRetention); err != nil {
			c.logger.Warn("expiring group offsets", "err", err)
		} else if len(expired) > 0 {
			c.logger.Info("expired offsets of empty groups", "groups", expired)
		}
	}
}

// idleLocked reports whether g is empty with nothing under way: no members,
// no pending member ids, no write or read in progress.
func (c *Coordinator) idleLocked(g *group) bool {
	return g.state == StateEmpty && len(g.members) == 0 && len(g.pending) == 0 && g.busy == nil
}

// forgetLocked drops g from memory (the metastore keeps what is stored), with
// its pending member ids.
func (c *Coordinator) forgetLocked(g *group) {
	for id := range g.pending {
		c.removePendingLocked(g, id)
	}
	if c.groups[g.name] == g {
		delete(c.groups, g.name)
	}
}

// addPendingLocked records a member id handed out with MEMBER_ID_REQUIRED,
// forgetting the oldest pending id of any group if there are too many.
func (c *Coordinator) addPendingLocked(g *group, id string, expires time.Time) {
	for c.pending.Len() >= c.cfg.MaxPendingMembers {
		old := c.pending.Front().Value.(*pendingMember)
		c.logger.Debug("too many pending group members; forgetting the oldest", "group", old.group.name, "member", old.id)
		c.removePendingLocked(old.group, old.id)
	}
	g.pending[id] = c.pending.PushBack(&pendingMember{group: g, id: id, expires: expires})
}

// removePendingLocked forgets a pending member id of g, if it is one.
func (c *Coordinator) removePendingLocked(g *group, id string) {
	if e, ok := g.pending[id]; ok {
		c.pending.Remove(e)
		delete(g.pending, id)
	}
}

// dueLocked reports whether time has something to do to g: a session that
// ran out, or a join or sync phase past its deadline.
func (c *Coordinator) dueLocked(g *group, now time.Time) bool {
	if g.cg != nil {
		return c.consumerDueLocked(g, now)
	}
	for _, m := range g.members {
		if m.joinWait != nil && g.state == StatePreparingRebalance {
			continue
		}
		if now.After(m.deadline) {
			return true
		}
	}
	switch g.state {
	case StatePreparingRebalance:
		return !now.Before(g.joinDeadline) || c.allJoinedLocked(g) && !g.initialDelay
	case StateCompletingRebalance:
		return now.After(g.syncDeadline)
	}
	return false
}

// confirmLocked reports whether g's stored state is still the one this
// coordinator last wrote or read. If another coordinator wrote since, this
// one steps down for the group. c.mu is released during the read; a read
// that fails confirms nothing, and the next tick tries again.
func (c *Coordinator) confirmLocked(ctx context.Context, g *group) bool {
	busy := make(chan struct{})
	g.busy = busy
	c.mu.Unlock()
	meta, err := c.store.GetGroup(ctx, g.name)
	c.mu.Lock()
	g.busy = nil
	close(busy)
	if c.groups[g.name] != g {
		return false
	}
	switch {
	case errors.Is(err, metastore.ErrGroupNotFound):
		meta.Revision = 0
	case err != nil:
		c.logger.Warn("cannot confirm group ownership; not acting on its timers", "group", g.name, "err", err)
		return false
	}
	if meta.Revision != g.revision {
		c.logger.Warn("group state was written by another coordinator; stepping down for the group",
			"group", g.name, "revision", g.revision, "stored_revision", meta.Revision, "stored_generation", meta.Generation)
		c.stepDownLocked(g, ErrNotCoordinator)
		return false
	}
	return true
}

// stepDownLocked forgets g: its waiting members are told why, and the next
// request for the group reads it back from the metastore (if this broker
// still owns it), so what another coordinator stored is never overwritten
// with this one's state.
func (c *Coordinator) stepDownLocked(g *group, why error) {
	c.failWaitersLocked(g, why)
	c.forgetLocked(g)
}

// storeLocked writes g's state as meta by compare-and-swap on the revision
// this coordinator last saw. c.mu is released during the write, with g busy.
// If the write fails, this coordinator steps down for the group: on a
// conflict someone else wrote it; on any other error the write may or may
// not have happened, and only the store can say which state is current.
func (c *Coordinator) storeLocked(ctx context.Context, g *group) error {
	meta := c.snapshotLocked(g)
	busy := make(chan struct{})
	g.busy = busy
	c.mu.Unlock()
	stored, err := c.store.PutGroup(ctx, meta, meta.Revision)
	c.mu.Lock()
	g.busy = nil
	close(busy)
	if c.groups[g.name] != g {
		// Dropped meanwhile (the coordinator stopped); its waiters were told.
		if err == nil {
			err = errors.New("the group was dropped during the write")
		}
		return fmt.Errorf("%w: storing group %q: %v", ErrCoordinatorNotAvailable, g.name, err)
	}
	switch {
	case errors.Is(err, metastore.ErrGroupTypeConflict):
		// A share group took the id since this one was read: the group
		// was never stored, and is forgotten with the answer Kafka gives
		// for a share group's id (not NOT_COORDINATOR, which clients
		// would retry forever).
		why := shareGroupIDError(g)
		c.logger.Info("group id is a share group's; forgetting the group", "group", g.name)
		c.stepDownLocked(g, why)
		return fmt.Errorf("storing group %q: %w", g.name, why)
	case errors.Is(err, metastore.ErrGroupTooLarge):
		// Nothing was written: what is stored is the group as it was
		// before this change, read back at the next request. A consumer
		// group's heartbeat that made it too large (a subscription only
		// a hostile client sends) is refused, not retried.
		c.logger.Warn("group state too large to store; dropping the change", "group", g.name, "err", err)
		c.stepDownLocked(g, ErrCoordinatorNotAvailable)
		if meta.Consumer != nil {
			return fmt.Errorf("%w: storing group %q: %v", ErrInvalidRequest, g.name, err)
		}
		return fmt.Errorf("%w: storing group %q: %v", ErrCoordinatorNotAvailable, g.name, err)
	case errors.Is(err, metastore.ErrConflict):
		c.logger.Warn("group state was written by another coordinator; stepping down for the group",
			"group", g.name, "generation", meta.Generation, "stored_generation", stored.Generation, "err", err)
		c.stepDownLocked(g, ErrNotCoordinator)
		return fmt.Errorf("%w: storing group %q: %v", ErrNotCoordinator, g.name, err)
	case err != nil:
		c.logger.Warn("cannot store group state; dropping it until it is read back", "group", g.name, "err", err)
		c.stepDownLocked(g, ErrCoordinatorNotAvailable)
		return fmt.Errorf("%w: storing group %q: %v", ErrCoordinatorNotAvailable, g.name, err)
	}
	g.revision = stored.Revision
	return nil
}

// expireLocked applies session expiry and deadlines to g, storing what must
// be stored before anyone learns of it.
func (c *Coordinator) expireLocked(ctx context.Context, g *group, now time.Time) {
	if g.cg != nil {
		c.consumerExpireLocked(ctx, g, now)
		return
	}
	var gone []string
	for id, m := range g.members {
		// A member waiting for its join response is not heartbeating: the
		// join deadline decides for it.
		if m.joinWait != nil && g.state == StatePreparingRebalance {
			continue
		}
		if now.After(m.deadline) {
			gone = append(gone, id)
		}
	}
	for _, id := range gone {
		c.logger.Info("group member's session expired", "group", g.name, "member", id)
		c.removeMemberLocked(g, id, ErrUnknownMemberID)
	}
	if len(gone) > 0 && g.state != StatePreparingRebalance && g.state != StateEmpty {
		c.prepareRebalanceLocked(g, now)
	}
	switch g.state {
	case StatePreparingRebalance:
		if !now.Before(g.joinDeadline) || c.allJoinedLocked(g) && !g.initialDelay {
			c.completeJoinLocked(ctx, g, now)
			return
		}
	case StateCompletingRebalance:
		if now.After(g.syncDeadline) {
			// The leader never sent the assignment: start over with whoever
			// joins again.
			c.logger.Info("group leader did not sync in time; rebalancing", "group", g.name, "leader", g.leader)
			c.prepareRebalanceLocked(g, now)
		}
	}
	if len(gone) > 0 && len(g.members) == 0 && g.state == StateEmpty {
		_ = c.storeLocked(ctx, g) // a failure steps down, which is all there is to do
	}
}

// maxMemberIDPrefix bounds the client id that starts a member id: member
// ids travel as int16-length strings in the older versions of the group
// APIs, and are stored with every group state.
const maxMemberIDPrefix = 255

func newMemberID(clientID string) string {
	if len(clientID) > maxMemberIDPrefix {
		// Cut at a rune boundary, so the id survives the metastore's JSON.
		cut := maxMemberIDPrefix
		for cut > 0 && !utf8.RuneStart(clientID[cut]) {
			cut--
		}
		clientID = clientID[:cut]
	}
	var b [16]byte
	rand.Read(b[:])
	return clientID + "-" + hex.EncodeToString(b[:4]) + "-" + hex.EncodeToString(b[4:6]) + "-" + hex.EncodeToString(b[6:8]) + "-" + hex.EncodeToString(b[8:10]) + "-" + hex.EncodeToString(b[10:])
}

// groupLocked returns the group, reading it from the metastore if this
// coordinator does not hold it yet. c.mu is released during the read.
func (c *Coordinator) groupLocked(ctx context.Context, name string, create bool) (*group, error) {
	if err := metastore.CheckGroupName(name); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidGroupID, err)
	}
	for {
		if !c.cfg.Owns(name) {
			return nil, ErrNotCoordinator
		}
		g := c.groups[name]
		if g == nil {
			break
		}
		if g.busy == nil {
			return g, nil
		}
		busy := g.busy
		c.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			c.mu.Lock()
			return nil, fmt.Errorf("%w: waiting for group %q: %v", ErrCoordinatorNotAvailable, name, ctx.Err())
		}
		c.mu.Lock()
	}
	c.mu.Unlock()
	meta, err := c.store.GetGroup(ctx, name)
	var sessionTimeout time.Duration
	if err == nil && meta.Consumer != nil && len(meta.Consumer.Members) > 0 {
		// The members' sessions restart with the group's own timeout.
		sessionTimeout, _ = c.consumerTimeouts(ctx, name)
	}
	c.mu.Lock()
	if g := c.groups[name]; g != nil { // loaded by someone else meanwhile
		return c.groupLocked(ctx, name, create)
	}
	switch {
	case errors.Is(err, metastore.ErrGroupNotFound):
		if !create {
			return nil, nil
		}
		// A group id names one kind of group. This read answers the
		// common case; PutGroup's compare decides a race with a share
		// group being created.
		c.mu.Unlock()
		_, serr := c.store.GetShareGroup(ctx, name)
		c.mu.Lock()
		switch {
		case serr == nil:
			return nil, fmt.Errorf("%w: %q is a share group", errShareGroupID, name)
		case !errors.Is(serr, metastore.ErrGroupNotFound):
			return nil, fmt.Errorf("%w: reading share group %q: %v", ErrCoordinatorNotAvailable, name, serr)
		}
		if g := c.groups[name]; g != nil { // created by someone else meanwhile
			return c.groupLocked(ctx, name, create)
		}
		meta = metastore.GroupMeta{Group: name, State: StateEmpty}
	case err != nil:
		return nil, fmt.Errorf("%w: reading group %q: %v", ErrCoordinatorNotAvailable, name, err)
	}
	g := c.restore(meta, sessionTimeout)
	c.groups[name] = g
	return g, nil
}

// restore builds the in-memory group from its stored state: a stable
// generation continues with the same members, their sessions starting now
// (a consumer group's members' of consumerSessionTimeout; zero: the
// broker's).
func (c *Coordinator) restore(meta metastore.GroupMeta, consumerSessionTimeout time.Duration) *group {
	now := c.cfg.Now()
	g := &group{
		name: meta.Group, state: StateEmpty, protocolType: meta.ProtocolType, protocol: meta.Protocol,
		generation: meta.Generation, leader: meta.Leader, members: map[string]*member{},
		pending: map[string]*list.Element{}, revision: meta.Revision, stored: map[partitionKey]storedOffset{},
	}
	for _, sm := range meta.Members {
		m := &member{
			id: sm.MemberID, instanceID: sm.InstanceID, clientID: sm.ClientID, clientHost: sm.ClientHost,
			sessionTimeout:   time.Duration(sm.SessionTimeoutMs) * time.Millisecond,
			rebalanceTimeout: time.Duration(sm.RebalanceTimeoutMs) * time.Millisecond,
			protocolType:     meta.ProtocolType, protocols: sm.Protocols, assignment: sm.Assignment,
		}
		m.deadline = now.Add(m.sessionTimeout)
		g.members[m.id] = m
	}
	if len(g.members) > 0 {
		g.state = StateStable
		if meta.State != StateStable {
			// A generation stored when its join phase ended, before the
			// leader's assignment: the members have none to carry on
			// with, so they join again.
			c.prepareRebalanceLocked(g, now)
			g.initialDelay = false
		}
		c.logger.Info("group taken over from the metastore", "group", g.name, "generation", g.generation, "state", g.state, "members", len(g.members))
	}
	if meta.Consumer != nil {
		c.restoreConsumer(g, meta, consumerSessionTimeout)
	}
	return g
}

// JoinRequest is a JoinGroup.
type JoinRequest struct {
	Group, MemberID, InstanceID, ClientID, ClientHost string
	ProtocolType                                      string
	Protocols                                         []metastore.GroupProtocol
	SessionTimeout, RebalanceTimeout                  time.Duration
	// RequireKnownMemberID: JoinGroup v4+ clients understand
	// MEMBER_ID_REQUIRED.
	RequireKnownMemberID bool
}

// JoinedMember is a member as the leader sees it: its metadata for the
// chosen protocol.
type JoinedMember struct {
	MemberID, InstanceID string
	Metadata             []byte
}

// JoinResult ends a join phase for one member.
type JoinResult struct {
	Generation   int32
	ProtocolType string
	Protocol     string
	Leader       string
	MemberID     string
	Members      []JoinedMember // to the leader only
}

// Join adds or refreshes a member and waits for the join phase to end.
func (c *Coordinator) Join(ctx context.Context, req JoinRequest) (JoinResult, error) {
	if req.SessionTimeout < c.cfg.MinSessionTimeout || req.SessionTimeout > c.cfg.MaxSessionTimeout {
		return JoinResult{}, fmt.Errorf("%w: %v is outside [%v, %v] (group.min/max.session.timeout.ms)",
			ErrInvalidSessionTimeout, req.SessionTimeout, c.cfg.MinSessionTimeout, c.cfg.MaxSessionTimeout)
	}
	if req.RebalanceTimeout <= 0 {
		req.RebalanceTimeout = req.SessionTimeout
	}
	if len(req.Protocols) == 0 || req.ProtocolType == "" {
		return JoinResult{}, fmt.Errorf("%w: no protocols", ErrInconsistentProtocol)
	}
	c.mu.Lock()
	g, err := c.groupLocked(ctx, req.Group, true)
	if err != nil {
		c.mu.Unlock()
		if errors.Is(err, errShareGroupID) {
			// Kafka's answer to a JoinGroup on a share group's id.
			err = fmt.Errorf("%w: %v", ErrInconsistentProtocol, err)
		}
		return JoinResult{}, err
	}
	now := c.cfg.Now()
	if g.cg != nil {
		if len(g.cg.members) > 0 {
			c.mu.Unlock()
			return JoinResult{}, fmt.Errorf("%w: %q is a consumer group with members", ErrInconsistentProtocol, req.Group)
		}
		// An empty consumer group becomes a classic group again.
		g.cg, g.state = nil, StateEmpty
		c.logger.Info("group converted to the classic protocol", "group", g.name)
	}
	if len(g.members) > 0 && (g.protocolType != req.ProtocolType || !c.supportsLocked(g, req.Protocols, "")) {
		c.mu.Unlock()
		return JoinResult{}, fmt.Errorf("%w: the group's members use protocol type %q and protocols the member does not offer", ErrInconsistentProtocol, g.protocolType)
	}
	memberID := req.MemberID
	if memberID == "" {
		replaces := req.InstanceID != "" && slices.ContainsFunc(slices.Collect(maps.Values(g.members)),
			func(m *member) bool { return m.instanceID == req.InstanceID })
		// A new member counts with the pending ones, each of which joins
		// as a member within a round trip.
		if n := len(g.members) + len(g.pending); !replaces && n >= c.cfg.MaxSize {
			c.mu.Unlock()
			return JoinResult{}, fmt.Errorf("%w: group %q has %d members and pending members (group.max.size=%d)",
				ErrGroupMaxSizeReached, req.Group, n, c.cfg.MaxSize)
		}
		memberID = newMemberID(req.ClientID)
		if req.InstanceID != "" {
			// A static member coming back under a new member id takes the
			// old one's place; the old id is fenced.
			for id, m := range g.members {
				if m.instanceID == req.InstanceID {
					c.removeMemberLocked(g, id, ErrFencedInstanceID)
				}
			}
		} else if req.RequireKnownMemberID {
			c.addPendingLocked(g, memberID, now.Add(req.SessionTimeout))
			c.mu.Unlock()
			return JoinResult{}, &MemberIDRequiredError{MemberID: memberID}
		}
	} else if g.members[memberID] == nil {
		if _, ok := g.pending[memberID]; !ok {
			c.mu.Unlock()
			return JoinResult{}, fmt.Errorf("%w: %q in group %q", ErrUnknownMemberID, memberID, req.Group)
		}
	}
	c.removePendingLocked(g, memberID)
	m := g.members[memberID]
	if m == nil {
		m = &member{id: memberID}
		g.members[memberID] = m
	}
	m.instanceID, m.clientID, m.clientHost = req.InstanceID, req.ClientID, req.ClientHost
	m.sessionTimeout, m.rebalanceTimeout = req.SessionTimeout, req.RebalanceTimeout
	m.protocolType, m.protocols = req.ProtocolType, req.Protocols
	m.deadline = now.Add(req.SessionTimeout)
	if m.joinWait != nil {
		// The same member joining twice (a retry): the earlier call gets
		// the same outcome as this one.
		close(m.joinWait)
	}
	wait := make(chan joinOutcome, 1)
	m.joinWait = wait
	g.protocolType = req.ProtocolType
	if g.state != StatePreparingRebalance {
		c.prepareRebalanceLocked(g, now)
	}
	if !g.initialDelay && c.allJoinedLocked(g) {
		c.completeJoinLocked(ctx, g, now)
	}
	c.mu.Unlock()

	select {
	case out, ok := <-wait:
		if !ok {
			return JoinResult{}, fmt.Errorf("%w: the member joined again meanwhile", ErrRebalanceInProgress)
		}
		return out.res, out.err
	case <-ctx.Done():
		return JoinResult{}, ctx.Err()
	}
}

// supportsLocked reports whether protocols share a name with every member
// of g (except skip).
func (c *Coordinator) supportsLocked(g *group, protocols []metastore.GroupProtocol, skip string) bool {
	for id, m := range g.members {
		if id == skip {
			continue
		}
		shared := false
		for _, p := range protocols {
			if slices.ContainsFunc(m.protocols, func(q metastore.GroupProtocol) bool { return q.Name == p.Name }) {
				shared = true
				break
			}
		}
		if !shared {
			return false
		}
	}
	return true
}

func (c *Coordinator) prepareRebalanceLocked(g *group, now time.Time) {
	if g.state == StateCompletingRebalance {
		// Members waiting for an assignment of the generation being
		// replaced: they must join again.
		for _, m := range g.members {
			if m.syncWait != nil {
				m.syncWait <- syncOutcome{err: ErrRebalanceInProgress}
				m.syncWait = nil
			}
		}
	}
	timeout := time.Duration(0)
	for _, m := range g.members {
		timeout = max(timeout, m.rebalanceTimeout)
	}
	g.initialDelay = g.state == StateEmpty && c.cfg.InitialRebalanceDelay > 0
	if g.initialDelay {
		timeout = min(timeout, c.cfg.InitialRebalanceDelay)
	}
	g.state = StatePreparingRebalance
	g.joinDeadline = now.Add(timeout)
}

func (c *Coordinator) allJoinedLocked(g *group) bool {
	if len(g.pending) > 0 {
		return false
	}
	for _, m := range g.members {
		if m.joinWait == nil {
			return false
		}
	}
	return true
}

// completeJoinLocked ends the join phase: members that did not join again
// are dropped, a new generation starts and is stored, and then each waiting
// member gets its answer. A generation is handed out only once it is stored
// by compare-and-swap on the state it follows, so it is never handed out
// twice: if the write fails, this coordinator steps down for the group and
// the waiting members are told to find the coordinator again.
func (c *Coordinator) completeJoinLocked(ctx context.Context, g *group, now time.Time) {
	for id, m := range g.members {
		if m.joinWait == nil {
			c.logger.Info("group member did not join the new generation", "group", g.name, "member", id)
			c.removeMemberLocked(g, id, ErrUnknownMemberID)
		}
	}
	g.generation++
	g.initialDelay = false
	if len(g.members) == 0 {
		g.state, g.protocol, g.leader = StateEmpty, "", ""
		_ = c.storeLocked(ctx, g) // a failure steps down, which is all there is to do
		return
	}
	g.protocol = c.chooseProtocolLocked(g)
	if g.members[g.leader] == nil {
		ids := make([]string, 0, len(g.members))
		for id := range g.members {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		g.leader = ids[0]
	}
	g.state = StateCompletingRebalance
	var sessions time.Duration
	for _, m := range g.members {
		sessions = max(sessions, m.rebalanceTimeout)
	}
	g.syncDeadline = now.Add(sessions)
	for _, m := range g.members {
		m.assignment = nil
	}
	if err := c.storeLocked(ctx, g); err != nil {
		return
	}
	var all []JoinedMember
	for _, m := range g.members {
		all = append(all, JoinedMember{MemberID: m.id, InstanceID: m.instanceID, Metadata: protocolMetadata(m, g.protocol)})
	}
	slices.SortFunc(all, func(a, b JoinedMember) int { return cmp.Compare(a.MemberID, b.MemberID) })
	for _, m := range g.members {
		res := JoinResult{Generation: g.generation, ProtocolType: g.protocolType, Protocol: g.protocol, Leader: g.leader, MemberID: m.id}
		if m.id == g.leader {
			res.Members = all
		}
		m.deadline = now.Add(m.sessionTimeout)
		m.joinWait <- joinOutcome{res: res}
		m.joinWait = nil
	}
	c.logger.Info("group rebalanced", "group", g.name, "generation", g.generation, "protocol", g.protocol, "leader", g.leader, "members", len(g.members))
}

func protocolMetadata(m *member, name string) []byte {
	for _, p := range m.protocols {
		if p.Name == name {
			return p.Metadata
		}
	}
	return nil
}

// chooseProtocolLocked picks the protocol every member supports that most
// members prefer, as Kafka's vote does.
func (c *Coordinator) chooseProtocolLocked(g *group) string {
	var candidates []string
	for _, m := range g.members {
		for _, p := range m.protocols {
			if !slices.Contains(candidates, p.Name) && c.supportsLocked(g, []metastore.GroupProtocol{p}, "") {
				candidates = append(candidates, p.Name)
			}
		}
	}
	slices.Sort(candidates)
	best, bestVotes := "", -1
	for _, cand := range candidates {
		votes := 0
		for _, m := range g.members {
			for _, p := range m.protocols {
				if slices.Contains(candidates, p.Name) {
					if p.Name == cand {
						votes++
					}
					break // a member votes for its first supported protocol
				}
			}
		}
		if votes > bestVotes {
			best, bestVotes = cand, votes
		}
	}
	return best
}

// removeMemberLocked drops a member, answering whatever it waits for.
func (c *Coordinator) removeMemberLocked(g *group, id string, why error) {
	m := g.members[id]
	if m == nil {
		return
	}
	if m.joinWait != nil {
		m.joinWait <- joinOutcome{err: why}
		m.joinWait = nil
	}
	if m.syncWait != nil {
		m.syncWait <- syncOutcome{err: why}
		m.syncWait = nil
	}
	delete(g.members, id)
	if len(g.members) == 0 && g.state != StatePreparingRebalance {
		g.state, g.protocol, g.leader = StateEmpty, "", ""
	}
}

func (c *Coordinator) failWaitersLocked(g *group, why error) {
	for _, m := range g.members {
		if m.joinWait != nil {
			m.joinWait <- joinOutcome{err: why}
			m.joinWait = nil
		}
		if m.syncWait != nil {
			m.syncWait <- syncOutcome{err: why}
			m.syncWait = nil
		}
	}
}

// SyncRequest is a SyncGroup: the leader brings every member's assignment.
type SyncRequest struct {
	Group, MemberID, InstanceID string
	Generation                  int32
	Assignments                 map[string][]byte // leader only
}

// Sync returns the member's assignment for the generation, waiting for the
// leader's if need be.
func (c *Coordinator) Sync(ctx context.Context, req SyncRequest) ([]byte, error) {
	c.mu.Lock()
	g, m, err := c.memberLocked(ctx, req.Group, req.MemberID, req.Generation)
	if err != nil {
		c.mu.Unlock()
		return nil, err
	}
	switch g.state {
	case StatePreparingRebalance:
		c.mu.Unlock()
		return nil, ErrRebalanceInProgress
	case StateStable:
		a := m.assignment
		c.mu.Unlock()
		return a, nil
	case StateCompletingRebalance:
	default:
		c.mu.Unlock()
		return nil, ErrUnknownMemberID
	}
	m.deadline = c.cfg.Now().Add(m.sessionTimeout)
	if req.MemberID != g.leader {
		wait := make(chan syncOutcome, 1)
		m.syncWait = wait
		c.mu.Unlock()
		select {
		case out := <-wait:
			return out.assignment, out.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	for id, mm := range g.members {
		mm.assignment = req.Assignments[id]
	}
	g.state = StateStable
	defer c.mu.Unlock()
	// Written before anyone learns its assignment, so that a coordinator
	// taking over hands out the same assignments.
	if err := c.storeLocked(ctx, g); err != nil {
		return nil, err
	}
	for _, mm := range g.members {
		if mm.syncWait != nil {
			mm.syncWait <- syncOutcome{assignment: mm.assignment}
			mm.syncWait = nil
		}
	}
	return m.assignment, nil
}

// memberLocked finds a member of the group's current generation.
func (c *Coordinator) memberLocked(ctx context.Context, groupName, memberID string, generation int32) (*group, *member, error) {
	g, err := c.groupLocked(ctx, groupName, false)
	if err != nil {
		return nil, nil, err
	}
	if g == nil {
		return nil, nil, fmt.Errorf("%w: group %q has no members", ErrUnknownMemberID, groupName)
	}
	m := g.members[memberID]
	if m == nil {
		return nil, nil, fmt.Errorf("%w: %q in group %q", ErrUnknownMemberID, memberID, groupName)
	}
	if generation != g.generation {
		return nil, nil, fmt.Errorf("%w: %d, the group is at %d", ErrIllegalGeneration, generation, g.generation)
	}
	return g, m, nil
}

// Heartbeat keeps a member's session alive and tells it whether to rejoin.
func (c *Coordinator) Heartbeat(ctx context.Context, groupName, memberID string, generation int32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, m, err := c.memberLocked(ctx, groupName, memberID, generation)
	if err != nil {
		return err
	}
	m.deadline = c.cfg.Now().Add(m.sessionTimeout)
	if g.state == StatePreparingRebalance {
		return ErrRebalanceInProgress
	}
	return nil
}

// Leave removes members (by member id, or by instance id for static
// members); the group rebalances without them.
func (c *Coordinator) Leave(ctx context.Context, groupName string, memberIDs, instanceIDs []string) []error {
	c.mu.Lock()
	g, err := c.groupLocked(ctx, groupName, false)
	errs := make([]error, len(memberIDs))
	if err != nil || g == nil {
		c.mu.Unlock()
		for i := range errs {
			errs[i] = cmpErr(err, ErrUnknownMemberID)
		}
		return errs
	}
	removed := false
	for i, id := range memberIDs {
		if id == "" && i < len(instanceIDs) && instanceIDs[i] != "" {
			for mid, m := range g.members {
				if m.instanceID == instanceIDs[i] {
					id = mid
				}
			}
		}
		if g.members[id] == nil {
			errs[i] = fmt.Errorf("%w: %q", ErrUnknownMemberID, id)
			continue
		}
		c.removeMemberLocked(g, id, ErrUnknownMemberID)
		removed = true
		c.logger.Info("group member left", "group", g.name, "member", id)
	}
	if removed {
		now := c.cfg.Now()
		switch {
		case g.state == StateEmpty:
			g.generation++
			_ = c.storeLocked(ctx, g) // a failure steps down, which is all there is to do
		case g.state == StatePreparingRebalance:
			if c.allJoinedLocked(g) && !g.initialDelay {
				c.completeJoinLocked(ctx, g, now)
			}
		default:
			c.prepareRebalanceLocked(g, now)
		}
	}
	c.mu.Unlock()
	return errs
}

func cmpErr(err, fallback error) error {
	if err != nil {
		return err
	}
	return fallback
}

// CommitOffsets stores offsets for the group. A member commits for its
// generation; a client outside the group (generation < 0, no member id)
// may commit only while the group has no members.
//
// An offset whose metadata is longer than MaxMetadataBytes, or whose
// partition does not exist, is refused on its own, as Kafka refuses it, and
// the others are committed: the error is then an *OffsetErrors naming
// what happened to each. An error of the group (not a member, another
// generation, ...) refuses every offset.
func (c *Coordinator) CommitOffsets(ctx context.Context, groupName, memberID string, generation int32, offsets []metastore.OffsetCommit) error {
	return c.commitChecked(offsets, func(valid []metastore.OffsetCommit) error {
		return c.commitValid(ctx, groupName, memberID, generation, valid)
	})
}

// commitChecked refuses the offsets whose metadata is too long or whose
// partition does not exist, and commits the others with commit: the
// answer of CommitOffsets and CommitTxnOffsets.
func (c *Coordinator) commitChecked(offsets []metastore.OffsetCommit, commit func(valid []metastore.OffsetCommit) error) error {
	var refused []error
	valid := make([]metastore.OffsetCommit, 0, len(offsets))
	for i, oc := range offsets {
		var err error
		switch {
		case len(oc.Metadata) > max(c.cfg.MaxMetadataBytes, 0):
			err = fmt.Errorf("%w: %s-%d: %d bytes of metadata (offset.metadata.max.bytes=%d)",
				ErrOffsetMetadataTooLarge, oc.Topic, oc.Partition, len(oc.Metadata), max(c.cfg.MaxMetadataBytes, 0))
		case c.cfg.PartitionExists != nil && !c.cfg.PartitionExists(oc.Topic, oc.Partition):
			err = fmt.Errorf("%w: %s-%d", ErrUnknownTopicOrPartition, oc.Topic, oc.Partition)
		}
		if err != nil {
			if refused == nil {
				refused = make([]error, len(offsets))
			}
			refused[i] = err
			continue
		}
		valid = append(valid, oc)
	}
	if refused == nil {
		return commit(valid)
	}
	// Nothing left to commit: the group is not even looked at, so refused
	// commits cost no metastore read.
	var err error
	if len(valid) > 0 {
		err = commit(valid)
	}
	for i := range refused {
		if refused[i] == nil {
			refused[i] = err
		}
	}
	return &OffsetErrors{Errs: refused}
}

// commitValid commits offsets that passed the per-offset checks, all or
// none as far as the group's checks go.
func (c *Coordinator) commitValid(ctx context.Context, groupName, memberID string, generation int32, offsets []metastore.OffsetCommit) error {
	c.mu.Lock()
	var gen int32 = -1
	var g *group
	if generation < 0 && memberID == "" {
		// A group that is not known here is not created for a commit from
		// outside it: its offsets are all there is of it.
		var err error
		if g, err = c.groupLocked(ctx, groupName, false); err != nil {
			c.mu.Unlock()
			return err
		}
		if g != nil && g.size() > 0 {
			c.mu.Unlock()
			return fmt.Errorf("%w: group %q has members; commit as one of them", ErrIllegalGeneration, groupName)
		}
	} else if cg, err := c.groupLocked(ctx, groupName, false); err == nil && cg != nil && cg.cg != nil {
		if err := checkConsumerCommitLocked(cg, memberID, generation); err != nil {
			c.mu.Unlock()
			return err
		}
		g, gen = cg, generation
	} else {
		var m *member
		var err error
		if g, m, err = c.memberLocked(ctx, groupName, memberID, generation); err != nil {
			c.mu.Unlock()
			return err
		}
		// During PreparingRebalance the current generation may still commit,
		// as Kafka allows: a member commits what it read before giving its
		// partitions up. Between join and sync it has no assignment yet.
		if g.state == StateCompletingRebalance {
			c.mu.Unlock()
			return ErrRebalanceInProgress
		}
		m.deadline = c.cfg.Now().Add(m.sessionTimeout)
		gen = generation
	}
	consumer := g != nil && g.cg != nil
	changed := offsets
	var txnSeq uint64
	if g != nil {
		txnSeq = g.txnSeq
		changed = nil
		for _, oc := range offsets {
			if cur, ok := g.stored[partitionKey{oc.Topic, oc.Partition}]; !ok || cur != (storedOffset{oc.Offset, oc.LeaderEpoch, oc.Metadata}) {
				changed = append(changed, oc)
			}
		}
	}
	c.mu.Unlock()
	if len(changed) == 0 {
		return nil
	}
	now := c.cfg.Now()
	for i := range changed {
		if changed[i].CommitTime.IsZero() {
			changed[i].CommitTime = now
		}
	}
	err := c.store.CommitOffsets(ctx, groupName, memberID, gen, changed)
	c.mu.Lock()
	if g != nil && c.groups[groupName] == g {
		for _, oc := range changed {
			k := partitionKey{oc.Topic, oc.Partition}
			// A transactional commit of the group meanwhile may have made
			// a pending offset of the partition that completes after this
			// one was written: what is stored is then not known.
			if err == nil && len(oc.Metadata) <= maxCachedMetadata && g.txnSeq == txnSeq {
				g.stored[k] = storedOffset{oc.Offset, oc.LeaderEpoch, oc.Metadata}
			} else {
				// Perhaps partly written, or too long to keep: not known.
				delete(g.stored, k)
			}
		}
	}
	c.mu.Unlock()
	// The stored group is the judge: this coordinator's view of the
	// generation may be stale (another coordinator took the group over).
	if errors.Is(err, metastore.ErrUnknownMember) {
		return fmt.Errorf("%w: not a member of the stored generation: %v", ErrUnknownMemberID, err)
	}
	if errors.Is(err, metastore.ErrGroupTypeConflict) {
		// Kafka's answer to a commit under a share group's id.
		return fmt.Errorf("%w: %q is a share group: %v", ErrGroupIDNotFound, groupName, err)
	}
	if errors.Is(err, metastore.ErrGenerationMismatch) && consumer {
		return fmt.Errorf("%w: the stored member epoch moved on: %v", ErrStaleMemberEpoch, err)
	}
	if errors.Is(err, metastore.ErrGenerationMismatch) {
		return fmt.Errorf("%w: the stored generation moved on: %v", ErrIllegalGeneration, err)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCoordinatorNotAvailable, err)
	}
	return nil
}

// FetchOffsets returns the group's committed offsets.
func (c *Coordinator) FetchOffsets(ctx context.Context, groupName string) ([]metastore.OffsetCommit, error) {
	if err := metastore.CheckGroupName(groupName); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidGroupID, err)
	}
	if !c.cfg.Owns(groupName) {
		return nil, ErrNotCoordinator
	}
	offs, err := c.store.FetchOffsets(ctx, groupName)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCoordinatorNotAvailable, err)
	}
	return offs, nil
}

// MemberDescription is a member as DescribeGroups reports it.
type MemberDescription struct {
	MemberID, InstanceID, ClientID, ClientHost string
	Metadata, Assignment                       []byte
}

// Description is a group as DescribeGroups reports it.
type Description struct {
	Group, State, ProtocolType, Protocol string
	Generation                           int32
	Members                              []MemberDescription
}

// Describe returns the group's state and members; a group this coordinator
// has never seen is Dead, as Kafka reports it.
func (c *Coordinator) Describe(ctx context.Context, groupName string) (Description, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, err := c.groupLocked(ctx, groupName, false)
	if err != nil {
		return Description{}, err
	}
	if g == nil {
		// No state stored: a group that only has offsets (committed from
		// outside it) exists, empty, as Kafka reports it.
		c.mu.Unlock()
		offs, err := c.store.FetchOffsets(ctx, groupName)
		c.mu.Lock()
		if err != nil {
			return Description{}, fmt.Errorf("%w: %v", ErrCoordinatorNotAvailable, err)
		}
		if len(offs) > 0 {
			return Description{Group: groupName, State: StateEmpty}, nil
		}
		return Description{Group: groupName, State: StateDead}, nil
	}
	if g.cg != nil {
		// As Kafka answers: DescribeGroups describes classic groups.
		return Description{Group: groupName, State: StateDead}, fmt.Errorf("%w: %q is a consumer group", ErrGroupIDNotFound, groupName)
	}
	d := Description{Group: g.name, State: g.state, ProtocolType: g.protocolType, Protocol: g.protocol, Generation: g.generation}
	for _, m := range g.members {
		d.Members = append(d.Members, MemberDescription{
			MemberID: m.id, InstanceID: m.instanceID, ClientID: m.clientID, ClientHost: m.clientHost,
			Metadata: protocolMetadata(m, g.protocol), Assignment: m.assignment,
		})
	}
	slices.SortFunc(d.Members, func(a, b MemberDescription) int { return cmp.Compare(a.MemberID, b.MemberID) })
	return d, nil
}

// Summary is a group as ListGroups reports it.
type Summary struct {
	Group, ProtocolType, State string
	// Type is "classic" or "consumer" (metastore.GroupType*).
	Type string
}

// List returns the groups this broker coordinates: stored ones, and live
// ones not stored yet. Each broker lists its own, as Kafka's do, so a
// client asking every broker sees each group once.
func (c *Coordinator) List(ctx context.Context) ([]Summary, error) {
	stored, err := c.store.ListGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCoordinatorNotAvailable, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[string]bool{}
	var out []Summary
	for name, g := range c.groups {
		seen[name] = true
		typ := metastore.GroupTypeClassic
		if g.cg != nil {
			typ = metastore.GroupTypeConsumer
		}
		out = append(out, Summary{Group: name, ProtocolType: g.protocolType, State: g.state, Type: typ})
	}
	for _, m := range stored {
		if seen[m.Group] || !c.cfg.Owns(m.Group) {
			continue
		}
		state := m.State
		if state == "" || len(m.Members) == 0 && m.Consumer == nil || m.Consumer != nil && len(m.Consumer.Members) == 0 {
			state = StateEmpty
		}
		out = append(out, Summary{Group: m.Group, ProtocolType: m.ProtocolType, State: state, Type: m.Type()})
	}
	slices.SortFunc(out, func(a, b Summary) int { return cmp.Compare(a.Group, b.Group) })
	return out, nil
}

// Delete removes an empty group and its offsets.
func (c *Coordinator) Delete(ctx context.Context, groupName string) error {
	c.mu.Lock()
	g, err := c.groupLocked(ctx, groupName, false)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	if g != nil && g.size() > 0 {
		c.mu.Unlock()
		return fmt.Errorf("%w: %q has %d members", ErrGroupNotEmpty, groupName, g.size())
	}
	c.mu.Unlock()
	// Not in memory and no meta stored: a group that only ever committed
	// offsets, or has pending transactional offsets, still exists (the
	// store says whether it had any key). Pending transactional offsets go
	// with the group, as in Kafka.
	if err := c.store.DeleteGroup(ctx, groupName); g == nil && errors.Is(err, metastore.ErrGroupNotFound) {
		return fmt.Errorf("%w: %q", ErrGroupIDNotFound, groupName)
	} else if err != nil {
		return fmt.Errorf("%w: %v", ErrCoordinatorNotAvailable, err)
	}
	c.mu.Lock()
	if cur := c.groups[groupName]; cur == g {
		delete(c.groups, groupName)
	}
	c.mu.Unlock()
	return nil
}

// DeleteOffsets removes committed offsets of a topic's partitions. While the
// group has members the offsets may be in use, so it is refused.
func (c *Coordinator) DeleteOffsets(ctx context.Context, groupName, topic string, partitions []int32) error {
	c.mu.Lock()
	g, err := c.groupLocked(ctx, groupName, false)
	if err == nil && g != nil && g.size() > 0 {
		err = fmt.Errorf("%w: %q has members", ErrGroupSubscribedToTopic, groupName)
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	c.mu.Lock()
	if g != nil {
		for k := range g.stored {
			if k.topic == topic && (len(partitions) == 0 || slices.Contains(partitions, k.partition)) {
				delete(g.stored, k)
			}
		}
	}
	c.mu.Unlock()
	if err := c.store.DeleteOffsets(ctx, groupName, topic, partitions); err != nil {
		return fmt.Errorf("%w: %v", ErrCoordinatorNotAvailable, err)
	}
	return nil
}

func (c *Coordinator) snapshotLocked(g *group) metastore.GroupMeta {
	meta := metastore.GroupMeta{
		Group: g.name, ProtocolType: g.protocolType, Protocol: g.protocol, Generation: g.generation,
		Leader: g.leader, State: g.state, Revision: g.revision,
	}
	for _, m := range g.members {
		meta.Members = append(meta.Members, metastore.GroupMember{
			MemberID: m.id, InstanceID: m.instanceID, ClientID: m.clientID, ClientHost: m.clientHost,
			SessionTimeoutMs:   int32(m.sessionTimeout / time.Millisecond),
			RebalanceTimeoutMs: int32(m.rebalanceTimeout / time.Millisecond),
			Protocols:          m.protocols, Assignment: m.assignment,
		})
	}
	if g.cg != nil {
		meta.Generation, meta.Consumer, meta.Leader, meta.Protocol = g.cg.epoch, g.cg.snapshot(), "", g.cg.assignor
	}
	return meta
}
