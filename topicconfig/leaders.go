package topicconfig

import (
	"strconv"
	"strings"
	"time"
)

// Keys of the controller's leader balancing, and Kafka's defaults.
const (
	AutoLeaderRebalanceEnableKey           = "auto.leader.rebalance.enable"
	LeaderImbalancePerBrokerPercentKey     = "leader.imbalance.per.broker.percentage"
	LeaderImbalanceCheckIntervalKey        = "leader.imbalance.check.interval.seconds"
	DefaultLeaderImbalancePerBrokerPercent = 10
	DefaultLeaderImbalanceCheckInterval    = 300 * time.Second
	// 68 years: beyond any use, and a time.Duration holds it.
	maxLeaderImbalanceCheckIntervalSecs = 1 << 31
)

// LeaderRebalance is how the controller returns leadership to preferred
// replicas (the first of each partition's replica list) after failovers
// moved it away.
type LeaderRebalance struct {
	// Enable is auto.leader.rebalance.enable.
	Enable bool
	// ImbalancePercent is leader.imbalance.per.broker.percentage: a broker
	// gets its preferred leaderships back once more than this share of the
	// partitions it is preferred for are led by another broker.
	ImbalancePercent int
	// CheckInterval is leader.imbalance.check.interval.seconds.
	CheckInterval time.Duration
}

// DefaultLeaderRebalance is Kafka's: on, 10%, every 300 seconds.
func DefaultLeaderRebalance() LeaderRebalance {
	return LeaderRebalance{Enable: true, ImbalancePercent: DefaultLeaderImbalancePerBrokerPercent, CheckInterval: DefaultLeaderImbalanceCheckInterval}
}

// LeaderRebalanceSettings reads auto.leader.rebalance.enable,
// leader.imbalance.per.broker.percentage and
// leader.imbalance.check.interval.seconds. Kafka takes any integer as the
// percentage; here one outside 0 to 100 is refused, since above 100 it
// would switch balancing off without saying so. The interval is at least
// one second, as in Kafka.
func LeaderRebalanceSettings(brokerSettings map[string]string) (LeaderRebalance, error) {
	out := DefaultLeaderRebalance()
	if raw, ok := brokerSettings[AutoLeaderRebalanceEnableKey]; ok {
		v, err := strconv.ParseBool(strings.TrimSpace(raw))
		if err != nil {
			return out, &ValueError{Key: AutoLeaderRebalanceEnableKey, Value: raw, Reason: "must be true or false"}
		}
		out.Enable = v
	}
	if raw, ok := brokerSettings[LeaderImbalancePerBrokerPercentKey]; ok {
		v, err := strconv.Atoi(strings.TrimSpace(raw))
		if err != nil || v < 0 || v > 100 {
			return out, &ValueError{Key: LeaderImbalancePerBrokerPercentKey, Value: raw, Reason: "must be an integer from 0 to 100"}
		}
		out.ImbalancePercent = v
	}
	if raw, ok := brokerSettings[LeaderImbalanceCheckIntervalKey]; ok {
		v, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
		if err != nil || v < 1 || v > maxLeaderImbalanceCheckIntervalSecs {
			return out, &ValueError{Key: LeaderImbalanceCheckIntervalKey, Value: raw,
				Reason: "must be an integer from 1 to " + strconv.Itoa(maxLeaderImbalanceCheckIntervalSecs)}
		}
		out.CheckInterval = time.Duration(v) * time.Second
	}
	return out, nil
}
