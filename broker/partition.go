package broker

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/tiering/rlm"
)

// role is what this broker does for a partition it hosts.
type role int

const (
	roleNone     role = iota // no leader, or this broker is not a replica
	roleLeader               // takes produce, serves fetch and followers
	roleFollower             // copies the leader's log
)

func (r role) String() string {
	switch r {
	case roleLeader:
		return "leader"
	case roleFollower:
		return "follower"
	default:
		return "none"
	}
}

// Partition is one partition replica hosted by this broker: its log, its
// replica state (role, leader epoch, ISR, high watermark) and the long-poll
// waiters interested in it.
type Partition struct {
	Topic   string
	topicID string // the topic incarnation this replica belongs to
	Index   int32
	log     *partlog.Log
	self    int32

	// hw is the high watermark: records below it are committed (on every ISR
	// member) and visible to consumers. It never goes back while leading.
	hw atomic.Int64

	// roleMu is held shared by appends (as leader or follower) and
	// exclusively by role changes, so that no append of the old role lands
	// after the change.
	roleMu sync.RWMutex

	mu          sync.Mutex
	state       metastore.PartitionState // last state seen from the metastore
	role        role
	leaderEpoch int32
	followers   map[int32]*followerState // leader only: the other replicas
	isrChanging bool                     // an ISR update is in flight
	// joining is the replica an in-flight ISR expansion adds (-1: none): it
	// counts for the high watermark from the moment the change is sent,
	// since etcd may commit it before this broker hears back (Kafka's
	// "maximal ISR").
	joining int32
	// epochStart is the log end offset when this broker became leader: a
	// follower joins the ISR only once it has everything up to there too,
	// as the high watermark of a new leader can lag what was committed.
	epochStart int64
	// committed is closed when hw advances or the role changes: what
	// acks=all producers wait on. It is made by the first producer that
	// waits (committedLocked) and dropped once closed, so that appends
	// nobody waits on, as with a single replica where the high watermark
	// moves with every append, make no channel.
	committed chan struct{}
	waiters   map[chan struct{}]struct{}

	// producers is the idempotent-producer state (see producers.go).
	producers *producerStates

	// remote is what the remote log manager knows of the partition's
	// records in the object store (see tiering.go); nil for a partition
	// not added to it.
	remote *rlm.Partition

	// offline is the storage failure that took the partition's log offline
	// (Kafka's offline replica), nil while it is online; offlineSince is
	// when. An offline replica neither leads nor follows, whatever the
	// metastore says, until its log recovers (see offline.go). Guarded by
	// mu; set and cleared under roleMu too, as role changes are.
	offline      error
	offlineSince time.Time

	// isrObserver, if not nil, is told of ISR changes seen while leading.
	isrObserver isrObserver
}

// isrObserver learns of the ISR changes of partitions this broker leads.
type isrObserver interface {
	isrChanged(shrunk, expanded bool)
}

// followerState is what the leader knows of a follower from its fetches.
type followerState struct {
	leo int64 // -1 until its first fetch in this leader epoch
	// caughtUpAt is the last time the follower had everything the leader had
	// (Kafka's lastCaughtUpTime); a follower not caught up for
	// replica.lag.time.max.ms leaves the ISR.
	caughtUpAt time.Time
	// The time and leader log end of its previous fetch: a fetch reaching
	// that end proves the follower was caught up then.
	lastFetchAt    time.Time
	leoAtLastFetch int64
	// hwSent is the high watermark last sent to the follower (-1: none in
	// this term). With follower fetching on (replica.selector.class), a
	// fetch is answered at once when the high watermark has moved past it,
	// rather than at the end of its long poll: consumers reading from the
	// follower see records once they are committed, not a poll later.
	hwSent int64
}

func newPartition(topic, topicID string, index int32, l *partlog.Log, self int32) *Partition {
	p := &Partition{
		Topic: topic, topicID: topicID, Index: index, log: l, self: self,
		waiters:   make(map[chan struct{}]struct{}),
		joining:   -1,
		producers: newProducerStates(),
	}
	p.state = metastore.PartitionState{Topic: topic, Partition: index, Leader: -1}
	return p
}

// HighWatermark is the offset below which records are visible to consumers.
func (p *Partition) HighWatermark() int64 { return p.hw.Load() }

// LastStableOffset is the offset below which every record is either
// outside a transaction or in one whose end is replicated (Kafka's LSO):
// what a read_committed consumer may read. It is the first offset of the
// earliest transaction still open, or closed by a marker not yet below the
// high watermark, capped by the high watermark: the log knows
// transactions, the partition knows the high watermark. It moves when the
// high watermark does, and every move of that wakes the long polls.
func (p *Partition) LastStableOffset() int64 {
	return p.log.LastStableOffset(p.hw.Load())
}

