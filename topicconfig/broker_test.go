package topicconfig

import (
	"strings"
	"testing"
)

func TestBrokerRack(t *testing.T) {
	for in, want := range map[string]string{"": "", " eu-west-1a ": "eu-west-1a", "rack 2": "rack 2"} {
		got, err := BrokerRack(map[string]string{"broker.rack": in})
		if err != nil || got != want {
			t.Errorf("broker.rack %q: %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{strings.Repeat("r", 256), "a\tb", "a\nb"} {
		if _, err := BrokerRack(map[string]string{"broker.rack": bad}); err == nil {
			t.Errorf("broker.rack %q accepted", bad)
		}
	}
}

func TestReplicaSelectorRackAware(t *testing.T) {
	for in, want := range map[string]bool{
		"": false, "org.apache.kafka.common.replica.LeaderSelector": false,
		RackAwareReplicaSelector: true, " " + RackAwareReplicaSelector + " ": true,
	} {
		got, err := ReplicaSelectorRackAware(map[string]string{"replica.selector.class": in})
		if err != nil || got != want {
			t.Errorf("replica.selector.class %q: %v, %v; want %v", in, got, err, want)
		}
	}
	if got, err := ReplicaSelectorRackAware(nil); err != nil || got {
		t.Errorf("unset: %v, %v; want false", got, err)
	}
	if _, err := ReplicaSelectorRackAware(map[string]string{"replica.selector.class": "com.example.MySelector"}); err == nil {
		t.Error("an unknown selector class was accepted")
	}
}
