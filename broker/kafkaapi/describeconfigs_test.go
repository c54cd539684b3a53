package kafkaapi

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// secretCore is a core whose broker settings hold a secret.
type secretCore struct{ nullCore }

func (secretCore) BrokerSettings() map[string]string {
	return map[string]string{"sasl.jaas.config": "hunter2", "log.retention.ms": "3600000"}
}

// DescribeConfigs of a broker says a password-type setting is set, as
// Kafka does, but never shows its value; other settings show theirs.
func TestDescribeConfigsHidesSecrets(t *testing.T) {
	s := New(secretCore{}, Config{NodeID: 1})
	req := kmsg.NewPtrDescribeConfigsRequest()
	r := kmsg.NewDescribeConfigsRequestResource()
	r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeBroker, "1"
	req.Resources = append(req.Resources, r)
	resp := s.describeConfigs(context.Background(), req)
	if len(resp.Resources) != 1 || resp.Resources[0].ErrorCode != 0 {
		t.Fatalf("describe broker 1: %+v", resp.Resources)
	}
	got := map[string]kmsg.DescribeConfigsResponseResourceConfig{}
	for _, c := range resp.Resources[0].Configs {
		got[c.Name] = c
	}
	switch jaas, ok := got["sasl.jaas.config"]; {
	case !ok:
		t.Errorf("sasl.jaas.config is not described: %+v", resp.Resources[0].Configs)
	case jaas.Value != nil || !jaas.IsSensitive || jaas.ConfigType != kmsg.ConfigTypePassword:
		t.Errorf("sasl.jaas.config: value %v sensitive %v type %v, want null, sensitive, PASSWORD", jaas.Value, jaas.IsSensitive, jaas.ConfigType)
	}
	if r := got["log.retention.ms"]; r.Value == nil || *r.Value != "3600000" || r.IsSensitive {
		t.Errorf("log.retention.ms: %+v, want 3600000, not sensitive", r)
	}
}
