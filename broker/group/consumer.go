package group

// The consumer group protocol (KIP-848): the coordinator owns the
// assignment. Each member heartbeats its subscription and the partitions it
// owns; the group epoch moves when the membership, a subscription or the
// subscribed topics change, and then a new target assignment is computed
// (by a server-side assignor) at that epoch. Every member reconciles
// towards its target one heartbeat at a time: it first gives up (revokes)
// what the target takes from it, keeping its epoch (UNREVOKED_PARTITIONS),
// and only once it has reported in a heartbeat that it no longer owns them
// does it move to the target epoch; a partition another member still owns
// or revokes is held back (UNRELEASED_PARTITIONS) until that member has
// let it go. So a partition never has two owners.
//
// The group is written to the metastore (compare-and-swap, like a classic
// group) whenever the group epoch, the target assignment or a member's
// epoch or partitions change, before the member hears of it, so that a
// coordinator taking over carries on with the same epochs; a heartbeat that
// changes nothing writes nothing.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/strata-broker/strata/metastore"
)

// Consumer group states, as Kafka names them.
const (
	ConsumerStateEmpty       = "Empty"
	ConsumerStateAssigning   = "Assigning"
	ConsumerStateReconciling = "Reconciling"
	ConsumerStateStable      = "Stable"
)

// Member states of the reconciliation, as Kafka names them.
const (
	memberStable      = "stable"
	memberUnrevoked   = "unrevoked_partitions"
	memberUnreleased  = "unreleased_partitions"
	leaveEpoch        = -1
	staticLeaveEpoch  = -2
	maxSubscribed     = 10_000
	maxRegexBytes     = 4096
	maxAssignorLength = 255
)

// topicsRefresh is how often a group's subscriptions are resolved again
// against the topics when nothing else moves its epoch: a topic created or
// deleted reaches the group's assignment within it (plus a heartbeat).
const topicsRefresh = time.Second

// Defaults of the consumer group protocol's broker settings.
const (
	DefaultConsumerSessionTimeout    = 45 * time.Second
	DefaultConsumerHeartbeatInterval = 5 * time.Second
)

// consumerGroup is a consumer-protocol group's state; the group's name,
// revision and busy flag are its *group's.
type consumerGroup struct {
	epoch           int32 // the group epoch (stored as the generation)
	assignmentEpoch int32
	assignor        string // of the last target assignment
	// metadataHash is a hash of the subscribed topics (ids and partition
	// counts) as of the group epoch: when it changes, so does the epoch.
	metadataHash uint64
	// resolvedAt is when the subscriptions were last resolved against the
	// topics: heartbeats that change nothing look again at most every
	// topicsRefresh, as regular expressions over every topic cost.
	resolvedAt time.Time
	members    map[string]*consumerMember
	// sessionTimeout is the group's consumer.session.timeout.ms as of its
	// last heartbeat (zero: the broker's default).
	sessionTimeout time.Duration
	// owners says who owns (or is revoking) each partition.
	owners map[partitionKey]string
}

type consumerMember struct {
	id, instanceID, rackID, clientID, clientHost string
	epoch, previousEpoch                         int32
	state                                        string
	rebalanceTimeout                             time.Duration
	subscribed                                   []string // sorted
	regex                                        string
	compiled                                     *regexp.Regexp
	serverAssignor                               string
	assigned, revoking, target                   assignment
	deadline                                     time.Time // session expiry
	// revokeDeadline: a member in UNREVOKED_PARTITIONS past it is fenced.
	revokeDeadline time.Time
}

func newConsumerGroup() *consumerGroup {
	return &consumerGroup{members: map[string]*consumerMember{}, owners: map[partitionKey]string{}}
}

// ConsumerHeartbeat is a ConsumerGroupHeartbeat. Nil fields are unchanged
// since the member's last heartbeat.
type ConsumerHeartbeat struct {
	Group, MemberID, ClientID, ClientHost string
	MemberEpoch                           int32
	InstanceID, RackID                    *string
	// RebalanceTimeout < 0: unchanged.
	RebalanceTimeout time.Duration
	SubscribedTopics []string // nil: unchanged
	SubscribedRegex  *string
	ServerAssignor   *string
	// Owned are the partitions the member owns, by topic id; nil:
	// unchanged.
	Owned map[string][]int32
}

// ConsumerHeartbeatResult is the answer to a ConsumerHeartbeat.
type ConsumerHeartbeatResult struct {
	MemberID          string
	MemberEpoch       int32
	HeartbeatInterval time.Duration
	// Assignment is sent when it changed or the member sent a full
	// heartbeat; nil otherwise.
	Assignment map[string][]int32
}

