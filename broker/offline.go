package broker

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/topicconfig"
)

// Offline logs: what Kafka does for an offline log directory, per partition.
//
// A storage failure (the disk is full, the device failed) takes a
// partition's log offline (partlog refuses reads and writes from then on).
// The broker then takes the partition offline too: it drops its role at once
// (waiting producers and polls return), answers KAFKA_STORAGE_ERROR for it,
// and takes itself out of the partition's ISR in the metastore, giving up
// the leadership with it, so that the controller elects an in-sync replica
// whose disk is healthy. Every log.dir.failure.retry.ms it tries to recover
// the log in place (cutting what a failed write left past the last valid
// batch); once that succeeds the partition takes up whatever role its state
// gives this broker, normally a follower that catches up and rejoins the ISR.
//
// Unlike Kafka, only the partitions whose log failed go offline, not every
// partition of the directory: on a full disk the others fail too once they
// write, and until then they keep serving.

// offlineLogs takes partitions offline after a storage failure, gives up
// their leadership and ISR membership, and brings them back once their log
// recovers. Its state lives on the partitions (Partition.offline).
type offlineLogs struct {
	b     *Broker
	retry time.Duration // log.dir.failure.retry.ms
	// kick asks run for a pass at once, without recovery tries: a partition
	// just went offline and must give up its leadership now.
	kick chan struct{}
}

func newOfflineLogs(b *Broker) (*offlineLogs, error) {
	retry, err := topicconfig.LogDirFailureRetry(b.cfg.Settings)
	if err != nil {
		return nil, err
	}
	o := &offlineLogs{b: b, retry: retry, kick: make(chan struct{}, 1)}
	if b.cfg.Registerer != nil {
		b.cfg.Registerer.MustRegister(offlineCollector{b})
	}
	return o, nil
}

// check takes p offline if err, from an operation on its log, is a storage
// failure. The caller must not hold p.roleMu.
func (o *offlineLogs) check(p *Partition, err error) {
	if err == nil || !partlog.IsStorageError(err) {
		return
	}
	o.takeOffline(p)
}

// takeOffline takes p offline if its log is: the log's failure stays until
// Recover, so an error reported late, from before a recovery, changes
// nothing.
func (o *offlineLogs) takeOffline(p *Partition) {
	failure := p.log.Failed()
	if failure == nil || !p.takeOffline(failure, o.b.now()) {
		return
	}
	st, _ := p.State()
	o.b.logger.Error("partition offline: its log failed; leaving its ISR and leadership to another in-sync replica until the log recovers",
		"topic", p.Topic, "partition", p.Index, "dir", p.log.Dir(), "leader", st.Leader, "isr", st.ISR, "retry_every", o.retry, "err", failure)
	o.b.fetchers.sync(p)
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// run checks the hosted partitions every log.dir.failure.retry.ms until ctx
// ends: it takes offline those whose log failed without a request noticing
// (a background flush, the sealer), tries to recover the offline ones, and
// takes those still offline out of their ISR.
func (o *offlineLogs) run(ctx context.Context) {
	t := time.NewTicker(o.retry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			o.pass(ctx, true)
		case <-o.kick:
			o.pass(ctx, false)
		}
	}
}

// pass goes over the hosted partitions once; withRecovery tries to recover
// the offline ones.
func (o *offlineLogs) pass(ctx context.Context, withRecovery bool) {
	for _, p := range o.b.hosted.allPartitions() {
		if ctx.Err() != nil {
			return
		}
		o.takeOffline(p)
		since, failure := p.offlineState()
		if failure == nil {
			continue
		}
		// Recovery is tried once the log has been offline for the retry
		// interval by the broker's clock, not merely at the next tick: a
		// tick may come at once after the failure.
		if withRecovery && o.b.now().Sub(since) >= o.retry && o.tryRecovery(p) {
			continue
		}
		o.relinquish(ctx, p)
	}
}

// tryRecovery tries to bring p's log back and, if it comes back, p with it.
// It reports whether p is online.
func (o *offlineLogs) tryRecovery(p *Partition) bool {
	if err := p.log.Recover(); err != nil {
		o.b.logger.Warn("offline partition: its log does not recover yet", "topic", p.Topic, "partition", p.Index,
			"retry_in", o.retry, "err", err)
		return false
	}
	if err := p.rebuildProducerState(); err != nil {
		o.b.logger.Warn("producer state rebuilt from part of the log tail", "topic", p.Topic, "partition", p.Index, "err", err)
	}
	since, _ := p.offlineState()
	r := p.bringOnline(o.b.now(), o.b.registered())
	o.b.fetchers.sync(p)
	o.b.logger.Info("partition back online: its log recovered", "topic", p.Topic, "partition", p.Index,
		"role", r.String(), "log_end", p.LogEndOffset(), "offline_for", o.b.now().Sub(since))
	return true
}

