package grpcapi

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// TieringStatus reports the tiering state of the topic's partitions this
// broker leads; the client asks every leader and merges the answers.
func (s *Server) TieringStatus(ctx context.Context, req *stratav1.TieringStatusRequest) (*stratav1.TieringStatusResponse, error) {
	if req.GetTopic() == "" {
		return nil, status.Error(codes.InvalidArgument, "tiering status: topic is required")
	}
	parts, err := s.b.TieringStatus(ctx, req.GetTopic())
	if err != nil {
		return nil, statusError(err)
	}
	resp := &stratav1.TieringStatusResponse{Partitions: make([]*stratav1.PartitionTiering, 0, len(parts))}
	for _, p := range parts {
		resp.Partitions = append(resp.Partitions, &stratav1.PartitionTiering{
			Topic:              p.Topic,
			Partition:          p.Partition,
			Leader:             p.Leader,
			LeaderEpoch:        p.LeaderEpoch,
			RemoteEnabled:      p.RemoteEnabled,
			LocalStartOffset:   p.LocalStart,
			LocalEndOffset:     p.LocalEnd,
			LocalBytes:         p.LocalBytes,
			RemoteStartOffset:  p.RemoteStart,
			RemoteEndOffset:    p.RemoteEnd,
			RemoteBytes:        p.RemoteBytes,
			RemoteSegments:     p.RemoteSegments,
			UploadBacklogBytes: p.Backlog,
			HighWatermark:      p.HighWatermark,
			LogStartOffset:     p.LogStartOffset,
		})
	}
	return resp, nil
}
