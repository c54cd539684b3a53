package broker

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-broker/strata/metastore"
)

// groupLagInterval is how often each broker measures the lag of the groups
// it coordinates. Lag is read from etcd (the committed offsets), so it is
// measured on a timer rather than at every scrape.
const groupLagInterval = 10 * time.Second

// Bounds of one measurement: any client can create groups (a commit names
// one), so neither what is read nor what is exported may grow with them.
const (
	// maxGroupLagScanKeys bounds the group keys read per measurement: one
	// paged scan of at most this many keys (offsets and group states).
	maxGroupLagScanKeys = 100_000
	// maxGroupLagSeries bounds the series exported; groups with members
	// come first, then the others, each in name order, whole groups only.
	maxGroupLagSeries = 10_000
)

// GroupOffsetScanner is what measuring group lag reads from the metastore:
// every group's committed offsets, in one paged scan.
type GroupOffsetScanner interface {
	ScanGroupOffsets(ctx context.Context, maxKeys int, fn func(metastore.GroupOffsets)) (bool, error)
}

// groupLag exports strata_consumer_group_lag.
type groupLag struct {
	store      GroupOffsetScanner
	registerer prometheus.Registerer // nil: the metric is measured, not exported
	logger     *slog.Logger
	// leaderPartition is a partition this broker leads, or an error.
	leaderPartition func(topic string, partition int32) (*Partition, error)
	// maxScanKeys and maxSeries are the bounds above; tests lower them.
	maxScanKeys, maxSeries int
	// truncated is whether the last measurement left groups out, so that
	// it is logged when it starts and stops.
	truncated bool
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
		Help: "Messages between a consumer group's committed offset and the partition's high watermark, measured by the partition's leader (at most 10,000 series per broker, groups with members first).",
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

// lagSeries is one group's series to set: labels and lag.
type lagSeries struct {
	labels [3]string
	lag    int64
}

// measure sets the lag of every measurable partition, within the bounds,
// deletes the series in prev not set this time, and returns the series set.
func (gl *groupLag) measure(ctx context.Context, lag *prometheus.GaugeVec, prev map[[3]string]bool) map[[3]string]bool {
	maxKeys := cmp.Or(gl.maxScanKeys, maxGroupLagScanKeys)
	maxSeries := cmp.Or(gl.maxSeries, maxGroupLagSeries)
	// Only the partitions led here are kept while scanning: what is held is
	// bounded by the keys read.
	var withMembers, without [][]lagSeries
	complete, err := gl.store.ScanGroupOffsets(ctx, maxKeys, func(g metastore.GroupOffsets) {
		var series []lagSeries
		for _, o := range g.Offsets {
			p, err := gl.leaderPartition(o.Topic, o.Partition)
			if err != nil {
				continue
			}
			series = append(series, lagSeries{
				labels: [3]string{g.Group, o.Topic, strconv.Itoa(int(o.Partition))},
				lag:    max(p.HighWatermark()-o.Offset, 0),
			})
		}
		switch {
		case len(series) == 0:
		case g.Members > 0:
			withMembers = append(withMembers, series)
		default:
			without = append(without, series)
		}
	})
	if err != nil {
		if ctx.Err() == nil {
			gl.logger.Debug("consumer group lag: cannot read the groups' offsets", "err", err)
		}
		return prev // keep the last values rather than drop them
	}
	now := map[[3]string]bool{}
	left := 0
	for _, group := range slices.Concat(withMembers, without) {
		if len(now)+len(group) > maxSeries {
			left++
			continue
		}
		for _, s := range group {
			lag.WithLabelValues(s.labels[:]...).Set(float64(s.lag))
			now[s.labels] = true
		}
	}
	for k := range prev {
		if !now[k] {
			lag.DeleteLabelValues(k[:]...)
		}
	}
	if truncated := !complete || left > 0; truncated != gl.truncated {
		gl.truncated = truncated
		if truncated {
			gl.logger.Warn("consumer group lag: not every group is measured",
				"groups_read_whole", complete, "max_keys_read", maxKeys, "groups_left_out", left, "max_series", maxSeries)
		} else {
			gl.logger.Info("consumer group lag: every group is measured again")
		}
	}
	return now
}
