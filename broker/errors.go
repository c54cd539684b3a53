package broker

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-broker/strata/record"

	"github.com/strata-broker/strata/broker/controller"
	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/broker/txn"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/tiering"
	"github.com/strata-broker/strata/tiering/rlm"
)

// Errors of the broker core. Frontends translate them into their protocol's
// codes (gRPC status codes, Kafka error codes) with errors.Is / errors.As, so
// every error returned by the core wraps one of these or one of the log's
// typed errors.
var (
	ErrUnknownTopicOrPartition = errors.New("unknown topic or partition")
	// ErrUnknownTopicID: a topic named by an id no topic has (any more);
	// it is an unknown topic to frontends that have no code for it.
	ErrUnknownTopicID     = fmt.Errorf("unknown topic id: %w", ErrUnknownTopicOrPartition)
	ErrTopicExists        = errors.New("topic already exists")
	ErrInvalidTopic       = errors.New("invalid topic")
	ErrInvalidConfig      = errors.New("invalid config")
	ErrInvalidPartitions  = errors.New("invalid number of partitions")
	ErrInvalidReplication = errors.New("invalid replication factor")
	ErrInvalidRequest     = errors.New("invalid request")
	// ErrPolicyViolation: the request breaks a limit of the cluster's
	// (max.partitions); nothing was done.
	ErrPolicyViolation = errors.New("policy violation")
	// ErrInvalidRecord: a record breaks a rule of its topic, such as a
	// record without a key sent to a compacted topic.
	ErrInvalidRecord = errors.New("invalid record")
	ErrNotLeader     = errors.New("not the leader for partition")
	ErrBrokerClosed  = errors.New("broker is shutting down")
	// ErrLeaderNotAvailable: the partition has no leader at the moment (an
	// election is under way, or every in-sync replica is down).
	ErrLeaderNotAvailable = errors.New("leader not available")
	// ErrNotEnoughReplicas refuses an acks=all produce when the ISR is
	// smaller than min.insync.replicas; nothing was written.
	ErrNotEnoughReplicas = errors.New("not enough in-sync replicas")
	// ErrNotEnoughReplicasAfterAppend: an acks=all produce was written and
	// committed, but by an ISR that had shrunk below min.insync.replicas.
	ErrNotEnoughReplicasAfterAppend = errors.New("not enough in-sync replicas after append")
	// ErrRequestTimedOut: an acks=all produce was appended by the leader but
	// not replicated to the ISR in time. The records may still be committed.
	ErrRequestTimedOut = errors.New("request timed out waiting for replication")
	// ErrFencedLeaderEpoch: the request's leader epoch is older than the
	// partition's; ErrUnknownLeaderEpoch: newer than this broker knows yet.
	ErrFencedLeaderEpoch  = errors.New("fenced leader epoch")
	ErrUnknownLeaderEpoch = errors.New("unknown leader epoch")
	// ErrOutOfOrderSequence: an idempotent producer's batch does not
	// continue its sequence on the partition; nothing was written.
	ErrOutOfOrderSequence = errors.New("out of order sequence number")
	// ErrInvalidProducerEpoch: the batch's producer epoch is older than one
	// already seen for its producer id (a zombie producer is fenced).
	ErrInvalidProducerEpoch = errors.New("invalid producer epoch")
	// ErrTransactionsUnsupported: a transactional id or transactional batch.
	ErrTransactionsUnsupported = errors.New("transactions are not supported")
	// ErrUnknownProducerID: a batch names a producer id the cluster never
	// issued; nothing was written.
	ErrUnknownProducerID = errors.New("unknown producer id")
	// ErrTransactionCoordinatorFenced: an end-transaction marker from a
	// coordinator epoch older than the last one the partition took for
	// its producer (a coordinator that was replaced); nothing was written.
	ErrTransactionCoordinatorFenced = errors.New("transaction coordinator fenced")
	// ErrClusterAuthorizationFailed: an inter-broker request whose caller
	// did not prove to be the broker it claims; nothing was done.
	ErrClusterAuthorizationFailed = errors.New("cluster authorization failed")
	// ErrInvalidReplicaAssignment: a reassignment's target replicas are
	// not a usable replica set (duplicates, brokers that are not live).
	ErrInvalidReplicaAssignment = errors.New("invalid replica assignment")
	// ErrNoReassignmentInProgress: a cancellation of a partition that is
	// not moving.
	ErrNoReassignmentInProgress = errors.New("no reassignment in progress")
	// ErrElectionNotNeeded: the partition already has the leader an
	// election would give it.
	ErrElectionNotNeeded = errors.New("leader election not needed")
	// ErrPreferredLeaderNotAvailable: the preferred replica is not alive or
	// not in the ISR. The controller's decision returns it.
	ErrPreferredLeaderNotAvailable = controller.ErrPreferredUnavailable
	// ErrEligibleLeadersNotAvailable: an unclean election found no live
	// replica. The controller's decision returns it.
	ErrEligibleLeadersNotAvailable = controller.ErrNoEligibleLeader
)

