// CreateTopics (key 19), versions 0-7.
//
// Replicas are placed by the broker: a manual replica assignment is
// refused, and so is a topic named twice in one request. validate_only is
// honoured. The created topic's id, partition count, replication factor
// and configs are returned for the versions that carry them. The internal
// __consumer_offsets always exists: TOPIC_ALREADY_EXISTS.

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

func (s *Server) createTopicsAPI() api {
	return api{key: 19, min: 0, max: 7, amplification: 130, handle: decoded(s.createTopics), auth: checkedInHandler()}
}

func (s *Server) createTopics(ctx context.Context, req *kmsg.CreateTopicsRequest) *kmsg.CreateTopicsResponse {
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	ctx, cancel := timeoutCtx(ctx, req.TimeoutMillis)
	defer cancel()
	seen := map[string]int{}
	for _, t := range req.Topics {
		seen[t.Topic]++
	}
	// Create on the cluster allows every topic; without it, each topic
	// needs Create on itself.
	clusterCreate := s.authorizedQuietly(ctx, acl.OpCreate, acl.ResourceCluster, acl.ClusterName)
	for _, t := range req.Topics {
		rt := kmsg.NewCreateTopicsResponseTopic()
		rt.Topic = t.Topic
		fail := func(code int16, err error) {
			rt.ErrorCode = code
			if req.Version >= 1 {
				rt.ErrorMessage = errorMessage(err)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		if seen[t.Topic] > 1 {
			fail(kerr.InvalidRequest.Code, fmt.Errorf("topic %q appears more than once in the request", t.Topic))
			continue
		}
		if !clusterCreate && !s.authorized(ctx, acl.OpCreate, acl.ResourceTopic, t.Topic) {
			fail(kerr.TopicAuthorizationFailed.Code, errors.New(kerr.TopicAuthorizationFailed.Description))
			continue
		}
		if len(t.ReplicaAssignment) > 0 {
			fail(kerr.InvalidReplicaAssignment.Code, errors.New("manual replica assignment is not supported: leave it out and set the replication factor"))
			continue
		}
		spec := broker.TopicSpec{
			Name:              t.Topic,
			Partitions:        t.NumPartitions,
			ReplicationFactor: int32(t.ReplicationFactor),
			Configs:           map[string]string{},
			ValidateOnly:      req.ValidateOnly,
		}
		for _, c := range t.Configs {
			if c.Value != nil {
				spec.Configs[c.Name] = *c.Value
			}
		}
		desc, err := s.core.CreateTopic(ctx, spec)
		if err != nil {
			fail(errorCode(err), err)
			continue
		}
		rt.TopicID = topicID(desc.ID)
		rt.NumPartitions = int32(len(desc.Partitions))
		if rt.NumPartitions == 0 {
			rt.NumPartitions = spec.Partitions
		}
		rt.ReplicationFactor = int16(desc.ReplicationFactor)
		// The created topic's configs are told only to who may describe
		// them.
		if !s.authorizedQuietly(ctx, acl.OpDescribeConfigs, acl.ResourceTopic, t.Topic) {
			rt.ConfigErrorCode = kerr.TopicAuthorizationFailed.Code
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		for _, e := range desc.Configs {
			c := kmsg.NewCreateTopicsResponseTopicConfig()
			value := e.Value
			c.Name, c.Value, c.Source = e.Name, &value, int8(configSource(e.Source))
			rt.Configs = append(rt.Configs, c)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
