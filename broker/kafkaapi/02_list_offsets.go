// ListOffsets (key 2), versions 0-10.
//
// Latest (-1) is the high watermark, or the last stable offset for
// isolation_level 1 (read_committed, v2+); earliest (-2) the log start,
// in the bucket for a tiered partition; a lookup by time finds only
// offsets below that end. v7 adds max timestamp (-3, KIP-734): the first
// record with the largest timestamp, in the bucket or on disk; v8 earliest
// local (-4, KIP-405): the first offset on the leader's disk; v9 latest
// tiered (-5, KIP-1005): the last offset in the bucket, -1 when none is;
// v10 a timeout (KIP-1075) that Kafka uses to wait for remote lookups and
// that changes nothing here: every lookup answers before the response.
// v11's earliest pending upload (-6) is not offered. A negative timestamp
// that is no spec, or a spec newer than the request's version, is
// UNSUPPORTED_VERSION, as Kafka's broker answers. From v4
// the client's current leader epoch is fenced (FENCED_LEADER_EPOCH,
// UNKNOWN_LEADER_EPOCH) and each answer carries the leader epoch of its
// offset. v0 clients get the one offset found in the old list form as
// well.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker"
)

func (s *Server) listOffsetsAPI() api {
	return api{key: 2, min: 0, max: 10, amplification: 135, handle: decoded(s.listOffsets), auth: checkedInHandler()}
}

func (s *Server) listOffsets(ctx context.Context, req *kmsg.ListOffsetsRequest) *kmsg.ListOffsetsResponse {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	iso := broker.ReadUncommitted
	if req.Version >= 2 && req.IsolationLevel == 1 {
		iso = broker.ReadCommitted
	}
	for _, t := range req.Topics {
		rt := kmsg.NewListOffsetsResponseTopic()
		rt.Topic = t.Topic
		allowed := s.authorized(ctx, acl.OpDescribe, acl.ResourceTopic, t.Topic)
		for _, p := range t.Partitions {
			rp := kmsg.NewListOffsetsResponseTopicPartition()
			rp.Partition = p.Partition
			rp.LeaderEpoch = -1
			if !allowed {
				rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				rp.Offset, rp.Timestamp = -1, -1
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			current := int32(-1)
			if req.Version >= 4 {
				current = p.CurrentLeaderEpoch
			}
			if !specSupported(req.Version, p.Timestamp) {
				rp.ErrorCode = kerr.UnsupportedVersion.Code
				rp.Offset, rp.Timestamp = -1, -1
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			lo, err := s.core.ListOffsetsAt(ctx, t.Topic, p.Partition, current, p.Timestamp, iso)
			switch {
			case err != nil:
				rp.ErrorCode = errorCode(err)
				rp.Offset, rp.Timestamp = -1, -1
			case !lo.Found:
				rp.Offset, rp.Timestamp = -1, -1
			default:
				rp.Offset, rp.Timestamp, rp.LeaderEpoch = lo.Offset, lo.Timestamp, lo.LeaderEpoch
				if req.Version == 0 && p.MaxNumOffsets > 0 {
					rp.OldStyleOffsets = []int64{lo.Offset}
				}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// specSupported tells whether a timestamp is one the request's version
// may use: any time, or a special spec of that version or older.
func specSupported(version int16, ts int64) bool {
	if ts >= 0 {
		return true
	}
	var since int16
	switch ts {
	case broker.LatestTimestamp, broker.EarliestTimestamp:
		since = 0
	case broker.MaxTimestamp:
		since = 7
	case broker.EarliestLocalTimestamp:
		since = 8
	case broker.LatestTieredTimestamp:
		since = 9
	default:
		return false
	}
	return version >= since
}
