// ShareFetch (key 78), versions 1-2.
//
// Fetches records for a member of a share group from the share partitions
// this broker leads (broker/sharepartition): each record handed out is
// acquired by the member until it is acknowledged or its acquisition lock
// (AcquisitionLockTimeoutMillis) expires. Acknowledgements may ride on the
// request. Topics are named by id.
//
// The share session (KIP-932) is keyed by group and member: epoch 0 opens
// it with the partitions listed, later epochs must be the one expected
// (INVALID_SHARE_SESSION_EPOCH, SHARE_SESSION_NOT_FOUND) and add or forget
// partitions, -1 only acknowledges and closes it, releasing what the member
// still holds; so does the close of the connection that opened it. The
// answer carries every partition of the session.
//
// MaxRecords (v1+) bounds the records acquired, strictly in both
// ShareAcquireMode values (v2). IsRenewAck (v2) carries lock renewals
// only: nothing is fetched. A partition answered NOT_LEADER_OR_FOLLOWER
// carries its current leader, and NodeEndpoints that leader's address on
// the listener. Version 0 (Kafka 4.0's early access) is not
// served.

package kafkaapi

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker/sharepartition"
	"github.com/strata-broker/strata/metastore"
)

func (s *Server) shareFetchAPI() api {
	return api{key: 78, min: 1, max: 2, amplification: 160, handle: decodedWithHeader(s.shareFetch), auth: checkedInHandler()}
}

func (s *Server) shareFetch(ctx context.Context, h header, req *kmsg.ShareFetchRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ShareFetchResponse)
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

	// Resolve topic ids; refused and unknown topics are answered at once.
	names := map[[16]byte]string{}
	name := func(id [16]byte) (string, bool) {
		if n, ok := names[id]; ok {
			return n, n != ""
		}
		n, _ := s.shares.TopicName(uuidString(id))
		names[id] = n
		return n, n != ""
	}
	allowed := s.topicsAuthorized(ctx, acl.OpRead, func(yield func(string) bool) {
		for _, t := range req.Topics {
			if n, ok := name(t.TopicID); ok && !yield(n) {
				return
			}
		}
	})
	fr := sharepartition.FetchRequest{
		Group: group, Member: member, Epoch: req.ShareSessionEpoch, Conn: h.conn,
		MaxWait:  min(time.Duration(max(req.MaxWaitMillis, 0))*time.Millisecond, maxFetchWait),
		MinBytes: req.MinBytes, MaxBytes: req.MaxBytes, MaxRecords: int(req.MaxRecords),
		Acks: map[metastore.TopicPartition][]sharepartition.AckBatch{},
	}
	if req.IsRenewAck {
		fr.MaxWait, fr.RenewOnly = 0, true
	}
	ids := map[string][16]byte{}
	var refused []kmsg.ShareFetchResponseTopic
	budget := maxShareAckBatches
	for _, t := range req.Topics {
		n, ok := name(t.TopicID)
		if !ok || !allowedIn(allowed, n) {
			rt := kmsg.NewShareFetchResponseTopic()
			rt.TopicID = t.TopicID
			code := kerr.UnknownTopicID.Code
			if ok {
				code = kerr.TopicAuthorizationFailed.Code
			}
			for _, p := range t.Partitions {
				rp := shareFetchPartition(p.Partition)
				rp.ErrorCode = code
				rt.Partitions = append(rt.Partitions, rp)
			}
			refused = append(refused, rt)
			continue
		}
		ids[n] = t.TopicID
		for _, p := range t.Partitions {
			tp := metastore.TopicPartition{Topic: n, Partition: p.Partition}
			if !req.IsRenewAck {
				fr.Partitions = append(fr.Partitions, tp)
			}
			fr.PartitionMaxBytes = max(fr.PartitionMaxBytes, p.PartitionMaxBytes)
			if len(p.AcknowledgementBatches) == 0 {
				continue
			}
			acks, ok := shareAcks(p.AcknowledgementBatches, func(b kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch) (int64, int64, []int8) {
				return b.FirstOffset, b.LastOffset, b.AcknowledgeTypes
			}, &budget)
			if !ok {
				return fail(kerr.InvalidRequest.Code, nil)
			}
			fr.Acks[tp] = acks
		}
	}
	for _, t := range req.ForgottenTopicsData {
		if n, ok := name(t.TopicID); ok {
			for _, p := range t.Partitions {
				fr.Forget = append(fr.Forget, metastore.TopicPartition{Topic: n, Partition: p})
			}
		}
	}
	results, err := s.shares.Fetch(ctx, fr)
	if err != nil {
		return fail(shareCode(err), err)
	}
	resp.AcquisitionLockTimeoutMillis = int32(s.shares.LockDuration(ctx, group).Milliseconds())
	var moved []metastore.TopicPartition
	for _, r := range results {
		if leaderMoved(shareCode(r.Err)) {
			moved = append(moved, r.TopicPartition)
		}
	}
	leaders, endpoints := s.movedLeaders(ctx, h, moved)
	byTopic := map[string]int{}
	for _, r := range results {
		i, ok := byTopic[r.Topic]
		if !ok {
			i = len(resp.Topics)
			byTopic[r.Topic] = i
			rt := kmsg.NewShareFetchResponseTopic()
			rt.TopicID = ids[r.Topic]
			if _, known := ids[r.Topic]; !known {
				// A partition of the session named in an earlier request.
				id, _ := topicIDOf(ctx, s, r.Topic)
				rt.TopicID = id
			}
			resp.Topics = append(resp.Topics, rt)
		}
		rp := shareFetchPartition(r.Partition)
		rp.ErrorCode = shareCode(r.Err)
		if r.Err != nil {
			rp.ErrorMessage = errorMessage(r.Err)
		}
		if l, ok := leaders[r.TopicPartition]; ok {
			rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = l.id, l.epoch
		}
		if r.Acked {
			rp.AcknowledgeErrorCode = shareCode(r.AckErr)
			if r.AckErr != nil {
				rp.AcknowledgeErrorMessage = errorMessage(r.AckErr)
			}
		}
		if len(r.Records) > 0 {
			rp.Records = r.Records
		}
		for _, a := range r.Acquired {
			rp.AcquiredRecords = append(rp.AcquiredRecords, kmsg.ShareFetchResponseTopicPartitionAcquiredRecord{
				FirstOffset: a.FirstOffset, LastOffset: a.LastOffset, DeliveryCount: a.DeliveryCount,
			})
		}
		resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, rp)
	}
	resp.Topics = append(resp.Topics, refused...)
	for _, b := range endpoints {
		resp.NodeEndpoints = append(resp.NodeEndpoints, kmsg.ShareFetchResponseNodeEndpoint{NodeID: b.NodeID, Host: b.Host, Port: b.Port, Rack: b.Rack})
	}
	return resp
}

func shareFetchPartition(p int32) kmsg.ShareFetchResponseTopicPartition {
	rp := kmsg.NewShareFetchResponseTopicPartition()
	rp.Partition = p
	rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = -1, -1
	rp.Records = []byte{}
	return rp
}

// topicIDOf finds a topic's id by name among those the broker hosts.
func topicIDOf(ctx context.Context, s *Server, topic string) ([16]byte, bool) {
	md, err := s.core.Metadata(ctx, []string{topic})
	if err != nil {
		return [16]byte{}, false
	}
	for _, t := range md.Topics {
		if t.Name == topic {
			return topicID(t.ID), true
		}
	}
	return [16]byte{}, false
}
