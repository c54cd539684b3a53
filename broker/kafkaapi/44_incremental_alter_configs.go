// IncrementalAlterConfigs (key 44), versions 0-1.
//
// APPEND and SUBTRACT apply only to list configs, edited from their current
// effective value. Broker settings are static and cannot be altered.
// Group configs (groupconfigs.go) may be set before the group exists.

package kafkaapi

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/topicconfig"
)

func (s *Server) incrementalAlterConfigsAPI() api {
	return api{key: 44, min: 0, max: 1, amplification: 210, handle: decoded(s.incrementalAlterConfigs), auth: checkedInHandler()}
}

func (s *Server) incrementalAlterConfigs(ctx context.Context, req *kmsg.IncrementalAlterConfigsRequest) *kmsg.IncrementalAlterConfigsResponse {
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	for _, r := range req.Resources {
		rr := kmsg.NewIncrementalAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		var err error
		switch r.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			if !s.authorized(ctx, acl.OpAlterConfigs, acl.ResourceTopic, r.ResourceName) {
				rr.ErrorCode, rr.ErrorMessage = resourceError(kerr.TopicAuthorizationFailed.Code, "%s", kerr.TopicAuthorizationFailed.Description)
				resp.Resources = append(resp.Resources, rr)
				continue
			}
			err = s.incrementalAlterTopic(ctx, r.ResourceName, r.Configs, req.ValidateOnly)
		case kmsg.ConfigResourceTypeBroker:
			if !s.authorized(ctx, acl.OpAlterConfigs, acl.ResourceCluster, acl.ClusterName) {
				rr.ErrorCode, rr.ErrorMessage = resourceError(kerr.ClusterAuthorizationFailed.Code, "%s", kerr.ClusterAuthorizationFailed.Description)
				resp.Resources = append(resp.Resources, rr)
				continue
			}
			err = errBrokerStatic
		case kmsg.ConfigResourceTypeGroupConfig:
			set, del, perr := incrementalGroupOps(r.Configs)
			if perr != nil {
				err = perr
				break
			}
			rr.ErrorCode, rr.ErrorMessage = s.alterGroupConfigs(ctx, r.ResourceName, set, del, false, req.ValidateOnly)
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

func (s *Server) incrementalAlterTopic(ctx context.Context, name string, ops []kmsg.IncrementalAlterConfigsRequestResourceConfig, validateOnly bool) error {
	set := map[string]string{}
	var del []string
	var effective []topicconfig.Entry
	for _, op := range ops {
		value := ""
		if op.Value != nil {
			value = *op.Value
		}
		switch op.Op {
		case kmsg.IncrementalAlterConfigOpSet:
			set[op.Name] = value
		case kmsg.IncrementalAlterConfigOpDelete:
			del = append(del, op.Name)
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			if effective == nil {
				var err error
				if _, effective, err = s.topicOverrides(ctx, name); err != nil {
					return err
				}
			}
			i := slices.IndexFunc(effective, func(e topicconfig.Entry) bool { return e.Name == op.Name })
			if i < 0 || effective[i].Type != topicconfig.TypeList {
				return fmt.Errorf("%w: %s applies only to list configs, and %q is not one", broker.ErrInvalidConfig, op.Op, op.Name)
			}
			cur := effective[i].Value
			if v, ok := set[op.Name]; ok {
				cur = v
			}
			set[op.Name] = editList(cur, value, op.Op == kmsg.IncrementalAlterConfigOpAppend)
		default:
			return fmt.Errorf("%w: unknown config operation %d", broker.ErrInvalidRequest, op.Op)
		}
	}
	_, err := s.core.AlterTopicConfigs(ctx, name, set, del, validateOnly)
	return err
}

// editList appends the comma-separated items of edit to list (skipping ones
// present), or removes them.
func editList(list, edit string, add bool) string {
	var items []string
	for _, it := range strings.Split(list, ",") {
		if it = strings.TrimSpace(it); it != "" {
			items = append(items, it)
		}
	}
	for _, it := range strings.Split(edit, ",") {
		it = strings.TrimSpace(it)
		if it == "" {
			continue
		}
		i := slices.Index(items, it)
		switch {
		case add && i < 0:
			items = append(items, it)
		case !add && i >= 0:
			items = slices.Delete(items, i, i+1)
		}
	}
	return strings.Join(items, ",")
}
