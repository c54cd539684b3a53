package topicconfig

import (
	"errors"
	"testing"
)

func TestGRPCReflection(t *testing.T) {
	for _, c := range []struct {
		settings map[string]string
		want     bool
	}{
		{nil, true},
		{map[string]string{GRPCReflectionEnableKey: "false"}, false},
		{map[string]string{GRPCReflectionEnableKey: " true "}, true},
	} {
		got, err := GRPCReflection(c.settings)
		if err != nil || got != c.want {
			t.Errorf("GRPCReflection(%v) = %v, %v; want %v", c.settings, got, err, c.want)
		}
	}
	_, err := GRPCReflection(map[string]string{GRPCReflectionEnableKey: "off"})
	var ve *ValueError
	if !errors.As(err, &ve) || ve.Key != GRPCReflectionEnableKey {
		t.Errorf("GRPCReflection(off) = %v; want a ValueError for %s", err, GRPCReflectionEnableKey)
	}
	if err := CheckBrokerKeys(map[string]string{GRPCReflectionEnableKey: "false"}); err != nil {
		t.Errorf("CheckBrokerKeys refuses %s: %v", GRPCReflectionEnableKey, err)
	}
}
