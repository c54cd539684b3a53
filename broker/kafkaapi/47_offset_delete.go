// OffsetDelete (key 47), version 0. Needs the group coordinator.
//
// Offsets of a topic the group still consumes are kept, and those
// partitions get GROUP_SUBSCRIBED_TO_TOPIC.

package kafkaapi

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker/group"
)

func (s *Server) offsetDeleteAPI() api {
	return api{key: 47, min: 0, max: 0, amplification: 65, handle: decoded(s.offsetDelete), needsGroups: true,
		auth: checkedInHandler()}
}

func (s *Server) offsetDelete(ctx context.Context, req *kmsg.OffsetDeleteRequest) *kmsg.OffsetDeleteResponse {
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	if !s.authorized(ctx, acl.OpDelete, acl.ResourceGroup, req.Group) {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp
	}
	allowed := s.topicsAuthorized(ctx, acl.OpRead, func(yield func(string) bool) {
		for _, t := range req.Topics {
			if !yield(t.Topic) {
				return
			}
		}
	})
	for _, t := range req.Topics {
		if !allowedIn(allowed, t.Topic) {
			rt := kmsg.NewOffsetDeleteResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetDeleteResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, kerr.TopicAuthorizationFailed.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		var parts []int32
		for _, p := range t.Partitions {
			parts = append(parts, p.Partition)
		}
		err := s.groups.DeleteOffsets(ctx, req.Group, t.Topic, parts)
		if err != nil && !errors.Is(err, group.ErrGroupSubscribedToTopic) {
			resp.ErrorCode = groupCode(err)
			return resp
		}
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, groupCode(err)
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
