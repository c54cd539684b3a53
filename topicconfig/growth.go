package topicconfig

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Broker settings that bound what clients can make a broker hold: files per
// topic (segment.bytes), open files, topics created on request, and
// partitions in the cluster.

// segmentBytesFloor is the least segment.bytes the key itself accepts, and
// the least log.segment.min.bytes may lower the minimum to: a segment must
// hold at least a batch header and a small record.
const segmentBytesFloor = 1024

// KafkaMinSegmentBytes is the least segment.bytes Kafka accepts since 4.0
// (KIP-1030). Smaller segments cost a file, and index entries, for every
// few kilobytes written.
const KafkaMinSegmentBytes = 1 << 20

// Setting keys and defaults.
const (
	// SegmentMinBytesKey lowers the least segment.bytes (and
	// log.segment.bytes) a broker accepts, for tests and experiments that
	// need many small segments, as Kafka lowers its own minimums with
	// internal settings in its tests. Not a Kafka key.
	SegmentMinBytesKey = "log.segment.min.bytes"
	// SegmentOpenFilesMaxKey bounds the sealed segments' files a broker
	// keeps open. Not a Kafka key: Kafka keeps every segment open and
	// leaves the bound to ulimit -n.
	SegmentOpenFilesMaxKey     = "log.segment.open.files.max"
	DefaultSegmentOpenFilesMax = 1000
	// AutoCreateMaxPerRequestKey bounds the topics one Metadata request may
	// auto-create. Not a Kafka key.
	AutoCreateMaxPerRequestKey     = "auto.create.topics.max.per.request"
	DefaultAutoCreateMaxPerRequest = 10
	// MaxPartitionsKey bounds the partitions of the whole cluster, as
	// KIP-578 proposed for Kafka.
	MaxPartitionsKey     = "max.partitions"
	DefaultMaxPartitions = 10000
)

// SegmentMinBytes reads log.segment.min.bytes: the least segment.bytes a
// topic may be given on this broker. It is Kafka's 1 MiB unless the setting
// lowers it (down to 1024 bytes, the least segment.bytes itself allows). A
// log.segment.bytes below it is an error naming log.segment.bytes, so every
// topic default meets it too.
func SegmentMinBytes(brokerSettings map[string]string) (int64, error) {
	minBytes := int64(KafkaMinSegmentBytes)
	if raw, ok := brokerSettings[SegmentMinBytesKey]; ok {
		v, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 32)
		if err != nil || v < segmentBytesFloor {
			return 0, &ValueError{Key: SegmentMinBytesKey, Value: raw,
				Reason: fmt.Sprintf("must be an integer from %d to %d", segmentBytesFloor, math.MaxInt32)}
		}
		minBytes = v
	}
	if raw, ok := brokerSettings["log.segment.bytes"]; ok {
		// Ill-typed values are BrokerDefaults' to report.
		if v, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 32); err == nil && v < minBytes {
			return 0, &ValueError{Key: "log.segment.bytes", Value: raw, Reason: segmentMinReason(minBytes)}
		}
	}
	return minBytes, nil
}

// CheckSegmentBytes refuses a topic config whose segment.bytes is below
// minBytes (from SegmentMinBytes), with an error that names the key.
func CheckSegmentBytes(t Topic, minBytes int64) error {
	if t.SegmentBytes >= minBytes {
		return nil
	}
	return &ValueError{Key: "segment.bytes", Value: strconv.FormatInt(t.SegmentBytes, 10), Reason: segmentMinReason(minBytes)}
}

func segmentMinReason(minBytes int64) string {
	r := fmt.Sprintf("must be at least %d bytes", minBytes)
	if minBytes == KafkaMinSegmentBytes {
		r += " (as in Kafka)"
	} else {
		r += " (" + SegmentMinBytesKey + ")"
	}
	return r
}

// SegmentOpenFilesMax reads log.segment.open.files.max: how many sealed
// segments' files the broker keeps open at once, reopening others when
// they are read. Active segments (one per hosted partition) are not
// counted. Keep it well below the process's descriptor limit, which must
// also cover connections and active segments.
func SegmentOpenFilesMax(brokerSettings map[string]string) (int, error) {
	return positiveInt(brokerSettings, SegmentOpenFilesMaxKey, DefaultSegmentOpenFilesMax)
}

// AutoCreateMaxPerRequest reads auto.create.topics.max.per.request: with
// auto.create.topics.enable, the most topics one Metadata request creates;
// it answers the others it names UNKNOWN_TOPIC_OR_PARTITION, and the client
// asks again.
func AutoCreateMaxPerRequest(brokerSettings map[string]string) (int, error) {
	return positiveInt(brokerSettings, AutoCreateMaxPerRequestKey, DefaultAutoCreateMaxPerRequest)
}

// MaxPartitions reads max.partitions: the most partitions the cluster may
// hold, counted over every topic (replicas not multiplied in). Creating a
// topic or partitions beyond it fails. Every broker should have the same
// value; each enforces its own on the requests it serves.
func MaxPartitions(brokerSettings map[string]string) (int, error) {
	return positiveInt(brokerSettings, MaxPartitionsKey, DefaultMaxPartitions)
}

// positiveInt reads a broker setting that is a count from 1 to 2^31-1.
func positiveInt(brokerSettings map[string]string, key string, dflt int) (int, error) {
	raw, ok := brokerSettings[key]
	if !ok {
		return dflt, nil
	}
	v, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 32)
	if err != nil || v < 1 {
		return 0, &ValueError{Key: key, Value: raw, Reason: fmt.Sprintf("must be an integer from 1 to %d", math.MaxInt32)}
	}
	return int(v), nil
}
