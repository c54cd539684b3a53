// DeleteShareGroupOffsets (key 92), version 0.
//
// Deletes a share group's persisted share state of the topics named: the
// group starts them again from share.auto.offset.reset. Only a group
// without members (NON_EMPTY_GROUP otherwise), as in Kafka.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
)

func (s *Server) deleteShareGroupOffsetsAPI() api {
	return api{key: 92, min: 0, max: 0, amplification: 210, handle: decoded(s.deleteShareGroupOffsets), auth: checkedInHandler()}
}

func (s *Server) deleteShareGroupOffsets(ctx context.Context, req *kmsg.DeleteShareGroupOffsetsRequest) *kmsg.DeleteShareGroupOffsetsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteShareGroupOffsetsResponse)
	answer := func(code int16, perTopic func(topic string) (int16, *string)) *kmsg.DeleteShareGroupOffsetsResponse {
		resp.ErrorCode = code
		for _, t := range req.Topics {
			rt := kmsg.NewDeleteShareGroupOffsetsResponseTopic()
			rt.Topic = t.Topic
			if id, ok := topicIDOf(ctx, s, t.Topic); ok {
				rt.TopicID = id
			}
			rt.ErrorCode = code
			if perTopic != nil {
				rt.ErrorCode, rt.ErrorMessage = perTopic(t.Topic)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	switch {
	case req.GroupID == "":
		return answer(kerr.InvalidGroupID.Code, nil)
	case !s.authorized(ctx, acl.OpDelete, acl.ResourceGroup, req.GroupID):
		return answer(kerr.GroupAuthorizationFailed.Code, nil)
	case s.shares == nil:
		return answer(shareCode(errSharesUnavailable), nil)
	}
	allowed := s.topicsAuthorized(ctx, acl.OpRead, func(yield func(string) bool) {
		for _, t := range req.Topics {
			if !yield(t.Topic) {
				return
			}
		}
	})
	var topics []string
	for _, t := range req.Topics {
		if allowedIn(allowed, t.Topic) {
			topics = append(topics, t.Topic)
		}
	}
	results, err := s.shares.DeleteOffsets(ctx, req.GroupID, topics)
	if err != nil {
		resp.ErrorMessage = errorMessage(err)
		return answer(shareCode(err), nil)
	}
	return answer(0, func(topic string) (int16, *string) {
		if !allowedIn(allowed, topic) {
			return kerr.TopicAuthorizationFailed.Code, nil
		}
		if err := results[topic]; err != nil {
			return shareCode(err), errorMessage(err)
		}
		return 0, nil
	})
}
