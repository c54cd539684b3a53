package broker

import (
	"math"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-broker/strata/internal/tokenbucket"
	"github.com/strata-broker/strata/topicconfig"
)

// replicationThrottle bounds the bytes of replica catch-up, Kafka's
// leader.replication.throttled.rate and follower.replication.throttled.rate:
// what this broker sends, as leader, to replicas out of the ISR, and what it
// fetches, as follower, for partitions whose ISR it is not in. A replica
// joining a partition (a move) or returning after an outage is out of the
// ISR until it has caught up, so its copying cannot take the disk and
// network from producers; ISR members are never throttled, as acks=all
// producers wait on them. A throttled replica still gets at least one batch
// whenever the rate allows (see tokenbucket), so it never starves.
type replicationThrottle struct {
	leader, follower *tokenbucket.Bucket // nil: unthrottled

	bytes  *prometheus.CounterVec
	delays *prometheus.CounterVec
}

// Throttle sides, the values of the metrics' side label.
const (
	throttleLeader   = "leader"
	throttleFollower = "follower"
)

func newReplicationThrottle(settings map[string]string, now func() time.Time, reg prometheus.Registerer) (*replicationThrottle, error) {
	rates, err := topicconfig.ReplicationThrottleRates(settings)
	if err != nil {
		return nil, err
	}
	bucket := func(rate int64) *tokenbucket.Bucket {
		if rate <= 0 {
			return nil
		}
		// One second's worth: a follower's fetch of several partitions
		// fits in it at the usual rates, and a larger batch is let
		// through on credit.
		return tokenbucket.New(rate, rate, now)
	}
	t := &replicationThrottle{
		leader:   bucket(rates.Leader),
		follower: bucket(rates.Follower),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_replication_throttled_bytes_total",
			Help: "Bytes of replica catch-up (replicas out of the ISR) moved under the replication throttle, by side: sent as leader, fetched as follower.",
		}, []string{"side"}),
		delays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_replication_throttle_delays_total",
			Help: "Partitions left out of a replica fetch request (follower) or response (leader) because the replication throttle's rate was spent.",
		}, []string{"side"}),
	}
	for _, side := range []string{throttleLeader, throttleFollower} {
		t.bytes.WithLabelValues(side)
		t.delays.WithLabelValues(side)
	}
	if reg != nil {
		reg.MustRegister(t.bytes, t.delays)
	}
	return t, nil
}

// allow returns how many bytes a throttled replica may move now on side's
// bucket (0: none, for wait), counting a delay when none.
func (t *replicationThrottle) allow(side string, b *tokenbucket.Bucket) (int, time.Duration) {
	n, wait := b.Available()
	if n == 0 {
		t.delays.WithLabelValues(side).Inc()
		return 0, wait
	}
	return int(min(n, math.MaxInt32)), 0
}

// took charges n bytes moved by a throttled replica to side's bucket.
func (t *replicationThrottle) took(side string, b *tokenbucket.Bucket, n int) {
	b.Take(int64(n))
	t.bytes.WithLabelValues(side).Add(float64(n))
}

// catchingUp reports whether replica id is out of the partition's ISR (and
// not being added to it), and so throttled.
func (p *Partition) catchingUp(id int32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !slices.Contains(p.state.ISR, id) && p.joining != id
}
