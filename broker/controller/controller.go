// Package controller is the cluster's controller: elected through etcd, it
// moves partition leadership away from brokers that are gone and takes dead
// brokers out of ISRs. Every change it makes is a compare-and-swap on the
// partition's state, fenced by its term as controller.
package controller

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/topicconfig"
)

// Store is what the controller reads from the metastore.
type Store interface {
	FollowPartitions(ctx context.Context, fn func(metastore.PartitionsUpdate))
	FollowBrokers(ctx context.Context, fn func([]metastore.BrokerInfo))
	// Brokers reads the live brokers now, at a revision no older than any
	// state the controller has seen.
	Brokers(ctx context.Context) ([]metastore.BrokerInfo, error)
	GetTopic(ctx context.Context, name string) (metastore.Topic, error)
}

// Term is the controller's mandate: changes through it fail once it ended.
type Term interface {
	CompareAndSwapPartitionState(ctx context.Context, old, next metastore.PartitionState) (metastore.PartitionState, error)
	Done() <-chan struct{}
}

// resyncInterval bounds how long a failed change waits to be tried again.
const resyncInterval = time.Second

// Option configures Run.
type Option func(*controller)

// WithLeaderRebalance sets how leadership returns to preferred replicas
// (auto.leader.rebalance.enable and its kin); Kafka's defaults without it.
func WithLeaderRebalance(r topicconfig.LeaderRebalance) Option {
	return func(c *controller) { c.rebalance = r }
}

// Run acts as controller until ctx ends or the term does.
func Run(ctx context.Context, store Store, term Term, brokerDefaults map[string]string, logger *slog.Logger, opts ...Option) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-term.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	c := newController(store, term, brokerDefaults, logger, opts...)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		store.FollowPartitions(ctx, c.partitions)
	}()
	go func() {
		defer wg.Done()
		store.FollowBrokers(ctx, c.brokersChanged)
	}()
	defer wg.Wait()
	logger.Info("acting as controller", "auto_leader_rebalance", c.rebalance.Enable)
	t := time.NewTicker(resyncInterval)
	defer t.Stop()
	// The leader balance check runs in this loop, between passes of
	// reconcile, so the two never write the same partition at once.
	var balance *time.Timer
	var balanceC <-chan time.Time
	if c.rebalance.Enable {
		balance = time.NewTimer(c.rebalance.CheckInterval)
		defer balance.Stop()
		balanceC = balance.C
	}
	c.metrics.active.Set(1)
	defer func() {
		c.metrics.imbalance.Set(0)
		c.metrics.offline.Set(0)
		c.metrics.active.Set(0)
	}()
	for {
		select {
		case <-ctx.Done():
			logger.Info("no longer controller")
			return
		case <-c.kick:
		case <-t.C:
			c.measure()
		case <-balanceC:
			c.balanceLeaders(ctx)
			balance.Reset(c.rebalance.CheckInterval)
			continue
		}
		c.reconcile(ctx)
	}
}

func newController(store Store, term Term, brokerDefaults map[string]string, logger *slog.Logger, opts ...Option) *controller {
	c := &controller{
		store: store, term: term, logger: logger, defaults: brokerDefaults,
		rebalance: topicconfig.DefaultLeaderRebalance(),
		metrics:   NewMetrics(nil),
		states:    map[metastore.TopicPartition]metastore.PartitionState{},
		kick:      make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

type controller struct {
	store    Store
	term     Term
	logger   *slog.Logger
	defaults map[string]string
	// rebalance is auto.leader.rebalance.enable and its kin.
	rebalance topicconfig.LeaderRebalance
	metrics   *Metrics

	mu         sync.Mutex
	states     map[metastore.TopicPartition]metastore.PartitionState
	live       map[int32]int64 // live broker → its broker epoch
	haveStates bool
	kick       chan struct{}
}

func (c *controller) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *controller) partitions(u metastore.PartitionsUpdate) {
	c.mu.Lock()
	if u.Snapshot {
		clear(c.states)
		c.haveStates = true
	}
	for _, d := range u.Deleted {
		delete(c.states, d)
	}
	for _, st := range u.States {
		k := metastore.TopicPartition{Topic: st.Topic, Partition: st.Partition}
		if cur, ok := c.states[k]; !ok || cur.Revision < st.Revision {
			c.states[k] = st
		}
	}
	c.mu.Unlock()
	c.poke()
}

func (c *controller) brokersChanged(live []metastore.BrokerInfo) {
	m := make(map[int32]int64, len(live))
	for _, b := range live {
		m[b.NodeID] = b.Epoch
	}
	c.mu.Lock()
	c.live = m
	c.mu.Unlock()
	c.poke()
}

// reconcile makes one pass over all partitions.
//
// The followed broker list only says where to look. The two watches, on
// partitions and on brokers, deliver independently: a partition state
// written just after brokers registered can arrive before their
// registrations do, and judged by that older broker list the registered
// replicas look gone. So before changing anything the controller reads the
// live brokers afresh (a linearizable read, so at least as new as every
// state it holds) and decides by that list alone.
func (c *controller) reconcile(ctx context.Context) {
	if len(c.pending(c.followedLive())) == 0 {
		return
	}
	live, err := c.readLive(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.logger.Warn("reading the live brokers failed; partition changes wait", "err", err)
		}
		return
	}
	unclean := c.uncleanPerPass()
	inParallel(ctx, c.pending(live), func(ctx context.Context, st metastore.PartitionState) bool {
		return c.change(ctx, st, live, unclean)
	})
}

