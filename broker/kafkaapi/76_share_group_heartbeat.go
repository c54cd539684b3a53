// ShareGroupHeartbeat (key 76), versions 1-1. Needs the share-group
// coordinator.
//
// Version 1 is Kafka 4.1's and later: the client names its member id.
// Assignments name topics by id; a topic without one is left out.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker/sharegroup"
)

func (s *Server) shareGroupHeartbeatAPI() api {
	return api{key: 76, min: 1, max: 1, amplification: 55, handle: decodedWithHeader(s.shareGroupHeartbeat), needsShareGroups: true,
		auth: checkedInHandler()}
}

func (s *Server) shareGroupHeartbeat(ctx context.Context, h header, req *kmsg.ShareGroupHeartbeatRequest) *kmsg.ShareGroupHeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.ShareGroupHeartbeatResponse)
	fail := func(code int16, err error) *kmsg.ShareGroupHeartbeatResponse {
		resp.ErrorCode = code
		if err != nil {
			resp.ErrorMessage = errorMessage(err)
		}
		return resp
	}
	if !s.authorized(ctx, acl.OpRead, acl.ResourceGroup, req.GroupID) {
		return fail(kerr.GroupAuthorizationFailed.Code, nil)
	}
	// Kafka checks Describe on each subscribed topic, refusing the whole
	// heartbeat if any is denied.
	for _, t := range req.SubscribedTopicNames {
		if !s.authorized(ctx, acl.OpDescribe, acl.ResourceTopic, t) {
			return fail(kerr.TopicAuthorizationFailed.Code, nil)
		}
	}
	res, err := s.shareGroups.Heartbeat(ctx, sharegroup.HeartbeatRequest{
		Group: req.GroupID, MemberID: req.MemberID, MemberEpoch: req.MemberEpoch, RackID: req.RackID,
		SubscribedTopicNames: req.SubscribedTopicNames, ClientID: h.clientID, ClientHost: h.remoteHost,
	})
	if err != nil {
		return fail(shareGroupCode(err), err)
	}
	resp.MemberID = &req.MemberID
	resp.MemberEpoch = res.MemberEpoch
	resp.HeartbeatIntervalMillis = int32(res.HeartbeatInterval.Milliseconds())
	if res.SendAssignment {
		a := kmsg.NewShareGroupHeartbeatResponseAssignment()
		a.TopicPartitions = []kmsg.ShareGroupHeartbeatResponseAssignmentTopicPartition{}
		ids := s.topicIDs()
		last := ""
		for _, tp := range res.Assignment { // sorted: one run per topic
			id, ok := ids[tp.Topic]
			if !ok {
				continue
			}
			if n := len(a.TopicPartitions); n > 0 && last == tp.Topic {
				a.TopicPartitions[n-1].Partitions = append(a.TopicPartitions[n-1].Partitions, tp.Partition)
				continue
			}
			rt := kmsg.NewShareGroupHeartbeatResponseAssignmentTopicPartition()
			rt.TopicID, rt.Partitions, last = id, []int32{tp.Partition}, tp.Topic
			a.TopicPartitions = append(a.TopicPartitions, rt)
		}
		resp.Assignment = &a
	}
	return resp
}