func (c *Coordinator) heartbeatInterval() time.Duration {
	return cmp.Or(c.cfg.ConsumerHeartbeatInterval, DefaultConsumerHeartbeatInterval)
}

func (c *Coordinator) consumerSessionTimeout() time.Duration {
	return cmp.Or(c.cfg.ConsumerSessionTimeout, DefaultConsumerSessionTimeout)
}

// sessionTimeout is cg's session timeout: its group config as of its last
// heartbeat, else the broker's.
func (c *Coordinator) sessionTimeout(cg *consumerGroup) time.Duration {
	return cmp.Or(cg.sessionTimeout, c.consumerSessionTimeout())
}

// consumerTimeouts are a group's session timeout and heartbeat interval:
// its group configs (consumer.session.timeout.ms,
// consumer.heartbeat.interval.ms), the broker's settings by default or if
// the configs cannot be read (a heartbeat does not fail for them).
func (c *Coordinator) consumerTimeouts(ctx context.Context, name string) (session, heartbeat time.Duration) {
	session, heartbeat = c.consumerSessionTimeout(), c.heartbeatInterval()
	if c.cfg.ConsumerTimeouts == nil {
		return session, heartbeat
	}
	s, h, err := c.cfg.ConsumerTimeouts(ctx, name)
	if err != nil {
		c.logger.Warn("cannot read group configs; using the broker's consumer group settings", "group", name, "err", err)
		return session, heartbeat
	}
	return cmp.Or(s, session), cmp.Or(h, heartbeat)
}

func (c *Coordinator) assignors() []string {
	if len(c.cfg.ConsumerAssignors) == 0 {
		return Assignors()
	}
	return c.cfg.ConsumerAssignors
}

// checkConsumerHeartbeat refuses what Kafka refuses as INVALID_REQUEST.
func checkConsumerHeartbeat(req *ConsumerHeartbeat) error {
	switch {
	case req.MemberID == "" && req.MemberEpoch != 0:
		return fmt.Errorf("%w: member id is required", ErrInvalidRequest)
	case req.MemberEpoch < staticLeaveEpoch:
		return fmt.Errorf("%w: member epoch %d", ErrInvalidRequest, req.MemberEpoch)
	case req.MemberEpoch == staticLeaveEpoch && (req.InstanceID == nil || *req.InstanceID == ""):
		return fmt.Errorf("%w: member epoch -2 needs an instance id", ErrInvalidRequest)
	case req.MemberEpoch == 0 && req.RebalanceTimeout < 0:
		return fmt.Errorf("%w: a joining member must give its rebalance timeout", ErrInvalidRequest)
	case req.MemberEpoch == 0 && req.SubscribedTopics == nil && req.SubscribedRegex == nil:
		return fmt.Errorf("%w: a joining member must give its subscription", ErrInvalidRequest)
	case req.MemberEpoch == 0 && len(req.Owned) > 0:
		return fmt.Errorf("%w: a joining member owns no partitions", ErrInvalidRequest)
	case len(req.SubscribedTopics) > maxSubscribed:
		return fmt.Errorf("%w: %d subscribed topics, at most %d", ErrInvalidRequest, len(req.SubscribedTopics), maxSubscribed)
	case req.SubscribedRegex != nil && len(*req.SubscribedRegex) > maxRegexBytes:
		return fmt.Errorf("%w: a regular expression of %d bytes, at most %d", ErrInvalidRegularExpression, len(*req.SubscribedRegex), maxRegexBytes)
	case req.ServerAssignor != nil && len(*req.ServerAssignor) > maxAssignorLength:
		return fmt.Errorf("%w: assignor name too long", ErrUnsupportedAssignor)
	}
	return nil
}

