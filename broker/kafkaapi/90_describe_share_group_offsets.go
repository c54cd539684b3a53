// DescribeShareGroupOffsets (key 90), versions 0-1.
//
// Each group's share-partition start offsets (SPSO) and the partition
// leader epoch of the last state written, from the persisted share state:
// of the partitions named, or with null topics of every partition the
// group has state for. A partition without state answers StartOffset -1.
// v1 adds Lag: the records between the SPSO and the high watermark not yet
// acknowledged or archived, -1 when this broker does not lead the
// partition (the high watermark is the leader's).

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/metastore"
)

func (s *Server) describeShareGroupOffsetsAPI() api {
	return api{key: 90, min: 0, max: 1, amplification: 160, handle: decoded(s.describeShareGroupOffsets), auth: checkedInHandler()}
}

func (s *Server) describeShareGroupOffsets(ctx context.Context, req *kmsg.DescribeShareGroupOffsetsRequest) *kmsg.DescribeShareGroupOffsetsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeShareGroupOffsetsResponse)
	for _, g := range req.Groups {
		rg := kmsg.NewDescribeShareGroupOffsetsResponseGroup()
		rg.GroupID = g.GroupID
		resp.Groups = append(resp.Groups, s.describeShareGroup(ctx, g, rg))
	}
	return resp
}

func (s *Server) describeShareGroup(ctx context.Context, g kmsg.DescribeShareGroupOffsetsRequestGroup, rg kmsg.DescribeShareGroupOffsetsResponseGroup) kmsg.DescribeShareGroupOffsetsResponseGroup {
	switch {
	case g.GroupID == "":
		rg.ErrorCode = kerr.InvalidGroupID.Code
		return rg
	case !s.authorized(ctx, acl.OpDescribe, acl.ResourceGroup, g.GroupID):
		rg.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return rg
	case s.shares == nil:
		rg.ErrorCode, rg.ErrorMessage = shareCode(errSharesUnavailable), errorMessage(errSharesUnavailable)
		return rg
	}
	var parts []metastore.TopicPartition
	if g.Topics != nil {
		parts = []metastore.TopicPartition{}
		for _, t := range g.Topics {
			for _, p := range t.Partitions {
				parts = append(parts, metastore.TopicPartition{Topic: t.Topic, Partition: p})
			}
		}
	}
	offsets, err := s.shares.DescribeOffsets(ctx, g.GroupID, parts)
	if err != nil {
		rg.ErrorCode, rg.ErrorMessage = shareCode(err), errorMessage(err)
		return rg
	}
	allowed := s.topicsAuthorized(ctx, acl.OpDescribe, func(yield func(string) bool) {
		for _, o := range offsets {
			if !yield(o.Topic) {
				return
			}
		}
	})
	byTopic := map[string]int{}
	for _, o := range offsets {
		if g.Topics == nil && !allowedIn(allowed, o.Topic) {
			continue // listing everything shows only what may be described
		}
		i, ok := byTopic[o.Topic]
		if !ok {
			i = len(rg.Topics)
			byTopic[o.Topic] = i
			rt := kmsg.NewDescribeShareGroupOffsetsResponseGroupTopic()
			rt.Topic, rt.TopicID = o.Topic, topicID(o.TopicID)
			rg.Topics = append(rg.Topics, rt)
		}
		rp := kmsg.NewDescribeShareGroupOffsetsResponseGroupTopicPartition()
		rp.Partition, rp.StartOffset, rp.LeaderEpoch, rp.Lag = o.Partition, o.StartOffset, o.LeaderEpoch, o.Lag
		switch {
		case !allowedIn(allowed, o.Topic):
			rp.StartOffset, rp.LeaderEpoch, rp.Lag = -1, -1, -1
			rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
		case o.Err != nil:
			rp.ErrorCode, rp.ErrorMessage = shareCode(o.Err), errorMessage(o.Err)
		}
		rg.Topics[i].Partitions = append(rg.Topics[i].Partitions, rp)
	}
	return rg
}
