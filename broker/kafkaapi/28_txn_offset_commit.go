// TxnOffsetCommit (key 28), versions 0-4. Needs the group coordinator.
//
// The consumer group's side of a transaction: the offsets are stored
// pending, and become the group's committed offsets when the transaction
// commits (the transaction coordinator completes them through
// broker.TxnGroupMarkerWriter), or are dropped when it aborts. They are
// taken only while the transactional id's stored transaction is open with
// this producer id and epoch and the group added (AddOffsetsToTxn), else
// INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED (INVALID_PRODUCER_EPOCH
// before v3) or INVALID_TXN_STATE. v3 adds KIP-447's generation, member id
// and instance id, checked as a plain commit's (ILLEGAL_GENERATION,
// UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID); a commit without them is taken
// whatever the group's members. v4 is v3 (KIP-890 part 1's new error code,
// which this broker never sends). v5 (transaction version 2) is not served.
// Authorization is Kafka's, in its order: Write on the transactional id
// (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED for every partition), Read on
// the group (GROUP_AUTHORIZATION_FAILED), Read on each topic
// (TOPIC_AUTHORIZATION_FAILED for its partitions). Partitions that do not
// exist or carry too long metadata are refused on their own, as in
// OffsetCommit.

package kafkaapi

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/broker/txn"
	"github.com/strata-broker/strata/metastore"
)

func (s *Server) txnOffsetCommitAPI() api {
	return api{key: 28, min: 0, max: 4, amplification: 160, handle: decoded(s.txnOffsetCommit), needsGroups: true,
		auth: checkedInHandler()}
}

func (s *Server) txnOffsetCommit(ctx context.Context, req *kmsg.TxnOffsetCommitRequest) *kmsg.TxnOffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	refuse := func(code int16) *kmsg.TxnOffsetCommitResponse {
		for _, t := range req.Topics {
			rt := kmsg.NewTxnOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	if !s.authorized(ctx, acl.OpWrite, acl.ResourceTransactionalID, req.TransactionalID) {
		return refuse(kerr.TransactionalIDAuthorizationFailed.Code)
	}
	if !s.authorized(ctx, acl.OpRead, acl.ResourceGroup, req.Group) {
		return refuse(kerr.GroupAuthorizationFailed.Code)
	}
	allowed := s.topicsAuthorized(ctx, acl.OpRead, func(yield func(string) bool) {
		for _, t := range req.Topics {
			if !yield(t.Topic) {
				return
			}
		}
	})
	commit := group.TxnCommitRequest{
		Group: req.Group, TransactionalID: req.TransactionalID,
		ProducerID: req.ProducerID, ProducerEpoch: req.ProducerEpoch, Generation: -1,
	}
	if req.Version >= 3 {
		commit.Generation, commit.MemberID, commit.InstanceID = req.Generation, req.MemberID, deref(req.InstanceID)
	}
	for _, t := range req.Topics {
		if !allowedIn(allowed, t.Topic) {
			continue
		}
		for _, p := range t.Partitions {
			oc := metastore.OffsetCommit{Topic: t.Topic, Partition: p.Partition, Offset: p.Offset, LeaderEpoch: -1, Metadata: deref(p.Metadata)}
			if req.Version >= 2 {
				oc.LeaderEpoch = p.LeaderEpoch
			}
			commit.Offsets = append(commit.Offsets, oc)
		}
	}
	var err error
	if len(commit.Offsets) > 0 || allowed == nil {
		err = s.groups.CommitTxnOffsets(ctx, commit)
	}
	var each *group.OffsetErrors
	if !errors.As(err, &each) || len(each.Errs) != len(commit.Offsets) {
		each = nil
	}
	i := 0
	for _, t := range req.Topics {
		rt := kmsg.NewTxnOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			switch {
			case !allowedIn(allowed, t.Topic):
				rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
			case each != nil:
				rp.ErrorCode = txnCommitCode(each.Errs[i], req.Version)
				i++
			default:
				rp.ErrorCode = txnCommitCode(err, req.Version)
				i++
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// txnCommitCode is a partition's code in a TxnOffsetCommit response: the
// transaction's refusals, then OffsetCommit's codes.
func txnCommitCode(err error, version int16) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, txn.ErrProducerFenced):
		if version < 3 {
			return kerr.InvalidProducerEpoch.Code
		}
		return kerr.ProducerFenced.Code
	case errors.Is(err, txn.ErrInvalidProducerIDMapping):
		return kerr.InvalidProducerIDMapping.Code
	case errors.Is(err, txn.ErrInvalidTxnState):
		return kerr.InvalidTxnState.Code
	}
	return commitCode(err)
}
