package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/strata-broker/strata/metastore"
)

// The broker's view of the cluster: every partition's state and the live
// brokers, followed from the metastore. Partition states decide which
// partitions this broker hosts and in which role; broker registrations give
// the leaders' addresses to the replica fetchers and to Metadata.

type tp = metastore.TopicPartition

// clusterView is the broker's followed copy of the cluster's metadata: the
// state of every partition, the live brokers and (cached briefly) the
// controller. It knows nothing of the partitions hosted here; whoever
// follows it applies what changed to them.
type clusterView struct {
	partitions PartitionStateStore
	members    ClusterStore
	logger     *slog.Logger
	now        func() time.Time

	// mu guards everything below.
	mu           sync.RWMutex
	states       map[tp]metastore.PartitionState
	brokers      []metastore.BrokerInfo
	controller   int32     // cached controller id, see controllerID
	controllerAt time.Time // when it was read

	secretRead freshBrokers        // see replicaSecretMatches
	leaderRead leaderRegistrations // see withLeadersRegistered
}

// follow starts following partition states and brokers on goroutines that
// wg accounts for, until ctx ends. Each update's newer states go to applied,
// after they are recorded; brokersChanged is called after the live brokers
// are. ready is closed once both have delivered their first snapshot.
func (c *clusterView) follow(ctx context.Context, wg *sync.WaitGroup, applied func([]metastore.PartitionState), brokersChanged func()) (ready <-chan struct{}) {
	var pending sync.WaitGroup
	pending.Add(2)
	firstOnce := func() func() {
		var once sync.Once
		return func() { once.Do(pending.Done) }
	}
	partsReady, brokersReady := firstOnce(), firstOnce()
	wg.Add(2)
	go func() {
		defer wg.Done()
		c.partitions.FollowPartitions(ctx, func(u metastore.PartitionsUpdate) {
			applied(c.mergeStates(u))
			partsReady()
		})
		partsReady() // stopped before a snapshot: let the waiter go
	}()
	go func() {
		defer wg.Done()
		c.members.FollowBrokers(ctx, func(live []metastore.BrokerInfo) {
			c.mu.Lock()
			c.brokers = live
			c.mu.Unlock()
			brokersChanged()
			brokersReady()
		})
		brokersReady()
	}()
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		pending.Wait()
		close(done)
	}()
	return done
}

// mergeStates records states in the cache and returns those that are newer
// than what it held.
func (c *clusterView) mergeStates(u metastore.PartitionsUpdate) []metastore.PartitionState {
	c.mu.Lock()
	defer c.mu.Unlock()
	if u.Snapshot {
		c.states = make(map[tp]metastore.PartitionState, len(u.States))
	}
	for _, d := range u.Deleted {
		delete(c.states, d)
	}
	var changed []metastore.PartitionState
	for _, st := range u.States {
		k := tp{Topic: st.Topic, Partition: st.Partition}
		if cur, ok := c.states[k]; ok && cur.Revision >= st.Revision {
			continue
		}
		c.states[k] = st
		changed = append(changed, st)
	}
	return changed
}

// cachedState returns the last known state of a partition.
func (c *clusterView) cachedState(topic string, partition int32) (metastore.PartitionState, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	st, ok := c.states[tp{Topic: topic, Partition: partition}]
	return st, ok
}

