// Package sharegroup coordinates KIP-932 share groups: members join and
// heartbeat with ShareGroupHeartbeat, and the coordinator hands each its
// share of the subscribed partitions (assign.go). There is no revocation:
// a new assignment takes effect at the member's next heartbeat. The group
// is stored in the metastore at every change, by compare-and-swap, so a
// broker taking over the coordinator role continues it with the same
// members and epochs. The share partitions themselves live with the
// partition leaders, not here.
package sharegroup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/strata-broker/strata/metastore"
)

// Errors, one per reaction Kafka asks of a share consumer.
var (
	ErrNotCoordinator          = errors.New("this broker is not the group's coordinator")
	ErrCoordinatorNotAvailable = errors.New("coordinator not available")
	ErrInvalidRequest          = errors.New("invalid request")
	ErrGroupIDNotFound         = errors.New("group id not found")
	ErrUnknownMemberID         = errors.New("unknown member id")
	ErrFencedMemberEpoch       = errors.New("fenced member epoch")
	ErrGroupMaxSizeReached     = errors.New("group max size reached")
	ErrNonEmptyGroup           = errors.New("group is not empty")
)

// Group states, as Kafka names a share group's.
const (
	StateEmpty  = "Empty"
	StateStable = "Stable"
)

// LeaveEpoch is the member epoch of a member leaving.
const LeaveEpoch = -1

// Store is what the coordinator keeps in the metastore.
type Store interface {
	GetShareGroup(ctx context.Context, group string) (metastore.ShareGroupMeta, error)
	PutShareGroup(ctx context.Context, meta metastore.ShareGroupMeta, prevRevision int64) (metastore.ShareGroupMeta, error)
	ListShareGroups(ctx context.Context) ([]metastore.ShareGroupMeta, error)
	DeleteShareGroup(ctx context.Context, group string, revision int64) error
}

// Config wires the coordinator to its broker.
type Config struct {
	Bounds Bounds
	// GroupConfigs returns a group's effective configs.
	GroupConfigs func(ctx context.Context, group string) (Configs, error)
	// Partitions says how many partitions a topic has (false: no such
	// topic).
	Partitions func(topic string) (int32, bool)
	// Owns says whether this broker coordinates the group now.
	Owns func(group string) bool
	// StoreTimeout bounds each metastore call (and group configs read);
	// zero means DefaultStoreTimeout. A group's lock is held across its
	// calls, so one that hangs would hold every request for the group.
	StoreTimeout time.Duration
	Now          func() time.Time
	Logger       *slog.Logger
}

// DefaultStoreTimeout is Config.StoreTimeout's default: below the
// clients' request timeouts, so that they are answered
// COORDINATOR_NOT_AVAILABLE rather than time out.
const DefaultStoreTimeout = 10 * time.Second

// Coordinator runs the share groups this broker coordinates.
type Coordinator struct {
	store Store
	cfg   Config

	mu     sync.Mutex
	groups map[string]*group
}

// group is a share group held in memory. mu is held across the group's
// metastore reads and writes, so requests for one group go one at a time;
// it is taken before Coordinator.mu, never while holding it.
type group struct {
	mu     sync.Mutex
	loaded bool
	gone   bool // dropped from the coordinator: look it up again
	meta   metastore.ShareGroupMeta
	// deadlines are the members' session ends; they live only here, a new
	// coordinator starting them afresh.
	deadlines map[string]time.Time
}

// New builds a coordinator.
func New(store Store, cfg Config) *Coordinator {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = DefaultStoreTimeout
	}
	return &Coordinator{store: store, cfg: cfg, groups: map[string]*group{}}
}

const tick = 250 * time.Millisecond

// Run calls Tick until ctx ends, then drops every group.
func (c *Coordinator) Run(ctx context.Context) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			c.mu.Lock()
			groups := slices.Collect(maps.Values(c.groups))
			clear(c.groups)
			c.mu.Unlock()
			// g.mu is taken without c.mu: dropLocked takes them in
			// that order.
			for _, g := range groups {
				g.mu.Lock()
				g.gone = true
				g.mu.Unlock()
			}
			return
		case <-t.C:
			c.Tick(ctx)
		}
	}
}

