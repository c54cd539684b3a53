package topicconfig

import (
	"strconv"
	"strings"
)

// RecoveryThreadsKey is Kafka's setting for how many logs a broker opens
// (and recovers) at once at start and when topics are created.
const RecoveryThreadsKey = "num.recovery.threads.per.data.dir"

// DefaultRecoveryThreads is num.recovery.threads.per.data.dir when unset.
// Kafka's default is 2; opening a log here is mostly waiting for fsyncs
// (checkpoints, partition.metadata, the directory), which overlap well
// beyond the core count, so more run at once by default.
const DefaultRecoveryThreads = 8

// maxRecoveryThreads bounds the setting: each opening log holds a few
// descriptors and buffers.
const maxRecoveryThreads = 256

// RecoveryThreads reads num.recovery.threads.per.data.dir (Strata has one
// data directory per broker).
func RecoveryThreads(brokerSettings map[string]string) (int, error) {
	raw, ok := brokerSettings[RecoveryThreadsKey]
	if !ok {
		return DefaultRecoveryThreads, nil
	}
	v, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 32)
	if err != nil || v < 1 || v > maxRecoveryThreads {
		return 0, &ValueError{Key: RecoveryThreadsKey, Value: raw, Reason: "must be an integer from 1 to " + strconv.Itoa(maxRecoveryThreads)}
	}
	return int(v), nil
}
