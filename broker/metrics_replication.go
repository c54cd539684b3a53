package broker

import (
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-broker/strata/internal/version"
	"github.com/strata-broker/strata/metastore"
)

// Replication health, reported at scrape time from the partitions' own
// state (as logCollector does), so that neither the fetch path nor the
// watch keeps gauges up to date. The names follow Kafka's
// ReplicaManager metrics: UnderReplicatedPartitions, UnderMinIsrPartitionCount,
// LeaderCount, PartitionCount, IsrShrinksPerSec, IsrExpandsPerSec.
var (
	underReplicatedDesc = prometheus.NewDesc("strata_under_replicated_partitions",
		"Partitions this broker leads whose ISR is smaller than their replication factor (replicas joining in a move not counted); Kafka's UnderReplicatedPartitions. Summed over brokers it counts every under-replicated partition once.",
		nil, nil)
	underMinISRDesc = prometheus.NewDesc("strata_under_min_isr_partitions",
		"Partitions this broker leads whose ISR is smaller than the topic's min.insync.replicas: acks=all produce to them is refused with NOT_ENOUGH_REPLICAS. Kafka's UnderMinIsrPartitionCount.",
		nil, nil)
	leaderCountDesc = prometheus.NewDesc("strata_leader_partitions",
		"Partitions this broker leads (Kafka's LeaderCount).", nil, nil)
	partitionCountDesc = prometheus.NewDesc("strata_partitions",
		"Partition replicas this broker hosts (Kafka's PartitionCount).", nil, nil)
	followerLagOffsetsDesc = prometheus.NewDesc("strata_replica_lag_offsets",
		"Of a partition this broker leads: the leader's log end offset minus the follower's, as of the follower's last fetch in this leader epoch. Absent until the follower has fetched in the epoch.",
		[]string{"topic", "partition", "replica"}, nil)
	followerLagSecondsDesc = prometheus.NewDesc("strata_replica_lag_seconds",
		"Of a partition this broker leads: seconds since the follower last had everything the leader had (Kafka's lastCaughtUpTime); above replica.lag.time.max.ms it leaves the ISR.",
		[]string{"topic", "partition", "replica"}, nil)
)

type replicationCollector struct{ b *Broker }

func (c *replicationCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- underReplicatedDesc
	ch <- underMinISRDesc
	ch <- leaderCountDesc
	ch <- partitionCountDesc
	ch <- followerLagOffsetsDesc
	ch <- followerLagSecondsDesc
}

func (c *replicationCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.b.now()
	var under, underMin, leaders, hosted int
	for _, hp := range c.b.hosted.allPartitionsWithConfig() {
		hosted++
		h, ok := hp.p.replicaHealth(now)
		if !ok {
			continue
		}
		leaders++
		if h.isr < h.replicationFactor {
			under++
		}
		if h.isr < hp.minISR {
			underMin++
		}
		part := strconv.Itoa(int(hp.p.Index))
		for _, f := range h.followers {
			id := strconv.Itoa(int(f.id))
			if f.lagOffsets >= 0 {
				ch <- prometheus.MustNewConstMetric(followerLagOffsetsDesc, prometheus.GaugeValue, float64(f.lagOffsets), hp.p.Topic, part, id)
			}
			ch <- prometheus.MustNewConstMetric(followerLagSecondsDesc, prometheus.GaugeValue, f.lagTime.Seconds(), hp.p.Topic, part, id)
		}
	}
	ch <- prometheus.MustNewConstMetric(underReplicatedDesc, prometheus.GaugeValue, float64(under))
	ch <- prometheus.MustNewConstMetric(underMinISRDesc, prometheus.GaugeValue, float64(underMin))
	ch <- prometheus.MustNewConstMetric(leaderCountDesc, prometheus.GaugeValue, float64(leaders))
	ch <- prometheus.MustNewConstMetric(partitionCountDesc, prometheus.GaugeValue, float64(hosted))
}

// replicaHealth is a led partition's replication state at one moment.
type replicaHealth struct {
	isr               int
	replicationFactor int
	followers         []followerLag
}

type followerLag struct {
	id         int32
	lagOffsets int64 // -1: no fetch in this leader epoch yet
	lagTime    time.Duration
}

// replicaHealth reports p's replication state; ok is false unless this
// broker leads p.
func (p *Partition) replicaHealth(now time.Time) (h replicaHealth, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.role != roleLeader {
		return replicaHealth{}, false
	}
	// Kafka's replication factor: replicas a move is still adding do not
	// count, or every move would show as under-replicated.
	h.replicationFactor = len(p.state.Replicas) - len(p.state.AddingReplicas)
	h.isr = len(p.state.ISR)
	leo := p.log.LogEndOffset()
	for id, f := range p.followers {
		lag := followerLag{id: id, lagOffsets: -1, lagTime: max(now.Sub(f.caughtUpAt), 0)}
		if f.leo >= 0 {
			lag.lagOffsets = max(leo-f.leo, 0)
		}
		h.followers = append(h.followers, lag)
	}
	slices.SortFunc(h.followers, func(a, b followerLag) int { return int(a.id - b.id) })
	return h, true
}

// isrCounters counts the ISR changes of the partitions this broker leads,
// whoever wrote them: the leader (a follower fell behind or caught up) or
// the controller (a broker died). Kafka's IsrShrinksPerSec and
// IsrExpandsPerSec, as counters.
type isrCounters struct {
	shrinks, expands prometheus.Counter
}

func newISRCounters() *isrCounters {
	return &isrCounters{
		shrinks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_isr_shrinks_total",
			Help: "ISR changes that removed replicas from a partition this broker leads (by this broker or by the controller).",
		}),
		expands: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_isr_expands_total",
			Help: "ISR changes that added replicas to a partition this broker leads.",
		}),
	}
}

func (c *isrCounters) isrChanged(shrunk, expanded bool) {
	if shrunk {
		c.shrinks.Inc()
	}
	if expanded {
		c.expands.Inc()
	}
}

// isrDelta tells whether next's ISR dropped members of prev's that are
// still replicas, and whether it gained members. A move's completion drops
// the leaving replicas from the ISR and the replicas together; that is the
// move ending, not a replica falling out of sync.
func isrDelta(prev, next metastore.PartitionState) (shrunk, expanded bool) {
	for _, id := range prev.ISR {
		if !slices.Contains(next.ISR, id) && slices.Contains(next.Replicas, id) {
			shrunk = true
		}
	}
	for _, id := range next.ISR {
		if !slices.Contains(prev.ISR, id) {
			expanded = true
		}
	}
	return shrunk, expanded
}

// newBuildInfo is strata_build_info: constant 1, labelled with what the
// binary was built from, so that a dashboard can show which brokers run
// which build and an upgrade's progress.
func newBuildInfo() prometheus.Collector {
	v := version.Get()
	revision := v.Revision
	if v.Modified {
		revision += "-dirty"
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "strata_build_info",
		Help:        "Always 1; the labels name the build: the module version (\"(devel)\" for a build from a work tree) and the VCS revision (\"unknown\" without one).",
		ConstLabels: prometheus.Labels{"version": v.Version, "revision": revision},
	}, func() float64 { return 1 })
}