// Tick removes the members whose session ended, storing the group, and
// drops the groups this broker no longer owns or that are empty (the
// metastore has all of an empty group).
func (c *Coordinator) Tick(ctx context.Context) {
	now := c.cfg.Now()
	c.mu.Lock()
	groups := slices.Collect(maps.Values(c.groups))
	c.mu.Unlock()
	for _, g := range groups {
		g.mu.Lock()
		switch {
		case g.gone || !g.loaded:
		case !c.cfg.Owns(g.meta.Group):
			c.dropLocked(g)
		default:
			var expired []string
			for id, d := range g.deadlines {
				if now.After(d) {
					expired = append(expired, id)
				}
			}
			if len(expired) > 0 {
				c.cfg.Logger.Info("share group members' sessions expired", "group", g.meta.Group, "members", expired)
				next := c.withoutMembers(g.meta, expired)
				if err := c.storeLocked(ctx, g, next); err != nil {
					c.cfg.Logger.Warn("cannot store share group after session expiry", "group", g.meta.Group, "err", err)
				}
			}
			if !g.gone && len(g.meta.Members) == 0 {
				c.dropLocked(g)
			}
		}
		g.mu.Unlock()
	}
}

// bounded is ctx bounded by the store timeout, for one metastore call.
func (c *Coordinator) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.cfg.StoreTimeout)
}

// dropLocked forgets g; the next request reads it back from the metastore.
func (c *Coordinator) dropLocked(g *group) {
	g.gone = true
	c.mu.Lock()
	if c.groups[g.meta.Group] == g {
		delete(c.groups, g.meta.Group)
	}
	c.mu.Unlock()
}

// lock returns the named group locked and loaded from the metastore
// (Revision 0 if it does not exist).
func (c *Coordinator) lock(ctx context.Context, name string) (*group, error) {
	if err := metastore.CheckGroupName(name); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	for {
		if !c.cfg.Owns(name) {
			return nil, ErrNotCoordinator
		}
		c.mu.Lock()
		g := c.groups[name]
		if g == nil {
			g = &group{meta: metastore.ShareGroupMeta{Group: name}}
			c.groups[name] = g
		}
		c.mu.Unlock()
		g.mu.Lock()
		if g.gone {
			g.mu.Unlock()
			continue
		}
		if g.loaded {
			return g, nil
		}
		sctx, cancel := c.bounded(ctx)
		meta, err := c.store.GetShareGroup(sctx, name)
		cancel()
		switch {
		case errors.Is(err, metastore.ErrGroupNotFound):
			meta = metastore.ShareGroupMeta{Group: name}
		case err != nil:
			c.dropLocked(g)
			g.mu.Unlock()
			return nil, fmt.Errorf("%w: reading share group %q: %v", ErrCoordinatorNotAvailable, name, err)
		}
		g.meta, g.loaded, g.deadlines = meta, true, map[string]time.Time{}
		if len(meta.Members) > 0 {
			timeout := c.sessionTimeout(ctx, name)
			for _, m := range meta.Members {
				g.deadlines[m.MemberID] = c.cfg.Now().Add(timeout)
			}
			c.cfg.Logger.Info("share group taken over from the metastore", "group", name, "epoch", meta.Epoch, "members", len(meta.Members))
		}
		return g, nil
	}
}

// configs are the group's effective configs; the broker's defaults if they
// cannot be read (a heartbeat should not fail for them).
func (c *Coordinator) configs(ctx context.Context, name string) Configs {
	if c.cfg.GroupConfigs == nil {
		return c.cfg.Bounds.Effective(nil)
	}
	sctx, cancel := c.bounded(ctx)
	defer cancel()
	cfg, err := c.cfg.GroupConfigs(sctx, name)
	if err != nil {
		c.cfg.Logger.Warn("cannot read group configs; using the broker's defaults", "group", name, "err", err)
		return c.cfg.Bounds.Effective(nil)
	}
	return cfg
}

func (c *Coordinator) sessionTimeout(ctx context.Context, name string) time.Duration {
	return c.configs(ctx, name).SessionTimeout
}