// Kind classifies an error from the core for frontends, which look its
// protocol codes up in one table (broker/errcode).
type Kind int

// Error kinds, one per distinct client reaction.
const (
	KindInternal Kind = iota
	KindUnknownTopicOrPartition
	KindTopicExists
	KindInvalidTopic
	KindInvalidConfig
	KindInvalidPartitions
	KindInvalidReplication
	KindInvalidRequest
	KindPolicyViolation // a cluster limit refused the request
	KindCorruptMessage  // a produced batch failed validation
	KindInvalidRecord   // a produced record breaks a rule of its topic
	KindRecordTooLarge  // a produced batch exceeds max.message.bytes, or inflates too far
	KindOffsetOutOfRange
	KindCorruptStorage // stored data failed its checksum
	KindNotLeader
	KindLeaderNotAvailable
	KindNotEnoughReplicas
	KindNotEnoughReplicasAfterAppend
	KindRequestTimedOut
	KindFencedLeaderEpoch
	KindUnknownLeaderEpoch
	KindUnavailable
	KindCanceled         // the caller canceled the request
	KindDeadlineExceeded // the caller's deadline passed
	KindOutOfOrderSequence
	KindInvalidProducerEpoch
	KindTransactionsUnsupported
	KindUnknownProducerID
	// KindUpstreamUnavailable: a service the broker calls over gRPC (etcd's
	// client reports an unreachable cluster so) answered Unavailable.
	KindUpstreamUnavailable
	// KindRemoteStorageUnavailable: reading records from the object store
	// failed for want of the store (down, unreachable, an object missing);
	// the read may succeed when tried again.
	KindRemoteStorageUnavailable
	// KindStorageError: the partition's log on this broker is offline after
	// a storage failure (a full disk, a failed device); another replica
	// takes the partition over.
	KindStorageError
	// KindClusterAuthorizationFailed: an inter-broker request from a caller
	// that is not the broker it claims to be.
	KindClusterAuthorizationFailed
	KindInvalidReplicaAssignment
	KindNoReassignmentInProgress
	KindElectionNotNeeded
	KindPreferredLeaderNotAvailable
	KindEligibleLeadersNotAvailable
	KindTransactionCoordinatorFenced
	// Kinds of the transaction coordinator's errors (broker/txn), and of a
	// transactional produce its coordinator does not know of.
	KindInvalidTxnState
	KindProducerFenced
	KindConcurrentTransactions
	KindInvalidProducerIDMapping
	KindInvalidTransactionTimeout
	KindTransactionalIDNotFound

	// Kinds of the group coordinator's errors (broker/group), from
	// KindNotCoordinator to KindMemberIDRequired; see IsGroup.
	KindNotCoordinator
	KindCoordinatorNotAvailable
	KindUnknownMemberID
	KindIllegalGeneration
	KindRebalanceInProgress
	KindInconsistentProtocol
	KindInvalidSessionTimeout
	KindInvalidGroupID
	KindGroupNotEmpty
	KindGroupIDNotFound
	KindFencedInstanceID
	KindGroupSubscribedToTopic
	KindGroupMaxSizeReached
	KindOffsetMetadataTooLarge
	KindFencedMemberEpoch
	KindStaleMemberEpoch
	KindUnreleasedInstanceID
	KindUnsupportedAssignor
	KindInvalidRegularExpression
	KindMemberIDRequired
)

