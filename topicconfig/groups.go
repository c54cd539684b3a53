package topicconfig

import (
	"math"
	"strconv"
	"strings"
)

// DefaultOffsetMetadataMaxBytes is offset.metadata.max.bytes when unset,
// Kafka's default.
const DefaultOffsetMetadataMaxBytes = 4096

// maxOffsetMetadataMaxBytes bounds offset.metadata.max.bytes: committed
// metadata is kept in etcd, whose requests are limited to 1.5 MiB by
// default, and every committed offset of a request goes into one
// transaction of at most that size.
const maxOffsetMetadataMaxBytes = 1 << 20

// DefaultGroupMaxSize is group.max.size when unset. Kafka's default is
// unbounded; here a group's members, with their protocol metadata and
// assignments, are one etcd value rewritten at every rebalance, which etcd
// limits to 1.5 MiB by default. A thousand consumers with ordinary
// subscriptions take a few hundred kilobytes of it, and every rebalance
// waits for every member: groups beyond that are better split.
const DefaultGroupMaxSize = 1000

// OffsetMetadataMaxBytes reads offset.metadata.max.bytes: the longest
// metadata an offset commit may carry for a partition (longer is refused
// with OFFSET_METADATA_TOO_LARGE). Zero allows none.
func OffsetMetadataMaxBytes(brokerSettings map[string]string) (int, error) {
	const key = "offset.metadata.max.bytes"
	raw, ok := brokerSettings[key]
	if !ok {
		return DefaultOffsetMetadataMaxBytes, nil
	}
	v, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 32)
	if err != nil || v < 0 || v > maxOffsetMetadataMaxBytes {
		return 0, &ValueError{Key: key, Value: raw, Reason: "must be an integer from 0 to 1048576 (committed metadata is stored in etcd)"}
	}
	return int(v), nil
}

// GroupMaxSize reads group.max.size: the members (with the member ids
// handed out and not yet used) a consumer group may have; a new member
// beyond is refused with GROUP_MAX_SIZE_REACHED.
func GroupMaxSize(brokerSettings map[string]string) (int, error) {
	const key = "group.max.size"
	raw, ok := brokerSettings[key]
	if !ok {
		return DefaultGroupMaxSize, nil
	}
	v, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 32)
	if err != nil || v < 1 {
		return 0, &ValueError{Key: key, Value: raw, Reason: "must be an integer from 1 to " + strconv.Itoa(math.MaxInt32)}
	}
	return int(v), nil
}