// readLive reads the live brokers and their broker epochs afresh.
func (c *controller) readLive(ctx context.Context) (map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	brokers, err := c.store.Brokers(ctx)
	if err != nil {
		return nil, err
	}
	live := make(map[int32]int64, len(brokers))
	for _, b := range brokers {
		live[b.NodeID] = b.Epoch
	}
	return live, nil
}

// inParallel runs change on every item of todo, changeWorkers at a time:
// one etcd round trip each, one after another, would make a failover's
// duration grow with the number of partitions the lost broker led. Once a
// change returns false (the term is over) no more start.
func inParallel[T any](ctx context.Context, todo []T, change func(context.Context, T) bool) {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	work := make(chan T)
	var wg sync.WaitGroup
	for range min(changeWorkers, len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for st := range work {
				if !change(ctx, st) {
					stop() // no longer controller
				}
			}
		}()
	}
	for _, st := range todo {
		select {
		case work <- st:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
}

// followedLive is the broker list from the watch, nil before its first
// delivery or before the first partition snapshot.
func (c *controller) followedLive() map[int32]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.haveStates {
		return nil
	}
	return c.live
}

// pending lists the partitions that need a change judged by live.
func (c *controller) pending(live map[int32]int64) []metastore.PartitionState {
	if live == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var todo []metastore.PartitionState
	for _, st := range c.states {
		if needsChange(st, Current(st, live)) {
			todo = append(todo, st)
		}
	}
	return todo
}

// changeWorkers bounds the partition changes in flight at once.
const changeWorkers = 16

// change writes st's next state, if it needs one; it returns false once this
// controller's term is over.
func (c *controller) change(ctx context.Context, st metastore.PartitionState, live map[int32]int64, uncleanAllowed func(context.Context, string) bool) bool {
	if ctx.Err() != nil {
		return true
	}
	cur := Current(st, live)
	next, ok := Decide(st, cur, false)
	// A partition already leaderless is asked too: its topic may allow
	// unclean election only now, or the replica it takes may only now be
	// back. The topic is read only when such a replica is live.
	if next.Leader < 0 && uncleanChoice(st, cur) >= 0 && uncleanAllowed(ctx, st.Topic) {
		next, ok = Decide(st, cur, true)
	}
	if done, moved := CompleteMove(next, cur); moved {
		next, ok = done, true
	}
	if !ok {
		return true
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	got, err := c.term.CompareAndSwapPartitionState(cctx, st, next)
	cancel()
	switch {
	case err == nil:
		c.logger.Info("partition state changed", "topic", st.Topic, "partition", st.Partition,
			"leader", got.Leader, "leader_epoch", got.LeaderEpoch, "isr", got.ISR, "replicas", got.Replicas,
			"previous_leader", st.Leader, "previous_isr", st.ISR, "previous_replicas", st.Replicas)
		c.partitions(metastore.PartitionsUpdate{States: []metastore.PartitionState{got}})
	case errors.Is(err, metastore.ErrConflict):
		c.partitions(metastore.PartitionsUpdate{States: []metastore.PartitionState{got}})
	case errors.Is(err, metastore.ErrNotController):
		return false
	default:
		if ctx.Err() == nil {
			c.logger.Warn("partition state change failed", "topic", st.Topic, "partition", st.Partition, "err", err)
		}
	}
	return true
}

// uncleanPerPass returns uncleanAllowed remembering each topic's answer:
// leaderless partitions are looked at on every pass, and a topic's are read
// once per pass rather than once each.
func (c *controller) uncleanPerPass() func(context.Context, string) bool {
	var mu sync.Mutex
	known := map[string]bool{}
	return func(ctx context.Context, topic string) bool {
		mu.Lock()
		allowed, ok := known[topic]
		mu.Unlock()
		if ok {
			return allowed
		}
		allowed = c.uncleanAllowed(ctx, topic)
		mu.Lock()
		known[topic] = allowed
		mu.Unlock()
		return allowed
	}
}

// uncleanAllowed reads the topic's unclean.leader.election.enable; it is
// asked only when a partition would otherwise stay leaderless.
func (c *controller) uncleanAllowed(ctx context.Context, topic string) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	t, err := c.store.GetTopic(ctx, topic)
	if err != nil {
		return false
	}
	cfg, _, _ := topicconfig.Resolve(t.Configs, c.defaults)
	return cfg.UncleanLeaderElectionEnable
}

