// DescribeConfigs (key 32), versions 0-4.
//
// Topics, groups (groupconfigs.go), and this broker's own settings, which are static and read-only;
// a setting holding a secret (topicconfig.IsSensitiveBrokerKey) comes back
// with a null value and IsSensitive, as Kafka's PASSWORD-type keys do.
// Another broker's settings are refused: the client must ask that broker.
// There are no cluster-wide dynamic defaults. Synonyms and documentation
// are not returned.

package kafkaapi

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/topicconfig"
)

func (s *Server) describeConfigsAPI() api {
	return api{key: 32, min: 0, max: 4, amplification: 230, handle: decoded(s.describeConfigs), auth: checkedInHandler()}
}

// resourceError is a request-level problem with one config resource.
func resourceError(code int16, format string, args ...any) (int16, *string) {
	msg := fmt.Sprintf(format, args...)
	return code, &msg
}

func (s *Server) describeConfigs(ctx context.Context, req *kmsg.DescribeConfigsRequest) *kmsg.DescribeConfigsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, r := range req.Resources {
		rr := kmsg.NewDescribeConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		wanted := func(name string) bool { return r.ConfigNames == nil || slices.Contains(r.ConfigNames, name) }
		switch r.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			if !s.authorized(ctx, acl.OpDescribeConfigs, acl.ResourceTopic, r.ResourceName) {
				rr.ErrorCode, rr.ErrorMessage = resourceError(kerr.TopicAuthorizationFailed.Code, "%s", kerr.TopicAuthorizationFailed.Description)
				break
			}
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
			if !s.authorized(ctx, acl.OpDescribeConfigs, acl.ResourceCluster, acl.ClusterName) {
				rr.ErrorCode, rr.ErrorMessage = resourceError(kerr.ClusterAuthorizationFailed.Code, "%s", kerr.ClusterAuthorizationFailed.Description)
				break
			}
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
				c.Name, c.ReadOnly = k, true
				c.Source = kmsg.ConfigSourceStaticBrokerConfig
				if topicconfig.IsSensitiveBrokerKey(k) {
					// As Kafka answers for a PASSWORD-type key: that it is
					// set, never its value.
					c.IsSensitive, c.ConfigType = true, kmsg.ConfigTypePassword
				} else {
					value := settings[k]
					c.Value = &value
				}
				rr.Configs = append(rr.Configs, c)
			}
		case kmsg.ConfigResourceTypeGroupConfig:
			s.describeGroupConfigs(ctx, &rr, wanted)
		default:
			rr.ErrorCode, rr.ErrorMessage = resourceError(kerr.InvalidRequest.Code,
				"config resource type %s is not served (topics, brokers and groups are)", r.ResourceType)
		}
		resp.Resources = append(resp.Resources, rr)
	}
	return resp
}
