// OffsetCommit (key 8), versions 0-9. Needs the group coordinator.
//
// v9 is the consumer group protocol's (KIP-848): a member of a consumer
// group names its member epoch where a classic member names its generation,
// and a stale one is answered STALE_MEMBER_EPOCH. v10 (topic ids) is not
// served. v0 commits outside any generation, as the old simple consumer
// did; v1 may set each partition's commit time; leader epochs are kept from
// v6. As in Kafka, a partition that does not exist is answered
// UNKNOWN_TOPIC_OR_PARTITION and one whose metadata is longer than
// offset.metadata.max.bytes OFFSET_METADATA_TOO_LARGE, and neither is
// written; the other partitions are committed, or refused together with
// the group's error (not a member, another generation, ...).

package kafkaapi

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/metastore"
)

func (s *Server) offsetCommitAPI() api {
	return api{key: 8, min: 0, max: 9, amplification: 160, handle: decoded(s.offsetCommit), needsGroups: true,
		auth: checkedInHandler()}
}

func (s *Server) offsetCommit(ctx context.Context, req *kmsg.OffsetCommitRequest) *kmsg.OffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	if !s.authorized(ctx, acl.OpRead, acl.ResourceGroup, req.Group) {
		return offsetCommitRefused(req, resp, func(string) int16 { return kerr.GroupAuthorizationFailed.Code })
	}
	allowed := s.topicsAuthorized(ctx, acl.OpRead, func(yield func(string) bool) {
		for _, t := range req.Topics {
			if !yield(t.Topic) {
				return
			}
		}
	})
	var offsets []metastore.OffsetCommit
	now := time.Now()
	for _, t := range req.Topics {
		if !allowedIn(allowed, t.Topic) {
			continue
		}
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
	var err error
	if len(offsets) > 0 || allowed == nil {
		err = s.groups.CommitOffsets(ctx, req.Group, member, generation, offsets)
	}
	var each *group.OffsetErrors
	if !errors.As(err, &each) || len(each.Errs) != len(offsets) {
		each = nil
	}
	i := 0
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			if !allowedIn(allowed, t.Topic) {
				rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			if each != nil {
				rp.ErrorCode = commitCode(each.Errs[i])
			} else {
				rp.ErrorCode = commitCode(err)
			}
			rt.Partitions = append(rt.Partitions, rp)
			i++
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// commitCode is a partition's code in an OffsetCommit response: the group's
// codes, and UNKNOWN_TOPIC_OR_PARTITION, which Kafka answers per partition
// and group clients know.
// offsetCommitRefused answers every partition of req with code(topic).
func offsetCommitRefused(req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, code func(string) int16) *kmsg.OffsetCommitResponse {
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, code(t.Topic)
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func commitCode(err error) int16 {
	if broker.Classify(err) == broker.KindUnknownTopicOrPartition {
		return errorCode(err)
	}
	return groupCode(err)
}
