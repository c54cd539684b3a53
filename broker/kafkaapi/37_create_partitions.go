// CreatePartitions (key 37), versions 0-3.
//
// Counts, replica assignments and validate_only go to the core, which
// decides; each topic gets its own error and message. The internal
// __consumer_offsets has offsets.topic.num.partitions: INVALID_PARTITIONS.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
)

func (s *Server) createPartitionsAPI() api {
	return api{key: 37, min: 0, max: 3, amplification: 130, handle: decoded(s.createPartitions), auth: checkedInHandler()}
}

func (s *Server) createPartitions(ctx context.Context, req *kmsg.CreatePartitionsRequest) *kmsg.CreatePartitionsResponse {
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	ctx, cancel := timeoutCtx(ctx, req.TimeoutMillis)
	defer cancel()
	for _, t := range req.Topics {
		rt := kmsg.NewCreatePartitionsResponseTopic()
		rt.Topic = t.Topic
		if !s.authorized(ctx, acl.OpAlter, acl.ResourceTopic, t.Topic) {
			rt.ErrorCode = kerr.TopicAuthorizationFailed.Code
			rt.ErrorMessage = strPtr(kerr.TopicAuthorizationFailed.Description)
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		var assignments [][]int32
		for _, a := range t.Assignment {
			assignments = append(assignments, a.Replicas)
		}
		if err := s.core.CreatePartitions(ctx, t.Topic, t.Count, assignments, req.ValidateOnly); err != nil {
			rt.ErrorCode = errorCode(err)
			rt.ErrorMessage = errorMessage(err)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