// ConsumerGroupHeartbeat runs one heartbeat of a consumer-protocol member:
// joining (epoch 0), leaving (-1, or -2 for a static member that comes
// back), or reporting its partitions and learning its next assignment.
func (c *Coordinator) ConsumerGroupHeartbeat(ctx context.Context, req ConsumerHeartbeat) (ConsumerHeartbeatResult, error) {
	if err := checkConsumerHeartbeat(&req); err != nil {
		return ConsumerHeartbeatResult{}, err
	}
	var compiled *regexp.Regexp
	if req.SubscribedRegex != nil && *req.SubscribedRegex != "" {
		// Kafka matches the whole topic name (RE2/J's matches()).
		re, err := regexp.Compile("^(?:" + *req.SubscribedRegex + ")$")
		if err != nil {
			return ConsumerHeartbeatResult{}, fmt.Errorf("%w: %v", ErrInvalidRegularExpression, err)
		}
		compiled = re
	}
	if req.ServerAssignor != nil && *req.ServerAssignor != "" && !slices.Contains(c.assignors(), *req.ServerAssignor) {
		return ConsumerHeartbeatResult{}, fmt.Errorf("%w: %q (group.consumer.assignors has %v)", ErrUnsupportedAssignor, *req.ServerAssignor, c.assignors())
	}
	if err := metastore.CheckGroupName(req.Group); err != nil {
		return ConsumerHeartbeatResult{}, fmt.Errorf("%w: %v", ErrInvalidGroupID, err)
	}
	if !c.cfg.Owns(req.Group) {
		return ConsumerHeartbeatResult{}, ErrNotCoordinator // before reading its configs
	}
	// Read before the coordinator's lock: a cache miss reads the
	// metastore.
	sessionTimeout, heartbeatInterval := c.consumerTimeouts(ctx, req.Group)
	c.mu.Lock()
	defer c.mu.Unlock()
	g, err := c.groupLocked(ctx, req.Group, req.MemberEpoch == 0)
	if errors.Is(err, errShareGroupID) {
		// Kafka's answer to a heartbeat on a share group's id.
		return ConsumerHeartbeatResult{}, fmt.Errorf("%w: %v", ErrGroupIDNotFound, err)
	}
	if err != nil {
		return ConsumerHeartbeatResult{}, err
	}
	if g == nil {
		return ConsumerHeartbeatResult{}, fmt.Errorf("%w: %q in group %q", ErrUnknownMemberID, req.MemberID, req.Group)
	}
	if g.cg == nil {
		if len(g.members) > 0 || len(g.pending) > 0 {
			return ConsumerHeartbeatResult{}, fmt.Errorf("%w: %q is a classic group with members", ErrGroupIDNotFound, req.Group)
		}
		// An empty classic group becomes a consumer group: only its
		// offsets carry over.
		g.cg = newConsumerGroup()
		g.protocolType, g.protocol, g.leader = "consumer", "", ""
		g.state = ConsumerStateEmpty
		c.logger.Info("group converted to the consumer protocol", "group", g.name)
	}
	cg := g.cg
	cg.sessionTimeout = sessionTimeout
	now := c.cfg.Now()
	res := ConsumerHeartbeatResult{MemberID: req.MemberID, HeartbeatInterval: heartbeatInterval}

	if req.MemberEpoch == leaveEpoch || req.MemberEpoch == staticLeaveEpoch {
		m := cg.members[req.MemberID]
		if m == nil {
			return ConsumerHeartbeatResult{}, fmt.Errorf("%w: %q in group %q", ErrUnknownMemberID, req.MemberID, req.Group)
		}
		res.MemberEpoch = req.MemberEpoch
		if req.MemberEpoch == staticLeaveEpoch && m.instanceID != "" {
			// A static member that will come back keeps its partitions
			// until its session runs out or it rejoins.
			if m.epoch != staticLeaveEpoch {
				// Its epoch is kept for its successor.
				m.previousEpoch, m.epoch = m.epoch, staticLeaveEpoch
				if err := c.storeLocked(ctx, g); err != nil {
					return ConsumerHeartbeatResult{}, err
				}
			}
			c.logger.Info("static group member left for now", "group", g.name, "member", m.id, "instance", m.instanceID)
			return res, nil
		}
		c.removeConsumerMemberLocked(g, m.id)
		c.logger.Info("group member left", "group", g.name, "member", m.id)
		if err := c.rebalanceConsumerLocked(ctx, g, now, true); err != nil {
			return ConsumerHeartbeatResult{}, err
		}
		return res, nil
	}

	m := cg.members[req.MemberID]
	changed := false // the group epoch must move
	replacedStatic := false
	full := req.SubscribedTopics != nil || req.SubscribedRegex != nil || req.MemberEpoch == 0
	switch {
	case req.MemberEpoch == 0:
		if req.MemberID == "" {
			req.MemberID = newMemberID(req.ClientID)
			res.MemberID = req.MemberID
		}
		var replaced *consumerMember
		if req.InstanceID != nil && *req.InstanceID != "" {
			for _, o := range cg.members {
				if o.instanceID == *req.InstanceID && o.id != req.MemberID {
					if o.epoch != staticLeaveEpoch {
						return ConsumerHeartbeatResult{}, fmt.Errorf("%w: instance %q is member %q's", ErrUnreleasedInstanceID, *req.InstanceID, o.id)
					}
					replaced = o
				}
			}
		}
		if m == nil && replaced == nil && len(cg.members) >= c.cfg.MaxSize {
			return ConsumerHeartbeatResult{}, fmt.Errorf("%w: group %q has %d members (group.max.size=%d)",
				ErrGroupMaxSizeReached, req.Group, len(cg.members), c.cfg.MaxSize)
		}
		if m != nil {
			// The member lost its state and starts over: what it owned
			// it owns no more.
			c.setConsumerAssignmentLocked(cg, m, assignment{}, nil)
			m.epoch, m.previousEpoch, m.state = 0, 0, memberStable
		} else {
			m = &consumerMember{id: req.MemberID, state: memberStable, assigned: assignment{}}
			if replaced != nil {
				// The static member's successor takes over its place:
				// its epoch (from before it left), subscription,
				// partitions and target.
				m.epoch, m.previousEpoch, m.state = replaced.previousEpoch, replaced.previousEpoch, replaced.state
				m.target, m.revokeDeadline = replaced.target, replaced.revokeDeadline
				m.subscribed, m.regex, m.compiled, m.serverAssignor = replaced.subscribed, replaced.regex, replaced.compiled, replaced.serverAssignor
				assigned, revoking := replaced.assigned, replaced.revoking
				c.removeConsumerMemberLocked(g, replaced.id)
				cg.members[m.id] = m
				c.setConsumerAssignmentLocked(cg, m, assigned, revoking)
				replacedStatic = true
				c.logger.Info("static group member replaced", "group", g.name, "instance", *req.InstanceID, "old", replaced.id, "member", m.id)
			} else {
				changed = true
			}
			cg.members[m.id] = m
		}
	case m == nil:
		return ConsumerHeartbeatResult{}, fmt.Errorf("%w: %q in group %q", ErrUnknownMemberID, req.MemberID, req.Group)
	case m.epoch == staticLeaveEpoch:
		return ConsumerHeartbeatResult{}, fmt.Errorf("%w: member %q left the group", ErrUnknownMemberID, req.MemberID)
	case req.MemberEpoch > m.epoch:
		return ConsumerHeartbeatResult{}, fmt.Errorf("%w: epoch %d, the member is at %d", ErrFencedMemberEpoch, req.MemberEpoch, m.epoch)
	case req.MemberEpoch < m.epoch:
		// A member that missed the answer that moved it to its current
		// epoch may still heartbeat its previous one, if what it owns is
		// a part of what it was given.
		if req.MemberEpoch != m.previousEpoch || req.Owned == nil || !ownsSubset(req.Owned, m.assigned) {
			return ConsumerHeartbeatResult{}, fmt.Errorf("%w: epoch %d, the member is at %d", ErrFencedMemberEpoch, req.MemberEpoch, m.epoch)
		}
		full = true
	}
	m.deadline = now.Add(sessionTimeout)
	if req.ClientID != "" {
		m.clientID = req.ClientID
	}
	if req.ClientHost != "" {
		m.clientHost = req.ClientHost
	}
	if req.InstanceID != nil {
		m.instanceID = *req.InstanceID
	}
	if req.RackID != nil {
		m.rackID = *req.RackID
	}
	if req.RebalanceTimeout >= 0 {
		m.rebalanceTimeout = req.RebalanceTimeout
	}
	if req.SubscribedTopics != nil {
		subs := slices.Compact(slices.Sorted(slices.Values(req.SubscribedTopics)))
		if !slices.Equal(subs, m.subscribed) {
			m.subscribed, changed = subs, true
		}
	}
	if req.SubscribedRegex != nil && *req.SubscribedRegex != m.regex {
		m.regex, m.compiled, changed = *req.SubscribedRegex, compiled, true
	}
	if m.regex != "" && m.compiled == nil { // restored from the metastore
		if m.compiled, err = regexp.Compile("^(?:" + m.regex + ")$"); err != nil {
			m.regex = ""
		}
	}
	if req.ServerAssignor != nil && *req.ServerAssignor != m.serverAssignor {
		m.serverAssignor, changed = *req.ServerAssignor, true
	}
	// The new epoch and target, and the member's step towards it, are
	// stored in one write, before the member hears of them (the group is
	// held meanwhile: c.mu is not released until the write).
	moved := c.moveEpochLocked(g, now, changed)
	before := m.assigned.clone()
	beforeEpoch, beforeState := m.epoch, m.state
	c.reconcileLocked(g, m, req.Owned, now)
	// A static member's successor replaced it under a new member id: that
	// too is stored before the successor commits or a coordinator takes
	// over.
	if moved || replacedStatic || m.epoch != beforeEpoch || m.state != beforeState || !m.assigned.equal(before) || changed {
		if err := c.storeLocked(ctx, g); err != nil {
			return ConsumerHeartbeatResult{}, err
		}
		if g.cg != cg || cg.members[m.id] != m {
			return ConsumerHeartbeatResult{}, fmt.Errorf("%w: group %q changed during the heartbeat", ErrNotCoordinator, req.Group)
		}
	}
	res.MemberEpoch = m.epoch
	if full || !m.assigned.equal(before) || !ownedEquals(req.Owned, m.assigned) {
		res.Assignment = m.assigned.clone()
	}
	return res, nil
}