// topicStates returns the states of a topic's partitions, from the cache or,
// for a topic the follow has not delivered yet (a create racing the watch),
// from the metastore.
func (c *clusterView) topicStates(t metastore.Topic) ([]metastore.PartitionState, error) {
	out := make([]metastore.PartitionState, t.Partitions)
	missing := false
	c.mu.RLock()
	for i := range out {
		st, ok := c.states[tp{Topic: t.Name, Partition: int32(i)}]
		if !ok || !sameIncarnation(st, t) {
			missing = true
			break
		}
		out[i] = st
	}
	c.mu.RUnlock()
	if !missing {
		return out, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	states, err := c.partitions.PartitionStates(ctx, t.Name)
	if err != nil {
		return nil, fmt.Errorf("partition states of %q: %w", t.Name, err)
	}
	// Only cached here: the caller opens the partitions and applies states.
	c.mergeStates(metastore.PartitionsUpdate{States: states})
	out = out[:0]
	for i := int32(0); i < t.Partitions; i++ {
		st, ok := c.cachedState(t.Name, i)
		if !ok || !sameIncarnation(st, t) {
			// Another incarnation of the topic: nothing to host for this one.
			st = metastore.PartitionState{Topic: t.Name, TopicID: t.ID, Partition: i, Leader: -1}
		}
		out = append(out, st)
	}
	return out, nil
}

// sameIncarnation reports whether st belongs to topic t (an empty id, from
// before ids were recorded in states, matches).
func sameIncarnation(st metastore.PartitionState, t metastore.Topic) bool {
	return st.TopicID == "" || t.ID == "" || st.TopicID == t.ID
}

// brokerAddr returns a live broker's advertised gRPC address.
func (c *clusterView) brokerAddr(id int32) (string, bool) {
	br, ok := find(c.liveBrokers(), id)
	return br.GRPCAddr, ok
}

// replicaSecretMatches reports whether secret is the one registered by live
// broker id. It reads the followed registrations first, and only when they
// do not confirm it reads etcd's (secretRead): the broker watch can lag,
// and a follower registered just before this broker's snapshot could
// otherwise be refused for as long as the watch is behind, while it stays
// in the ISR without a record (a later election could then pick it and lose
// what the leader acknowledged). Of two registrations of the id, the one
// with the higher broker epoch is the newer: a replaced registration's
// secret is refused whichever list still has it.
func (c *clusterView) replicaSecretMatches(ctx context.Context, id int32, secret metastore.ReplicaSecret) bool {
	reg, ok := find(c.liveBrokers(), id)
	if read, have := c.secretRead.last(); have {
		if r, found := find(read, id); found && (!ok || r.Epoch > reg.Epoch) {
			reg, ok = r, true
		}
	}
	if ok && reg.ReplicaSecret.Matches(string(secret)) {
		return true
	}
	fresh, have := c.secretRead.brokers(ctx, c.members, c.now())
	if !have {
		return false
	}
	r, found := find(fresh, id)
	return found && (!ok || r.Epoch >= reg.Epoch) && r.ReplicaSecret.Matches(string(secret))
}

func (c *clusterView) liveBrokers() []metastore.BrokerInfo {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.brokers
}

func find(brokers []metastore.BrokerInfo, id int32) (metastore.BrokerInfo, bool) {
	for _, br := range brokers {
		if br.NodeID == id {
			return br, true
		}
	}
	return metastore.BrokerInfo{}, false
}

// secretReadInterval bounds how often refused replica fetches make this
// broker read the registrations from etcd: a caller forging fetches costs
// etcd at most one read per interval.
const secretReadInterval = 200 * time.Millisecond

// freshBrokers is the last read of the registrations made to confirm a
// replica's secret, shared by the fetches that need one.
type freshBrokers struct {
	mu   sync.Mutex // held during the read: callers meanwhile wait and share it
	at   time.Time
	list []metastore.BrokerInfo
	ok   bool
}

// last is the latest read, if any.
func (f *freshBrokers) last() ([]metastore.BrokerInfo, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.list, f.ok
}

// brokers returns the registrations read within secretReadInterval of now,
// reading them again if the last read is older.
func (f *freshBrokers) brokers(ctx context.Context, store ClusterStore, now time.Time) ([]metastore.BrokerInfo, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ok && now.Sub(f.at) < secretReadInterval {
		return f.list, true
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	list, err := store.Brokers(ctx)
	if err != nil {
		return nil, false
	}
	f.at, f.list, f.ok = now, list, true
	return list, true
}

// leaderReadTimeout bounds the read of the registrations that Metadata
// makes for a leader the broker watch has not delivered: without etcd,
// Metadata still answers, from the followed view.
const leaderReadTimeout = 500 * time.Millisecond

// leaderRegistrations is the last read of the registrations made for
// Metadata, successful or not, shared by the requests that need one.
type leaderRegistrations struct {
	mu   sync.Mutex // held during the read: callers meanwhile wait and share it
	at   time.Time  // of the last attempt
	list []metastore.BrokerInfo
	ok   bool
}

// brokers returns the registrations of the last read, reading them again
// if it was not made within secretReadInterval of now. A failed read is
// remembered as long as a successful one, so an unreachable etcd costs
// Metadata one bounded wait per interval, not one per request.
func (l *leaderRegistrations) brokers(ctx context.Context, store ClusterStore, now time.Time) ([]metastore.BrokerInfo, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.at.IsZero() && now.Sub(l.at) < secretReadInterval {
		return l.list, l.ok
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaderReadTimeout)
	defer cancel()
	list, err := store.Brokers(ctx)
	l.at, l.list, l.ok = now, list, err == nil
	return l.list, l.ok
}

// withLeadersRegistered returns md's live brokers, completed, when a
// partition's leader is not among them, with the registrations read from
// the metastore. The broker watch and the partition watch are two streams:
// the states can be ahead (a create applies the states it wrote, read back
// from etcd, before returning), and a leader is only ever placed or elected
// once it is registered, so a leader the followed brokers lack is most
// likely one the broker watch has not delivered yet. Kafka's metadata
// cache holds registrations and partitions in one image and never names a
// leader it has no registration for; answering LEADER_NOT_AVAILABLE for it
// made a client that listed offsets right after creating a topic fail
// (franz-go fails a sharded request at once on a partition that metadata
// says has no leader). A leader that is not registered in etcd either
// stays unavailable.
func (c *clusterView) withLeadersRegistered(ctx context.Context, md Metadata) []metastore.BrokerInfo {
	missing := false
	for _, tm := range md.Topics {
		for _, st := range tm.Partitions {
			if st.Leader >= 0 && !slices.ContainsFunc(md.Brokers, func(b metastore.BrokerInfo) bool { return b.NodeID == st.Leader }) {
				missing = true
				break
			}
		}
		if missing {
			break
		}
	}
	if !missing {
		return md.Brokers
	}
	read, ok := c.leaderRead.brokers(ctx, c.members, c.now())
	if !ok {
		return md.Brokers
	}
	out := md.Brokers
	for _, r := range read {
		if _, followed := find(md.Brokers, r.NodeID); !followed {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b metastore.BrokerInfo) int { return int(a.NodeID) - int(b.NodeID) })
	return out
}

// metadata returns the live brokers and the partition states of the named
// topics, those in known, read together.
func (c *clusterView) metadata(names []string, known map[string]metastore.Topic) Metadata {
	var md Metadata
	c.mu.RLock()
	defer c.mu.RUnlock()
	md.Brokers = slices.Clone(c.brokers)
	for _, name := range names {
		t, ok := known[name]
		if !ok {
			md.Topics = append(md.Topics, TopicMetadata{Name: name, Err: fmt.Errorf("topic %q: %w", name, ErrUnknownTopicOrPartition)})
			continue
		}
		tm := TopicMetadata{Name: name, ID: t.ID}
		for i := int32(0); i < t.Partitions; i++ {
			st, ok := c.states[tp{Topic: name, Partition: i}]
			if !ok {
				st = metastore.PartitionState{Topic: name, Partition: i, Leader: -1}
			}
			tm.Partitions = append(tm.Partitions, st)
		}
		md.Topics = append(md.Topics, tm)
	}
	return md
}

// Metadata is the cluster as clients need it: live brokers, and each
// partition's leader, replicas and ISR for the named topics (all if none).
type Metadata struct {
	Brokers      []metastore.BrokerInfo
	Topics       []TopicMetadata
	ControllerID int32
}

// TopicMetadata is one topic's partitions, or the error naming it.
type TopicMetadata struct {
	Name       string
	ID         string
	Partitions []metastore.PartitionState
	Err        error
	// Internal marks Kafka's internal topics (see OffsetsTopic).
	Internal bool
}

// Metadata answers from the broker's followed view of the cluster, as a
// Kafka broker answers from its metadata cache.
func (b *Broker) Metadata(ctx context.Context, topics []string) (Metadata, error) {
	b.hosted.catchUp(ctx, topics)
	all := len(topics) == 0
	topics, known := b.hosted.known(topics)
	md := b.cluster.metadata(topics, known)
	// The internal topic is listed with every topic, and when asked for,
	// unless a real topic of its name is served instead.
	if _, real := known[OffsetsTopic]; !real {
		i := slices.IndexFunc(md.Topics, func(tm TopicMetadata) bool { return tm.Name == OffsetsTopic })
		switch {
		case i >= 0:
			md.Topics[i] = b.offsetsTopicMetadata(ctx, md.Brokers)
		case all:
			md.Topics = append(md.Topics, b.offsetsTopicMetadata(ctx, md.Brokers))
		}
	} else {
		for i := range md.Topics {
			md.Topics[i].Internal = IsInternalTopic(md.Topics[i].Name)
		}
	}
	md.Brokers = b.cluster.withLeadersRegistered(ctx, md)
	md.ControllerID = b.cluster.controllerID(ctx)
	return md, nil
}

// replicaSecret is the secret of this broker's current registration, which
// its replica fetches carry ("" if unknown).
func (b *Broker) replicaSecret() metastore.ReplicaSecret {
	if b.cfg.ReplicaSecret == nil {
		return ""
	}
	return b.cfg.ReplicaSecret()
}

// registered is the revision of this broker's current registration (0 if
// unknown).
func (b *Broker) registered() int64 {
	if b.cfg.RegistrationEpoch == nil {
		return 0
	}
	return b.cfg.RegistrationEpoch()
}

// controllerIDMaxAge bounds how often Metadata reads the controller from
// etcd: clients call Metadata often (a silent leader makes them ask every
// second), and etcd's load must not grow with the number of clients.
const controllerIDMaxAge = time.Second

// controllerID returns the elected controller's node id, -1 if unknown.
func (c *clusterView) controllerID(ctx context.Context) int32 {
	c.mu.RLock()
	id, at := c.controller, c.controllerAt
	c.mu.RUnlock()
	if !at.IsZero() && c.now().Sub(at) < controllerIDMaxAge {
		return id
	}
	// Metadata without the controller is still useful to clients: do not
	// let an unreachable etcd hold it, and do not ask again at once.
	cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	id, err := c.members.Controller(cctx)
	if err != nil {
		c.logger.Warn("metadata: cannot read the controller", "err", err)
		id = -1
	}
	c.mu.Lock()
	c.controller, c.controllerAt = id, c.now()
	c.mu.Unlock()
	return id
}

// isrKeeper keeps the ISR of the partitions this broker leads: it drops
// followers that fell behind and adds those that caught up, recording each
// change in the metastore before adopting it.
type isrKeeper struct {
	store   PartitionStateStore
	lagMax  time.Duration // replica.lag.time.max.ms
	logger  *slog.Logger
	cluster *clusterView
	hosted  *hostedTopics
}

// run shrinks the ISR of partitions this broker leads when a follower has
// not caught up within replica.lag.time.max.ms.
func (k *isrKeeper) run(ctx context.Context) {
	k.hosted.everyPartition(ctx, max(k.lagMax/4, 50*time.Millisecond), func(now time.Time, p *Partition) {
		k.shrink(ctx, p, now)
	})
}

// shrink drops from p's ISR the followers not caught up within
// replica.lag.time.max.ms before now. It is run's decision apart from run's
// ticker, so that a test on a fake clock can make it at a chosen
// time.
func (k *isrKeeper) shrink(ctx context.Context, p *Partition, now time.Time) {
	if lag := p.laggingISR(now, k.lagMax); len(lag) > 0 {
		k.change(ctx, p, func(isr []int32) []int32 {
			return slices.DeleteFunc(isr, func(id int32) bool { return slices.Contains(lag, id) })
		}, "shrink", lag, -1)
	}
}

// change updates a led partition's ISR in the metastore with a
// compare-and-swap, then adopts the result. The leader epoch is part of what
// is compared (through the revision), so a deposed leader's change fails.
func (k *isrKeeper) change(ctx context.Context, p *Partition, edit func([]int32) []int32, why string, ids []int32, joining int32) {
	old, ok := p.beginISRChange(joining)
	if !ok {
		return
	}
	defer p.endISRChange()
	next := old
	next.ISR = edit(slices.Clone(old.ISR))
	slices.Sort(next.ISR)
	if slices.Equal(next.ISR, old.ISR) {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	got, err := k.store.CompareAndSwapPartitionState(cctx, old, next)
	if err != nil {
		if errors.Is(err, metastore.ErrConflict) {
			// Someone else (the controller) changed it first; adopt theirs and
			// let the next fetch or tick decide again.
			k.hosted.applyPartitionState(p, got)
			return
		}
		k.logger.Warn("ISR change failed", "topic", p.Topic, "partition", p.Index, "change", why, "replicas", ids, "err", err)
		return
	}
	k.logger.Info("ISR changed", "topic", p.Topic, "partition", p.Index, "change", why, "replicas", ids, "isr", got.ISR)
	k.cluster.mergeStates(metastore.PartitionsUpdate{States: []metastore.PartitionState{got}})
	k.hosted.applyPartitionState(p, got)
}