// storeLocked writes next by compare-and-swap on the revision g holds, and
// holds it. On failure g is dropped: on a conflict another coordinator
// wrote it; on another error the write may or may not have happened.
func (c *Coordinator) storeLocked(ctx context.Context, g *group, next metastore.ShareGroupMeta) error {
	next.UpdatedAt = c.cfg.Now()
	sctx, cancel := c.bounded(ctx)
	stored, err := c.store.PutShareGroup(sctx, next, g.meta.Revision)
	cancel()
	switch {
	case errors.Is(err, metastore.ErrShareGroupTooLarge):
		// Nothing was written: the group carries on as it was.
		return fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	case errors.Is(err, metastore.ErrGroupTypeConflict):
		c.dropLocked(g)
		return fmt.Errorf("%w: group %s is not a share group", ErrGroupIDNotFound, g.meta.Group)
	case errors.Is(err, metastore.ErrConflict):
		c.cfg.Logger.Warn("share group was written by another coordinator; stepping down for it", "group", g.meta.Group, "err", err)
		c.dropLocked(g)
		return fmt.Errorf("%w: storing share group %q: %v", ErrNotCoordinator, g.meta.Group, err)
	case err != nil:
		c.dropLocked(g)
		return fmt.Errorf("%w: storing share group %q: %v", ErrCoordinatorNotAvailable, g.meta.Group, err)
	}
	g.meta = stored
	for id := range g.deadlines {
		if memberIndex(stored, id) < 0 {
			delete(g.deadlines, id)
		}
	}
	return nil
}

func memberIndex(m metastore.ShareGroupMeta, id string) int {
	return slices.IndexFunc(m.Members, func(mm metastore.ShareGroupMember) bool { return mm.MemberID == id })
}

// cloneMeta copies m's members so that changes to the copy leave m alone.
func cloneMeta(m metastore.ShareGroupMeta) metastore.ShareGroupMeta {
	m.Members = slices.Clone(m.Members)
	return m
}

// withoutMembers is m with the members removed and, if any was there, a new
// epoch and assignment.
func (c *Coordinator) withoutMembers(m metastore.ShareGroupMeta, ids []string) metastore.ShareGroupMeta {
	next := cloneMeta(m)
	next.Members = slices.DeleteFunc(next.Members, func(mm metastore.ShareGroupMember) bool { return slices.Contains(ids, mm.MemberID) })
	if len(next.Members) == len(m.Members) {
		return m
	}
	c.reassign(&next)
	return next
}

// reassign bumps the group epoch and computes every member's target
// assignment at it.
func (c *Coordinator) reassign(m *metastore.ShareGroupMeta) {
	m.Epoch++
	m.AssignmentEpoch = m.Epoch
	subs := make([]Subscription, 0, len(m.Members))
	partitions := map[string]int32{}
	for _, mm := range m.Members {
		subs = append(subs, Subscription{MemberID: mm.MemberID, Topics: mm.SubscribedTopics})
		for _, t := range mm.SubscribedTopics {
			if n, ok := c.cfg.Partitions(t); ok {
				partitions[t] = n
			}
		}
	}
	assigned := Assign(subs, partitions)
	for i := range m.Members {
		m.Members[i].Assignment = assigned[m.Members[i].MemberID]
	}
}

// assignmentStale says whether a topic's partition count changed since the
// group's assignment (a topic created or grown after the members
// subscribed).
func (c *Coordinator) assignmentStale(m metastore.ShareGroupMeta) bool {
	have := map[string]int32{}
	subscribed := map[string]bool{}
	for _, mm := range m.Members {
		for _, t := range mm.SubscribedTopics {
			subscribed[t] = true
		}
		for _, tp := range mm.Assignment {
			have[tp.Topic] = max(have[tp.Topic], tp.Partition+1)
		}
	}
	for t := range subscribed {
		n, _ := c.cfg.Partitions(t)
		if have[t] != n {
			return true
		}
	}
	return false
}

// HeartbeatRequest is a ShareGroupHeartbeat.
type HeartbeatRequest struct {
	Group, MemberID      string
	MemberEpoch          int32
	RackID               *string  // nil: unchanged
	SubscribedTopicNames []string // nil: unchanged
	ClientID, ClientHost string
}

// HeartbeatResult is the coordinator's answer.
type HeartbeatResult struct {
	MemberEpoch       int32
	HeartbeatInterval time.Duration
	// Assignment is set when the member must take it: when it joins and
	// when it changed.
	Assignment     []metastore.TopicPartition
	SendAssignment bool
}

