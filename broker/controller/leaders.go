package controller

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/strata-broker/strata/metastore"
)

// Leader balancing, as Kafka's auto.leader.rebalance.enable: a failover
// moves leadership to another in-sync replica and nothing moves it back, so
// after a broker's restart the others lead its partitions on top of their
// own. Every leader.imbalance.check.interval.seconds the controller counts,
// per broker, the partitions it is the preferred replica of (the first of
// their replicas) that another broker leads; where that share exceeds
// leader.imbalance.per.broker.percentage, the preferred replica is elected
// wherever it can lead without loss: alive by the rules of current (its
// broker epoch included) and in the ISR. A leaderless partition is
// reconcile's to elect, and a moving one waits for its move to complete,
// which may change who is preferred.

// preferredElection is one partition's move back to its preferred replica.
type preferredElection struct {
	old, next metastore.PartitionState
}

// imbalancedBrokers returns, per broker, how many partitions it is the
// preferred replica of and which of those another broker leads.
func imbalancedBrokers(states []metastore.PartitionState) (preferred map[int32]int, elsewhere map[int32][]metastore.PartitionState) {
	preferred = map[int32]int{}
	elsewhere = map[int32][]metastore.PartitionState{}
	for _, st := range states {
		if len(st.Replicas) == 0 {
			continue
		}
		pref := st.Replicas[0]
		preferred[pref]++
		if st.Leader >= 0 && st.Leader != pref {
			elsewhere[pref] = append(elsewhere[pref], st)
		}
	}
	return preferred, elsewhere
}

// preferredElections decides one balance check, judged by live (broker →
// broker epoch): for each broker over percent, every partition of its
// that another broker leads and that it can lead again, as Kafka does (not
// only enough of them to get under the threshold).
// They come ordered by topic and partition.
func preferredElections(states []metastore.PartitionState, live map[int32]int64, percent int) []preferredElection {
	preferred, elsewhere := imbalancedBrokers(states)
	var out []preferredElection
	for id, parts := range elsewhere {
		// More than percent of preferred[id]: integers, so that 1 of 10
		// at 10% stays put.
		if len(parts)*100 <= percent*preferred[id] {
			continue
		}
		for _, st := range parts {
			if st.Moving() {
				continue
			}
			next, err := PreferredLeader(st, Current(st, live))
			if err != nil {
				continue // not alive, or not in the ISR: it must catch up first
			}
			out = append(out, preferredElection{old: st, next: next})
		}
	}
	slices.SortFunc(out, func(a, b preferredElection) int {
		return cmp.Or(strings.Compare(a.old.Topic, b.old.Topic), cmp.Compare(a.old.Partition, b.old.Partition))
	})
	return out
}

// measure sets the imbalance and offline gauges from the followed states
// and brokers. Before the first of each has arrived it knows nothing and
// leaves them as they are.
func (c *controller) measure() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.haveStates {
		return
	}
	imbalance, offline := 0, 0
	for _, st := range c.states {
		if len(st.Replicas) > 0 && st.Leader != st.Replicas[0] {
			imbalance++
		}
		if c.live != nil {
			if _, ok := c.live[st.Leader]; st.Leader < 0 || !ok {
				offline++
			}
		}
	}
	c.metrics.imbalance.Set(float64(imbalance))
	if c.live != nil {
		c.metrics.offline.Set(float64(offline))
	}
}

// balanceLeaders runs one leader balance check. Its elections go out
// changeWorkers at a time, all in this check: the threshold is judged over
// them all, and a part left for later could fall under it and stay.
func (c *controller) balanceLeaders(ctx context.Context) {
	c.mu.Lock()
	have := c.haveStates
	states := make([]metastore.PartitionState, 0, len(c.states))
	for _, st := range c.states {
		states = append(states, st)
	}
	c.mu.Unlock()
	if !have {
		return
	}
	live, err := c.readLive(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.logger.Warn("reading the live brokers failed; leader balance check skipped", "err", err)
		}
		return
	}
	todo := preferredElections(states, live, c.rebalance.ImbalancePercent)
	if len(todo) == 0 {
		return
	}
	c.logger.Info("leader imbalance over leader.imbalance.per.broker.percentage: electing preferred replicas",
		"partitions", len(todo), "imbalance_percent", c.rebalance.ImbalancePercent)
	var elected atomic.Int32
	inParallel(ctx, todo, func(ctx context.Context, e preferredElection) bool {
		ok, ended := c.electPreferred(ctx, e.old, e.next)
		if ok {
			elected.Add(1)
			c.metrics.preferredElections.Inc()
		}
		return !ended
	})
	c.logger.Info("leader balance check done", "elected", elected.Load(), "tried", len(todo))
}

// electPreferred writes next, old led by its preferred replica, through the
// term; ended reports that the term is over. A state that changed since is
// left as it is: the next check judges it again.
func (c *controller) electPreferred(ctx context.Context, old, next metastore.PartitionState) (ok, ended bool) {
	if ctx.Err() != nil {
		return false, false
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	got, err := c.term.CompareAndSwapPartitionState(cctx, old, next)
	cancel()
	switch {
	case err == nil:
		c.logger.Info("preferred leader elected", "topic", old.Topic, "partition", old.Partition,
			"leader", got.Leader, "leader_epoch", got.LeaderEpoch, "previous_leader", old.Leader)
		c.partitions(metastore.PartitionsUpdate{States: []metastore.PartitionState{got}})
		return true, false
	case errors.Is(err, metastore.ErrConflict):
		c.partitions(metastore.PartitionsUpdate{States: []metastore.PartitionState{got}})
	case errors.Is(err, metastore.ErrNotController):
		return false, true
	default:
		if ctx.Err() == nil {
			c.logger.Warn("preferred leader election failed", "topic", old.Topic, "partition", old.Partition, "err", err)
		}
	}
	return false, false
}
