package kafkaapi

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/topicconfig"
)

func configSource(src topicconfig.Source) kmsg.ConfigSource {
	switch src {
	case topicconfig.SourceTopic:
		return kmsg.ConfigSourceDynamicTopicConfig
	case topicconfig.SourceBroker:
		return kmsg.ConfigSourceStaticBrokerConfig
	}
	return kmsg.ConfigSourceDefaultConfig
}

func configType(t topicconfig.Type) kmsg.ConfigType {
	switch t {
	case topicconfig.TypeBoolean:
		return kmsg.ConfigTypeBoolean
	case topicconfig.TypeInt:
		return kmsg.ConfigTypeInt
	case topicconfig.TypeLong:
		return kmsg.ConfigTypeLong
	case topicconfig.TypeDouble:
		return kmsg.ConfigTypeDouble
	case topicconfig.TypeList:
		return kmsg.ConfigTypeList
	}
	return kmsg.ConfigTypeString
}

// resourceError is a request-level problem with one config resource.
func resourceError(code int16, format string, args ...any) (int16, *string) {
	msg := fmt.Sprintf(format, args...)
	return code, &msg
}

func (s *Server) describeConfigsAPI() api {
	return api{key: 32, min: 0, max: 4, handle: decoded(s.describeConfigs)}
}

func (s *Server) describeConfigs(ctx context.Context, req *kmsg.DescribeConfigsRequest) *kmsg.DescribeConfigsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, r := range req.Resources {
		rr := kmsg.NewDescribeConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		wanted := func(name string) bool { return r.ConfigNames == nil || slices.Contains(r.ConfigNames, name) }
		switch r.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			desc, err := s.core.DescribeTopic(ctx, r.ResourceName)
			if err != nil {
				rr.ErrorCode, rr.ErrorMessage = errorCode(err), errorMessage(err)
				break
			}
			for _, e := range desc.Configs {
				if !wanted(e.Name) {
					continue
				}
				c := kmsg.NewDescribeConfigsResponseResourceConfig()
				value := e.Value
				c.Name, c.Value = e.Name, &value
				c.Source = configSource(e.Source)
				c.IsDefault = e.Source != topicconfig.SourceTopic
				c.ConfigType = configType(e.Type)
				rr.Configs = append(rr.Configs, c)
			}
		case kmsg.ConfigResourceTypeBroker:
			if r.ResourceName == "" {
				// Cluster-wide dynamic defaults: there are none, settings are
				// per broker process.
				break
			}
			if r.ResourceName != strconv.Itoa(int(s.cfg.NodeID)) {
				rr.ErrorCode, rr.ErrorMessage = resourceError(kerr.InvalidRequest.Code,
					"broker %s: ask that broker for its settings (this is broker %d)", r.ResourceName, s.cfg.NodeID)
				break
			}
			settings := s.core.BrokerSettings()
			names := make([]string, 0, len(settings))
			for k := range settings {
				names = append(names, k)
			}
			slices.Sort(names)
			for _, k := range names {
				if !wanted(k) {
					continue
				}
				c := kmsg.NewDescribeConfigsResponseResourceConfig()
				value := settings[k]
				c.Name, c.Value, c.ReadOnly = k, &value, true
				c.Source = kmsg.ConfigSourceStaticBrokerConfig
				rr.Configs = append(rr.Configs, c)
			}
		default:
			rr.ErrorCode, rr.ErrorMessage = resourceError(kerr.InvalidRequest.Code,
				"config resource type %s is not served (topics and brokers are)", r.ResourceType)
		}
		resp.Resources = append(resp.Resources, rr)
	}
	return resp
}

// topicOverrides returns a topic's current overrides.
func (s *Server) topicOverrides(ctx context.Context, name string) (map[string]string, []topicconfig.Entry, error) {
	desc, err := s.core.DescribeTopic(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	out := map[string]string{}
	for _, e := range desc.Configs {
		if e.Source == topicconfig.SourceTopic {
			out[e.Name] = e.Value
		}
	}
	return out, desc.Configs, nil
}

var errBrokerStatic = fmt.Errorf("%w: broker settings are static: change them in the broker's configuration and restart it", broker.ErrInvalidRequest)

func (s *Server) alterConfigsAPI() api {
	return api{key: 33, min: 0, max: 2, handle: decoded(s.alterConfigs)}
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
			err = errBrokerStatic
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

func (s *Server) incrementalAlterConfigsAPI() api {
	return api{key: 44, min: 0, max: 1, handle: decoded(s.incrementalAlterConfigs)}
}

func (s *Server) incrementalAlterConfigs(ctx context.Context, req *kmsg.IncrementalAlterConfigsRequest) *kmsg.IncrementalAlterConfigsResponse {
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	for _, r := range req.Resources {
		rr := kmsg.NewIncrementalAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		var err error
		switch r.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			err = s.incrementalAlterTopic(ctx, r.ResourceName, r.Configs, req.ValidateOnly)
		case kmsg.ConfigResourceTypeBroker:
			err = errBrokerStatic
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
