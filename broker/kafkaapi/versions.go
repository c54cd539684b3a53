package kafkaapi

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const apiVersionsKey = 18

// versionRange is the versions of one API this frontend implements.
type versionRange struct {
	key      int16
	min, max int16
}

// apis is what ApiVersions advertises. Every version listed is implemented:
// clients pick features from the exact ranges (see KAFKA_NOTES in the
// design docs), and advertising a version that is not served correctly
// breaks them.
//
//   - Produce starts at 0 although only record batch v2 is accepted: an old
//     client sending message set v0/v1 gets UNSUPPORTED_FOR_MESSAGE_FORMAT,
//     but librdkafka compresses with gzip, snappy and lz4 only when Produce 0
//     is in the range. It stops at 12: v13 names topics by id.
//   - Fetch starts at 4, the first version that returns record batch v2,
//     and stops at 12: v13 names topics by id.
//   - Metadata stops at 12 for the same reason; leader epochs are returned
//     as -1 and OffsetForLeaderEpoch is not offered, so clients do not turn
//     on epoch validation.
var apis = []versionRange{
	{key: 0, min: 0, max: 12}, // Produce
	{key: 1, min: 4, max: 12}, // Fetch
	{key: 2, min: 0, max: 6},  // ListOffsets (7 adds max-timestamp lookups)
	{key: 3, min: 0, max: 12}, // Metadata
	{key: 8, min: 0, max: 8},  // OffsetCommit (9+ is the new consumer protocol's)
	{key: 9, min: 0, max: 7},  // OffsetFetch (8 batches groups)
	{key: 10, min: 0, max: 4}, // FindCoordinator
	{key: 11, min: 0, max: 9}, // JoinGroup
	{key: 12, min: 0, max: 4}, // Heartbeat
	{key: 13, min: 0, max: 5}, // LeaveGroup
	{key: 14, min: 0, max: 5}, // SyncGroup
	{key: 15, min: 0, max: 5}, // DescribeGroups
	{key: 16, min: 0, max: 4}, // ListGroups
	{key: 18, min: 0, max: 3}, // ApiVersions
	{key: 19, min: 0, max: 7}, // CreateTopics
	{key: 20, min: 0, max: 6}, // DeleteTopics
	{key: 21, min: 0, max: 2}, // DeleteRecords
	{key: 22, min: 0, max: 4}, // InitProducerId
	{key: 32, min: 0, max: 4}, // DescribeConfigs
	{key: 33, min: 0, max: 2}, // AlterConfigs
	{key: 37, min: 0, max: 3}, // CreatePartitions
	{key: 42, min: 0, max: 2}, // DeleteGroups
	{key: 47, min: 0, max: 0}, // OffsetDelete
	{key: 44, min: 0, max: 1}, // IncrementalAlterConfigs
	{key: 60, min: 0, max: 1}, // DescribeCluster
}

func supported(key, version int16) bool {
	i := slices.IndexFunc(apis, func(r versionRange) bool { return r.key == key })
	return i >= 0 && version >= apis[i].min && version <= apis[i].max
}

// apiVersions answers ApiVersions. A version newer than ours gets a v0
// response with UNSUPPORTED_VERSION and our range, so the client retries
// with one we speak; the body of such a request is not read, as its format
// is unknown.
func (s *Server) apiVersions(h header, body []byte) kmsg.Response {
	resp := kmsg.NewPtrApiVersionsResponse()
	for _, r := range apis {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = r.key, r.min, r.max
		resp.ApiKeys = append(resp.ApiKeys, k)
	}
	if !supported(h.key, h.version) {
		resp.SetVersion(0)
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		return resp
	}
	resp.SetVersion(h.version)
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(h.version)
	if err := req.ReadFrom(body); err != nil {
		// Kafka answers a malformed ApiVersions with INVALID_REQUEST rather
		// than closing, so the client can say what went wrong.
		resp.ErrorCode = kerr.InvalidRequest.Code
	}
	return resp
}
