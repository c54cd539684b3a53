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

// Kafka's error names, as brokers give them in PartitionError.Reason: the
// names of stratav1.ErrorReason values, which the broker sends. A client
// reacts to the name rather than the code: several share codes.Unavailable
// but call for different handling.
var (
	// ReasonNotLeaderOrFollower: the broker does not lead the partition
	// (any more). The client refreshes its metadata and retries on the
	// new leader.
	ReasonNotLeaderOrFollower = stratav1.ErrorReason_NOT_LEADER_OR_FOLLOWER.String()
	// ReasonLeaderNotAvailable: the partition has no leader right now (an
	// election is in progress).
	ReasonLeaderNotAvailable = stratav1.ErrorReason_LEADER_NOT_AVAILABLE.String()
	// ReasonUnknownTopicOrPartition: the broker does not know the
	// partition; a new leader may not have loaded it yet, or the topic was
	// deleted, which the metadata tells apart.
	ReasonUnknownTopicOrPartition = stratav1.ErrorReason_UNKNOWN_TOPIC_OR_PARTITION.String()
	// ReasonNotEnoughReplicas: acks=all was refused because the ISR is
	// smaller than min.insync.replicas; nothing was written.
	ReasonNotEnoughReplicas = stratav1.ErrorReason_NOT_ENOUGH_REPLICAS.String()
	// ReasonNotEnoughReplicasAfterAppend: acks=all records were committed,
	// but by an ISR that had shrunk below min.insync.replicas meanwhile;
	// Kafka producers retry (the records may then be written twice).
	ReasonNotEnoughReplicasAfterAppend = stratav1.ErrorReason_NOT_ENOUGH_REPLICAS_AFTER_APPEND.String()
	// ReasonRequestTimedOut: acks=all: the records were appended on the
	// leader but not replicated in time.
	ReasonRequestTimedOut = stratav1.ErrorReason_REQUEST_TIMED_OUT.String()

	// Kafka's names of group errors, as group calls report them (see
	// Reason).

	// ReasonNotCoordinator: the broker does not coordinate the group (any
	// more); the client finds the coordinator again.
	ReasonNotCoordinator = stratav1.ErrorReason_NOT_COORDINATOR.String()
	// ReasonCoordinatorNotAvailable: no coordinator can serve the group
	// right now.
	ReasonCoordinatorNotAvailable = stratav1.ErrorReason_COORDINATOR_NOT_AVAILABLE.String()
	// ReasonRebalanceInProgress: the group is rebalancing; a member
	// commits again once it has its new assignment.
	ReasonRebalanceInProgress = stratav1.ErrorReason_REBALANCE_IN_PROGRESS.String()
	// ReasonIllegalGeneration: the commit names a generation the group
	// has left behind.
	ReasonIllegalGeneration = stratav1.ErrorReason_ILLEGAL_GENERATION.String()
	// ReasonUnknownMemberID: the member is no longer in the group.
	ReasonUnknownMemberID = stratav1.ErrorReason_UNKNOWN_MEMBER_ID.String()
	// ReasonNonEmptyGroup: the group has members (delete, reset offsets).
	ReasonNonEmptyGroup = stratav1.ErrorReason_NON_EMPTY_GROUP.String()
	// ReasonTransactionalIDNotFound: the transactional id has no state
	// (DescribeTransaction).
	ReasonTransactionalIDNotFound = stratav1.ErrorReason_TRANSACTIONAL_ID_NOT_FOUND.String()
)

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
