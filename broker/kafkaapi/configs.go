package kafkaapi

import (
	"context"
	"fmt"

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
