package kafkaapi

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker/sharepartition"
	"github.com/strata-broker/strata/metastore"
)

// Shares is what the share-group data APIs (ShareFetch, ShareAcknowledge,
// the share-group offsets APIs) need: the share partitions this broker
// leads and their persisted state (*sharepartition.Manager).
type Shares interface {
	TopicName(id string) (string, bool)
	LockDuration(ctx context.Context, group string) time.Duration
	Fetch(ctx context.Context, req sharepartition.FetchRequest) ([]sharepartition.PartitionResult, error)
	Acknowledge(ctx context.Context, group, member string, epoch int32, acks map[metastore.TopicPartition][]sharepartition.AckBatch) (map[metastore.TopicPartition]error, error)
	DescribeOffsets(ctx context.Context, group string, parts []metastore.TopicPartition) ([]sharepartition.Offset, error)
	AlterOffsets(ctx context.Context, group string, offsets map[metastore.TopicPartition]int64) (map[metastore.TopicPartition]error, error)
	DeleteOffsets(ctx context.Context, group string, topics []string) (map[string]error, error)
	DeleteGroup(ctx context.Context, group string) error
	// ConnectionClosed ends the share sessions opened on connection conn
	// (FetchRequest.Conn), releasing their members' records.
	ConnectionClosed(ctx context.Context, conn uint64)
}

var _ Shares = (*sharepartition.Manager)(nil)

// errSharesUnavailable answers share-group requests on a server built
// without share partitions (tests of other APIs).
var errSharesUnavailable = errors.New("share groups are not served here")

// shareCode maps the share partitions' errors to Kafka's codes; the
// core's errors map as everywhere else.
func shareCode(err error) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, sharepartition.ErrInvalidRecordState):
		return kerr.InvalidRecordState.Code
	case errors.Is(err, sharepartition.ErrInvalidAcknowledgement):
		return kerr.InvalidRequest.Code
	case errors.Is(err, sharepartition.ErrShareSessionNotFound):
		return kerr.ShareSessionNotFound.Code
	case errors.Is(err, sharepartition.ErrInvalidShareSessionEpoch):
		return kerr.InvalidShareSessionEpoch.Code
	case errors.Is(err, sharepartition.ErrShareSessionLimitReached):
		return kerr.ShareSessionLimitReached.Code
	case errors.Is(err, sharepartition.ErrGroupNotEmpty):
		return kerr.NonEmptyGroup.Code
	case errors.Is(err, sharepartition.ErrGroupNotFound):
		return kerr.GroupIDNotFound.Code
	case errors.Is(err, errSharesUnavailable):
		return kerr.CoordinatorNotAvailable.Code
	}
	return errorCode(err)
}

// uuidString is a topic id's canonical form, as the metastore holds it.
func uuidString(id [16]byte) string { return metastore.FormatUUID(id) }

// maxShareAckBatches bounds the acknowledgement batches of one request:
// each is applied record by record, and a record can be acknowledged once.
const maxShareAckBatches = 10000

// shareAcks converts a partition's acknowledgement batches; false if the
// request carries more than maxShareAckBatches in all (*budget counts
// them down).
func shareAcks[B any](batches []B, get func(B) (int64, int64, []int8), budget *int) ([]sharepartition.AckBatch, bool) {
	if len(batches) > *budget {
		return nil, false
	}
	*budget -= len(batches)
	out := make([]sharepartition.AckBatch, len(batches))
	for i, b := range batches {
		first, last, types := get(b)
		out[i] = sharepartition.AckBatch{FirstOffset: first, LastOffset: last, Types: types}
	}
	return out, true
}

// shareLeader is a partition's current leader as ShareFetch and
// ShareAcknowledge report it to a client sent to the wrong broker.
type shareLeader struct{ id, epoch int32 }

// movedLeaders looks up the current leaders of the partitions answered
// NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH, and the addresses of those
// leaders on the request's listener (the responses' NodeEndpoints), so
// that the client moves at once, as Kafka tells it.
func (s *Server) movedLeaders(ctx context.Context, h header, moved []metastore.TopicPartition) (map[metastore.TopicPartition]shareLeader, []kmsg.MetadataResponseBroker) {
	if len(moved) == 0 {
		return nil, nil
	}
	var topics []string
	for _, tp := range moved {
		if !slices.Contains(topics, tp.Topic) {
			topics = append(topics, tp.Topic)
		}
	}
	md, err := s.core.Metadata(ctx, topics)
	if err != nil {
		return nil, nil
	}
	leaders := map[metastore.TopicPartition]shareLeader{}
	wanted := map[int32]bool{}
	for _, t := range md.Topics {
		for _, st := range t.Partitions {
			tp := metastore.TopicPartition{Topic: t.Name, Partition: st.Partition}
			if slices.Contains(moved, tp) && st.Leader >= 0 {
				leaders[tp] = shareLeader{st.Leader, st.LeaderEpoch}
				wanted[st.Leader] = true
			}
		}
	}
	brokers, _ := s.liveBrokers(md, h.listener)
	brokers = slices.DeleteFunc(brokers, func(b kmsg.MetadataResponseBroker) bool { return !wanted[b.NodeID] })
	return leaders, brokers
}

// leaderMoved reports whether a partition's error sends the client to
// another leader.
func leaderMoved(code int16) bool {
	return code == kerr.NotLeaderForPartition.Code || code == kerr.FencedLeaderEpoch.Code
}

// checkShareRequest is what ShareFetch and ShareAcknowledge refuse before
// reading their partitions: a request naming no group or member, a
// principal that may not read the group, a broker serving no share groups.
func (s *Server) checkShareRequest(ctx context.Context, group, member string) (int16, error) {
	switch {
	case group == "" || member == "":
		return kerr.InvalidRequest.Code, nil
	case !s.authorized(ctx, acl.OpRead, acl.ResourceGroup, group):
		return kerr.GroupAuthorizationFailed.Code, nil
	case s.shares == nil:
		return shareCode(errSharesUnavailable), errSharesUnavailable
	}
	return 0, nil
}
