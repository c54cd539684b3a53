// ConsumerGroupHeartbeat (key 68), versions 0-1. Needs the group coordinator.
//
// The consumer group protocol (KIP-848): the coordinator assigns. v1 adds
// the subscription by regular expression, matched against whole topic
// names, and has the client choose its member id (v0 clients may leave it
// empty on joining and are given one). Topics are named by id; an owned
// topic id that no longer exists is kept as reported, so that its
// partitions can be revoked.

package kafkaapi

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker/group"
)

func (s *Server) consumerGroupHeartbeatAPI() api {
	return api{key: 68, min: 0, max: 1, amplification: 140, needsGroups: true, auth: checkedInHandler(),
		// The member's client id and host come from the request header.
		handle: func(ctx context.Context, h header, req kmsg.Request) kmsg.Response {
			return s.consumerGroupHeartbeat(ctx, h, req.(*kmsg.ConsumerGroupHeartbeatRequest))
		}}
}

func (s *Server) consumerGroupHeartbeat(ctx context.Context, h header, req *kmsg.ConsumerGroupHeartbeatRequest) *kmsg.ConsumerGroupHeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
	if !s.authorized(ctx, acl.OpRead, acl.ResourceGroup, req.Group) {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp
	}
	if req.Version == 0 && req.SubscribedTopicRegex != nil {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp
	}
	hb := group.ConsumerHeartbeat{
		Group: req.Group, MemberID: req.MemberID, MemberEpoch: req.MemberEpoch,
		ClientID: h.clientID, ClientHost: h.remoteHost,
		InstanceID: req.InstanceID, RackID: req.RackID,
		RebalanceTimeout: time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond,
		SubscribedTopics: req.SubscribedTopicNames, SubscribedRegex: req.SubscribedTopicRegex,
		ServerAssignor: req.ServerAssignor,
	}
	if req.RebalanceTimeoutMillis < 0 {
		hb.RebalanceTimeout = -1
	}
	if req.Version >= 1 && req.MemberEpoch == 0 && req.MemberID == "" {
		// v1 members choose their own id.
		resp.ErrorCode = kerr.InvalidRequest.Code
		msg := "member id is required from ConsumerGroupHeartbeat v1"
		resp.ErrorMessage = &msg
		return resp
	}
	if req.Topics != nil {
		hb.Owned = ownedPartitions(req.Topics)
	}
	res, err := s.groups.ConsumerGroupHeartbeat(ctx, hb)
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = consumerGroupCode(err), errorMessage(err)
		return resp
	}
	resp.MemberID, resp.MemberEpoch = &res.MemberID, res.MemberEpoch
	resp.HeartbeatIntervalMillis = int32(res.HeartbeatInterval / time.Millisecond)
	if res.Assignment != nil {
		a := kmsg.NewConsumerGroupHeartbeatResponseAssignment()
		a.Topics = []kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic{}
		for _, id := range slices.Sorted(maps.Keys(res.Assignment)) {
			t := kmsg.NewConsumerGroupHeartbeatResponseAssignmentTopic()
			t.TopicID, t.Partitions = topicID(id), res.Assignment[id]
			a.Topics = append(a.Topics, t)
		}
		resp.Assignment = &a
	}
	return resp
}

// ownedPartitions are the partitions a member reports owning, by topic id,
// sorted and without repeats. A topic listed several times is merged, and
// sorted once: sorting at each repeat would cost a hostile request's
// length squared.
func ownedPartitions(topics []kmsg.ConsumerGroupHeartbeatRequestTopic) map[string][]int32 {
	byID := make(map[[16]byte][]int32)
	for _, t := range topics {
		byID[t.TopicID] = append(byID[t.TopicID], t.Partitions...)
	}
	owned := make(map[string][]int32, len(byID))
	for id, ps := range byID {
		slices.Sort(ps)
		owned[uuidString(id)] = slices.Compact(ps)
	}
	return owned
}

// consumerGroupCode is the Kafka code of a consumer group protocol error:
// the group codes, and INVALID_REQUEST for a request that breaks its rules.
func consumerGroupCode(err error) int16 {
	if errors.Is(err, group.ErrInvalidRequest) {
		return kerr.InvalidRequest.Code
	}
	return groupCode(err)
}
