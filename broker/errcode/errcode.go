// Package errcode is the one table from the kinds of the broker's errors
// (broker.Kind) to what each protocol calls them: Kafka's error code, the
// gRPC status code and Kafka's name for the error (the reason clients of
// the gRPC API and following brokers act on). Both frontends and the
// replication client look codes up here, so that a kind cannot mean one
// thing on one wire and another on the other.
package errcode

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"google.golang.org/grpc/codes"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/broker"
)

// Codes are the names of one kind of error on each wire.
type Codes struct {
	Kafka int16      // Kafka's error code
	GRPC  codes.Code // status code of the gRPC API
	// Reason is Kafka's name for the error where clients react to it,
	// UNSPECIFIED where they need none.
	Reason stratav1.ErrorReason
}

// ReasonName is Reason as PartitionError.reason carries it ("" for none).
func (c Codes) ReasonName() string {
	return c.Reason.ReasonName()
}

// none is the absence of a reason, to keep the table's rows short.
const none = stratav1.ErrorReason_ERROR_REASON_UNSPECIFIED

// table has a row for every kind. Kinds sharing a client reaction share
// codes, but reasons are unique to a kind so that a reason maps back to it.
var table = map[broker.Kind]Codes{
	broker.KindInternal: {kerr.UnknownServerError.Code, codes.Internal, none},

	broker.KindUnknownTopicOrPartition: {kerr.UnknownTopicOrPartition.Code, codes.NotFound, stratav1.ErrorReason_UNKNOWN_TOPIC_OR_PARTITION},
	broker.KindTopicExists:             {kerr.TopicAlreadyExists.Code, codes.AlreadyExists, none},
	broker.KindInvalidTopic:            {kerr.InvalidTopicException.Code, codes.InvalidArgument, none},
	broker.KindInvalidConfig:           {kerr.InvalidConfig.Code, codes.InvalidArgument, none},
	broker.KindInvalidPartitions:       {kerr.InvalidPartitions.Code, codes.InvalidArgument, none},
	broker.KindInvalidReplication:      {kerr.InvalidReplicationFactor.Code, codes.InvalidArgument, none},
	broker.KindInvalidRequest:          {kerr.InvalidRequest.Code, codes.InvalidArgument, none},
	// Not retriable as is: the cluster must change (topics deleted, the
	// limit raised) before the request can succeed.
	broker.KindPolicyViolation:  {kerr.PolicyViolation.Code, codes.FailedPrecondition, none},
	broker.KindCorruptMessage:   {kerr.CorruptMessage.Code, codes.InvalidArgument, stratav1.ErrorReason_CORRUPT_MESSAGE},
	broker.KindInvalidRecord:    {kerr.InvalidRecord.Code, codes.InvalidArgument, stratav1.ErrorReason_INVALID_RECORD},
	broker.KindRecordTooLarge:   {kerr.MessageTooLarge.Code, codes.ResourceExhausted, stratav1.ErrorReason_MESSAGE_TOO_LARGE},
	broker.KindOffsetOutOfRange: {kerr.OffsetOutOfRange.Code, codes.OutOfRange, stratav1.ErrorReason_OFFSET_OUT_OF_RANGE},
	broker.KindCorruptStorage:   {kerr.KafkaStorageError.Code, codes.DataLoss, stratav1.ErrorReason_KAFKA_STORAGE_ERROR},

	// Retriable on gRPC (Unavailable) once the client has fresh metadata
	// or the ISR has grown again.
	broker.KindNotLeader:                    {kerr.NotLeaderForPartition.Code, codes.Unavailable, stratav1.ErrorReason_NOT_LEADER_OR_FOLLOWER},
	broker.KindLeaderNotAvailable:           {kerr.LeaderNotAvailable.Code, codes.Unavailable, stratav1.ErrorReason_LEADER_NOT_AVAILABLE},
	broker.KindNotEnoughReplicas:            {kerr.NotEnoughReplicas.Code, codes.Unavailable, stratav1.ErrorReason_NOT_ENOUGH_REPLICAS},
	broker.KindNotEnoughReplicasAfterAppend: {kerr.NotEnoughReplicasAfterAppend.Code, codes.Unavailable, stratav1.ErrorReason_NOT_ENOUGH_REPLICAS_AFTER_APPEND},
	broker.KindFencedLeaderEpoch:            {kerr.FencedLeaderEpoch.Code, codes.Unavailable, stratav1.ErrorReason_FENCED_LEADER_EPOCH},
	broker.KindUnknownLeaderEpoch:           {kerr.UnknownLeaderEpoch.Code, codes.Unavailable, stratav1.ErrorReason_UNKNOWN_LEADER_EPOCH},
	broker.KindRequestTimedOut:              {kerr.RequestTimedOut.Code, codes.DeadlineExceeded, stratav1.ErrorReason_REQUEST_TIMED_OUT},
	// The broker is shutting down: a Kafka client refreshes its metadata on
	// NOT_LEADER_OR_FOLLOWER and goes to the new leader.
	broker.KindUnavailable: {kerr.NotLeaderForPartition.Code, codes.Unavailable, none},
	// The partition's log is offline on this broker (Kafka's offline log
	// directory): KAFKA_STORAGE_ERROR is retriable, and Kafka clients
	// refresh their metadata and find the replica that took over. gRPC
	// clients do the same on Unavailable. The reason KAFKA_STORAGE_ERROR is
	// damaged data's (KindCorruptStorage), which a client does not retry.
	broker.KindStorageError: {kerr.KafkaStorageError.Code, codes.Unavailable, none},
	// Kafka has no code for a request its client gave up on; to a Kafka
	// client both are a timeout.
	broker.KindCanceled:         {kerr.RequestTimedOut.Code, codes.Canceled, none},
	broker.KindDeadlineExceeded: {kerr.RequestTimedOut.Code, codes.DeadlineExceeded, none},
	// Passed on as Unavailable so that gRPC clients retry; Kafka has no
	// code for it.
	broker.KindUpstreamUnavailable: {kerr.UnknownServerError.Code, codes.Unavailable, none},
	// The object store failed a read below the local log. Kafka's own
	// broker answers UNKNOWN_SERVER_ERROR there (a RemoteStorageException
	// is no ApiException), which clients do not retry as such;
	// KAFKA_STORAGE_ERROR, "the storage of the partition failed", is what
	// happened, and every client retries it (Java's KafkaStorageException
	// is retriable, and kgo and librdkafka refresh metadata and fetch
	// again).
	broker.KindRemoteStorageUnavailable: {kerr.KafkaStorageError.Code, codes.Unavailable, none},

	broker.KindOutOfOrderSequence:   {kerr.OutOfOrderSequenceNumber.Code, codes.FailedPrecondition, stratav1.ErrorReason_OUT_OF_ORDER_SEQUENCE_NUMBER},
	broker.KindInvalidProducerEpoch: {kerr.InvalidProducerEpoch.Code, codes.FailedPrecondition, stratav1.ErrorReason_INVALID_PRODUCER_EPOCH},
	// INVALID_REQUEST is fatal to a transactional producer, which is what
	// it must be.
	broker.KindTransactionsUnsupported: {kerr.InvalidRequest.Code, codes.Unimplemented, none},
	// A Kafka client answers it by asking for a new producer id.
	broker.KindUnknownProducerID: {kerr.UnknownProducerID.Code, codes.FailedPrecondition, none},
	// Kafka's answer to a replica fetch from a principal without
	// ClusterAction. Not retriable by the caller as it is; a follower whose
	// registration the leader has not seen yet retries with its backoff.
	broker.KindClusterAuthorizationFailed: {kerr.ClusterAuthorizationFailed.Code, codes.PermissionDenied, none},

	broker.KindInvalidReplicaAssignment:    {kerr.InvalidReplicaAssignment.Code, codes.InvalidArgument, stratav1.ErrorReason_INVALID_REPLICA_ASSIGNMENT},
	broker.KindNoReassignmentInProgress:    {kerr.NoReassignmentInProgress.Code, codes.FailedPrecondition, stratav1.ErrorReason_NO_REASSIGNMENT_IN_PROGRESS},
	broker.KindElectionNotNeeded:           {kerr.ElectionNotNeeded.Code, codes.FailedPrecondition, stratav1.ErrorReason_ELECTION_NOT_NEEDED},
	broker.KindPreferredLeaderNotAvailable: {kerr.PreferredLeaderNotAvailable.Code, codes.FailedPrecondition, stratav1.ErrorReason_PREFERRED_LEADER_NOT_AVAILABLE},
	broker.KindEligibleLeadersNotAvailable: {kerr.EligibleLeadersNotAvailable.Code, codes.FailedPrecondition, stratav1.ErrorReason_ELIGIBLE_LEADERS_NOT_AVAILABLE},
	// A replaced coordinator's marker: it stops writing markers for the
	// transaction, which its successor completes.
	broker.KindTransactionCoordinatorFenced: {kerr.TransactionCoordinatorFenced.Code, codes.FailedPrecondition, stratav1.ErrorReason_TRANSACTION_COORDINATOR_FENCED},
	// A transactional producer ends or restarts its transaction on these;
	// CONCURRENT_TRANSACTIONS is retried as it is.
	broker.KindInvalidTxnState:           {kerr.InvalidTxnState.Code, codes.FailedPrecondition, stratav1.ErrorReason_INVALID_TXN_STATE},
	broker.KindProducerFenced:            {kerr.ProducerFenced.Code, codes.FailedPrecondition, stratav1.ErrorReason_PRODUCER_FENCED},
	broker.KindConcurrentTransactions:    {kerr.ConcurrentTransactions.Code, codes.Unavailable, stratav1.ErrorReason_CONCURRENT_TRANSACTIONS},
	broker.KindInvalidProducerIDMapping:  {kerr.InvalidProducerIDMapping.Code, codes.FailedPrecondition, stratav1.ErrorReason_INVALID_PRODUCER_ID_MAPPING},
	broker.KindInvalidTransactionTimeout: {kerr.InvalidTransactionTimeout.Code, codes.InvalidArgument, stratav1.ErrorReason_INVALID_TRANSACTION_TIMEOUT},
	broker.KindTransactionalIDNotFound:   {kerr.TransactionalIDNotFound.Code, codes.NotFound, stratav1.ErrorReason_TRANSACTIONAL_ID_NOT_FOUND},

	broker.KindNotCoordinator:          {kerr.NotCoordinator.Code, codes.Unavailable, stratav1.ErrorReason_NOT_COORDINATOR},
	broker.KindCoordinatorNotAvailable: {kerr.CoordinatorNotAvailable.Code, codes.Unavailable, stratav1.ErrorReason_COORDINATOR_NOT_AVAILABLE},
	broker.KindUnknownMemberID:         {kerr.UnknownMemberID.Code, codes.FailedPrecondition, stratav1.ErrorReason_UNKNOWN_MEMBER_ID},
	broker.KindIllegalGeneration:       {kerr.IllegalGeneration.Code, codes.FailedPrecondition, stratav1.ErrorReason_ILLEGAL_GENERATION},
	broker.KindRebalanceInProgress:     {kerr.RebalanceInProgress.Code, codes.Aborted, stratav1.ErrorReason_REBALANCE_IN_PROGRESS},
	broker.KindInconsistentProtocol:    {kerr.InconsistentGroupProtocol.Code, codes.FailedPrecondition, stratav1.ErrorReason_INCONSISTENT_GROUP_PROTOCOL},
	broker.KindInvalidSessionTimeout:   {kerr.InvalidSessionTimeout.Code, codes.InvalidArgument, stratav1.ErrorReason_INVALID_SESSION_TIMEOUT},
	broker.KindInvalidGroupID:          {kerr.InvalidGroupID.Code, codes.InvalidArgument, stratav1.ErrorReason_INVALID_GROUP_ID},
	broker.KindGroupNotEmpty:           {kerr.NonEmptyGroup.Code, codes.FailedPrecondition, stratav1.ErrorReason_NON_EMPTY_GROUP},
	broker.KindGroupIDNotFound:         {kerr.GroupIDNotFound.Code, codes.NotFound, stratav1.ErrorReason_GROUP_ID_NOT_FOUND},
	broker.KindFencedInstanceID:        {kerr.FencedInstanceID.Code, codes.FailedPrecondition, stratav1.ErrorReason_FENCED_INSTANCE_ID},
	broker.KindGroupSubscribedToTopic:  {kerr.GroupSubscribedToTopic.Code, codes.FailedPrecondition, stratav1.ErrorReason_GROUP_SUBSCRIBED_TO_TOPIC},
	// Neither is retriable: a member is not let in, an offset is not
	// committed until the client changes what it sends.
	broker.KindGroupMaxSizeReached:    {kerr.GroupMaxSizeReached.Code, codes.ResourceExhausted, none},
	broker.KindOffsetMetadataTooLarge: {kerr.OffsetMetadataTooLarge.Code, codes.InvalidArgument, none},
	// The consumer group protocol's (KIP-848): a fenced member rejoins,
	// a stale one heartbeats to learn its epoch, the others are mistakes
	// of the client's.
	broker.KindFencedMemberEpoch:        {kerr.FencedMemberEpoch.Code, codes.FailedPrecondition, none},
	broker.KindStaleMemberEpoch:         {kerr.StaleMemberEpoch.Code, codes.FailedPrecondition, none},
	broker.KindUnreleasedInstanceID:     {kerr.UnreleasedInstanceID.Code, codes.FailedPrecondition, none},
	broker.KindUnsupportedAssignor:      {kerr.UnsupportedAssignor.Code, codes.InvalidArgument, none},
	broker.KindInvalidRegularExpression: {kerr.InvalidRegularExpression.Code, codes.InvalidArgument, none},
	// gRPC members never see it: the broker joins again on their behalf.
	broker.KindMemberIDRequired: {kerr.MemberIDRequired.Code, codes.Internal, none},
}

