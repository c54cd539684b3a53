package kafkaapi

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/broker/sharegroup"
)

// The GROUP config resource (KIP-848, KIP-932) in DescribeConfigs,
// AlterConfigs and IncrementalAlterConfigs: a group's share.* and
// consumer.* configs, which may be set before the group exists. Kafka
// authorizes them as DESCRIBE_CONFIGS and ALTER_CONFIGS on the group.

var errGroupConfigsNotServed = fmt.Errorf("%w: group configs are not served by this broker", broker.ErrInvalidRequest)

// describeGroupConfigs fills rr with the group's configs named by wanted.
func (s *Server) describeGroupConfigs(ctx context.Context, rr *kmsg.DescribeConfigsResponseResource, wanted func(string) bool) {
	name := rr.ResourceName
	if !s.authorized(ctx, acl.OpDescribeConfigs, acl.ResourceGroup, name) {
		rr.ErrorCode, rr.ErrorMessage = resourceError(kerr.GroupAuthorizationFailed.Code, "%s", kerr.GroupAuthorizationFailed.Description)
		return
	}
	if err := checkGroupResource(s, name); err != nil {
		rr.ErrorCode, rr.ErrorMessage = errorCode(err), errorMessage(err)
		return
	}
	overrides, err := s.groupConfigs.StoredGroupConfigs(ctx, name)
	if err != nil {
		rr.ErrorCode, rr.ErrorMessage = errorCode(err), errorMessage(err)
		return
	}
	bounds := s.groupConfigs.GroupConfigBounds()
	for _, k := range sharegroup.Names() {
		if !wanted(k) {
			continue
		}
		value, set := bounds.Value(overrides, k)
		c := kmsg.NewDescribeConfigsResponseResourceConfig()
		c.Name, c.Value, c.IsDefault = k, &value, !set
		c.Source = kmsg.ConfigSourceDefaultConfig
		if set {
			c.Source = kmsg.ConfigSourceGroupConfig
		}
		c.ConfigType = kmsg.ConfigTypeString
		if sharegroup.IsInt(k) {
			c.ConfigType = kmsg.ConfigTypeInt
		}
		rr.Configs = append(rr.Configs, c)
	}
}

func checkGroupResource(s *Server, name string) error {
	if s.groupConfigs == nil {
		return errGroupConfigsNotServed
	}
	if name == "" {
		return fmt.Errorf("%w: empty group id", broker.ErrInvalidRequest)
	}
	return nil
}

// alterGroupConfigs sets and deletes a group's configs (with replace, every
// config not set is deleted), and returns the resource's error.
func (s *Server) alterGroupConfigs(ctx context.Context, name string, set map[string]string, del []string, replace, validateOnly bool) (code int16, msg *string) {
	if !s.authorized(ctx, acl.OpAlterConfigs, acl.ResourceGroup, name) {
		return resourceError(kerr.GroupAuthorizationFailed.Code, "%s", kerr.GroupAuthorizationFailed.Description)
	}
	if err := checkGroupResource(s, name); err != nil {
		return errorCode(err), errorMessage(err)
	}
	if replace {
		current, err := s.groupConfigs.StoredGroupConfigs(ctx, name)
		if err != nil {
			return errorCode(err), errorMessage(err)
		}
		for k := range current {
			if _, ok := set[k]; !ok {
				del = append(del, k)
			}
		}
	}
	if _, err := s.groupConfigs.AlterGroupConfigs(ctx, name, set, del, validateOnly); err != nil {
		return errorCode(err), errorMessage(err)
	}
	return 0, nil
}

// incrementalGroupOps turns IncrementalAlterConfigs operations into sets
// and deletes; group configs are not lists, so APPEND and SUBTRACT are
// refused.
func incrementalGroupOps(ops []kmsg.IncrementalAlterConfigsRequestResourceConfig) (map[string]string, []string, error) {
	set := map[string]string{}
	var del []string
	for _, op := range ops {
		switch op.Op {
		case kmsg.IncrementalAlterConfigOpSet:
			if op.Value == nil {
				return nil, nil, fmt.Errorf("%w: null value for %s", broker.ErrInvalidRequest, op.Name)
			}
			set[op.Name] = *op.Value
		case kmsg.IncrementalAlterConfigOpDelete:
			delete(set, op.Name)
			del = append(del, op.Name)
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			return nil, nil, fmt.Errorf("%w: %s applies only to list configs, and %q is not one", broker.ErrInvalidConfig, op.Op, op.Name)
		default:
			return nil, nil, fmt.Errorf("%w: unknown config operation %d", broker.ErrInvalidRequest, op.Op)
		}
	}
	for _, k := range del {
		if _, ok := set[k]; ok {
			return nil, nil, fmt.Errorf("%w: %s is both set and deleted", broker.ErrInvalidRequest, k)
		}
	}
	return set, del, nil
}