// Heartbeat joins (epoch 0), keeps in (its current epoch) or leaves (epoch
// -1) a member, as Kafka's share-group coordinator does.
func (c *Coordinator) Heartbeat(ctx context.Context, req HeartbeatRequest) (HeartbeatResult, error) {
	switch {
	case req.Group == "":
		return HeartbeatResult{}, fmt.Errorf("%w: GroupId can't be empty", ErrInvalidRequest)
	case req.MemberID == "":
		return HeartbeatResult{}, fmt.Errorf("%w: MemberId can't be empty", ErrInvalidRequest)
	case req.RackID != nil && *req.RackID == "":
		return HeartbeatResult{}, fmt.Errorf("%w: RackId can't be empty", ErrInvalidRequest)
	case req.MemberEpoch == 0 && len(req.SubscribedTopicNames) == 0:
		return HeartbeatResult{}, fmt.Errorf("%w: SubscribedTopicNames must be set in first request", ErrInvalidRequest)
	case req.MemberEpoch < LeaveEpoch:
		return HeartbeatResult{}, fmt.Errorf("%w: MemberEpoch is invalid", ErrInvalidRequest)
	}
	g, err := c.lock(ctx, req.Group)
	if err != nil {
		return HeartbeatResult{}, err
	}
	defer g.mu.Unlock()
	if g.meta.Revision == 0 && req.MemberEpoch != 0 {
		// Not kept: requests naming groups that do not exist must not
		// fill memory.
		c.dropLocked(g)
		return HeartbeatResult{}, fmt.Errorf("%w: share group %s", ErrGroupIDNotFound, req.Group)
	}
	i := memberIndex(g.meta, req.MemberID)
	if req.MemberEpoch == LeaveEpoch {
		if i < 0 {
			return HeartbeatResult{}, fmt.Errorf("%w: member %s of share group %s", ErrUnknownMemberID, req.MemberID, req.Group)
		}
		if err := c.storeLocked(ctx, g, c.withoutMembers(g.meta, []string{req.MemberID})); err != nil {
			return HeartbeatResult{}, err
		}
		return HeartbeatResult{MemberEpoch: LeaveEpoch}, nil
	}
	cfg := c.configs(ctx, req.Group)
	next := cloneMeta(g.meta)
	changed := false
	var member metastore.ShareGroupMember
	switch {
	case i < 0 && req.MemberEpoch != 0:
		return HeartbeatResult{}, fmt.Errorf("%w: member %s of share group %s", ErrUnknownMemberID, req.MemberID, req.Group)
	case i < 0:
		if len(next.Members) >= c.cfg.Bounds.MaxSize {
			return HeartbeatResult{}, fmt.Errorf("%w: share group %s has %d members (group.share.max.size)", ErrGroupMaxSizeReached, req.Group, len(next.Members))
		}
		member = metastore.ShareGroupMember{MemberID: req.MemberID}
		next.Members = append(next.Members, member)
		i = len(next.Members) - 1
		changed = true
	default:
		member = next.Members[i]
		// A member rejoining with epoch 0 (it restarted) keeps its place;
		// any other epoch must be the one it was given.
		if req.MemberEpoch != 0 && req.MemberEpoch != member.MemberEpoch {
			return HeartbeatResult{}, fmt.Errorf("%w: member %s has epoch %d, not %d", ErrFencedMemberEpoch, req.MemberID, member.MemberEpoch, req.MemberEpoch)
		}
	}
	m := &next.Members[i]
	if req.RackID != nil && *req.RackID != m.RackID {
		m.RackID, changed = *req.RackID, true
	}
	if m.ClientID != req.ClientID || m.ClientHost != req.ClientHost {
		m.ClientID, m.ClientHost, changed = req.ClientID, req.ClientHost, true
	}
	reassign := false
	if req.SubscribedTopicNames != nil {
		topics := slices.Compact(slices.Sorted(slices.Values(req.SubscribedTopicNames)))
		if len(topics) == 0 {
			topics = nil
		}
		if !slices.Equal(topics, m.SubscribedTopics) {
			m.SubscribedTopics, reassign = topics, true
		}
	}
	if memberIndex(g.meta, req.MemberID) < 0 || reassign || c.assignmentStale(next) {
		c.reassign(&next)
		changed = true
	}
	prevEpoch := member.MemberEpoch
	m = &next.Members[i]
	if m.MemberEpoch != next.AssignmentEpoch {
		// No revocation in share groups: the member takes its target
		// assignment, and the epoch of it, at once.
		m.MemberEpoch, changed = next.AssignmentEpoch, true
	}
	if changed {
		if err := c.storeLocked(ctx, g, next); err != nil {
			return HeartbeatResult{}, err
		}
	}
	g.deadlines[req.MemberID] = c.cfg.Now().Add(cfg.SessionTimeout)
	stored := g.meta.Members[memberIndex(g.meta, req.MemberID)]
	res := HeartbeatResult{MemberEpoch: stored.MemberEpoch, HeartbeatInterval: cfg.HeartbeatInterval, Assignment: stored.Assignment}
	res.SendAssignment = req.MemberEpoch == 0 || stored.MemberEpoch != prevEpoch
	return res, nil
}