// kinds maps each reason back to the one kind that has it.
var kinds = func() map[stratav1.ErrorReason]broker.Kind {
	m := make(map[stratav1.ErrorReason]broker.Kind)
	for k, c := range table {
		if c.Reason == none {
			continue
		}
		if other, dup := m[c.Reason]; dup {
			panic(fmt.Sprintf("errcode: kinds %d and %d share the reason %v", other, k, c.Reason))
		}
		m[c.Reason] = k
	}
	return m
}()

// For returns the codes of kind k; a kind without a row is an internal
// error.
func For(k broker.Kind) Codes {
	if c, ok := table[k]; ok {
		return c
	}
	return table[broker.KindInternal]
}

// Of returns the codes of err's kind, or the zero Codes (Kafka's 0, gRPC's
// OK, no reason) for nil.
func Of(err error) Codes {
	if err == nil {
		return Codes{}
	}
	return For(broker.Classify(err))
}

// KafkaGroup is the Kafka error code of err in answer to a group call.
// Kafka's group clients react to the coordinator's errors only: a call
// that was cut short means the coordinator went away, so they look for it
// again on COORDINATOR_NOT_AVAILABLE, and anything else is a server error
// to them.
func KafkaGroup(err error) int16 {
	if err == nil {
		return 0
	}
	k := broker.Classify(err)
	switch {
	case k == broker.KindCanceled, k == broker.KindDeadlineExceeded:
		k = broker.KindCoordinatorNotAvailable
	case !k.IsGroup():
		k = broker.KindInternal
	}
	return For(k).Kafka
}

// KindOf returns the kind whose reason r is, and false for UNSPECIFIED or a
// reason this broker does not know (one added by a newer broker).
func KindOf(r stratav1.ErrorReason) (broker.Kind, bool) {
	k, ok := kinds[r]
	return k, ok
}
