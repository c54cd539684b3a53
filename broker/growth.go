package broker

import (
	"fmt"
	"log/slog"

	"github.com/strata-broker/strata/topicconfig"
)

// growthLimits bound what clients can make the broker hold as topics grow:
// files per byte written (segment.bytes) and the cluster's partitions.
type growthLimits struct {
	// segmentMinBytes is the least segment.bytes a topic may be given
	// (log.segment.min.bytes; Kafka's 1 MiB unless lowered for tests).
	segmentMinBytes int64
	// maxPartitions is max.partitions: the most partitions the cluster may
	// hold.
	maxPartitions int
}

// newGrowthLimits reads the limits from the broker settings; a bad value
// is an error naming its key.
func newGrowthLimits(settings map[string]string, logger *slog.Logger) (growthLimits, error) {
	var g growthLimits
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
	return g, nil
}

// checkSegmentBytes refuses a topic config (as resolved for a create or an
// alter) whose segment.bytes is below the broker's minimum.
func (g *growthLimits) checkSegmentBytes(cfg topicconfig.Topic) error {
	if err := topicconfig.CheckSegmentBytes(cfg, g.segmentMinBytes); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	return nil
}
