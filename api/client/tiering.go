package client

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// TieringStatus returns the tiering state of every partition of topic,
// sorted by partition: local and remote offsets and bytes and the upload
// backlog. Only a partition's leader uploads, so each leader is asked for
// the partitions it leads; a partition whose leader moved or is unreachable
// is asked again after a metadata refresh, for up to the client's retry
// timeout.
//
// With topic "", every topic of the cluster is reported, sorted by topic
// then partition, tiered or not (PartitionTiering.RemoteEnabled tells them
// apart); a topic deleted meanwhile is left out.
func (c *Client) TieringStatus(ctx context.Context, topic string) ([]*stratav1.PartitionTiering, error) {
	if topic != "" {
		return c.topicTiering(ctx, topic)
	}
	topics, err := c.ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("tiering status: %w", err)
	}
	var out []*stratav1.PartitionTiering
	for _, t := range topics {
		parts, err := c.topicTiering(ctx, t.GetName())
		if status.Code(err) == codes.NotFound && ctx.Err() == nil {
			continue // deleted since the list
		}
		if err != nil {
			return nil, err
		}
		out = append(out, parts...)
	}
	return out, nil
}

// topicTiering asks the leaders of topic's partitions for their tiering
// state.
func (c *Client) topicTiering(ctx context.Context, topic string) ([]*stratav1.PartitionTiering, error) {
	// Fresh metadata: a status is a look at the present, and a leader
	// elsewhere than the cache says would cost a retry round.
	n, err := c.partitionCount(ctx, topic, true)
	if err != nil {
		return nil, fmt.Errorf("tiering status of topic %q: %w", topic, err)
	}
	got := make(map[int32]*stratav1.PartitionTiering, n)
	pending := make([]int32, n)
	for i := range pending {
		pending[i] = int32(i)
	}
	start := time.Now()
	for attempt := 1; ; attempt++ {
		byLeader := map[int32][]int32{}
		for _, p := range pending {
			l := c.leaderOf(topic, p)
			byLeader[l] = append(byLeader[l], p)
		}
		failed := time.Now()
		var lastErr error
		for _, leader := range slices.Sorted(maps.Keys(byLeader)) {
			ps := byLeader[leader]
			if leader == noLeader {
				lastErr = leaderNotAvailable(topic, ps[0])
				continue
			}
			parts, err := c.tieringStatusAt(ctx, leader, topic)
			if err != nil {
				if ctx.Err() != nil || !callRetriable(err) {
					return nil, err
				}
				lastErr = err
				continue
			}
			for _, pt := range parts {
				p := pt.GetPartition()
				if pt.GetTopic() != topic || p < 0 || p >= n {
					continue
				}
				// Two brokers may both have led a partition between
				// their answers: the later epoch wins.
				if prev := got[p]; prev == nil || pt.GetLeaderEpoch() > prev.GetLeaderEpoch() {
					got[p] = pt
				}
			}
			for _, p := range ps {
				if got[p] == nil {
					lastErr = &PartitionError{Topic: topic, Partition: p, Code: codes.Unavailable,
						Reason: ReasonNotLeaderOrFollower, Offset: -1, NextOffset: -1,
						Message: fmt.Sprintf("broker %d no longer leads the partition", leader)}
				}
			}
		}
		pending = slices.DeleteFunc(pending, func(p int32) bool { return got[p] != nil })
		if len(pending) == 0 {
			break
		}
		if time.Since(start) >= c.retryTimeout {
			return nil, fmt.Errorf("tiering status of topic %q: gave up after %v: %w", topic, c.retryTimeout, lastErr)
		}
		if err := sleepCtx(ctx, retryDelay(DefaultRetryBackoff, DefaultRetryBackoffMax, attempt, nil)); err != nil {
			return nil, err
		}
		if err := c.refreshMetadata(ctx, []string{topic}, failed); err != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		for _, p := range pending {
			if err := c.checkPartition(topic, p); err != nil {
				return nil, fmt.Errorf("tiering status of topic %q partition %d: %w", topic, p, err)
			}
		}
	}
	out := make([]*stratav1.PartitionTiering, 0, n)
	for p := range n {
		out = append(out, got[p])
	}
	return out, nil
}

// tieringStatusAt asks one broker for the tiering state of the partitions
// of topic it leads.
func (c *Client) tieringStatusAt(ctx context.Context, node int32, topic string) ([]*stratav1.PartitionTiering, error) {
	conn, err := c.nodeConn(node)
	if err != nil {
		return nil, fmt.Errorf("tiering status of topic %q: %w", topic, err)
	}
	resp, err := stratav1.NewStrataClient(conn).TieringStatus(ctx, &stratav1.TieringStatusRequest{Topic: topic})
	if err != nil {
		return nil, fmt.Errorf("tiering status of topic %q from broker %d: %w", topic, node, err)
	}
	return resp.GetPartitions(), nil
}