// IsGroup reports whether k is a kind of the group coordinator's errors.
// Group calls answer other errors differently on the Kafka API (see
// errcode.KafkaGroup), and only group errors carry a status detail on the
// gRPC API.
func (k Kind) IsGroup() bool {
	return k >= KindNotCoordinator && k <= KindMemberIDRequired
}

// KindError is an error another broker answered, with the kind its
// reason maps back to, so that Classify gives the remote error's kind.
type KindError struct {
	Kind Kind
	Err  error
}

func (e *KindError) Error() string { return e.Err.Error() }
func (e *KindError) Unwrap() error { return e.Err }

// Classify maps an error returned by the core to its kind.
func Classify(err error) Kind {
	var (
		kinded   *KindError
		tooLarge *partlog.RecordTooLargeError
		inflated *record.InflatedTooLargeError
		decoder  *record.DecoderLimitError
		oor      *partlog.OffsetOutOfRangeError
		corrupt  *partlog.CorruptionError
		required *group.MemberIDRequiredError
		remote   *rlm.ReadError
	)
	switch {
	case err == nil:
		return KindInternal
	case errors.As(err, &kinded):
		return kinded.Kind
	case errors.Is(err, ErrUnknownTopicOrPartition), errors.Is(err, group.ErrUnknownTopicOrPartition):
		return KindUnknownTopicOrPartition
	case errors.Is(err, ErrTopicExists):
		return KindTopicExists
	case errors.Is(err, ErrInvalidTopic):
		return KindInvalidTopic
	case errors.Is(err, ErrInvalidConfig):
		return KindInvalidConfig
	case errors.Is(err, ErrInvalidPartitions):
		return KindInvalidPartitions
	case errors.Is(err, ErrInvalidReplication):
		return KindInvalidReplication
	case errors.Is(err, ErrInvalidRequest):
		return KindInvalidRequest
	case errors.Is(err, ErrPolicyViolation):
		return KindPolicyViolation
	case errors.Is(err, ErrInvalidRecord):
		return KindInvalidRecord
	case errors.As(err, &tooLarge), errors.As(err, &inflated), errors.As(err, &decoder):
		return KindRecordTooLarge
	case errors.As(err, &oor):
		return KindOffsetOutOfRange
	case errors.As(err, &corrupt), errors.Is(err, tiering.ErrCorrupt):
		return KindCorruptStorage
	case errors.As(err, &remote):
		return KindRemoteStorageUnavailable
	case record.IsCorrupt(err), errors.Is(err, record.ErrShortBuffer):
		return KindCorruptMessage
	case partlog.IsStorageError(err):
		return KindStorageError
	case errors.Is(err, ErrNotLeader):
		return KindNotLeader
	case errors.Is(err, ErrLeaderNotAvailable):
		return KindLeaderNotAvailable
	case errors.Is(err, ErrNotEnoughReplicasAfterAppend):
		return KindNotEnoughReplicasAfterAppend
	case errors.Is(err, ErrNotEnoughReplicas):
		return KindNotEnoughReplicas
	case errors.Is(err, ErrRequestTimedOut):
		return KindRequestTimedOut
	case errors.Is(err, ErrFencedLeaderEpoch):
		return KindFencedLeaderEpoch
	case errors.Is(err, ErrUnknownLeaderEpoch):
		return KindUnknownLeaderEpoch
	case errors.Is(err, ErrOutOfOrderSequence):
		return KindOutOfOrderSequence
	case errors.Is(err, ErrInvalidProducerEpoch):
		return KindInvalidProducerEpoch
	case errors.Is(err, ErrTransactionsUnsupported):
		return KindTransactionsUnsupported
	case errors.Is(err, ErrUnknownProducerID):
		return KindUnknownProducerID
	case errors.Is(err, ErrClusterAuthorizationFailed):
		return KindClusterAuthorizationFailed
	case errors.Is(err, ErrTransactionCoordinatorFenced):
		return KindTransactionCoordinatorFenced
	case errors.Is(err, txn.ErrInvalidTxnState):
		return KindInvalidTxnState
	case errors.Is(err, txn.ErrProducerFenced):
		return KindProducerFenced
	case errors.Is(err, txn.ErrConcurrentTransactions):
		return KindConcurrentTransactions
	case errors.Is(err, txn.ErrInvalidProducerIDMapping):
		return KindInvalidProducerIDMapping
	case errors.Is(err, txn.ErrInvalidTransactionTimeout):
		return KindInvalidTransactionTimeout
	case errors.Is(err, txn.ErrTransactionalIDNotFound):
		return KindTransactionalIDNotFound
	case errors.Is(err, txn.ErrNotCoordinator):
		return KindNotCoordinator
	case errors.Is(err, txn.ErrCoordinatorNotAvailable):
		return KindCoordinatorNotAvailable
	case errors.Is(err, txn.ErrInvalidRequest):
		return KindInvalidRequest
	case errors.Is(err, ErrInvalidReplicaAssignment):
		return KindInvalidReplicaAssignment
	case errors.Is(err, ErrNoReassignmentInProgress):
		return KindNoReassignmentInProgress
	case errors.Is(err, ErrElectionNotNeeded):
		return KindElectionNotNeeded
	case errors.Is(err, ErrPreferredLeaderNotAvailable):
		return KindPreferredLeaderNotAvailable
	case errors.Is(err, ErrEligibleLeadersNotAvailable):
		return KindEligibleLeadersNotAvailable
	case errors.Is(err, ErrBrokerClosed), errors.Is(err, partlog.ErrLogClosed), errors.Is(err, partlog.ErrLogFailed):
		return KindUnavailable
	case errors.As(err, &required):
		return KindMemberIDRequired
	case errors.Is(err, group.ErrNotCoordinator):
		return KindNotCoordinator
	case errors.Is(err, group.ErrCoordinatorNotAvailable):
		return KindCoordinatorNotAvailable
	case errors.Is(err, group.ErrUnknownMemberID):
		return KindUnknownMemberID
	case errors.Is(err, group.ErrIllegalGeneration):
		return KindIllegalGeneration
	case errors.Is(err, group.ErrRebalanceInProgress):
		return KindRebalanceInProgress
	case errors.Is(err, group.ErrInconsistentProtocol):
		return KindInconsistentProtocol
	case errors.Is(err, group.ErrInvalidSessionTimeout):
		return KindInvalidSessionTimeout
	case errors.Is(err, group.ErrInvalidGroupID):
		return KindInvalidGroupID
	case errors.Is(err, group.ErrGroupNotEmpty):
		return KindGroupNotEmpty
	case errors.Is(err, group.ErrGroupIDNotFound):
		return KindGroupIDNotFound
	case errors.Is(err, group.ErrFencedInstanceID):
		return KindFencedInstanceID
	case errors.Is(err, group.ErrGroupSubscribedToTopic):
		return KindGroupSubscribedToTopic
	case errors.Is(err, group.ErrGroupMaxSizeReached):
		return KindGroupMaxSizeReached
	case errors.Is(err, group.ErrOffsetMetadataTooLarge):
		return KindOffsetMetadataTooLarge
	case errors.Is(err, group.ErrFencedMemberEpoch):
		return KindFencedMemberEpoch
	case errors.Is(err, group.ErrStaleMemberEpoch):
		return KindStaleMemberEpoch
	case errors.Is(err, group.ErrUnreleasedInstanceID):
		return KindUnreleasedInstanceID
	case errors.Is(err, group.ErrUnsupportedAssignor):
		return KindUnsupportedAssignor
	case errors.Is(err, group.ErrInvalidRegularExpression):
		return KindInvalidRegularExpression
	case errors.Is(err, group.ErrInvalidRequest):
		return KindInvalidRequest
	// A deadline that passed wins over a cancellation, should an error carry
	// both: the caller learns that it ran out of time.
	case errors.Is(err, context.DeadlineExceeded):
		return KindDeadlineExceeded
	case errors.Is(err, context.Canceled):
		return KindCanceled
	}
	if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable {
		return KindUpstreamUnavailable
	}
	return KindInternal
}