// LogStartOffset is the first offset still in the log: in the object store
// when the partition is tiered and its oldest records are only there. The
// manifest's log start is moved first when records are deleted (retention,
// DeleteRecords), so a local log start below it, left by a crash before the
// local log followed, does not bring deleted records back.
func (p *Partition) LogStartOffset() int64 {
	if p.remote == nil {
		return p.log.LogStartOffset()
	}
	return p.remote.LogStartOffset()
}

// LogEndOffset is the offset the next appended record receives.
func (p *Partition) LogEndOffset() int64 { return p.log.LogEndOffset() }

// State returns the partition's last known metastore state and this
// broker's role.
func (p *Partition) State() (metastore.PartitionState, role) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state, p.role
}

// applyState adopts a partition state from the metastore (watch, or the
// result of this broker's own update). Older states are ignored. It returns
// the leader to follow, or -1 if this broker is not a follower.
//
// A state naming this broker leader that was written before registered (the
// revision of this broker's current registration in etcd) is not acted on:
// it predates this run of the broker, whose log may have lost what the
// state's leader had; the controller elects again (see controller.current).
// With a single replica there is nobody else to have more.
func (p *Partition) applyState(st metastore.PartitionState, now time.Time, registered int64) (follow int32, changed bool) {
	p.roleMu.Lock()
	defer p.roleMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.sameTopic(st.TopicID) || st.Revision != 0 && st.Revision <= p.state.Revision || st.LeaderEpoch < p.state.LeaderEpoch {
		if p.role == roleFollower {
			return p.state.Leader, false
		}
		return -1, false
	}
	prev, wasLeader := p.state, p.role == roleLeader
	p.state = st
	follow, changed = p.adoptLocked(now, registered)
	// Only a change within one term counts: a new leader's ISR is not a
	// change it saw.
	if p.isrObserver != nil && wasLeader && p.role == roleLeader && prev.LeaderEpoch == st.LeaderEpoch {
		if shrunk, expanded := isrDelta(prev, st); shrunk || expanded {
			p.isrObserver.isrChanged(shrunk, expanded)
		}
	}
	return follow, changed
}

// adoptLocked takes up the role p.state gives this broker (none while the
// log is offline) and returns the leader to follow, or -1. roleMu and mu
// must be held.
func (p *Partition) adoptLocked(now time.Time, registered int64) (follow int32, changed bool) {
	st := p.state
	prevRole, prevEpoch := p.role, p.leaderEpoch
	p.leaderEpoch = st.LeaderEpoch
	switch {
	case p.offline != nil:
		p.role = roleNone
	case st.Leader == p.self && st.Revision != 0 && st.Revision < registered && len(st.Replicas) > 1:
		p.role = roleNone
	case st.Leader == p.self:
		p.role = roleLeader
	case st.Leader >= 0 && slices.Contains(st.Replicas, p.self):
		p.role = roleFollower
	default:
		p.role = roleNone
	}
	changed = p.role != prevRole || p.leaderEpoch != prevEpoch
	if p.role == roleLeader && changed {
		// A new term: what followers had is unknown until they fetch.
		p.followers = make(map[int32]*followerState, len(st.Replicas))
		for _, id := range st.Replicas {
			if id != p.self {
				p.followers[id] = &followerState{leo: -1, caughtUpAt: now, lastFetchAt: now, leoAtLastFetch: -1, hwSent: -1}
			}
		}
		p.isrChanging, p.joining = false, -1
		p.epochStart = p.log.LogEndOffset()
	} else if p.role == roleLeader {
		// The same term with another replica set (a move grew or shrank
		// it): replicas joining start unknown, and those gone are forgotten.
		for _, id := range st.Replicas {
			if _, ok := p.followers[id]; !ok && id != p.self {
				p.followers[id] = &followerState{leo: -1, caughtUpAt: now, lastFetchAt: now, leoAtLastFetch: -1}
			}
		}
		for id := range p.followers {
			if !slices.Contains(st.Replicas, id) {
				delete(p.followers, id)
			}
		}
	}
	if p.role != roleLeader {
		p.followers = nil
	}
	if changed {
		p.signalLocked()
	}
	if p.role == roleLeader {
		p.advanceHWLocked()
	}
	if p.role == roleFollower {
		return st.Leader, changed
	}
	return -1, changed
}

