package broker

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-broker/strata/metastore"
)

// groupLagInterval is how often each broker measures the lag of the groups
// it coordinates. Lag is read from etcd (the committed offsets), so it is
// measured on a timer rather than at every scrape.
const groupLagInterval = 10 * time.Second

// groupOffsets is what measuring group lag reads from the metastore: the
// groups and their committed offsets.
type groupOffsets interface {
	ListGroups(ctx context.Context) ([]metastore.GroupMeta, error)
	FetchOffsets(ctx context.Context, group string) ([]metastore.OffsetCommit, error)
}

// groupLag exports strata_consumer_group_lag.
type groupLag struct {
	store      groupOffsets
	registerer prometheus.Registerer // nil: the metric is measured, not exported
	logger     *slog.Logger
	// leaderPartition is a partition this broker leads, or an error.
	leaderPartition func(topic string, partition int32) (*Partition, error)
}

// Run keeps strata_consumer_group_lag up to date until ctx ends:
// for every group with committed offsets and each of its partitions this
// broker leads, the partition's high watermark minus the committed offset
// (never below zero). Every partition has one leader, so across the cluster
// each group's partitions are reported once, wherever the group is
// coordinated. Series of groups and partitions no longer measured (or no
// longer led here) are removed.
func (gl *groupLag) Run(ctx context.Context) {
	lag := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "strata_consumer_group_lag",
		Help: "Messages between a consumer group's committed offset and the partition's high watermark, measured by the group's coordinator where it hosts the partition.",
	}, []string{"group", "topic", "partition"})
	if reg := gl.registerer; reg != nil {
		if err := reg.Register(lag); err != nil {
			var dup prometheus.AlreadyRegisteredError
			if !errors.As(err, &dup) {
				gl.logger.Warn("cannot register the consumer group lag metric", "err", err)
				return
			}
			if existing, ok := dup.ExistingCollector.(*prometheus.GaugeVec); ok {
				lag = existing
			}
		}
		defer reg.Unregister(lag)
	}
	t := time.NewTicker(groupLagInterval)
	defer t.Stop()
	seen := map[[3]string]bool{}
	for {
		seen = gl.measure(ctx, lag, seen)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// measure sets the lag of every measurable partition, deletes the
// series in prev not set this time, and returns the series set.
func (gl *groupLag) measure(ctx context.Context, lag *prometheus.GaugeVec, prev map[[3]string]bool) map[[3]string]bool {
	groups, err := gl.store.ListGroups(ctx)
	if err != nil {
		if ctx.Err() == nil {
			gl.logger.Debug("consumer group lag: cannot list groups", "err", err)
		}
		return prev // keep the last values rather than drop them
	}
	now := map[[3]string]bool{}
	for _, g := range groups {
		offs, err := gl.store.FetchOffsets(ctx, g.Group)
		if err != nil {
			// etcd unreachable: keep this group's last values until the
			// next round.
			for k := range prev {
				if k[0] == g.Group {
					now[k] = true
				}
			}
			continue
		}
		for _, o := range offs {
			p, err := gl.leaderPartition(o.Topic, o.Partition)
			if err != nil {
				continue
			}
			labels := [3]string{g.Group, o.Topic, strconv.Itoa(int(o.Partition))}
			lag.WithLabelValues(labels[:]...).Set(float64(max(p.HighWatermark()-o.Offset, 0)))
			now[labels] = true
		}
	}
	for k := range prev {
		if !now[k] {
			lag.DeleteLabelValues(k[:]...)
		}
	}
	return now
}