// ownsSubset reports whether owned is a part of a.
func ownsSubset(owned map[string][]int32, a assignment) bool {
	for t, ps := range owned {
		for _, p := range ps {
			if !a.has(t, p) {
				return false
			}
		}
	}
	return true
}

// ownedEquals reports whether the member's report (nil: none, taken as
// agreeing) is its assignment.
func ownedEquals(owned map[string][]int32, a assignment) bool {
	if owned == nil {
		return true
	}
	n := 0
	for _, ps := range owned {
		n += len(ps)
	}
	return n == a.count() && ownsSubset(owned, a)
}

// removeConsumerMemberLocked drops a member; its partitions become free.
func (c *Coordinator) removeConsumerMemberLocked(g *group, id string) {
	cg := g.cg
	m := cg.members[id]
	if m == nil {
		return
	}
	c.setConsumerAssignmentLocked(cg, m, assignment{}, nil)
	delete(cg.members, id)
}

// setConsumerAssignmentLocked sets what m owns and revokes, keeping the
// group's owners in step.
func (c *Coordinator) setConsumerAssignmentLocked(cg *consumerGroup, m *consumerMember, assigned, revoking assignment) {
	release := func(a assignment) {
		a.each(func(t string, p int32) {
			if cg.owners[partitionKey{t, p}] == m.id {
				delete(cg.owners, partitionKey{t, p})
			}
		})
	}
	release(m.assigned)
	release(m.revoking)
	m.assigned, m.revoking = assigned, revoking
	take := func(a assignment) {
		a.each(func(t string, p int32) { cg.owners[partitionKey{t, p}] = m.id })
	}
	take(m.assigned)
	take(m.revoking)
}

