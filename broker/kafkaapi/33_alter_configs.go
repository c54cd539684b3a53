// AlterConfigs (key 33), versions 0-2.
//
// The legacy, non-incremental form: the configs given replace all of a
// topic's or group's overrides. Broker settings are static and cannot be
// altered.

package kafkaapi

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker"
)

func (s *Server) alterConfigsAPI() api {
	return api{key: 33, min: 0, max: 2, amplification: 210, handle: decoded(s.alterConfigs), auth: checkedInHandler()}
}

// alterConfigs is the legacy AlterConfigs: the given configs replace all of
// the topic's overrides.
func (s *Server) alterConfigs(ctx context.Context, req *kmsg.AlterConfigsRequest) *kmsg.AlterConfigsResponse {
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	for _, r := range req.Resources {
		rr := kmsg.NewAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		var err error
		switch r.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			if !s.authorized(ctx, acl.OpAlterConfigs, acl.ResourceTopic, r.ResourceName) {
				rr.ErrorCode, rr.ErrorMessage = resourceError(kerr.TopicAuthorizationFailed.Code, "%s", kerr.TopicAuthorizationFailed.Description)
				resp.Resources = append(resp.Resources, rr)
				continue
			}
			var current map[string]string
			current, _, err = s.topicOverrides(ctx, r.ResourceName)
			if err != nil {
				break
			}
			set := map[string]string{}
			for _, c := range r.Configs {
				if c.Value != nil {
					set[c.Name] = *c.Value
				}
			}
			var del []string
			for k := range current {
				if _, ok := set[k]; !ok {
					del = append(del, k)
				}
			}
			_, err = s.core.AlterTopicConfigs(ctx, r.ResourceName, set, del, req.ValidateOnly)
		case kmsg.ConfigResourceTypeBroker:
			if !s.authorized(ctx, acl.OpAlterConfigs, acl.ResourceCluster, acl.ClusterName) {
				rr.ErrorCode, rr.ErrorMessage = resourceError(kerr.ClusterAuthorizationFailed.Code, "%s", kerr.ClusterAuthorizationFailed.Description)
				resp.Resources = append(resp.Resources, rr)
				continue
			}
			err = errBrokerStatic
		case kmsg.ConfigResourceTypeGroupConfig:
			// As for topics: the configs given replace all of the group's.
			set := map[string]string{}
			for _, c := range r.Configs {
				if c.Value == nil {
					err = fmt.Errorf("%w: null value for %s", broker.ErrInvalidRequest, c.Name)
					break
				}
				set[c.Name] = *c.Value
			}
			if err != nil {
				break
			}
			rr.ErrorCode, rr.ErrorMessage = s.alterGroupConfigs(ctx, r.ResourceName, set, nil, true, req.ValidateOnly)
			resp.Resources = append(resp.Resources, rr)
			continue
		default:
			err = fmt.Errorf("%w: config resource type %s is not served", broker.ErrInvalidRequest, r.ResourceType)
		}
		if err != nil {
			rr.ErrorCode, rr.ErrorMessage = errorCode(err), errorMessage(err)
		}
		resp.Resources = append(resp.Resources, rr)
	}
	return resp
}
