package errcode

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/tiering/rlm"
)

// contract is what clients see for each kind, written as the literal values
// of the protocols rather than through the libraries' names for them: Kafka
// error codes (as in Kafka's protocol guide), gRPC status codes (google.rpc.
// Code) and the reason strings. Changing a row changes what clients get.
var contract = []struct {
	kind   broker.Kind
	kafka  int16
	grpc   codes.Code
	reason string
}{
	{broker.KindInternal, -1, 13, ""},
	{broker.KindUnknownTopicOrPartition, 3, 5, "UNKNOWN_TOPIC_OR_PARTITION"},
	{broker.KindTopicExists, 36, 6, ""},
	{broker.KindInvalidTopic, 17, 3, ""},
	{broker.KindInvalidConfig, 40, 3, ""},
	{broker.KindInvalidPartitions, 37, 3, ""},
	{broker.KindInvalidReplication, 38, 3, ""},
	{broker.KindInvalidRequest, 42, 3, ""},
	{broker.KindPolicyViolation, 44, 9, ""},
	{broker.KindCorruptMessage, 2, 3, "CORRUPT_MESSAGE"},
	{broker.KindInvalidRecord, 87, 3, "INVALID_RECORD"},
	{broker.KindRecordTooLarge, 10, 8, "MESSAGE_TOO_LARGE"},
	{broker.KindOffsetOutOfRange, 1, 11, "OFFSET_OUT_OF_RANGE"},
	{broker.KindCorruptStorage, 56, 15, "KAFKA_STORAGE_ERROR"},
	{broker.KindNotLeader, 6, 14, "NOT_LEADER_OR_FOLLOWER"},
	{broker.KindLeaderNotAvailable, 5, 14, "LEADER_NOT_AVAILABLE"},
	{broker.KindNotEnoughReplicas, 19, 14, "NOT_ENOUGH_REPLICAS"},
	{broker.KindNotEnoughReplicasAfterAppend, 20, 14, "NOT_ENOUGH_REPLICAS_AFTER_APPEND"},
	{broker.KindRequestTimedOut, 7, 4, "REQUEST_TIMED_OUT"},
	{broker.KindFencedLeaderEpoch, 74, 14, "FENCED_LEADER_EPOCH"},
	{broker.KindUnknownLeaderEpoch, 75, 14, "UNKNOWN_LEADER_EPOCH"},
	{broker.KindUnavailable, 6, 14, ""},
	{broker.KindCanceled, 7, 1, ""},
	{broker.KindDeadlineExceeded, 7, 4, ""},
	{broker.KindOutOfOrderSequence, 45, 9, "OUT_OF_ORDER_SEQUENCE_NUMBER"},
	{broker.KindInvalidProducerEpoch, 47, 9, "INVALID_PRODUCER_EPOCH"},
	{broker.KindTransactionsUnsupported, 42, 12, ""},
	{broker.KindUnknownProducerID, 59, 9, ""},
	{broker.KindUpstreamUnavailable, -1, 14, ""},
	{broker.KindRemoteStorageUnavailable, 56, 14, ""},
	{broker.KindStorageError, 56, 14, ""},
	{broker.KindClusterAuthorizationFailed, 31, 7, ""},
	{broker.KindInvalidReplicaAssignment, 39, 3, "INVALID_REPLICA_ASSIGNMENT"},
	{broker.KindNoReassignmentInProgress, 85, 9, "NO_REASSIGNMENT_IN_PROGRESS"},
	{broker.KindElectionNotNeeded, 84, 9, "ELECTION_NOT_NEEDED"},
	{broker.KindPreferredLeaderNotAvailable, 80, 9, "PREFERRED_LEADER_NOT_AVAILABLE"},
	{broker.KindEligibleLeadersNotAvailable, 83, 9, "ELIGIBLE_LEADERS_NOT_AVAILABLE"},
	{broker.KindTransactionCoordinatorFenced, 52, 9, "TRANSACTION_COORDINATOR_FENCED"},
	{broker.KindInvalidTxnState, 48, 9, "INVALID_TXN_STATE"},
	{broker.KindProducerFenced, 90, 9, "PRODUCER_FENCED"},
	{broker.KindConcurrentTransactions, 51, 14, "CONCURRENT_TRANSACTIONS"},
	{broker.KindInvalidProducerIDMapping, 49, 9, "INVALID_PRODUCER_ID_MAPPING"},
	{broker.KindInvalidTransactionTimeout, 50, 3, "INVALID_TRANSACTION_TIMEOUT"},
	{broker.KindTransactionalIDNotFound, 105, 5, "TRANSACTIONAL_ID_NOT_FOUND"},
	{broker.KindNotCoordinator, 16, 14, "NOT_COORDINATOR"},
	{broker.KindCoordinatorNotAvailable, 15, 14, "COORDINATOR_NOT_AVAILABLE"},
	{broker.KindUnknownMemberID, 25, 9, "UNKNOWN_MEMBER_ID"},
	{broker.KindIllegalGeneration, 22, 9, "ILLEGAL_GENERATION"},
	{broker.KindRebalanceInProgress, 27, 10, "REBALANCE_IN_PROGRESS"},
	{broker.KindInconsistentProtocol, 23, 9, "INCONSISTENT_GROUP_PROTOCOL"},
	{broker.KindInvalidSessionTimeout, 26, 3, "INVALID_SESSION_TIMEOUT"},
	{broker.KindInvalidGroupID, 24, 3, "INVALID_GROUP_ID"},
	{broker.KindGroupNotEmpty, 68, 9, "NON_EMPTY_GROUP"},
	{broker.KindGroupIDNotFound, 69, 5, "GROUP_ID_NOT_FOUND"},
	{broker.KindFencedInstanceID, 82, 9, "FENCED_INSTANCE_ID"},
	{broker.KindGroupSubscribedToTopic, 86, 9, "GROUP_SUBSCRIBED_TO_TOPIC"},
	{broker.KindGroupMaxSizeReached, 81, 8, ""},
	{broker.KindFencedMemberEpoch, 110, 9, ""},
	{broker.KindStaleMemberEpoch, 113, 9, ""},
	{broker.KindUnreleasedInstanceID, 111, 9, ""},
	{broker.KindUnsupportedAssignor, 112, 3, ""},
	{broker.KindInvalidRegularExpression, 128, 3, ""},
	{broker.KindOffsetMetadataTooLarge, 12, 3, ""},
	{broker.KindMemberIDRequired, 79, 13, ""},
}

