package client

import (
	"time"

	"github.com/strata-broker/strata/record"
)

// AnyPartition as Record.Partition lets the producer's partitioner choose.
const AnyPartition int32 = -1

// Record is one record, as produced or as consumed.
type Record struct {
	// Topic is set on consumed records; Producer.Produce takes the topic as
	// an argument and ignores this field.
	Topic string
	// Partition is the partition to produce to; AnyPartition (-1) lets the
	// partitioner choose: a keyed record goes where Kafka's default
	// partitioner puts its key, an unkeyed one to the sticky partition.
	// Note that the zero value, 0, is an explicit choice of partition 0.
	Partition int32
	// Offset is set on consumed records and ignored by Produce.
	Offset int64
	// Key and Value: nil is null (a nil Value is a tombstone), an empty
	// non-nil slice is empty.
	Key     []byte
	Value   []byte
	Headers []record.RecordHeader
	// Timestamp: the zero time means "now" when producing.
	Timestamp time.Time
}

// KeyValue returns a record for key and value whose partition the
// partitioner chooses.
func KeyValue(key, value []byte) Record {
	return Record{Partition: AnyPartition, Key: key, Value: value}
}