// subscriptionLocked resolves every member's subscription against the
// topics that exist now: the topic ids of each member, and the hash of all
// subscribed topics with their partition counts.
func (c *Coordinator) subscriptionLocked(cg *consumerGroup) (map[string]map[string]bool, map[string]TopicInfo, uint64) {
	var all []TopicInfo
	if c.cfg.Topics != nil {
		all = c.cfg.Topics()
	}
	byName := make(map[string]TopicInfo, len(all))
	for _, t := range all {
		byName[t.Name] = t
	}
	subs := make(map[string]map[string]bool, len(cg.members))
	used := map[string]TopicInfo{}
	// Members of a group mostly subscribe alike: each distinct
	// subscription is resolved once (a regular expression against every
	// topic), not once per member, and its set is shared (read only).
	resolved := map[string]map[string]bool{}
	for id, m := range cg.members {
		key := subscriptionKey(m)
		if set, ok := resolved[key]; ok {
			subs[id] = set
			continue
		}
		set := map[string]bool{}
		for _, name := range m.subscribed {
			if t, ok := byName[name]; ok {
				set[t.ID] = true
				used[t.ID] = t
			}
		}
		if m.compiled != nil {
			for _, t := range all {
				if m.compiled.MatchString(t.Name) {
					set[t.ID] = true
					used[t.ID] = t
				}
			}
		}
		resolved[key] = set
		subs[id] = set
	}
	h := fnv.New64a()
	for _, id := range slices.Sorted(maps.Keys(used)) {
		h.Write([]byte(id))
		h.Write([]byte(used[id].Name))
		h.Write(strconv.AppendInt([]byte{0}, int64(used[id].Partitions), 10))
	}
	return subs, used, h.Sum64()
}

// subscriptionKey names m's subscription unambiguously (each part
// length-prefixed: names are what clients send).
func subscriptionKey(m *consumerMember) string {
	var b []byte
	if m.compiled != nil { // an expression that did not compile matches nothing
		b = strconv.AppendInt(b, int64(len(m.regex)), 10)
		b = append(append(b, ':'), m.regex...)
	}
	b = append(b, '|')
	for _, name := range m.subscribed {
		b = strconv.AppendInt(b, int64(len(name)), 10)
		b = append(append(b, ':'), name...)
	}
	return string(b)
}

