package broker

import (
	"context"
	"errors"
	"fmt"
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

// followCluster starts following partition states and brokers; ready is
// closed once both have delivered their first snapshot.
func (b *Broker) followCluster(ctx context.Context) (ready <-chan struct{}) {
	var pending sync.WaitGroup
	pending.Add(2)
	firstOnce := func() func() {
		var once sync.Once
		return func() { once.Do(pending.Done) }
	}
	partsReady, brokersReady := firstOnce(), firstOnce()
	b.wg.Add(2)
	go func() {
		defer b.wg.Done()
		b.store.FollowPartitions(ctx, func(u metastore.PartitionsUpdate) {
			b.applyPartitionsUpdate(u)
			partsReady()
		})
		partsReady() // stopped before a snapshot: let the waiter go
	}()
	go func() {
		defer b.wg.Done()
		b.store.FollowBrokers(ctx, func(live []metastore.BrokerInfo) {
			b.clusterMu.Lock()
			b.brokers = live
			b.clusterMu.Unlock()
			b.fetchers.brokersChanged()
			brokersReady()
		})
		brokersReady()
	}()
	done := make(chan struct{})
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		pending.Wait()
		close(done)
	}()
	return done
}

// applyPartitionsUpdate records new partition states and applies them to the
// hosted partitions, opening a partition's log when this broker has just
// become one of its replicas.
func (b *Broker) applyPartitionsUpdate(u metastore.PartitionsUpdate) {
	changed := b.mergeStates(u)

	var reopen []string
	for _, st := range changed {
		p, err := b.partition(st.Topic, st.Partition)
		if err != nil {
			if slices.Contains(st.Replicas, b.cfg.NodeID) && !slices.Contains(reopen, st.Topic) {
				reopen = append(reopen, st.Topic)
			}
			continue
		}
		b.applyPartitionState(p, st)
	}
	for _, name := range reopen {
		b.mu.RLock()
		t := b.topics[name]
		b.mu.RUnlock()
		if t == nil {
			continue // the topic's own event opens it
		}
		if err := b.applyTopic(t.meta); err != nil {
			b.logger.Error("cannot open partitions", "topic", name, "err", err)
		}
	}
}

// mergeStates records states in the cache and returns those that are newer
// than what it held.
func (b *Broker) mergeStates(u metastore.PartitionsUpdate) []metastore.PartitionState {
	b.clusterMu.Lock()
	defer b.clusterMu.Unlock()
	if u.Snapshot {
		b.states = make(map[tp]metastore.PartitionState, len(u.States))
	}
	for _, d := range u.Deleted {
		delete(b.states, d)
	}
	var changed []metastore.PartitionState
	for _, st := range u.States {
		k := tp{Topic: st.Topic, Partition: st.Partition}
		if cur, ok := b.states[k]; ok && cur.Revision >= st.Revision {
			continue
		}
		b.states[k] = st
		changed = append(changed, st)
	}
	return changed
}

// applyPartitionState applies st to p and starts or stops replica fetching.
func (b *Broker) applyPartitionState(p *Partition, st metastore.PartitionState) {
	_, changed := p.applyState(st, b.now(), b.registered())
	if changed {
		_, r := p.State()
		b.logger.Info("partition role", "topic", p.Topic, "partition", p.Index, "role", r.String(),
			"leader", st.Leader, "leader_epoch", st.LeaderEpoch, "isr", st.ISR)
	}
	// From p's state as it is now, not as this call left it: two appliers
	// racing (the watch, an ISR change's result) must not leave a follower
	// without its fetcher.
	b.fetchers.sync(p)
}

// registered is the revision of this broker's current registration (0 if
// unknown).
func (b *Broker) registered() int64 {
	if b.cfg.RegistrationEpoch == nil {
		return 0
	}
	return b.cfg.RegistrationEpoch()
}

// cachedState returns the last known state of a partition.
func (b *Broker) cachedState(topic string, partition int32) (metastore.PartitionState, bool) {
	b.clusterMu.RLock()
	defer b.clusterMu.RUnlock()
	st, ok := b.states[tp{Topic: topic, Partition: partition}]
	return st, ok
}

