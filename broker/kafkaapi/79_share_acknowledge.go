// ShareAcknowledge (key 79), versions 1-2.
//
// Acknowledges records a member of a share group was given by ShareFetch:
// accept (1), release (2: offered again), reject (3: archived), and from
// v2 renew (4: the acquisition lock starts again), with gap (0) for
// offsets that held no record. It needs the member's share session: epoch
// 0 is refused (INVALID_SHARE_SESSION_EPOCH), -1 closes the session after
// the acknowledgements, releasing what the member still holds. Version 0
// (Kafka 4.0's early access) is not served.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker/sharepartition"
	"github.com/strata-broker/strata/metastore"
)

func (s *Server) shareAcknowledgeAPI() api {
	return api{key: 79, min: 1, max: 2, amplification: 160, handle: decodedWithHeader(s.shareAcknowledge), auth: checkedInHandler()}
}

func (s *Server) shareAcknowledge(ctx context.Context, h header, req *kmsg.ShareAcknowledgeRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ShareAcknowledgeResponse)
	group, member := deref(req.GroupID), deref(req.MemberID)
	fail := func(code int16, err error) kmsg.Response {
		resp.ErrorCode = code
		if err != nil {
			resp.ErrorMessage = errorMessage(err)
		}
		return resp
	}
	if code, err := s.checkShareRequest(ctx, group, member); code != 0 {
		return fail(code, err)
	}
	names := map[[16]byte]string{}
	for _, t := range req.Topics {
		if _, ok := names[t.TopicID]; !ok {
			names[t.TopicID], _ = s.shares.TopicName(uuidString(t.TopicID))
		}
	}
	allowed := s.topicsAuthorized(ctx, acl.OpRead, func(yield func(string) bool) {
		for _, n := range names {
			if n != "" && !yield(n) {
				return
			}
		}
	})
	acks := map[metastore.TopicPartition][]sharepartition.AckBatch{}
	budget := maxShareAckBatches
	for _, t := range req.Topics {
		n := names[t.TopicID]
		if n == "" || !allowedIn(allowed, n) {
			continue
		}
		for _, p := range t.Partitions {
			batches, ok := shareAcks(p.AcknowledgementBatches, func(b kmsg.ShareAcknowledgeRequestTopicPartitionAcknowledgementBatch) (int64, int64, []int8) {
				return b.FirstOffset, b.LastOffset, b.AcknowledgeTypes
			}, &budget)
			if !ok {
				return fail(kerr.InvalidRequest.Code, nil)
			}
			for _, b := range batches {
				for _, typ := range b.Types {
					// Renewals come only in a request that says so (v2),
					// and such a request carries nothing else.
					if (typ == sharepartition.AckRenew) != req.IsRenewAck {
						return fail(kerr.InvalidRequest.Code, nil)
					}
				}
			}
			acks[metastore.TopicPartition{Topic: n, Partition: p.Partition}] = batches
		}
	}
	results, err := s.shares.Acknowledge(ctx, group, member, req.ShareSessionEpoch, acks)
	if err != nil {
		return fail(shareCode(err), err)
	}
	if req.Version >= 2 {
		resp.AcquisitionLockTimeoutMillis = int32(s.shares.LockDuration(ctx, group).Milliseconds())
	}
	for _, t := range req.Topics {
		rt := kmsg.NewShareAcknowledgeResponseTopic()
		rt.TopicID = t.TopicID
		n := names[t.TopicID]
		for _, p := range t.Partitions {
			rp := kmsg.NewShareAcknowledgeResponseTopicPartition()
			rp.Partition = p.Partition
			rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = -1, -1
			switch {
			case n == "":
				rp.ErrorCode = kerr.UnknownTopicID.Code
			case !allowedIn(allowed, n):
				rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
			default:
				if err := results[metastore.TopicPartition{Topic: n, Partition: p.Partition}]; err != nil {
					rp.ErrorCode, rp.ErrorMessage = shareCode(err), errorMessage(err)
				}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	var moved []metastore.TopicPartition
	for tp, err := range results {
		if leaderMoved(shareCode(err)) {
			moved = append(moved, tp)
		}
	}
	leaders, endpoints := s.movedLeaders(ctx, h, moved)
	for _, rt := range resp.Topics {
		for pi := range rt.Partitions {
			rp := &rt.Partitions[pi]
			if l, ok := leaders[metastore.TopicPartition{Topic: names[rt.TopicID], Partition: rp.Partition}]; ok && leaderMoved(rp.ErrorCode) {
				rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = l.id, l.epoch
			}
		}
	}
	for _, b := range endpoints {
		resp.NodeEndpoints = append(resp.NodeEndpoints, kmsg.ShareAcknowledgeResponseNodeEndpoint{NodeID: b.NodeID, Host: b.Host, Port: b.Port, Rack: b.Rack})
	}
	return resp
}
