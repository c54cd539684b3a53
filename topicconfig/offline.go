package topicconfig

import (
	"strconv"
	"strings"
	"time"
)

// DefaultLogDirFailureRetry is log.dir.failure.retry.ms when it is not set.
const DefaultLogDirFailureRetry = 5 * time.Second

// LogDirFailureRetry reads log.dir.failure.retry.ms: how often a broker tries
// to recover the partitions whose log a storage failure (a full disk, a
// failed device) took offline, and looks for such failures that no request
// has met. Strata's own: Kafka brings an offline log directory back only
// with a restart. A failed try scans the partition's log from its recovery
// point, so the interval also bounds that cost.
func LogDirFailureRetry(brokerSettings map[string]string) (time.Duration, error) {
	const key = "log.dir.failure.retry.ms"
	raw, ok := brokerSettings[key]
	if !ok {
		return DefaultLogDirFailureRetry, nil
	}
	v, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
	if err != nil || v < 100 || v > 3_600_000 {
		return 0, &ValueError{Key: key, Value: raw, Reason: "must be an integer from 100 to 3600000"}
	}
	return time.Duration(v) * time.Millisecond, nil
}
