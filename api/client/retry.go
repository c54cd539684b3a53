package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Retry backoff defaults. Kafka's retry.backoff.ms is 100 ms and its
// retry.backoff.max.ms 1 s. A failover here takes 1.5 to 2.5 s (the broker
// session timeout is 2 s), and the retries during it are the ones that find
// the new leader: backing off to a second would add up to a second to every
// failover, so the cap is lower. The cost is a few more retries, and
// metadata refreshes (at most one per 50 ms), while a partition has no leader.
const (
	DefaultRetryBackoff    = 20 * time.Millisecond
	DefaultRetryBackoffMax = 250 * time.Millisecond
)

// retryJitter spreads retries by ±20%, as Kafka does, so that the clients
// of a failed broker do not all come back at the same instant.
const retryJitter = 0.2

// retryDelay is the wait before retry number attempt (1 for the first):
// base doubling with each attempt, never above max, with jitter. rng may be
// nil (the global source).
func retryDelay(base, max time.Duration, attempt int, rng *rand.Rand) time.Duration {
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	f := rand.Float64
	if rng != nil {
		f = rng.Float64
	}
	d = time.Duration(float64(d) * (1 - retryJitter + 2*retryJitter*f()))
	return min(d, max)
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// brokerUnreachable reports whether a call failed for want of the broker
// rather than because of the request: another broker may answer it.
// codes.Canceled (with the caller's context still live) is a connection the
// client closed because its broker left the cluster metadata.
func brokerUnreachable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return true
	}
	return false
}

// callRetriable reports whether a whole produce, fetch or ListOffsets call
// that failed with err is worth retrying after a metadata refresh: the
// broker is unreachable or vanished mid-call, or it did not know the topic
// (a leader that has not loaded it yet; the refreshed metadata says whether
// the topic still exists). Callers check their own context first.
func callRetriable(err error) bool {
	var perr *PartitionError
	if errors.As(err, &perr) {
		return perr.leaderMoved()
	}
	return brokerUnreachable(err) || status.Code(err) == codes.NotFound
}

// leaderMoved reports whether the partition is to be asked of its leader
// again after a metadata refresh.
func (e *PartitionError) leaderMoved() bool {
	switch e.Reason {
	case ReasonNotLeaderOrFollower, ReasonLeaderNotAvailable, ReasonUnknownTopicOrPartition:
		return true
	}
	return e.Code == codes.Unavailable || e.Code == codes.NotFound
}

// produceRetriable reports whether a produce partition error is worth a
// retry: the leader moved, or acks=all could not be met for now
// (NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT), which Kafka producers retry.
func (e *PartitionError) produceRetriable() bool {
	switch e.Reason {
	case ReasonNotEnoughReplicas, ReasonNotEnoughReplicasAfterAppend, ReasonRequestTimedOut:
		return true
	}
	return e.leaderMoved()
}

// unknownTopic reports whether err says the broker does not know the topic
// or partition: the metadata decides whether that is final.
func unknownTopic(err error) bool {
	var perr *PartitionError
	if errors.As(err, &perr) && perr.Reason == ReasonUnknownTopicOrPartition {
		return true
	}
	return status.Code(err) == codes.NotFound
}

// leaderNotAvailable is the error of a partition the metadata gives no
// leader for.
func leaderNotAvailable(topic string, partition int32) *PartitionError {
	return &PartitionError{
		Topic:      topic,
		Partition:  partition,
		Code:       codes.Unavailable,
		Reason:     ReasonLeaderNotAvailable,
		Message:    "the cluster metadata gives the partition no leader",
		Offset:     -1,
		NextOffset: -1,
	}
}