// sameTopic reports whether a state or request naming topic id id is about
// this replica's incarnation of the topic (an empty id matches: written
// before ids were recorded).
func (p *Partition) sameTopic(id string) bool {
	return id == "" || p.topicID == "" || id == p.topicID
}

// signalLocked wakes acks=all producers and long polls. mu must be held.
func (p *Partition) signalLocked() {
	if p.committed != nil {
		close(p.committed)
		p.committed = nil
	}
	for ch := range p.waiters {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// advanceHWLocked moves the high watermark to the smallest log end offset of
// the ISR, as recorded in the metastore: a member counts until its removal is
// committed, and a new member only once its addition is. mu must be held.
func (p *Partition) advanceHWLocked() {
	hw := p.log.LogEndOffset()
	count := func(id int32) bool {
		if id == p.self {
			return true
		}
		f := p.followers[id]
		if f == nil || f.leo < 0 {
			return false // not heard from yet in this term
		}
		hw = min(hw, f.leo)
		return true
	}
	for _, id := range p.state.ISR {
		if !count(id) {
			return
		}
	}
	if p.joining >= 0 && !slices.Contains(p.state.ISR, p.joining) && !count(p.joining) {
		return
	}
	if hw > p.hw.Load() {
		p.hw.Store(hw)
		p.signalLocked()
	}
}

// leaderAppend appends batches as the leader, after checking this broker
// still leads with a lease it can trust, and that acks=all has its ISR.
// The batches' CRCs must have been checked (produce does, in
// checkProduced): the log does not compute them again.
func (p *Partition) leaderAppend(batches []byte, acks Acks, minISR int, leaseOK func() bool, registered int64) (partlog.AppendResult, int32, error) {
	return p.leaderAppendVerified(batches, acks, minISR, leaseOK, registered, nil)
}

// leaderAppendVerified is leaderAppend for a request whose transactional
// batches were verified (verifyTransactional): guards are its
// verifications, by producer id, used up by this append whatever its
// outcome.
func (p *Partition) leaderAppendVerified(batches []byte, acks Acks, minISR int, leaseOK func() bool, registered int64, guards map[int64]*txnGuard) (partlog.AppendResult, int32, error) {
	p.roleMu.RLock()
	defer p.roleMu.RUnlock()
	epoch, err := p.appendableLocked(acks, minISR, leaseOK, registered)
	if err != nil {
		p.producers.dropGuards(guards)
		return partlog.AppendResult{}, 0, err
	}
	res, err := p.appendAsLeader(batches, epoch, guards)
	if err != nil {
		return res, 0, err
	}
	p.appendedAsLeader()
	return res, epoch, nil
}

// appendableLocked checks that this broker leads with a lease it can trust,
// and that acks=all has its ISR, and returns the leader epoch to append
// in. The caller holds roleMu.
func (p *Partition) appendableLocked(acks Acks, minISR int, leaseOK func() bool, registered int64) (int32, error) {
	p.mu.Lock()
	epoch, isr := p.leaderEpoch, len(p.state.ISR)
	err := p.leaderErrLocked()
	if err == nil && p.predatesLocked(registered) {
		// This broker registered again (a lost lease) since it was made
		// leader; the controller will elect anew.
		err = fmt.Errorf("%s-%d: leadership predates this broker's registration: %w", p.Topic, p.Index, ErrLeaderNotAvailable)
	}
	p.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if !leaseOK() {
		// etcd may have expired our lease and elected another leader already.
		return 0, fmt.Errorf("%s-%d: cannot confirm leadership: broker lease not renewed: %w", p.Topic, p.Index, ErrNotLeader)
	}
	if acks == AcksAll && isr < minISR {
		return 0, fmt.Errorf("%s-%d: ISR has %d replica(s), min.insync.replicas is %d: %w",
			p.Topic, p.Index, isr, minISR, ErrNotEnoughReplicas)
	}
	return epoch, nil
}

// appendedAsLeader follows an append to the leader's log: the high
// watermark moves when the ISR is this broker alone, and every long poll is
// woken, not only when the high watermark moves: followers' fetches wait
// for the log end. (The last stable offset moves only with the high
// watermark, whose moves wake them too.) Whatever appends as leader
// (produce, end-transaction markers) calls it.
func (p *Partition) appendedAsLeader() {
	p.mu.Lock()
	p.advanceHWLocked()
	p.wakeLocked()
	p.mu.Unlock()
}

// waitCommitted waits until the high watermark passes offset while this
// broker leads in epoch, for acks=all.
//
// If the ISR is smaller than minISR when the records are committed, they were
// committed with fewer copies than asked: ErrNotEnoughReplicasAfterAppend.
func (p *Partition) waitCommitted(ctx context.Context, offset int64, epoch int32, minISR int, timeout time.Duration) error {
	// The timer is made only to wait: with a single replica, or followers
	// faster than the request's other partitions, the offset is committed
	// at the first look.
	var timeoutC <-chan time.Time
	for {
		p.mu.Lock()
		r, e, isr, offline := p.role, p.leaderEpoch, len(p.state.ISR), p.offline
		hw := p.hw.Load()
		var ch chan struct{}
		if hw <= offset {
			ch = p.committedLocked()
		}
		p.mu.Unlock()
		// The role first: after a change, a follower's high watermark says
		// nothing about what this broker appended as leader.
		if offline != nil {
			return fmt.Errorf("%s-%d: log went offline before offset %d was replicated: %w", p.Topic, p.Index, offset, offline)
		}
		if r != roleLeader || e != epoch {
			return fmt.Errorf("%s-%d: leadership moved before offset %d was replicated: %w", p.Topic, p.Index, offset, ErrNotLeader)
		}
		if hw > offset {
			if isr < minISR {
				return fmt.Errorf("%s-%d: offset %d committed with an ISR of %d, below min.insync.replicas %d: %w",
					p.Topic, p.Index, offset, isr, minISR, ErrNotEnoughReplicasAfterAppend)
			}
			return nil
		}
		if timeoutC == nil {
			timer := time.NewTimer(timeout)
			defer timer.Stop()
			timeoutC = timer.C
		}
		select {
		case <-ch:
		case <-timeoutC:
			return fmt.Errorf("%s-%d: offset %d not replicated to the ISR within %v: %w", p.Topic, p.Index, offset, timeout, ErrRequestTimedOut)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// committedLocked returns the channel closed at the next move of the high
// watermark or of the role. mu must be held.
func (p *Partition) committedLocked() chan struct{} {
	if p.committed == nil {
		p.committed = make(chan struct{})
	}
	return p.committed
}

// checkLeader returns nil if this broker leads the partition.
func (p *Partition) checkLeader() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.leaderErrLocked()
}

func (p *Partition) leaderErrLocked() error {
	switch {
	case p.offline != nil:
		// As Kafka answers for an offline replica, whoever leads now:
		// KAFKA_STORAGE_ERROR sends clients to fresh metadata.
		return fmt.Errorf("%s-%d: log offline on broker %d: %w", p.Topic, p.Index, p.self, p.offline)
	case p.role == roleLeader:
		return nil
	case p.state.Leader < 0 || p.state.Leader == p.self:
		// Leaderless, or a leadership this broker does not act on (it
		// predates its registration): an election is due.
		return fmt.Errorf("%s-%d: %w", p.Topic, p.Index, ErrLeaderNotAvailable)
	default:
		return fmt.Errorf("%s-%d: leader is broker %d: %w", p.Topic, p.Index, p.state.Leader, ErrNotLeader)
	}
}

// followerFetched records a follower's fetch at fetchOffset (its log end) and
// returns whether it should join the ISR.
func (p *Partition) followerFetched(id int32, epoch int32, fetchOffset int64, now time.Time) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.leaderErrLocked(); err != nil {
		return false, err
	}
	switch {
	case epoch < p.leaderEpoch:
		return false, fmt.Errorf("%s-%d: epoch %d, leader is at %d: %w", p.Topic, p.Index, epoch, p.leaderEpoch, ErrFencedLeaderEpoch)
	case epoch > p.leaderEpoch:
		return false, fmt.Errorf("%s-%d: epoch %d, leader is at %d: %w", p.Topic, p.Index, epoch, p.leaderEpoch, ErrUnknownLeaderEpoch)
	}
	f := p.followers[id]
	if f == nil {
		return false, fmt.Errorf("%w: broker %d is not a replica of %s-%d", ErrInvalidRequest, id, p.Topic, p.Index)
	}
	leo := p.log.LogEndOffset()
	if fetchOffset >= leo {
		f.caughtUpAt = now
	} else if f.leoAtLastFetch >= 0 && fetchOffset >= f.leoAtLastFetch {
		if f.lastFetchAt.After(f.caughtUpAt) {
			f.caughtUpAt = f.lastFetchAt
		}
	}
	f.leo = min(fetchOffset, leo)
	f.lastFetchAt, f.leoAtLastFetch = now, leo
	p.advanceHWLocked()
	join := !slices.Contains(p.state.ISR, id) && f.leo >= max(p.hw.Load(), p.epochStart) && !p.isrChanging
	return join, nil
}

// hwNewsFor reports whether the high watermark hw is above what follower id
// was last sent.
func (p *Partition) hwNewsFor(id int32, hw int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.followers[id]
	return f != nil && hw > f.hwSent
}

// sentHW records that follower id is sent the high watermark hw.
func (p *Partition) sentHW(id int32, hw int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f := p.followers[id]; f != nil {
		f.hwSent = hw
	}
}

// laggingISR returns the ISR members (other than the leader) not caught up
// within maxLag.
func (p *Partition) laggingISR(now time.Time, maxLag time.Duration) []int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.role != roleLeader || p.isrChanging {
		return nil
	}
	var out []int32
	for _, id := range p.state.ISR {
		if f := p.followers[id]; id != p.self && f != nil && now.Sub(f.caughtUpAt) > maxLag {
			out = append(out, id)
		}
	}
	return out
}

// beginISRChange marks an ISR update in flight and returns the state to
// change; ok is false if this broker does not lead or one is in flight.
// joining (-1 for a shrink) is the replica an expansion adds.
func (p *Partition) beginISRChange(joining int32) (metastore.PartitionState, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.role != roleLeader || p.isrChanging {
		return metastore.PartitionState{}, false
	}
	p.isrChanging, p.joining = true, joining
	return p.state, true
}

func (p *Partition) endISRChange() {
	p.mu.Lock()
	p.isrChanging, p.joining = false, -1
	p.mu.Unlock()
}

// predatesLocked reports whether the state making this broker leader was
// written before its current registration (see applyState). mu must be held.
func (p *Partition) predatesLocked(registered int64) bool {
	return p.state.Revision != 0 && p.state.Revision < registered && len(p.state.Replicas) > 1
}

// takeOffline records that a storage failure took the partition's log
// offline: the partition gives up its role at once (waiting producers and
// polls return) and takes none until bringOnline. It reports whether the
// partition was online.
func (p *Partition) takeOffline(failure error, now time.Time) bool {
	p.roleMu.Lock()
	defer p.roleMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.offline != nil {
		return false
	}
	p.offline, p.offlineSince = failure, now
	p.role, p.followers = roleNone, nil
	p.signalLocked()
	return true
}

// bringOnline ends the offline state once the log has recovered, and takes
// up the role the partition's current state gives this broker, which it
// returns.
func (p *Partition) bringOnline(now time.Time, registered int64) role {
	p.roleMu.Lock()
	defer p.roleMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.offline, p.offlineSince = nil, time.Time{}
	// Recovery may have cut what a failed write left above the last valid
	// batch; a follower's high watermark never passes its log end.
	if leo := p.log.LogEndOffset(); p.hw.Load() > leo {
		p.hw.Store(leo)
	}
	p.adoptLocked(now, registered)
	return p.role
}

// offlineState returns when a storage failure took the log offline, and
// the failure; nil while the log is online.
func (p *Partition) offlineState() (since time.Time, failure error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.offlineSince, p.offline
}

// drop ends the partition's service: waiting producers and polls return.
func (p *Partition) drop() {
	p.mu.Lock()
	p.role = roleNone
	p.signalLocked()
	p.mu.Unlock()
}

// followerEpoch returns the leader epoch to fetch with if this broker follows
// leader for the partition.
func (p *Partition) followerEpoch(leader int32) (int32, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.leaderEpoch, p.role == roleFollower && p.state.Leader == leader
}

// setFollowerHW adopts the leader's high watermark, capped by this log's end.
// Consumers reading from this follower (readreplica.go) wait for it to grow.
func (p *Partition) setFollowerHW(leaderHW int64) {
	hw := min(leaderHW, p.log.LogEndOffset())
	if old := p.hw.Swap(hw); hw > old {
		p.wake()
	}
}

// wake signals every registered waiter without blocking: a waiter channel
// has room for one signal, and one is all it needs to re-read.
func (p *Partition) wake() {
	p.mu.Lock()
	p.wakeLocked()
	p.mu.Unlock()
}

func (p *Partition) wakeLocked() {
	for ch := range p.waiters {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (p *Partition) addWaiter(ch chan struct{}) {
	p.mu.Lock()
	p.waiters[ch] = struct{}{}
	p.mu.Unlock()
}

func (p *Partition) removeWaiter(ch chan struct{}) {
	p.mu.Lock()
	delete(p.waiters, ch)
	p.mu.Unlock()
}