// groupAssignorLocked is the assignor of the next target assignment: the
// one most members ask for (ties: the configured order), else the default.
func (c *Coordinator) groupAssignorLocked(cg *consumerGroup) string {
	votes := map[string]int{}
	for _, m := range cg.members {
		if m.serverAssignor != "" {
			votes[m.serverAssignor]++
		}
	}
	best := c.assignors()[0]
	for _, a := range c.assignors() {
		if votes[a] > votes[best] {
			best = a
		}
	}
	return best
}

// rebalanceConsumerLocked moves the group epoch if the membership or a
// subscription changed (changed) or the subscribed topics did, and then
// computes the new target assignment. It stores the group when the epoch
// moved.
func (c *Coordinator) rebalanceConsumerLocked(ctx context.Context, g *group, now time.Time, changed bool) error {
	if !c.moveEpochLocked(g, now, changed) {
		return nil
	}
	return c.storeLocked(ctx, g)
}

// moveEpochLocked is rebalanceConsumerLocked without the store: it reports
// whether the epoch moved, and the caller stores the group before anyone
// learns of it.
func (c *Coordinator) moveEpochLocked(g *group, now time.Time, changed bool) bool {
	cg := g.cg
	if !changed && now.Sub(cg.resolvedAt) < topicsRefresh && !cg.resolvedAt.After(now) {
		return false
	}
	cg.resolvedAt = now
	subs, topics, hash := c.subscriptionLocked(cg)
	if hash != cg.metadataHash {
		cg.metadataHash, changed = hash, true
	}
	if !changed {
		return false
	}
	cg.epoch++
	spec := assignSpec{topics: topics, prev: map[string]assignment{}}
	for _, id := range slices.Sorted(maps.Keys(cg.members)) {
		spec.members = append(spec.members, assignMember{id: id, topics: subs[id]})
		spec.prev[id] = cg.members[id].target
	}
	cg.assignor = c.groupAssignorLocked(cg)
	for id, a := range assign(cg.assignor, spec) {
		cg.members[id].target = a
	}
	cg.assignmentEpoch = cg.epoch
	c.updateConsumerStateLocked(g)
	c.logger.Info("consumer group epoch moved", "group", g.name, "epoch", cg.epoch, "assignor", cg.assignor, "members", len(cg.members))
	return true
}

// reconcileLocked moves m one step towards its target assignment, given
// the partitions it reports owning (nil: not reported).
func (c *Coordinator) reconcileLocked(g *group, m *consumerMember, owned map[string][]int32, now time.Time) {
	cg := g.cg
	defer c.updateConsumerStateLocked(g)
	switch m.state {
	case memberUnrevoked:
		if owned == nil || ownsAny(owned, m.revoking) {
			return // still revoking
		}
		// Revoked: the partitions are free, and the member moves on.
		c.setConsumerAssignmentLocked(cg, m, m.assigned, nil)
		c.nextAssignmentLocked(cg, m, min(m.epoch+1, cg.assignmentEpoch), now)
	case memberUnreleased:
		c.nextAssignmentLocked(cg, m, m.epoch, now)
	default:
		if m.epoch != cg.assignmentEpoch {
			c.nextAssignmentLocked(cg, m, m.epoch, now)
		}
	}
}

func ownsAny(owned map[string][]int32, a assignment) bool {
	for t, ps := range owned {
		for _, p := range ps {
			if a.has(t, p) {
				return true
			}
		}
	}
	return false
}

// nextAssignmentLocked is Kafka's computeNextAssignment: what the target
// takes from m is revoked first (m keeps its epoch); otherwise m moves to
// the target epoch with its kept partitions and the new ones that nobody
// else owns, the others held back until they are released.
func (c *Coordinator) nextAssignmentLocked(cg *consumerGroup, m *consumerMember, epoch int32, now time.Time) {
	kept, revoke := assignment{}, assignment{}
	m.assigned.each(func(t string, p int32) {
		if m.target.has(t, p) {
			kept.add(t, p)
		} else {
			revoke.add(t, p)
		}
	})
	if revoke.count() > 0 {
		c.setConsumerAssignmentLocked(cg, m, kept, revoke)
		if m.state != memberUnrevoked {
			m.revokeDeadline = now.Add(cmp.Or(m.rebalanceTimeout, c.sessionTimeout(cg)))
		}
		m.state = memberUnrevoked
		if m.epoch != epoch {
			m.previousEpoch, m.epoch = m.epoch, epoch
		}
		return
	}
	unreleased := false
	next := kept.clone()
	m.target.each(func(t string, p int32) {
		if kept.has(t, p) {
			return
		}
		if owner, ok := cg.owners[partitionKey{t, p}]; ok && owner != m.id {
			unreleased = true
			return
		}
		next.add(t, p)
	})
	c.setConsumerAssignmentLocked(cg, m, next, nil)
	m.state = memberStable
	if unreleased {
		m.state = memberUnreleased
	}
	if m.epoch != cg.assignmentEpoch {
		m.previousEpoch, m.epoch = m.epoch, cg.assignmentEpoch
	}
}