func TestTableIsTheContract(t *testing.T) {
	seen := make(map[broker.Kind]bool)
	for _, c := range contract {
		seen[c.kind] = true
		got, ok := table[c.kind]
		if !ok {
			t.Errorf("kind %d has no row", c.kind)
			continue
		}
		if got.Kafka != c.kafka || got.GRPC != c.grpc || got.ReasonName() != c.reason {
			t.Errorf("kind %d: Kafka %d, gRPC %v, reason %q; want Kafka %d, gRPC %v, reason %q",
				c.kind, got.Kafka, got.GRPC, got.ReasonName(), c.kafka, c.grpc, c.reason)
		}
		if c.reason != "" {
			if k, ok := KindOf(got.Reason); !ok || k != c.kind {
				t.Errorf("reason %s maps back to kind %d (%v), want %d", c.reason, k, ok, c.kind)
			}
		}
	}
	for k := range table {
		if !seen[k] {
			t.Errorf("kind %d has a row but no contract", k)
		}
	}
	// Every kind, up to the last one declared, has its contract.
	for k := broker.KindInternal; k <= broker.KindMemberIDRequired; k++ {
		if !seen[k] {
			t.Errorf("kind %d has no contract", k)
		}
	}
}

// Every reason of the enum belongs to exactly one kind, so that a reason a
// broker sends maps back to what it was.
func TestEveryReasonHasAKind(t *testing.T) {
	for n, name := range stratav1.ErrorReason_name {
		r := stratav1.ErrorReason(n)
		k, ok := KindOf(r)
		if r == stratav1.ErrorReason_ERROR_REASON_UNSPECIFIED {
			if ok || r.ReasonName() != "" {
				t.Errorf("UNSPECIFIED maps to kind %d, name %q", k, r.ReasonName())
			}
			continue
		}
		if !ok || For(k).Reason != r || r.ReasonName() != name {
			t.Errorf("reason %s: kind %d (%v)", name, k, ok)
		}
	}
}