// relinquishTries bounds the compare-and-swaps one pass makes for a
// partition whose state keeps changing under it; the next pass tries again.
const relinquishTries = 3

// relinquish takes this broker out of an offline partition's ISR in the
// metastore, and out of its leadership: the state it writes has no leader
// (in a new leader epoch, which fences what this broker did as leader), and
// the controller elects the first live member of the ISR left. Nothing is
// written while no other ISR member is alive: this replica may be the only
// one with every committed record, and the partition is better off waiting
// for it to recover (or for another member to return).
func (o *offlineLogs) relinquish(ctx context.Context, p *Partition) {
	self := o.b.cfg.NodeID
	st, _ := p.State()
	for range relinquishTries {
		if st.Revision == 0 || (st.Leader != self && !slices.Contains(st.ISR, self)) {
			return
		}
		next := st
		next.ISR = slices.DeleteFunc(slices.Clone(st.ISR), func(id int32) bool { return id == self })
		if !slices.ContainsFunc(next.ISR, o.b.cluster.isLive) {
			// Logged at every pass: debug, not to flood the log while the
			// disk stays full.
			o.b.logger.Debug("offline partition: no other live in-sync replica to take over; it waits for this one",
				"topic", p.Topic, "partition", p.Index, "leader", st.Leader, "isr", st.ISR)
			return
		}
		if st.Leader == self {
			next.Leader = -1
			next.LeaderEpoch++
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		got, err := o.b.store.CompareAndSwapPartitionState(cctx, st, next)
		cancel()
		switch {
		case err == nil:
			o.b.logger.Info("offline partition: left its ISR in the metastore", "topic", p.Topic, "partition", p.Index,
				"previous_leader", st.Leader, "leader_epoch", got.LeaderEpoch, "isr", got.ISR)
			o.b.cluster.mergeStates(metastore.PartitionsUpdate{States: []metastore.PartitionState{got}})
			o.b.hosted.applyPartitionState(p, got)
			return
		case errors.Is(err, metastore.ErrConflict):
			// Changed meanwhile (the leader's ISR keeper, the controller):
			// decide again on what is there now.
			o.b.hosted.applyPartitionState(p, got)
			st = got
		default:
			if ctx.Err() == nil {
				o.b.logger.Warn("offline partition: cannot leave its ISR yet", "topic", p.Topic, "partition", p.Index, "err", err)
			}
			return
		}
	}
}

// OfflineReplica is a partition hosted here whose log a storage failure
// took offline.
type OfflineReplica struct {
	Topic     string
	Partition int32
	Since     time.Time
	Err       error
}

// OfflineReplicas lists the partitions whose log is offline, by topic and
// partition. Their log directory, the broker's data directory, counts as
// offline while the list is not empty (see /healthz).
func (b *Broker) OfflineReplicas() []OfflineReplica {
	var out []OfflineReplica
	for _, p := range b.hosted.allPartitions() {
		if since, failure := p.offlineState(); failure != nil {
			out = append(out, OfflineReplica{Topic: p.Topic, Partition: p.Index, Since: since, Err: failure})
		}
	}
	slices.SortFunc(out, func(a, b OfflineReplica) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return out
}

// DataDir is the broker's log directory.
func (b *Broker) DataDir() string { return b.cfg.DataDir }

// offlineCollector reports offline logs at scrape time, under Kafka's
// names: LogManager's OfflineLogDirectoryCount and ReplicaManager's
// OfflineReplicaCount.
type offlineCollector struct{ b *Broker }

var (
	offlineDirsDesc = prometheus.NewDesc("strata_offline_log_directories",
		"Log directories with a partition whose log a storage failure took offline (Kafka's OfflineLogDirectoryCount); a broker has one, its data directory.",
		nil, nil)
	offlineReplicasDesc = prometheus.NewDesc("strata_offline_replicas",
		"Partitions hosted here whose log a storage failure took offline (Kafka's OfflineReplicaCount).", nil, nil)
)

func (c offlineCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- offlineDirsDesc
	ch <- offlineReplicasDesc
}

func (c offlineCollector) Collect(ch chan<- prometheus.Metric) {
	n := len(c.b.OfflineReplicas())
	dirs := 0
	if n > 0 {
		dirs = 1
	}
	ch <- prometheus.MustNewConstMetric(offlineDirsDesc, prometheus.GaugeValue, float64(dirs))
	ch <- prometheus.MustNewConstMetric(offlineReplicasDesc, prometheus.GaugeValue, float64(n))
}

// isLive reports whether broker id is registered.
func (c *clusterView) isLive(id int32) bool {
	_, ok := c.brokerAddr(id)
	return ok
}
