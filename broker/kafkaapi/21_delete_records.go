// DeleteRecords (key 21), versions 0-2.
//
// Moves a partition's log start offset up; the new one is returned.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
)

func (s *Server) deleteRecordsAPI() api {
	return api{key: 21, min: 0, max: 2, amplification: 120, handle: decoded(s.deleteRecords), auth: checkedInHandler()}
}

func (s *Server) deleteRecords(ctx context.Context, req *kmsg.DeleteRecordsRequest) *kmsg.DeleteRecordsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	ctx, cancel := timeoutCtx(ctx, req.TimeoutMillis)
	defer cancel()
	for _, t := range req.Topics {
		rt := kmsg.NewDeleteRecordsResponseTopic()
		rt.Topic = t.Topic
		allowed := s.authorized(ctx, acl.OpDelete, acl.ResourceTopic, t.Topic)
		for _, p := range t.Partitions {
			rp := kmsg.NewDeleteRecordsResponseTopicPartition()
			rp.Partition = p.Partition
			if !allowed {
				rp.ErrorCode, rp.LowWatermark = kerr.TopicAuthorizationFailed.Code, -1
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			low, err := s.core.DeleteRecords(ctx, t.Topic, p.Partition, p.Offset)
			if err != nil {
				rp.ErrorCode, rp.LowWatermark = errorCode(err), -1
			} else {
				rp.LowWatermark = low
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
