// DeleteTopics (key 20), versions 0-6.
//
// From v6 a topic may be named by id alone. The internal
// __consumer_offsets cannot be deleted: INVALID_TOPIC_EXCEPTION (it holds
// nothing to delete; see broker/internaltopic.go).

package kafkaapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker"
)

func (s *Server) deleteTopicsAPI() api {
	return api{key: 20, min: 0, max: 6, amplification: 830, handle: decoded(s.deleteTopics), auth: checkedInHandler()}
}

func (s *Server) deleteTopics(ctx context.Context, req *kmsg.DeleteTopicsRequest) *kmsg.DeleteTopicsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	ctx, cancel := timeoutCtx(ctx, req.TimeoutMillis)
	defer cancel()
	type target struct {
		name string
		id   [16]byte
	}
	var targets []target
	for _, n := range req.TopicNames {
		targets = append(targets, target{name: n})
	}
	for _, t := range req.Topics {
		if t.Topic != nil {
			targets = append(targets, target{name: *t.Topic})
		} else {
			targets = append(targets, target{id: t.TopicID})
		}
	}
	for _, t := range targets {
		rt := kmsg.NewDeleteTopicsResponseTopic()
		rt.TopicID = t.id
		name := t.name
		var err error
		if name == "" {
			if names := s.namesByID(ctx, map[[16]byte]bool{t.id: true}); len(names) == 1 {
				name = names[0]
			} else {
				err = fmt.Errorf("no topic has id %x: %w", t.id, broker.ErrUnknownTopicOrPartition)
			}
		}
		if err == nil && !s.authorized(ctx, acl.OpDelete, acl.ResourceTopic, name) {
			// A topic named by id keeps its name from who may not delete it.
			if t.name != "" {
				rt.Topic = &name
			}
			err = errTopicAuthorization
		} else if err == nil {
			rt.Topic = &name
			err = s.core.DeleteTopic(ctx, name)
		}
		if err != nil {
			rt.ErrorCode = errorCode(err)
			if errors.Is(err, errTopicAuthorization) {
				rt.ErrorCode = kerr.TopicAuthorizationFailed.Code
			}
			if req.Version >= 5 {
				rt.ErrorMessage = errorMessage(err)
			}
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
