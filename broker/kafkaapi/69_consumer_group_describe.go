// ConsumerGroupDescribe (key 69), versions 0-1. Needs the group coordinator.
//
// Describes groups of the consumer protocol (KIP-848); a classic group, or
// one that does not exist, is answered GROUP_ID_NOT_FOUND, as Kafka does.
// Authorized operations are not computed. Every member is a consumer
// member (v1's member type 1): mixed groups are not served.

package kafkaapi

import (
	"context"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
)

func (s *Server) consumerGroupDescribeAPI() api {
	return api{key: 69, min: 0, max: 1, amplification: 600, handle: decoded(s.consumerGroupDescribe), needsGroups: true,
		auth: checkedInHandler()}
}

func (s *Server) consumerGroupDescribe(ctx context.Context, req *kmsg.ConsumerGroupDescribeRequest) *kmsg.ConsumerGroupDescribeResponse {
	resp := req.ResponseKind().(*kmsg.ConsumerGroupDescribeResponse)
	for _, name := range req.Groups {
		rg := kmsg.NewConsumerGroupDescribeResponseGroup()
		rg.Group = name
		rg.AuthorizedOperations = -2147483648
		if !s.authorized(ctx, acl.OpDescribe, acl.ResourceGroup, name) {
			rg.ErrorCode = kerr.GroupAuthorizationFailed.Code
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		d, err := s.groups.DescribeConsumerGroup(ctx, name)
		if err != nil {
			rg.ErrorCode, rg.ErrorMessage = groupCode(err), errorMessage(err)
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		rg.State, rg.Epoch, rg.AssignmentEpoch, rg.AssignorName = d.State, d.Epoch, d.AssignmentEpoch, d.Assignor
		assignment := func(a map[string][]int32) kmsg.Assignment {
			out := kmsg.NewAssignment()
			out.TopicPartitions = []kmsg.AssignmentTopicPartition{}
			for _, id := range slices.Sorted(maps.Keys(a)) {
				tp := kmsg.AssignmentTopicPartition{TopicID: topicID(id), Topic: d.TopicNames[id], Partitions: a[id]}
				out.TopicPartitions = append(out.TopicPartitions, tp)
			}
			return out
		}
		for _, m := range d.Members {
			rm := kmsg.NewConsumerGroupDescribeResponseGroupMember()
			rm.MemberID, rm.InstanceID, rm.RackID = m.MemberID, strPtr(m.InstanceID), strPtr(m.RackID)
			rm.MemberEpoch, rm.ClientID, rm.ClientHost = m.MemberEpoch, m.ClientID, m.ClientHost
			rm.SubscribedTopics, rm.SubscribedTopicRegex = m.SubscribedTopics, strPtr(m.SubscribedRegex)
			if rm.SubscribedTopics == nil {
				rm.SubscribedTopics = []string{}
			}
			rm.Assignment, rm.TargetAssignment = assignment(m.Assignment), assignment(m.TargetAssignment)
			rm.MemberType = 1
			rg.Members = append(rg.Members, rm)
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}
