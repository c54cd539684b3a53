// ShareGroupDescribe (key 77), versions 1-1. Needs the share-group
// coordinator.
//
// Authorized operations are not computed. A group that is not a share
// group is GROUP_ID_NOT_FOUND, as Kafka answers.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker/sharegroup"
)

func (s *Server) shareGroupDescribeAPI() api {
	return api{key: 77, min: 1, max: 1, amplification: 525, handle: decoded(s.shareGroupDescribe), needsShareGroups: true,
		auth: checkedInHandler()}
}

func (s *Server) shareGroupDescribe(ctx context.Context, req *kmsg.ShareGroupDescribeRequest) *kmsg.ShareGroupDescribeResponse {
	resp := req.ResponseKind().(*kmsg.ShareGroupDescribeResponse)
	var ids map[string][16]byte
	for _, name := range req.GroupIDs {
		rg := kmsg.NewShareGroupDescribeResponseGroup()
		rg.GroupID = name
		rg.AuthorizedOperations = -2147483648
		if !s.authorized(ctx, acl.OpDescribe, acl.ResourceGroup, name) {
			rg.ErrorCode = kerr.GroupAuthorizationFailed.Code
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		g, err := s.shareGroups.Describe(ctx, name)
		if err != nil {
			rg.ErrorCode, rg.ErrorMessage = shareGroupCode(err), errorMessage(err)
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		if ids == nil {
			ids = s.topicIDs()
		}
		rg.GroupState, rg.GroupEpoch, rg.AssignmentEpoch, rg.Assignor = sharegroup.State(g), g.Epoch, g.AssignmentEpoch, "simple"
		for _, m := range g.Members {
			rm := kmsg.NewShareGroupDescribeResponseGroupMember()
			rm.MemberID, rm.RackID, rm.MemberEpoch = m.MemberID, strPtr(m.RackID), m.MemberEpoch
			rm.ClientID, rm.ClientHost = m.ClientID, m.ClientHost
			rm.SubscribedTopicNames = append([]string{}, m.SubscribedTopics...)
			rm.Assignment.TopicPartitions = []kmsg.ShareGroupDescribeResponseGroupMemberAssignmentTopicPartition{}
			for _, tp := range m.Assignment { // sorted: one run per topic
				tps := rm.Assignment.TopicPartitions
				if n := len(tps); n > 0 && tps[n-1].Topic == tp.Topic {
					tps[n-1].Partitions = append(tps[n-1].Partitions, tp.Partition)
					continue
				}
				rt := kmsg.NewShareGroupDescribeResponseGroupMemberAssignmentTopicPartition()
				rt.Topic, rt.TopicID, rt.Partitions = tp.Topic, ids[tp.Topic], []int32{tp.Partition}
				rm.Assignment.TopicPartitions = append(tps, rt)
			}
			rg.Members = append(rg.Members, rm)
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}
