// AlterShareGroupOffsets (key 91), version 0.
//
// Sets a share group's start offsets (SPSO) on the partitions named: each
// partition's persisted share state starts again at the offset, with a new
// state epoch; a leader holding the old state loads it again before it
// next hands out records. Only a group without members may be altered
// (NON_EMPTY_GROUP otherwise), as in Kafka.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/metastore"
)

func (s *Server) alterShareGroupOffsetsAPI() api {
	return api{key: 91, min: 0, max: 0, amplification: 210, handle: decoded(s.alterShareGroupOffsets), auth: checkedInHandler()}
}

func (s *Server) alterShareGroupOffsets(ctx context.Context, req *kmsg.AlterShareGroupOffsetsRequest) *kmsg.AlterShareGroupOffsetsResponse {
	resp := req.ResponseKind().(*kmsg.AlterShareGroupOffsetsResponse)
	answer := func(code int16, perPartition func(topic string, p int32) (int16, *string)) *kmsg.AlterShareGroupOffsetsResponse {
		resp.ErrorCode = code
		for _, t := range req.Topics {
			rt := kmsg.NewAlterShareGroupOffsetsResponseTopic()
			rt.Topic = t.Topic
			if id, ok := topicIDOf(ctx, s, t.Topic); ok {
				rt.TopicID = id
			}
			for _, p := range t.Partitions {
				rp := kmsg.NewAlterShareGroupOffsetsResponseTopicPartition()
				rp.Partition = p.Partition
				rp.ErrorCode = code
				if perPartition != nil {
					rp.ErrorCode, rp.ErrorMessage = perPartition(t.Topic, p.Partition)
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	switch {
	case req.GroupID == "":
		return answer(kerr.InvalidGroupID.Code, nil)
	case !s.authorized(ctx, acl.OpRead, acl.ResourceGroup, req.GroupID):
		return answer(kerr.GroupAuthorizationFailed.Code, nil)
	case s.shares == nil:
		return answer(shareCode(errSharesUnavailable), nil)
	}
	allowed := s.topicsAuthorized(ctx, acl.OpRead, func(yield func(string) bool) {
		for _, t := range req.Topics {
			if !yield(t.Topic) {
				return
			}
		}
	})
	offsets := map[metastore.TopicPartition]int64{}
	for _, t := range req.Topics {
		if !allowedIn(allowed, t.Topic) {
			continue
		}
		for _, p := range t.Partitions {
			offsets[metastore.TopicPartition{Topic: t.Topic, Partition: p.Partition}] = p.StartOffset
		}
	}
	results, err := s.shares.AlterOffsets(ctx, req.GroupID, offsets)
	if err != nil {
		resp.ErrorMessage = errorMessage(err)
		return answer(shareCode(err), nil)
	}
	return answer(0, func(topic string, p int32) (int16, *string) {
		if !allowedIn(allowed, topic) {
			return kerr.TopicAuthorizationFailed.Code, nil
		}
		err := results[metastore.TopicPartition{Topic: topic, Partition: p}]
		if err == nil {
			return 0, nil
		}
		return shareCode(err), errorMessage(err)
	})
}
