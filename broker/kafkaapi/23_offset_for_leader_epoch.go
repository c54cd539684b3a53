// OffsetForLeaderEpoch (key 23), versions 0-4.
//
// Clients ask it after a leader change (KIP-320): where did the epoch of
// the last record they consumed end on the new leader? An end below their
// position means the log was truncated under them. Answered by the
// partition's leader from its leader epoch history, which for a tiered
// partition includes the epochs only the bucket still holds (see
// broker/epochs.go). CurrentLeaderEpoch (v2+) is fenced as Kafka does:
// FENCED_LEADER_EPOCH when older than the leader's, UNKNOWN_LEADER_EPOCH
// when newer. ReplicaID (v3+) is -1 from clients; followers replicate over
// gRPC and do not use this API, so any other id is answered the same way.
//
// Authorization is Kafka's: CLUSTER_ACTION on the cluster (inter-broker),
// otherwise DESCRIBE on each topic.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
)

func (s *Server) offsetForLeaderEpochAPI() api {
	return api{key: 23, min: 0, max: 4, amplification: 90, handle: decoded(s.offsetForLeaderEpoch), auth: checkedInHandler()}
}

func (s *Server) offsetForLeaderEpoch(ctx context.Context, req *kmsg.OffsetForLeaderEpochRequest) *kmsg.OffsetForLeaderEpochResponse {
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	cluster := s.authorizedQuietly(ctx, acl.OpClusterAction, acl.ResourceCluster, acl.ClusterName)
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetForLeaderEpochResponseTopic()
		rt.Topic = t.Topic
		allowed := cluster || s.authorized(ctx, acl.OpDescribe, acl.ResourceTopic, t.Topic)
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			rp.Partition = p.Partition
			rp.LeaderEpoch, rp.EndOffset = -1, -1
			current := int32(-1)
			if req.Version >= 2 {
				current = p.CurrentLeaderEpoch
			}
			switch {
			case !allowed:
				rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
			default:
				end, err := s.core.OffsetForLeaderEpoch(t.Topic, p.Partition, current, p.LeaderEpoch)
				if err != nil {
					rp.ErrorCode = errorCode(err)
				} else {
					rp.LeaderEpoch, rp.EndOffset = end.Epoch, end.EndOffset
				}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
