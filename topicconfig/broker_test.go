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
