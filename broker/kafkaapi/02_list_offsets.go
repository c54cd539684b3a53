// ListOffsets (key 2), versions 0-6.
//
// 7 adds the max-timestamp lookup (KIP-734), which the core does not offer.
// Leader epochs are not tracked, so every answer carries -1. Latest (-1) is
// the high watermark, or the last stable offset for isolation_level 1
// (read_committed, v2+); a lookup by time finds only offsets below that end.
// v0 clients get the one offset found in the old list form as well.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker"
)

func (s *Server) listOffsetsAPI() api {
	return api{key: 2, min: 0, max: 6, amplification: 135, handle: decoded(s.listOffsets), auth: checkedInHandler()}
}

func (s *Server) listOffsets(ctx context.Context, req *kmsg.ListOffsetsRequest) *kmsg.ListOffsetsResponse {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	iso := broker.ReadUncommitted
	if req.Version >= 2 && req.IsolationLevel == 1 {
		iso = broker.ReadCommitted
	}
	for _, t := range req.Topics {
		rt := kmsg.NewListOffsetsResponseTopic()
		rt.Topic = t.Topic
		allowed := s.authorized(ctx, acl.OpDescribe, acl.ResourceTopic, t.Topic)
		for _, p := range t.Partitions {
			rp := kmsg.NewListOffsetsResponseTopicPartition()
			rp.Partition = p.Partition
			rp.LeaderEpoch = -1
			if !allowed {
				rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				rp.Offset, rp.Timestamp = -1, -1
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			off, ts, found, err := s.core.ListOffset(t.Topic, p.Partition, p.Timestamp, iso)
			switch {
			case err != nil:
				rp.ErrorCode = errorCode(err)
				rp.Offset, rp.Timestamp = -1, -1
			case !found:
				rp.Offset, rp.Timestamp = -1, -1
			default:
				rp.Offset, rp.Timestamp = off, ts
				if req.Version == 0 && p.MaxNumOffsets > 0 {
					rp.OldStyleOffsets = []int64{off}
				}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