// topicStates returns the states of a topic's partitions, from the cache or,
// for a topic the follow has not delivered yet (a create racing the watch),
// from the metastore.
func (b *Broker) topicStates(t metastore.Topic) ([]metastore.PartitionState, error) {
	out := make([]metastore.PartitionState, t.Partitions)
	missing := false
	b.clusterMu.RLock()
	for i := range out {
		st, ok := b.states[tp{Topic: t.Name, Partition: int32(i)}]
		if !ok || !sameIncarnation(st, t) {
			missing = true
			break
		}
		out[i] = st
	}
	b.clusterMu.RUnlock()
	if !missing {
		return out, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	states, err := b.store.PartitionStates(ctx, t.Name)
	if err != nil {
		return nil, fmt.Errorf("partition states of %q: %w", t.Name, err)
	}
	// Only cached here: the caller opens the partitions and applies states.
	b.mergeStates(metastore.PartitionsUpdate{States: states})
	out = out[:0]
	for i := int32(0); i < t.Partitions; i++ {
		st, ok := b.cachedState(t.Name, i)
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
func (b *Broker) brokerAddr(id int32) (string, bool) {
	b.clusterMu.RLock()
	defer b.clusterMu.RUnlock()
	for _, br := range b.brokers {
		if br.NodeID == id {
			return br.GRPCAddr, true
		}
	}
	return "", false
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
}

// Metadata answers from the broker's followed view of the cluster, as a
// Kafka broker answers from its metadata cache.
func (b *Broker) Metadata(ctx context.Context, topics []string) (Metadata, error) {
	b.catchUpTopics(ctx, topics)
	b.mu.RLock()
	if len(topics) == 0 {
		for name := range b.topics {
			topics = append(topics, name)
		}
		slices.Sort(topics)
	}
	known := make(map[string]metastore.Topic, len(topics))
	for _, name := range topics {
		if t := b.topics[name]; t != nil {
			known[name] = t.meta
		}
	}
	b.mu.RUnlock()

	var md Metadata
	b.clusterMu.RLock()
	md.Brokers = slices.Clone(b.brokers)
	for _, name := range topics {
		t, ok := known[name]
		if !ok {
			md.Topics = append(md.Topics, TopicMetadata{Name: name, Err: fmt.Errorf("topic %q: %w", name, ErrUnknownTopicOrPartition)})
			continue
		}
		tm := TopicMetadata{Name: name, ID: t.ID}
		for i := int32(0); i < t.Partitions; i++ {
			st, ok := b.states[tp{Topic: name, Partition: i}]
			if !ok {
				st = metastore.PartitionState{Topic: name, Partition: i, Leader: -1}
			}
			tm.Partitions = append(tm.Partitions, st)
		}
		md.Topics = append(md.Topics, tm)
	}
	b.clusterMu.RUnlock()
	md.ControllerID = b.controllerID(ctx)
	return md, nil
}

// catchUpTopics applies, from the metastore, the named topics this broker
// does not hold yet. A topic created through another broker reaches this one
// through the watch a moment later; a client that was told the topic exists
// (its CreateTopics returned) and asks here must not be told it does not.
// Only unknown names cost an etcd read.
func (b *Broker) catchUpTopics(ctx context.Context, names []string) {
	for _, name := range names {
		b.mu.RLock()
		_, ok := b.topics[name]
		b.mu.RUnlock()
		if ok {
			continue
		}
		t, err := b.store.GetTopic(ctx, name)
		if err != nil {
			continue // unknown, or etcd unreachable: answer from what is held
		}
		if err := b.applyTopic(t); err != nil {
			b.logger.Warn("cannot apply topic read for metadata", "topic", name, "err", err)
			continue
		}
		// A delete whose watch event was applied before the topic was: the
		// watch would not remove it again.
		if _, err := b.store.GetTopic(ctx, name); errors.Is(err, metastore.ErrTopicNotFound) {
			b.removeTopic(name, t.ID)
		}
	}
}

// controllerIDMaxAge bounds how often Metadata reads the controller from
// etcd: clients call Metadata often (a silent leader makes them ask every
// second), and etcd's load must not grow with the number of clients.
const controllerIDMaxAge = time.Second

// controllerID returns the elected controller's node id, -1 if unknown.
func (b *Broker) controllerID(ctx context.Context) int32 {
	b.clusterMu.RLock()
	id, at := b.controller, b.controllerAt
	b.clusterMu.RUnlock()
	if !at.IsZero() && b.now().Sub(at) < controllerIDMaxAge {
		return id
	}
	// Metadata without the controller is still useful to clients: do not
	// let an unreachable etcd hold it, and do not ask again at once.
	cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	id, err := b.store.Controller(cctx)
	if err != nil {
		b.logger.Warn("metadata: cannot read the controller", "err", err)
		id = -1
	}
	b.clusterMu.Lock()
	b.controller, b.controllerAt = id, b.now()
	b.clusterMu.Unlock()
	return id
}

// isrLoop shrinks the ISR of partitions this broker leads when a follower has
// not caught up within replica.lag.time.max.ms.
func (b *Broker) isrLoop(ctx context.Context) {
	b.everyPartition(ctx, max(b.replicaLagMax/4, 50*time.Millisecond), func(now time.Time, p *Partition) {
		b.shrinkISR(ctx, p, now)
	})
}

// shrinkISR drops from p's ISR the followers not caught up within
// replica.lag.time.max.ms before now. It is isrLoop's decision apart from
// isrLoop's ticker, so that a test on a fake clock can make it at a chosen
// time.
func (b *Broker) shrinkISR(ctx context.Context, p *Partition, now time.Time) {
	if lag := p.laggingISR(now, b.replicaLagMax); len(lag) > 0 {
		b.changeISR(ctx, p, func(isr []int32) []int32 {
			return slices.DeleteFunc(isr, func(id int32) bool { return slices.Contains(lag, id) })
		}, "shrink", lag, -1)
	}
}

// changeISR updates a led partition's ISR in the metastore with a
// compare-and-swap, then adopts the result. The leader epoch is part of what
// is compared (through the revision), so a deposed leader's change fails.
func (b *Broker) changeISR(ctx context.Context, p *Partition, edit func([]int32) []int32, why string, ids []int32, joining int32) {
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
	got, err := b.store.CompareAndSwapPartitionState(cctx, old, next)
	if err != nil {
		if errors.Is(err, metastore.ErrConflict) {
			// Someone else (the controller) changed it first; adopt theirs and
			// let the next fetch or tick decide again.
			b.applyPartitionState(p, got)
			return
		}
		b.logger.Warn("ISR change failed", "topic", p.Topic, "partition", p.Index, "change", why, "replicas", ids, "err", err)
		return
	}
	b.logger.Info("ISR changed", "topic", p.Topic, "partition", p.Index, "change", why, "replicas", ids, "isr", got.ISR)
	b.mergeStates(metastore.PartitionsUpdate{States: []metastore.PartitionState{got}})
	b.applyPartitionState(p, got)
}