// updateConsumerStateLocked sets the group's state from its members.
func (c *Coordinator) updateConsumerStateLocked(g *group) {
	g.state = consumerState(g.cg)
}

func consumerState(cg *consumerGroup) string {
	if len(cg.members) == 0 {
		return ConsumerStateEmpty
	}
	if cg.assignmentEpoch < cg.epoch {
		return ConsumerStateAssigning
	}
	for _, m := range cg.members {
		if m.epoch != cg.assignmentEpoch || m.state != memberStable {
			return ConsumerStateReconciling
		}
	}
	return ConsumerStateStable
}

// consumerDueLocked reports whether a member's session or revocation ran
// out.
func (c *Coordinator) consumerDueLocked(g *group, now time.Time) bool {
	for _, m := range g.cg.members {
		if now.After(m.deadline) || m.state == memberUnrevoked && now.After(m.revokeDeadline) {
			return true
		}
	}
	return false
}

// consumerExpireLocked removes the members whose session ran out, and
// those that did not revoke in their rebalance timeout (fenced).
func (c *Coordinator) consumerExpireLocked(ctx context.Context, g *group, now time.Time) {
	gone := false
	for _, id := range slices.Sorted(maps.Keys(g.cg.members)) {
		m := g.cg.members[id]
		switch {
		case now.After(m.deadline):
			c.logger.Info("group member's session expired", "group", g.name, "member", id)
		case m.state == memberUnrevoked && now.After(m.revokeDeadline):
			c.logger.Info("group member did not revoke its partitions in time; fenced", "group", g.name, "member", id)
		default:
			continue
		}
		c.removeConsumerMemberLocked(g, id)
		gone = true
	}
	if gone {
		_ = c.rebalanceConsumerLocked(ctx, g, now, true) // a failure steps down, which is all there is to do
	}
}

// checkConsumerCommitLocked is the fence of an offset commit or fetch of a
// member of a consumer-protocol group: its epoch must be its current one.
func checkConsumerCommitLocked(g *group, memberID string, epoch int32) error {
	m := g.cg.members[memberID]
	if m == nil || m.epoch == staticLeaveEpoch {
		return fmt.Errorf("%w: %q in group %q", ErrUnknownMemberID, memberID, g.name)
	}
	if epoch != m.epoch {
		return fmt.Errorf("%w: epoch %d, the member is at %d", ErrStaleMemberEpoch, epoch, m.epoch)
	}
	return nil
}

// CheckConsumerMember is OffsetFetch's fence for a member of a
// consumer-protocol group (OffsetFetch v9's member id and epoch); the
// fetches of a classic group are not fenced.
func (c *Coordinator) CheckConsumerMember(ctx context.Context, groupName, memberID string, epoch int32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, err := c.groupLocked(ctx, groupName, false)
	if err != nil {
		return err
	}
	switch {
	case g == nil:
		return fmt.Errorf("%w: %q in group %q", ErrUnknownMemberID, memberID, groupName)
	case g.cg == nil:
		return nil // a classic group's fetches are not fenced
	}
	return checkConsumerCommitLocked(g, memberID, epoch)
}

func (cg *consumerGroup) snapshot() *metastore.ConsumerGroupMeta {
	out := &metastore.ConsumerGroupMeta{AssignmentEpoch: cg.assignmentEpoch, Assignor: cg.assignor, MetadataHash: cg.metadataHash}
	for _, id := range slices.Sorted(maps.Keys(cg.members)) {
		m := cg.members[id]
		out.Members = append(out.Members, metastore.ConsumerMember{
			MemberID: m.id, InstanceID: m.instanceID, RackID: m.rackID, ClientID: m.clientID, ClientHost: m.clientHost,
			MemberEpoch: m.epoch, PreviousEpoch: m.previousEpoch, State: m.state,
			RebalanceTimeoutMs: int32(m.rebalanceTimeout / time.Millisecond),
			SubscribedTopics:   slices.Clone(m.subscribed), SubscribedRegex: m.regex, ServerAssignor: m.serverAssignor,
			Assigned: m.assigned.clone(), Revoking: m.revoking.clone(), Target: m.target.clone(),
		})
	}
	return out
}

