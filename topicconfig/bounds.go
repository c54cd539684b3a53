package topicconfig

import (
	"strconv"
	"strings"
)

// DefaultQueuedMaxRequestBytes is the memory requests in flight may hold
// together when queued.max.request.bytes is not set. Kafka leaves it
// unlimited (-1); a broker that must not be taken down by its clients
// cannot. 256 MiB is two and a half Produce requests of Kafka's 100 MiB
// limit.
const DefaultQueuedMaxRequestBytes = 256 << 20

// QueuedMaxRequestBytes reads queued.max.request.bytes: the memory all
// requests being read, decoded, decompressed or answered may hold together.
// 0 means no limit (Kafka's -1).
func QueuedMaxRequestBytes(brokerSettings map[string]string) (int64, error) {
	const key = "queued.max.request.bytes"
	raw, ok := brokerSettings[key]
	if !ok {
		return DefaultQueuedMaxRequestBytes, nil
	}
	v, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
	if err != nil || v == 0 || v < -1 || (v > 0 && v < 1<<20) {
		return 0, &ValueError{Key: key, Value: raw, Reason: "must be -1 (no limit) or an integer of at least 1048576"}
	}
	return max(v, 0), nil
}