// Current returns the brokers that count as alive for st (live maps each
// registered broker to its broker epoch): registered, and registered before
// st was written. A broker that registered again since
// (it restarted, or lost its lease) may have lost what made it leader or an
// ISR member — its disk, or an uncommitted tail the new leader truncated — so
// it is treated as gone until the state is written again after its return:
// then it can be elected (if nobody better is left) in a new epoch, or rejoin
// the ISR by catching up. This is what Kafka's broker epochs are for.
func Current(st metastore.PartitionState, live map[int32]int64) map[int32]bool {
	out := make(map[int32]bool, len(live))
	for id, epoch := range live {
		// A single replica has nobody to lose data to. A leaderless state's
		// ISR already is "who was last known to have everything": its
		// members count as soon as they are back, or nobody would ever
		// write the state again to let them count.
		if epoch <= st.Revision || st.Revision == 0 || len(st.Replicas) <= 1 || st.Leader < 0 {
			out[id] = true
		}
	}
	return out
}

// needsChange: the leader is gone (or there is none), the ISR names a dead
// broker, or a move can complete.
func needsChange(st metastore.PartitionState, live map[int32]bool) bool {
	if st.Leader < 0 || !live[st.Leader] {
		return true
	}
	if _, ok := CompleteMove(st, live); ok {
		return true
	}
	for _, id := range st.ISR {
		if !live[id] {
			return true
		}
	}
	return false
}

// Decide computes a partition's next state given the live brokers: dead
// brokers leave the ISR (but the controller never empties it: its last
// member is kept, as the only replica known to hold every committed record);
// a leader that is gone is replaced by the first live ISR member in replica
// order, with a new leader epoch. Without one the partition stays
// leaderless, unless unclean election allows any live replica (which may
// lose committed records). An empty ISR (its last member came back without
// its log and left it, see broker.ReleaseLostReplicas) thus leaves the
// partition leaderless until an unclean election. ok is false when nothing
// changes.
func Decide(st metastore.PartitionState, live map[int32]bool, unclean bool) (metastore.PartitionState, bool) {
	next := st
	next.ISR = slices.DeleteFunc(slices.Clone(st.ISR), func(id int32) bool { return !live[id] })
	leaderOK := st.Leader >= 0 && live[st.Leader]
	if !leaderOK {
		next.Leader = -1
		for _, id := range st.Replicas {
			if live[id] && slices.Contains(next.ISR, id) {
				next.Leader = id
				break
			}
		}
		if next.Leader < 0 && unclean {
			next.Leader = uncleanChoice(st, live)
			if next.Leader >= 0 {
				next.ISR = []int32{next.Leader}
			}
		}
	}
	if len(next.ISR) == 0 {
		// Keep who had everything, so that its return can restore the partition.
		next.ISR = slices.Clone(st.ISR)
		if st.Leader >= 0 && slices.Contains(st.ISR, st.Leader) {
			next.ISR = []int32{st.Leader}
		}
	}
	if next.Leader != st.Leader {
		next.LeaderEpoch = st.LeaderEpoch + 1
	}
	if next.Leader == st.Leader && slices.Equal(next.ISR, st.ISR) {
		return st, false
	}
	return next, true
}

// uncleanChoice is the replica an unclean election takes: the first live
// one in replica order that did not come back without its log (st.Lost), or
// failing that the first live one; -1 if none is live. A replica that lost
// its log holds nothing, where another may hold everything committed.
func uncleanChoice(st metastore.PartitionState, live map[int32]bool) int32 {
	fallback := int32(-1)
	for _, id := range st.Replicas {
		if !live[id] {
			continue
		}
		if !slices.Contains(st.Lost, id) {
			return id
		}
		if fallback < 0 {
			fallback = id
		}
	}
	return fallback
}
