package client

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"google.golang.org/grpc/codes"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// DeleteRecordsResult is one partition's outcome of DeleteRecords.
type DeleteRecordsResult struct {
	Partition int32
	// LowWatermark is the partition's log start offset after the deletion;
	// -1 when Err is set.
	LowWatermark int64
	// Err is why nothing was deleted: a *PartitionError
	// (OFFSET_OUT_OF_RANGE for an offset beyond the high watermark, ...),
	// or the last failure to reach the partition's leader.
	Err error
}

// DeleteRecords deletes, in each partition of offsets, the records below
// its offset, as Kafka's DeleteRecords: offset -1 (OffsetLatest) means the
// high watermark, and an offset at or below the log start changes nothing.
// It returns each partition's new low watermark (log start offset), sorted
// by partition. Each partition is asked of its leader; a partition whose
// leader moved or is unreachable is asked again after a metadata refresh,
// for up to the client's retry timeout. A partition that fails has its
// error in its result; the error returned is for the call as a whole (an
// unknown topic, a cancelled context).
func (c *Client) DeleteRecords(ctx context.Context, topic string, offsets map[int32]int64) ([]DeleteRecordsResult, error) {
	n, err := c.partitionCount(ctx, topic, false)
	if err != nil {
		return nil, fmt.Errorf("delete records of topic %q: %w", topic, err)
	}
	results := make(map[int32]DeleteRecordsResult, len(offsets))
	var pending []int32
	for _, p := range slices.Sorted(maps.Keys(offsets)) {
		if p < 0 || p >= n {
			results[p] = DeleteRecordsResult{Partition: p, LowWatermark: -1, Err: &PartitionError{
				Topic: topic, Partition: p, Code: codes.NotFound, Reason: ReasonUnknownTopicOrPartition, Offset: -1, NextOffset: -1,
				Message: fmt.Sprintf("the topic has %d partitions", n)}}
			continue
		}
		pending = append(pending, p)
	}
	start := time.Now()
	for attempt := 1; len(pending) > 0; attempt++ {
		byLeader := c.byLeader(topic, pending)
		var retry []int32
		failed := time.Now()
		for _, leader := range slices.Sorted(maps.Keys(byLeader)) {
			ps := byLeader[leader]
			if leader == noLeader {
				for _, p := range ps {
					results[p] = DeleteRecordsResult{Partition: p, LowWatermark: -1, Err: leaderNotAvailable(topic, p)}
				}
				retry = append(retry, ps...)
				continue
			}
			again, err := c.deleteRecordsAt(ctx, leader, topic, ps, offsets, results)
			if err != nil {
				return nil, err
			}
			retry = append(retry, again...)
		}
		pending = retry
		if len(pending) == 0 || time.Since(start) >= c.retryTimeout {
			break
		}
		if err := sleepCtx(ctx, retryDelay(DefaultRetryBackoff, DefaultRetryBackoffMax, attempt, nil)); err != nil {
			return nil, err
		}
		if err := c.refreshMetadata(ctx, []string{topic}, failed); err != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	out := make([]DeleteRecordsResult, 0, len(results))
	for _, p := range slices.Sorted(maps.Keys(results)) {
		out = append(out, results[p])
	}
	return out, nil
}

// deleteRecordsAt asks one leader to delete records of some partitions and
// stores the outcomes in results. It returns the partitions to ask again
// (the leader moved or is unreachable), or an error that ends the call.
func (c *Client) deleteRecordsAt(ctx context.Context, leader int32, topic string, partitions []int32, offsets map[int32]int64, results map[int32]DeleteRecordsResult) ([]int32, error) {
	req := &stratav1.DeleteRecordsRequest{Topic: topic}
	for _, p := range partitions {
		req.Partitions = append(req.Partitions, &stratav1.DeleteRecordsPartition{Partition: p, Offset: offsets[p]})
	}
	conn, err := c.nodeConn(leader)
	var resp *stratav1.DeleteRecordsResponse
	if err == nil {
		resp, err = stratav1.NewStrataClient(conn).DeleteRecords(ctx, req)
	}
	if err != nil {
		err = fmt.Errorf("delete records of topic %q at broker %d: %w", topic, leader, err)
		if ctx.Err() != nil || !callRetriable(err) {
			return nil, err
		}
		for _, p := range partitions {
			results[p] = DeleteRecordsResult{Partition: p, LowWatermark: -1, Err: err}
		}
		return partitions, nil
	}
	var retry []int32
	answered := map[int32]bool{}
	for _, r := range resp.GetPartitions() {
		p := r.GetPartition()
		if _, asked := offsets[p]; !asked {
			continue
		}
		answered[p] = true
		perr := newPartitionError(topic, p, r.GetError(), offsets[p], -1)
		if perr == nil {
			results[p] = DeleteRecordsResult{Partition: p, LowWatermark: r.GetLowWatermark()}
			continue
		}
		results[p] = DeleteRecordsResult{Partition: p, LowWatermark: -1, Err: perr}
		if perr.leaderMoved() {
			retry = append(retry, p)
		}
	}
	for _, p := range partitions {
		if !answered[p] {
			return nil, fmt.Errorf("delete records of topic %q: broker %d did not answer for partition %d", topic, leader, p)
		}
	}
	return retry, nil
}

// RetentionPreview is what PreviewRetention reports.
type RetentionPreview struct {
	// Partitions are the topic's partitions in order, each as its leader
	// reports it.
	Partitions []*stratav1.PartitionRetention
	// Configs are the topic's effective configs with the proposed
	// overrides.
	Configs []*stratav1.ConfigEntry
}

// PreviewRetention asks the leaders of topic's partitions what retention
// would delete now from each tier if the topic's overrides were changed by
// set and del, as AlterTopicConfigs would change them. Nothing is changed
// or deleted. Invalid overrides are an InvalidArgument error naming the
// key. Leaders are found and asked again as TieringStatus does.
func (c *Client) PreviewRetention(ctx context.Context, topic string, set map[string]string, del []string) (*RetentionPreview, error) {
	out := &RetentionPreview{}
	parts, err := fromLeaders(ctx, c, topic, "retention preview", func(ctx context.Context, node int32) ([]*stratav1.PartitionRetention, error) {
		conn, err := c.nodeConn(node)
		if err != nil {
			return nil, fmt.Errorf("retention preview of topic %q: %w", topic, err)
		}
		resp, err := stratav1.NewStrataClient(conn).PreviewRetention(ctx, &stratav1.PreviewRetentionRequest{Topic: topic, Set: set, Delete: del})
		if err != nil {
			return nil, fmt.Errorf("retention preview of topic %q from broker %d: %w", topic, node, err)
		}
		if out.Configs == nil {
			out.Configs = resp.GetConfigs()
		}
		return resp.GetPartitions(), nil
	})
	if err != nil {
		return nil, err
	}
	out.Partitions = parts
	return out, nil
}