// Describe returns a share group as stored (ErrGroupIDNotFound if there is
// none). It is answered by the group's coordinator, from what it holds.
func (c *Coordinator) Describe(ctx context.Context, name string) (metastore.ShareGroupMeta, error) {
	g, err := c.lock(ctx, name)
	if err != nil {
		return metastore.ShareGroupMeta{}, err
	}
	defer g.mu.Unlock()
	if g.meta.Revision == 0 {
		c.dropLocked(g)
		return metastore.ShareGroupMeta{}, fmt.Errorf("%w: share group %s", ErrGroupIDNotFound, name)
	}
	return cloneMeta(g.meta), nil
}

// Delete deletes a share group without members (DeleteGroups):
// ErrNonEmptyGroup while it has some, ErrGroupIDNotFound if there is none.
// dropState deletes its share-partition state first, while the group is
// held (no member can join meanwhile): a failure leaves the group, so the
// delete can be retried, and a group of the same id created later never
// starts from the old state.
func (c *Coordinator) Delete(ctx context.Context, name string, dropState func(context.Context, string) error) error {
	g, err := c.lock(ctx, name)
	if err != nil {
		return err
	}
	defer g.mu.Unlock()
	switch {
	case g.meta.Revision == 0:
		c.dropLocked(g)
		return fmt.Errorf("%w: share group %s", ErrGroupIDNotFound, name)
	case len(g.meta.Members) > 0:
		return fmt.Errorf("%w: share group %s has %d members", ErrNonEmptyGroup, name, len(g.meta.Members))
	}
	if dropState != nil {
		sctx, cancel := c.bounded(ctx)
		err := dropState(sctx, name)
		cancel()
		if err != nil {
			return fmt.Errorf("%w: deleting share group %s's share-partition state: %v", ErrCoordinatorNotAvailable, name, err)
		}
	}
	sctx, cancel := c.bounded(ctx)
	err = c.store.DeleteShareGroup(sctx, name, g.meta.Revision)
	cancel()
	// Deleted or not (another coordinator wrote it), what this one holds is
	// no longer the group.
	c.dropLocked(g)
	switch {
	case errors.Is(err, metastore.ErrConflict):
		return fmt.Errorf("%w: share group %s changed under this coordinator", ErrNotCoordinator, name)
	case err != nil:
		return fmt.Errorf("%w: deleting share group %s: %v", ErrCoordinatorNotAvailable, name, err)
	}
	return nil
}

// List returns the share groups this broker coordinates, as stored. Each
// broker lists its own, as for the other groups, so a client asking every
// broker sees each group once.
func (c *Coordinator) List(ctx context.Context) ([]metastore.ShareGroupMeta, error) {
	sctx, cancel := c.bounded(ctx)
	defer cancel()
	list, err := c.store.ListShareGroups(sctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCoordinatorNotAvailable, err)
	}
	return slices.DeleteFunc(list, func(m metastore.ShareGroupMeta) bool { return !c.cfg.Owns(m.Group) }), nil
}

// State is a share group's state as Kafka names it.
func State(m metastore.ShareGroupMeta) string {
	if len(m.Members) == 0 {
		return StateEmpty
	}
	return StateStable
}
