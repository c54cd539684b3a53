package topicconfig

import (
	"strconv"
	"strings"
)

// DefaultProducerStateMaxEntries is producer.state.max.entries when it is
// not set. A producer counts once per partition it writes to, and the
// least recently used one is forgotten first, so only a partition written
// by more producers than this between a batch and its retry loses track of
// one; at about 150 bytes each it bounds a partition to about 1.5 MB.
const DefaultProducerStateMaxEntries = 10_000

// ProducerStateMaxEntries reads producer.state.max.entries: how many
// idempotent producers each partition remembers (epoch, latest sequences);
// recording one more forgets the least recently used, whose next batch is
// then taken as a new producer's, as after producer.id.expiration.ms.
// Kafka has no such bound (KIP-936 proposes throttling new producer ids per
// principal instead).
func ProducerStateMaxEntries(brokerSettings map[string]string) (int, error) {
	const key = "producer.state.max.entries"
	raw, ok := brokerSettings[key]
	if !ok {
		return DefaultProducerStateMaxEntries, nil
	}
	v, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 32)
	if err != nil || v < 1 {
		return 0, &ValueError{Key: key, Value: raw, Reason: "must be an integer from 1 to 2147483647"}
	}
	return int(v), nil
}
