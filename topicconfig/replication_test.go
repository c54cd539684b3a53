package topicconfig

import (
	"errors"
	"math"
	"strconv"
	"testing"
)

func TestReplicationThrottleRates(t *testing.T) {
	for _, tc := range []struct {
		settings map[string]string
		want     ReplicationThrottle
		bad      string
	}{
		{settings: nil},
		{settings: map[string]string{"leader.replication.throttled.rate": "1048576"}, want: ReplicationThrottle{Leader: 1 << 20}},
		{settings: map[string]string{"follower.replication.throttled.rate": " 500 ", "leader.replication.throttled.rate": "0"}, want: ReplicationThrottle{Follower: 500}},
		{settings: map[string]string{"leader.replication.throttled.rate": strconv.FormatInt(math.MaxInt64, 10)}, want: ReplicationThrottle{Leader: math.MaxInt64}},
		{settings: map[string]string{"leader.replication.throttled.rate": "-1"}, bad: "leader.replication.throttled.rate"},
		{settings: map[string]string{"follower.replication.throttled.rate": "1MB"}, bad: "follower.replication.throttled.rate"},
	} {
		got, err := ReplicationThrottleRates(tc.settings)
		if tc.bad != "" {
			var ve *ValueError
			if !errors.As(err, &ve) || ve.Key != tc.bad {
				t.Errorf("%v: error %v, want one naming %s", tc.settings, err, tc.bad)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%v: %+v, %v; want %+v", tc.settings, got, err, tc.want)
		}
	}
}
