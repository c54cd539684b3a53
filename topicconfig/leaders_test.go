package topicconfig

import (
	"errors"
	"testing"
	"time"
)

func TestLeaderRebalanceSettings(t *testing.T) {
	got, err := LeaderRebalanceSettings(nil)
	if err != nil || got != (LeaderRebalance{Enable: true, ImbalancePercent: 10, CheckInterval: 300 * time.Second}) {
		t.Fatalf("defaults: %+v, %v; want Kafka's", got, err)
	}
	got, err = LeaderRebalanceSettings(map[string]string{
		"auto.leader.rebalance.enable":            "false",
		"leader.imbalance.per.broker.percentage":  "0",
		"leader.imbalance.check.interval.seconds": " 1 ",
	})
	if err != nil || got != (LeaderRebalance{Enable: false, ImbalancePercent: 0, CheckInterval: time.Second}) {
		t.Fatalf("set: %+v, %v", got, err)
	}
	for key, bad := range map[string][]string{
		"auto.leader.rebalance.enable":            {"yes please", ""},
		"leader.imbalance.per.broker.percentage":  {"-1", "101", "ten", "1.5"},
		"leader.imbalance.check.interval.seconds": {"0", "-5", "2147483649", "1s"},
	} {
		for _, v := range bad {
			_, err := LeaderRebalanceSettings(map[string]string{key: v})
			var ve *ValueError
			if !errors.As(err, &ve) || ve.Key != key {
				t.Errorf("%s=%q: %v, want a *ValueError naming the key", key, v, err)
			}
		}
	}
}
