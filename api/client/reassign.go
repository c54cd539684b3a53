package client

import (
	"context"
	"fmt"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// PartitionMove is one partition's target replicas (preferred leader
// first); no replicas cancels the partition's move in progress.
type PartitionMove struct {
	Topic     string
	Partition int32
	Replicas  []int32
}

// PartitionRef names a partition of a topic.
type PartitionRef struct {
	Topic     string
	Partition int32
}

// PartitionResult is one partition's answer to a move or an election: Err
// is nil on success, else an error whose Reason is Kafka's name for it
// (INVALID_REPLICA_ASSIGNMENT, NO_REASSIGNMENT_IN_PROGRESS,
// ELECTION_NOT_NEEDED, PREFERRED_LEADER_NOT_AVAILABLE, ...).
type PartitionResult struct {
	Topic     string
	Partition int32
	Err       error
}

// AlterPartitionReassignments starts (or cancels) moves, as Kafka's
// AlterPartitionReassignments: it returns once each move is recorded; the
// cluster's controller carries them out. It needs Alter on the cluster.
func (c *Client) AlterPartitionReassignments(ctx context.Context, moves []PartitionMove) ([]PartitionResult, error) {
	req := &stratav1.AlterPartitionReassignmentsRequest{}
	for _, m := range moves {
		req.Reassignments = append(req.Reassignments, &stratav1.PartitionReassignment{Topic: m.Topic, Partition: m.Partition, Replicas: m.Replicas})
	}
	var resp *stratav1.AlterPartitionReassignmentsResponse
	err := c.anyBroker(ctx, func(ctx context.Context, api stratav1.StrataClient) error {
		var err error
		resp, err = api.AlterPartitionReassignments(ctx, req)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("alter partition reassignments: %w", err)
	}
	return partitionResults(resp.GetResults()), nil
}

// ListPartitionReassignments lists the moves in progress of the named
// partitions, of every partition when none is named. It needs Describe on
// the cluster.
func (c *Client) ListPartitionReassignments(ctx context.Context, parts ...PartitionRef) ([]*stratav1.OngoingReassignment, error) {
	req := &stratav1.ListPartitionReassignmentsRequest{}
	for _, p := range parts {
		req.Partitions = append(req.Partitions, &stratav1.TopicPartitionRef{Topic: p.Topic, Partition: p.Partition})
	}
	var resp *stratav1.ListPartitionReassignmentsResponse
	err := c.anyBroker(ctx, func(ctx context.Context, api stratav1.StrataClient) error {
		var err error
		resp, err = api.ListPartitionReassignments(ctx, req)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list partition reassignments: %w", err)
	}
	return resp.GetReassignments(), nil
}

// ElectLeaders elects the preferred replica (or, unclean, any live replica
// of a leaderless partition) leader of the named partitions, of every
// partition when none is named. It needs Alter on the cluster.
func (c *Client) ElectLeaders(ctx context.Context, unclean bool, parts ...PartitionRef) ([]PartitionResult, error) {
	req := &stratav1.ElectLeadersRequest{}
	if unclean {
		req.ElectionType = stratav1.ElectionType_ELECTION_TYPE_UNCLEAN
	}
	for _, p := range parts {
		req.Partitions = append(req.Partitions, &stratav1.TopicPartitionRef{Topic: p.Topic, Partition: p.Partition})
	}
	var resp *stratav1.ElectLeadersResponse
	err := c.anyBroker(ctx, func(ctx context.Context, api stratav1.StrataClient) error {
		var err error
		resp, err = api.ElectLeaders(ctx, req)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("elect leaders: %w", err)
	}
	return partitionResults(resp.GetResults()), nil
}

func partitionResults(in []*stratav1.PartitionResult) []PartitionResult {
	out := make([]PartitionResult, 0, len(in))
	for _, r := range in {
		pr := PartitionResult{Topic: r.GetTopic(), Partition: r.GetPartition()}
		if e := newPartitionError(r.GetTopic(), r.GetPartition(), r.GetError(), -1, -1); e != nil {
			pr.Err = e
		}
		out = append(out, pr)
	}
	return out
}
