package client

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
)

// leaderReport is a per-partition answer that only a partition's leader
// gives (TieringStatus, PreviewRetention).
type leaderReport interface {
	GetTopic() string
	GetPartition() int32
	GetLeaderEpoch() int32
}

// fromLeaders gathers a report on every partition of topic from the
// partitions' leaders: ask(ctx, node) returns what node reports on the
// partitions of topic it leads. A partition whose leader moved or is
// unreachable is asked again after a metadata refresh, for up to the
// client's retry timeout. what names the call in errors ("tiering status").
// The reports are returned in partition order.
func fromLeaders[T leaderReport](ctx context.Context, c *Client, topic, what string, ask func(ctx context.Context, node int32) ([]T, error)) ([]T, error) {
	// Fresh metadata: a report is a look at the present, and a leader
	// elsewhere than the cache says would cost a retry round.
	n, err := c.partitionCount(ctx, topic, true)
	if err != nil {
		return nil, fmt.Errorf("%s of topic %q: %w", what, topic, err)
	}
	got := make(map[int32]T, n)
	pending := make([]int32, n)
	for i := range pending {
		pending[i] = int32(i)
	}
	start := time.Now()
	for attempt := 1; ; attempt++ {
		byLeader := c.byLeader(topic, pending)
		failed := time.Now()
		var lastErr error
		for _, leader := range slices.Sorted(maps.Keys(byLeader)) {
			ps := byLeader[leader]
			if leader == noLeader {
				lastErr = leaderNotAvailable(topic, ps[0])
				continue
			}
			reports, err := ask(ctx, leader)
			if err != nil {
				if ctx.Err() != nil || !callRetriable(err) {
					return nil, err
				}
				lastErr = err
				continue
			}
			for _, r := range reports {
				p := r.GetPartition()
				if r.GetTopic() != topic || p < 0 || p >= n {
					continue
				}
				// Two brokers may both have led a partition between
				// their answers: the later epoch wins.
				if prev, ok := got[p]; !ok || r.GetLeaderEpoch() > prev.GetLeaderEpoch() {
					got[p] = r
				}
			}
			for _, p := range ps {
				if _, ok := got[p]; !ok {
					lastErr = &PartitionError{Topic: topic, Partition: p, Code: codes.Unavailable,
						Reason: ReasonNotLeaderOrFollower, Offset: -1, NextOffset: -1,
						Message: fmt.Sprintf("broker %d no longer leads the partition", leader)}
				}
			}
		}
		pending = slices.DeleteFunc(pending, func(p int32) bool { _, ok := got[p]; return ok })
		if len(pending) == 0 {
			break
		}
		if time.Since(start) >= c.retryTimeout {
			return nil, fmt.Errorf("%s of topic %q: gave up after %v: %w", what, topic, c.retryTimeout, lastErr)
		}
		if err := sleepCtx(ctx, retryDelay(DefaultRetryBackoff, DefaultRetryBackoffMax, attempt, nil)); err != nil {
			return nil, err
		}
		if err := c.refreshMetadata(ctx, []string{topic}, failed); err != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		for _, p := range pending {
			if err := c.checkPartition(topic, p); err != nil {
				return nil, fmt.Errorf("%s of topic %q partition %d: %w", what, topic, p, err)
			}
		}
	}
	out := make([]T, 0, n)
	for p := range n {
		out = append(out, got[p])
	}
	return out, nil
}

// byLeader groups partitions of topic by the broker the metadata says leads
// them (noLeader for those without one).
func (c *Client) byLeader(topic string, partitions []int32) map[int32][]int32 {
	out := map[int32][]int32{}
	for _, p := range partitions {
		l := c.leaderOf(topic, p)
		out[l] = append(out[l], p)
	}
	return out
}
