package grpcapi

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/broker"
)

// DeleteRecords moves the log start of each named partition this broker
// leads, as Kafka's DeleteRecords; a partition led elsewhere gets
// NOT_LEADER_OR_FOLLOWER, and the client asks its leader.
func (s *Server) DeleteRecords(ctx context.Context, req *stratav1.DeleteRecordsRequest) (*stratav1.DeleteRecordsResponse, error) {
	if req.GetTopic() == "" {
		return nil, status.Error(codes.InvalidArgument, "delete records: topic is required")
	}
	if _, err := s.b.PartitionCount(req.GetTopic()); err != nil {
		return nil, statusError(err)
	}
	resp := &stratav1.DeleteRecordsResponse{Partitions: make([]*stratav1.DeleteRecordsPartitionResult, 0, len(req.GetPartitions()))}
	for _, p := range req.GetPartitions() {
		low, err := s.b.DeleteRecords(ctx, req.GetTopic(), p.GetPartition(), p.GetOffset())
		r := &stratav1.DeleteRecordsPartitionResult{Partition: p.GetPartition(), LowWatermark: low, Error: partitionError(err)}
		if err != nil {
			r.LowWatermark = -1
		}
		resp.Partitions = append(resp.Partitions, r)
	}
	return resp, nil
}

// PreviewRetention reports what retention would delete from the topic's
// partitions this broker leads under the proposed overrides; the client
// asks every leader and merges the answers.
func (s *Server) PreviewRetention(ctx context.Context, req *stratav1.PreviewRetentionRequest) (*stratav1.PreviewRetentionResponse, error) {
	if req.GetTopic() == "" {
		return nil, status.Error(codes.InvalidArgument, "preview retention: topic is required")
	}
	parts, entries, err := s.b.PreviewRetention(ctx, req.GetTopic(), req.GetSet(), req.GetDelete())
	if err != nil {
		return nil, statusError(err)
	}
	resp := &stratav1.PreviewRetentionResponse{
		Partitions: make([]*stratav1.PartitionRetention, 0, len(parts)),
		Configs:    configEntries(entries),
	}
	for _, p := range parts {
		pr := &stratav1.PartitionRetention{
			Topic:         p.Topic,
			Partition:     p.Partition,
			Leader:        p.Leader,
			LeaderEpoch:   p.LeaderEpoch,
			HighWatermark: p.HighWatermark,
			Local:         tierRetention(p.Local),
			Tiered:        p.Tiered,
		}
		if p.Tiered {
			pr.Remote = tierRetention(p.Remote)
		}
		if p.RemoteErr != nil {
			pr.RemoteError = p.RemoteErr.Error()
		}
		resp.Partitions = append(resp.Partitions, pr)
	}
	return resp, nil
}

func tierRetention(t broker.TierRetention) *stratav1.TierRetention {
	return &stratav1.TierRetention{
		Segments: t.Segments, Bytes: t.Bytes, StartOffset: t.StartOffset, NewStartOffset: t.NewStartOffset,
	}
}
