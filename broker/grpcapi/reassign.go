package grpcapi

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/metastore"
)

// AlterPartitionReassignments records the moves; the controller carries
// them out.
func (s *Server) AlterPartitionReassignments(ctx context.Context, req *stratav1.AlterPartitionReassignmentsRequest) (*stratav1.AlterPartitionReassignmentsResponse, error) {
	if len(req.GetReassignments()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "alter partition reassignments: no partitions named")
	}
	moves := make([]broker.Reassignment, 0, len(req.GetReassignments()))
	for _, r := range req.GetReassignments() {
		moves = append(moves, broker.Reassignment{Topic: r.GetTopic(), Partition: r.GetPartition(), Replicas: r.GetReplicas()})
	}
	errs := s.b.AlterPartitionReassignments(ctx, moves)
	resp := &stratav1.AlterPartitionReassignmentsResponse{Results: make([]*stratav1.PartitionResult, 0, len(moves))}
	for i, m := range moves {
		resp.Results = append(resp.Results, &stratav1.PartitionResult{Topic: m.Topic, Partition: m.Partition, Error: partitionError(errs[i])})
	}
	return resp, nil
}

// ListPartitionReassignments lists the moves in progress.
func (s *Server) ListPartitionReassignments(ctx context.Context, req *stratav1.ListPartitionReassignmentsRequest) (*stratav1.ListPartitionReassignmentsResponse, error) {
	parts := make([]metastore.TopicPartition, 0, len(req.GetPartitions()))
	for _, p := range req.GetPartitions() {
		parts = append(parts, metastore.TopicPartition{Topic: p.GetTopic(), Partition: p.GetPartition()})
	}
	states, err := s.b.ListPartitionReassignments(ctx, parts)
	if err != nil {
		return nil, statusError(err)
	}
	resp := &stratav1.ListPartitionReassignmentsResponse{Reassignments: make([]*stratav1.OngoingReassignment, 0, len(states))}
	for _, st := range states {
		resp.Reassignments = append(resp.Reassignments, &stratav1.OngoingReassignment{
			Topic: st.Topic, Partition: st.Partition, Replicas: st.Replicas,
			AddingReplicas: st.AddingReplicas, RemovingReplicas: st.RemovingReplicas,
		})
	}
	return resp, nil
}

// ElectLeaders elects preferred (or, unclean, any live) replicas as leaders.
func (s *Server) ElectLeaders(ctx context.Context, req *stratav1.ElectLeadersRequest) (*stratav1.ElectLeadersResponse, error) {
	parts := make([]metastore.TopicPartition, 0, len(req.GetPartitions()))
	for _, p := range req.GetPartitions() {
		parts = append(parts, metastore.TopicPartition{Topic: p.GetTopic(), Partition: p.GetPartition()})
	}
	results, err := s.b.ElectLeaders(ctx, req.GetElectionType() == stratav1.ElectionType_ELECTION_TYPE_UNCLEAN, parts)
	if err != nil {
		return nil, statusError(err)
	}
	resp := &stratav1.ElectLeadersResponse{Results: make([]*stratav1.PartitionResult, 0, len(results))}
	for _, r := range results {
		resp.Results = append(resp.Results, &stratav1.PartitionResult{Topic: r.Topic, Partition: r.Partition, Error: partitionError(r.Err)})
	}
	return resp, nil
}

// DescribeLogDirs lists this broker's replicas and their local log sizes.
func (s *Server) DescribeLogDirs(_ context.Context, req *stratav1.DescribeLogDirsRequest) (*stratav1.DescribeLogDirsResponse, error) {
	var parts []metastore.TopicPartition
	for _, p := range req.GetPartitions() {
		parts = append(parts, metastore.TopicPartition{Topic: p.GetTopic(), Partition: p.GetPartition()})
	}
	dirs := s.b.DescribeLogDirs(parts)
	resp := &stratav1.DescribeLogDirsResponse{NodeId: dirs.NodeID, LogDir: dirs.Dir, Replicas: make([]*stratav1.ReplicaLogDir, 0, len(dirs.Replicas))}
	for _, r := range dirs.Replicas {
		resp.Replicas = append(resp.Replicas, &stratav1.ReplicaLogDir{Topic: r.Topic, Partition: r.Partition, SizeBytes: r.Size, Tiered: r.Tiered})
	}
	return resp, nil
}