// restoreConsumer builds a consumer group from its stored state: members
// carry on with their epochs and partitions, their sessions (of
// sessionTimeout, the group's; zero: the broker's) starting now.
func (c *Coordinator) restoreConsumer(g *group, meta metastore.GroupMeta, sessionTimeout time.Duration) {
	cg := newConsumerGroup()
	cg.sessionTimeout = sessionTimeout
	cg.epoch, cg.assignmentEpoch, cg.assignor = meta.Generation, meta.Consumer.AssignmentEpoch, meta.Consumer.Assignor
	cg.metadataHash = meta.Consumer.MetadataHash
	now := c.cfg.Now()
	for _, sm := range meta.Consumer.Members {
		m := &consumerMember{
			id: sm.MemberID, instanceID: sm.InstanceID, rackID: sm.RackID, clientID: sm.ClientID, clientHost: sm.ClientHost,
			epoch: sm.MemberEpoch, previousEpoch: sm.PreviousEpoch, state: cmp.Or(sm.State, memberStable),
			rebalanceTimeout: time.Duration(sm.RebalanceTimeoutMs) * time.Millisecond,
			subscribed:       sm.SubscribedTopics, regex: sm.SubscribedRegex, serverAssignor: sm.ServerAssignor,
			target:   assignment(sm.Target).clone(),
			deadline: now.Add(c.sessionTimeout(cg)),
		}
		m.revokeDeadline = now.Add(cmp.Or(m.rebalanceTimeout, c.sessionTimeout(cg)))
		if m.regex != "" {
			m.compiled, _ = regexp.Compile("^(?:" + m.regex + ")$")
		}
		cg.members[m.id] = m
		c.setConsumerAssignmentLocked(cg, m, assignment(sm.Assigned).clone(), assignment(sm.Revoking).clone())
	}
	g.cg = cg
	g.members = map[string]*member{}
	g.state = consumerState(cg)
	if len(cg.members) > 0 {
		c.logger.Info("consumer group taken over from the metastore", "group", g.name, "epoch", cg.epoch, "members", len(cg.members))
	}
}

// ConsumerMemberDescription is a member of a consumer-protocol group as
// ConsumerGroupDescribe reports it. Assignments are by topic id.
type ConsumerMemberDescription struct {
	MemberID, InstanceID, RackID, ClientID, ClientHost string
	MemberEpoch                                        int32
	SubscribedTopics                                   []string
	SubscribedRegex                                    string
	Assignment, TargetAssignment                       map[string][]int32
}

// ConsumerDescription is a consumer-protocol group as ConsumerGroupDescribe
// reports it.
type ConsumerDescription struct {
	Group, State, Assignor string
	Epoch, AssignmentEpoch int32
	Members                []ConsumerMemberDescription
	// TopicNames names the topic ids of the assignments that still exist.
	TopicNames map[string]string
}

// DescribeConsumerGroup describes a consumer-protocol group;
// ErrGroupIDNotFound for a group that is not one (or does not exist).
func (c *Coordinator) DescribeConsumerGroup(ctx context.Context, groupName string) (ConsumerDescription, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, err := c.groupLocked(ctx, groupName, false)
	if err != nil {
		return ConsumerDescription{}, err
	}
	if g == nil || g.cg == nil {
		return ConsumerDescription{}, fmt.Errorf("%w: %q is not a consumer group", ErrGroupIDNotFound, groupName)
	}
	cg := g.cg
	d := ConsumerDescription{Group: g.name, State: consumerState(cg), Assignor: cg.assignor, Epoch: cg.epoch, AssignmentEpoch: cg.assignmentEpoch,
		TopicNames: map[string]string{}}
	if c.cfg.Topics != nil {
		for _, t := range c.cfg.Topics() {
			d.TopicNames[t.ID] = t.Name
		}
	}
	for _, id := range slices.Sorted(maps.Keys(cg.members)) {
		m := cg.members[id]
		d.Members = append(d.Members, ConsumerMemberDescription{
			MemberID: m.id, InstanceID: m.instanceID, RackID: m.rackID, ClientID: m.clientID, ClientHost: m.clientHost,
			MemberEpoch: m.epoch, SubscribedTopics: slices.Clone(m.subscribed), SubscribedRegex: m.regex,
			Assignment: m.assigned.clone(), TargetAssignment: m.target.clone(),
		})
	}
	return d, nil
}
