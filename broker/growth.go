package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/topicconfig"
)

// growthLimits bound what clients can make the broker hold as topics grow:
// files per byte written (segment.bytes), open segment files, and the
// cluster's partitions.
type growthLimits struct {
	// segmentMinBytes is the least segment.bytes a topic may be given
	// (log.segment.min.bytes; Kafka's 1 MiB unless lowered for tests).
	segmentMinBytes int64
	// maxPartitions is max.partitions: the most partitions the cluster may
	// hold.
	maxPartitions int
	// creating admits one topic or partitions creation at a time on this
	// broker: the metastore counts the cluster's partitions and fails a
	// write if any topic changed since, so concurrent creations here would
	// only make each other count again.
	creating chan struct{}
	// files is the broker's cache of open sealed-segment files
	// (log.segment.open.files.max), shared by every log it opens.
	files *partlog.FileCache
}

// newGrowthLimits reads the limits from the broker settings; a bad value
// is an error naming its key. The file cache's metrics go to reg, if not nil.
func newGrowthLimits(settings map[string]string, logger *slog.Logger, reg prometheus.Registerer) (growthLimits, error) {
	g := growthLimits{creating: make(chan struct{}, 1)}
	var err error
	if g.segmentMinBytes, err = topicconfig.SegmentMinBytes(settings); err != nil {
		return g, fmt.Errorf("broker: settings: %w", err)
	}
	if g.segmentMinBytes < topicconfig.KafkaMinSegmentBytes {
		logger.Warn("segment.bytes may be set below Kafka's minimum: every small segment costs a file; meant for tests",
			"setting", topicconfig.SegmentMinBytesKey, "value", g.segmentMinBytes)
	}
	if g.maxPartitions, err = topicconfig.MaxPartitions(settings); err != nil {
		return g, fmt.Errorf("broker: settings: %w", err)
	}
	// Read by the Kafka frontend; checked here so that a bad value fails the
	// start.
	if _, err := topicconfig.AutoCreateMaxPerRequest(settings); err != nil {
		return g, fmt.Errorf("broker: settings: %w", err)
	}
	openFiles, err := topicconfig.SegmentOpenFilesMax(settings)
	if err != nil {
		return g, fmt.Errorf("broker: settings: %w", err)
	}
	g.files = partlog.NewFileCache(openFiles)
	if reg != nil {
		if err := reg.Register(fileCacheCollector{g.files}); err != nil {
			return g, fmt.Errorf("broker: metrics: %w", err)
		}
	}
	return g, nil
}

// fileCacheCollector reports the segment file cache at scrape time.
type fileCacheCollector struct{ files *partlog.FileCache }

var (
	segmentFilesOpenDesc = prometheus.NewDesc("strata_log_segment_files_open",
		"Sealed-segment files open now (log.segment.open.files.max bounds them; active segments are not counted).", nil, nil)
	segmentFileOpensDesc = prometheus.NewDesc("strata_log_segment_file_opens_total",
		"Sealed-segment files opened to be read.", nil, nil)
	segmentFileEvictionsDesc = prometheus.NewDesc("strata_log_segment_file_evictions_total",
		"Sealed-segment files closed to stay within log.segment.open.files.max.", nil, nil)
)

func (c fileCacheCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- segmentFilesOpenDesc
	ch <- segmentFileOpensDesc
	ch <- segmentFileEvictionsDesc
}

func (c fileCacheCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.files.Stats()
	ch <- prometheus.MustNewConstMetric(segmentFilesOpenDesc, prometheus.GaugeValue, float64(st.Open))
	ch <- prometheus.MustNewConstMetric(segmentFileOpensDesc, prometheus.CounterValue, float64(st.Opens))
	ch <- prometheus.MustNewConstMetric(segmentFileEvictionsDesc, prometheus.CounterValue, float64(st.Evictions))
}

// startCreating waits for this broker's turn to create a topic or
// partitions; call the returned function when done.
func (g *growthLimits) startCreating(ctx context.Context) (func(), error) {
	select {
	case g.creating <- struct{}{}:
		return func() { <-g.creating }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for other topic creations: %w", ctx.Err())
	}
}

// checkPartitions refuses adding partitions to a cluster of topics that
// would then hold more than max.partitions.
func (g *growthLimits) checkPartitions(topics []metastore.Topic, adding int) error {
	return g.policyError(metastore.CheckPartitionLimit(int64(g.maxPartitions), topics, adding))
}

// policyError turns the metastore's refusal of partitions beyond the limit
// into the broker's ErrPolicyViolation, naming the setting; nil for any
// other error.
func (g *growthLimits) policyError(err error) error {
	var le *metastore.PartitionLimitError
	if !errors.As(err, &le) {
		return nil
	}
	return fmt.Errorf("%w: the cluster has %d partitions, and %d more would exceed %s (%d)",
		ErrPolicyViolation, le.Current, le.Adding, topicconfig.MaxPartitionsKey, le.Limit)
}

// checkSegmentBytes refuses a topic config (as resolved for a create or an
// alter) whose segment.bytes is below the broker's minimum.
func (g *growthLimits) checkSegmentBytes(cfg topicconfig.Topic) error {
	if err := topicconfig.CheckSegmentBytes(cfg, g.segmentMinBytes); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	return nil
}
