package client

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// ErrClosed is reported for records produced after Producer.Close, and
// returned by a closed Consumer.
var ErrClosed = errors.New("client: closed")

// PartitionError is a failure the broker reported for one partition inside an
// otherwise successful response (the PartitionError message of the API). It
// carries a gRPC code: status.Code(err) works on it and on errors wrapping it.
type PartitionError struct {
	Topic     string
	Partition int32
	Code      codes.Code
	// Reason is Kafka's name for the error when the broker gives one
	// (ReasonNotLeaderOrFollower, ...), empty otherwise.
	Reason  string
	Message string
	// Offset is the offset the request asked for (a fetch position), or -1
	// when the request was not about an offset.
	Offset int64
	// NextOffset is the offset the broker says reading can continue from,
	// or -1 when it gave none. For codes.DataLoss, [Offset, NextOffset) is
	// the range that cannot be read.
	NextOffset int64
}

func (e *PartitionError) Error() string {
	where := fmt.Sprintf("topic %q partition %d", e.Topic, e.Partition)
	code := e.Code.String()
	if e.Reason != "" {
		code += " (" + e.Reason + ")"
	}
	switch {
	case e.Code == codes.DataLoss && e.Offset >= 0 && e.NextOffset > e.Offset:
		return fmt.Sprintf("%s: data loss: offsets %d to %d cannot be read (next readable offset %d): %s",
			where, e.Offset, e.NextOffset-1, e.NextOffset, e.Message)
	case e.Code == codes.DataLoss && e.Offset >= 0:
		return fmt.Sprintf("%s: data loss at offset %d: %s", where, e.Offset, e.Message)
	case e.Offset >= 0:
		return fmt.Sprintf("%s offset %d: %s: %s", where, e.Offset, code, e.Message)
	}
	return fmt.Sprintf("%s: %s: %s", where, code, e.Message)
}

// GRPCStatus makes status.Code and status.FromError see the partition's code.
func (e *PartitionError) GRPCStatus() *status.Status { return status.New(e.Code, e.Error()) }

// newPartitionError converts the API's per-partition error, returning nil
// when pe is absent or OK. offset and next are -1 when not relevant.
func newPartitionError(topic string, partition int32, pe *stratav1.PartitionError, offset, next int64) *PartitionError {
	if pe == nil || codes.Code(pe.GetCode()) == codes.OK {
		return nil
	}
	if next <= offset {
		next = -1
	}
	return &PartitionError{
		Topic:      topic,
		Partition:  partition,
		Code:       codes.Code(pe.GetCode()),
		Reason:     pe.GetReason(),
		Message:    pe.GetMessage(),
		Offset:     offset,
		NextOffset: next,
	}
}