func TestOf(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "etcd: no leader")
	full := &partlog.StorageError{Dir: "/data/t-0", Err: &fs.PathError{Op: "write", Path: "/data/t-0/00000000000000000000.log", Err: syscall.ENOSPC}}
	for _, c := range []struct {
		err    error
		kafka  int16
		grpc   codes.Code
		reason string
	}{
		{nil, 0, 0, ""},
		{fmt.Errorf("topic t: %w", broker.ErrNotLeader), 6, 14, "NOT_LEADER_OR_FOLLOWER"},
		{fmt.Errorf("t-0: %w", &partlog.OffsetOutOfRangeError{Offset: 5, Start: 10, End: 20}), 1, 11, "OFFSET_OUT_OF_RANGE"},
		{fmt.Errorf("fetch: %w", context.Canceled), 7, 1, ""},
		{fmt.Errorf("fetch: %w", context.DeadlineExceeded), 7, 4, ""},
		{errors.Join(context.Canceled, context.DeadlineExceeded), 7, 4, ""},
		{fmt.Errorf("load topics: %w", unavailable), -1, 14, ""},
		{status.Error(codes.NotFound, "peer: no such partition"), -1, 13, ""},
		{fmt.Errorf("commit: %w", group.ErrRebalanceInProgress), 27, 10, "REBALANCE_IN_PROGRESS"},
		{&group.MemberIDRequiredError{MemberID: "m-1"}, 79, 13, ""},
		{fmt.Errorf("commit: %w", group.ErrUnknownTopicOrPartition), 3, 5, "UNKNOWN_TOPIC_OR_PARTITION"},
		{&group.OffsetErrors{Errs: []error{nil, fmt.Errorf("t-0: %w", group.ErrOffsetMetadataTooLarge)}}, 12, 3, ""},
		{fmt.Errorf("join: %w", group.ErrGroupMaxSizeReached), 81, 8, ""},
		{errors.New("disk on fire"), -1, 13, ""},
		{fmt.Errorf("replica fetch as broker 2: %w", broker.ErrClusterAuthorizationFailed), 31, 7, ""},
		// A failed read of the object store is retriable, even when what
		// failed was one attempt's own deadline.
		{fmt.Errorf("fetch t-0: %w", &rlm.ReadError{Topic: "t", Offset: 7, Err: errors.New("connection refused")}), 56, 14, ""},
		{&rlm.ReadError{Topic: "t", Offset: -1, Err: fmt.Errorf("GET: %w", context.DeadlineExceeded)}, 56, 14, ""},
		// The write that met the full disk, and every refusal after it.
		{fmt.Errorf("produce to t-0: %w", full), 56, 14, ""},
		{fmt.Errorf("t-0: log offline: %w", fmt.Errorf("%w: %w", partlog.ErrLogFailed, full)), 56, 14, ""},
		{fmt.Errorf("t-0: %w", partlog.ErrLogClosed), 6, 14, ""},
		{fmt.Errorf("fetch: %w", &partlog.CorruptionError{Dir: "/data/t-0", Err: errors.New("crc")}), 56, 15, "KAFKA_STORAGE_ERROR"},
	} {
		got := Of(c.err)
		if got.Kafka != c.kafka || got.GRPC != c.grpc || got.ReasonName() != c.reason {
			t.Errorf("%v: Kafka %d, gRPC %v, reason %q; want Kafka %d, gRPC %v, reason %q",
				c.err, got.Kafka, got.GRPC, got.ReasonName(), c.kafka, c.grpc, c.reason)
		}
	}
}

func TestKafkaGroup(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int16
	}{
		{nil, 0},
		{fmt.Errorf("join: %w", group.ErrUnknownMemberID), 25},
		{&group.MemberIDRequiredError{MemberID: "m-1"}, 79},
		{fmt.Errorf("join: %w", group.ErrGroupMaxSizeReached), 81},
		{fmt.Errorf("commit: %w", group.ErrOffsetMetadataTooLarge), 12},
		{fmt.Errorf("join: %w", group.ErrCoordinatorNotAvailable), 15},
		{fmt.Errorf("join: %w", context.Canceled), 15},
		{fmt.Errorf("join: %w", context.DeadlineExceeded), 15},
		// Not the coordinator's: a server error to a group client.
		{fmt.Errorf("offsets: %w", broker.ErrUnknownTopicOrPartition), -1},
		{errors.New("etcd: lost"), -1},
	} {
		if got := KafkaGroup(c.err); got != c.want {
			t.Errorf("KafkaGroup(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}
