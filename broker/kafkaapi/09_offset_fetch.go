// OffsetFetch (key 9), versions 0-9. Needs the group coordinator.
//
// v8 asks for several groups at once: each is answered as v7 answers one.
// v9 adds the member id and epoch of a consumer-protocol (KIP-848) member,
// which must be its current epoch (else STALE_MEMBER_EPOCH, or
// UNKNOWN_MEMBER_ID), as Kafka fences it; a classic group's fetch is not
// fenced. v10 (topic ids) is not served. v0-v1 have no
// request-level error, so a failure is repeated on every partition. From v2
// null topics mean every committed offset of the group. A partition with no
// commit gets offset -1 and empty metadata. v0-v5 carry metadata with an
// int16 length: a partition whose metadata is longer (committed with a
// flexible version while offset.metadata.max.bytes allowed it) is answered
// OFFSET_METADATA_TOO_LARGE, never with a length that wrapped. v7's
// require_stable (KIP-447) answers a partition with pending transactional
// offsets (TxnOffsetCommit, its transaction not ended yet)
// UNSTABLE_OFFSET_COMMIT with offset -1, as Kafka does, and the client asks
// again; without it the committed offset is answered.

package kafkaapi

import (
	"context"
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/metastore"
)

func (s *Server) offsetFetchAPI() api {
	return api{key: 9, min: 0, max: 9, amplification: 135, handle: decoded(s.offsetFetch), needsGroups: true,
		auth: checkedInHandler()}
}

func (s *Server) offsetFetch(ctx context.Context, req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	if req.Version >= 8 {
		return s.offsetFetchGroups(ctx, req)
	}
	return s.offsetFetchGroup(ctx, req)
}

// offsetFetchGroups answers v8+: each group as v7 answers it.
func (s *Server) offsetFetchGroups(ctx context.Context, req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	for _, rg := range req.Groups {
		out := kmsg.NewOffsetFetchResponseGroup()
		out.Group = rg.Group
		if req.Version >= 9 && rg.MemberID != nil && *rg.MemberID != "" && s.authorizedQuietly(ctx, acl.OpDescribe, acl.ResourceGroup, rg.Group) {
			if err := s.groups.CheckConsumerMember(ctx, rg.Group, *rg.MemberID, rg.MemberEpoch); err != nil {
				out.ErrorCode = groupCode(err)
				resp.Groups = append(resp.Groups, out)
				continue
			}
		}
		one := kmsg.NewPtrOffsetFetchRequest()
		one.Version, one.Group, one.RequireStable = 7, rg.Group, req.RequireStable
		if rg.Topics != nil {
			one.Topics = make([]kmsg.OffsetFetchRequestTopic, 0, len(rg.Topics))
			for _, t := range rg.Topics {
				one.Topics = append(one.Topics, kmsg.OffsetFetchRequestTopic{Topic: t.Topic, Partitions: t.Partitions})
			}
		}
		r := s.offsetFetchGroup(ctx, one)
		out.ErrorCode = r.ErrorCode
		// Sized exactly: the answer is built twice over (v7's, then this).
		out.Topics = make([]kmsg.OffsetFetchResponseGroupTopic, 0, len(r.Topics))
		for _, t := range r.Topics {
			rt := kmsg.NewOffsetFetchResponseGroupTopic()
			rt.Topic = t.Topic
			rt.Partitions = make([]kmsg.OffsetFetchResponseGroupTopicPartition, 0, len(t.Partitions))
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
				rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata, rp.ErrorCode = p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode
				rt.Partitions = append(rt.Partitions, rp)
			}
			out.Topics = append(out.Topics, rt)
		}
		resp.Groups = append(resp.Groups, out)
	}
	return resp
}

// offsetFetchGroup answers v0-v7: one group.
func (s *Server) offsetFetchGroup(ctx context.Context, req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	var committed []metastore.OffsetCommit
	var unstable []metastore.TopicPartition
	var err error
	groupAllowed := s.authorized(ctx, acl.OpDescribe, acl.ResourceGroup, req.Group)
	switch {
	case !groupAllowed:
	case req.Version >= 7 && req.RequireStable:
		committed, unstable, err = s.groups.FetchStableOffsets(ctx, req.Group)
	default:
		committed, err = s.groups.FetchOffsets(ctx, req.Group)
	}
	if !groupAllowed || err != nil {
		code := groupCode(err)
		if !groupAllowed {
			code = kerr.GroupAuthorizationFailed.Code
		}
		if req.Version >= 2 {
			resp.ErrorCode = code
			return resp
		}
		// v0-v1 have no request-level error: every partition carries it.
		for _, t := range req.Topics {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset, rp.ErrorCode = p, -1, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	type tp struct {
		topic     string
		partition int32
	}
	byTP := make(map[tp]metastore.OffsetCommit, len(committed))
	for _, oc := range committed {
		byTP[tp{oc.Topic, oc.Partition}] = oc
	}
	pending := make(map[tp]bool, len(unstable))
	for _, u := range unstable {
		pending[tp{u.Topic, u.Partition}] = true
	}
	answer := func(topic string, partition int32) kmsg.OffsetFetchResponseTopicPartition {
		rp := kmsg.NewOffsetFetchResponseTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch = partition, -1, -1
		if pending[tp{topic, partition}] {
			rp.ErrorCode = kerr.UnstableOffsetCommit.Code
			empty := ""
			rp.Metadata = &empty
			return rp
		}
		if oc, ok := byTP[tp{topic, partition}]; ok && !req.IsFlexible() && len(oc.Metadata) > math.MaxInt16 {
			rp.ErrorCode = kerr.OffsetMetadataTooLarge.Code
		} else if ok {
			rp.Offset, rp.LeaderEpoch = oc.Offset, oc.LeaderEpoch
			md := oc.Metadata
			rp.Metadata = &md
		} else {
			empty := ""
			rp.Metadata = &empty
		}
		return rp
	}
	// Topics the principal may not describe are refused when named, and
	// left out of everything the group committed.
	described := map[string]bool{}
	describable := func(topic string, quiet bool) bool {
		ok, done := described[topic]
		if !done {
			if quiet {
				ok = s.authorizedQuietly(ctx, acl.OpDescribe, acl.ResourceTopic, topic)
			} else {
				ok = s.authorized(ctx, acl.OpDescribe, acl.ResourceTopic, topic)
			}
			described[topic] = ok
		}
		return ok
	}
	if req.Topics == nil && req.Version >= 2 {
		// Null topics: everything the group committed.
		var cur *kmsg.OffsetFetchResponseTopic
		for _, oc := range committed {
			if !describable(oc.Topic, true) {
				continue
			}
			if cur == nil || cur.Topic != oc.Topic {
				resp.Topics = append(resp.Topics, kmsg.NewOffsetFetchResponseTopic())
				cur = &resp.Topics[len(resp.Topics)-1]
				cur.Topic = oc.Topic
			}
			cur.Partitions = append(cur.Partitions, answer(oc.Topic, oc.Partition))
		}
		return resp
	}
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetFetchResponseTopic()
		rt.Topic = t.Topic
		allowed := describable(t.Topic, false)
		for _, p := range t.Partitions {
			if !allowed {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset, rp.LeaderEpoch = p, -1, -1
				rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			rt.Partitions = append(rt.Partitions, answer(t.Topic, p))
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
