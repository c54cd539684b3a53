package topicconfig

import (
	"strconv"
	"strings"
)

// Kafka's replication throttle keys: bytes per second, per broker.
const (
	LeaderReplicationThrottledRateKey   = "leader.replication.throttled.rate"
	FollowerReplicationThrottledRateKey = "follower.replication.throttled.rate"
)

// ReplicationThrottle is the catch-up throttle of a broker, in bytes per
// second; 0 is unthrottled.
type ReplicationThrottle struct {
	// Leader bounds what this broker sends, as leader, to replicas out of
	// the ISR.
	Leader int64
	// Follower bounds what this broker fetches, as follower, for the
	// partitions whose ISR it is not in.
	Follower int64
}

// ReplicationThrottleRates reads leader.replication.throttled.rate and
// follower.replication.throttled.rate. Unlike Kafka, which throttles the
// replicas a topic lists in leader/follower.replication.throttled.replicas
// (kafka-reassign-partitions lists the moving ones), every replica out of
// the ISR is throttled: one catching up, which is what a move adds. Replicas
// in the ISR never are, so acks=all producers do not wait on the throttle.
// Unset or 0 is unthrottled (Kafka's default is Long.MaxValue).
func ReplicationThrottleRates(brokerSettings map[string]string) (ReplicationThrottle, error) {
	var r ReplicationThrottle
	for _, k := range []struct {
		key string
		v   *int64
	}{{LeaderReplicationThrottledRateKey, &r.Leader}, {FollowerReplicationThrottledRateKey, &r.Follower}} {
		raw, ok := brokerSettings[k.key]
		if !ok {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
		if err != nil || v < 0 {
			return ReplicationThrottle{}, &ValueError{Key: k.key, Value: raw, Reason: "must be a number of bytes per second, 0 or more (0: unthrottled)"}
		}
		*k.v = v
	}
	return r, nil
}
