// OffsetCommit (key 8), versions 0-8. Needs the group coordinator.
//
// 9+ belongs to the new consumer group protocol (KIP-848), which is not
// served. v0 commits outside any generation, as the old simple consumer
// did; v1 may set each partition's commit time; leader epochs are kept from
// v6. The commit succeeds or fails as a whole, so every partition carries
// the same error code.

package kafkaapi

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/metastore"
)

func (s *Server) offsetCommitAPI() api {
	return api{key: 8, min: 0, max: 8, amplification: 160, handle: decoded(s.offsetCommit), needsGroups: true}
}

func (s *Server) offsetCommit(ctx context.Context, req *kmsg.OffsetCommitRequest) *kmsg.OffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	var offsets []metastore.OffsetCommit
	now := time.Now()
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			oc := metastore.OffsetCommit{Topic: t.Topic, Partition: p.Partition, Offset: p.Offset, LeaderEpoch: -1, Metadata: deref(p.Metadata), CommitTime: now}
			if req.Version >= 6 {
				oc.LeaderEpoch = p.LeaderEpoch
			}
			if req.Version == 1 && p.Timestamp > 0 {
				oc.CommitTime = time.UnixMilli(p.Timestamp)
			}
			offsets = append(offsets, oc)
		}
	}
	generation, member := req.Generation, req.MemberID
	if req.Version == 0 {
		generation, member = -1, ""
	}
	code := groupCode(s.groups.CommitOffsets(ctx, req.Group, member, generation, offsets))
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
