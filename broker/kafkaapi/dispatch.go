package kafkaapi

import (
	"context"
	"encoding/hex"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// adminTimeout bounds admin requests that carry no timeout of their own.
const adminTimeout = 30 * time.Second

// dispatch answers one decoded request. A nil response means none is sent
// (acks=0 produce); an error closes the connection.
func (s *Server) dispatch(ctx context.Context, h header, req kmsg.Request) (kmsg.Response, error) {
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		return s.produce(ctx, r)
	case *kmsg.FetchRequest:
		return s.fetch(ctx, r), nil // a *pooledResponse
	case *kmsg.ListOffsetsRequest:
		return s.listOffsets(r), nil
	case *kmsg.MetadataRequest:
		return s.metadata(ctx, r), nil
	case *kmsg.CreateTopicsRequest:
		return s.createTopics(ctx, r), nil
	case *kmsg.DeleteTopicsRequest:
		return s.deleteTopics(ctx, r), nil
	case *kmsg.DeleteRecordsRequest:
		return s.deleteRecords(ctx, r), nil
	case *kmsg.InitProducerIDRequest:
		return s.initProducerID(ctx, r), nil
	case *kmsg.DescribeConfigsRequest:
		return s.describeConfigs(ctx, r), nil
	case *kmsg.AlterConfigsRequest:
		return s.alterConfigs(ctx, r), nil
	case *kmsg.CreatePartitionsRequest:
		return s.createPartitions(ctx, r), nil
	case *kmsg.IncrementalAlterConfigsRequest:
		return s.incrementalAlterConfigs(ctx, r), nil
	case *kmsg.DescribeClusterRequest:
		return s.describeCluster(ctx, r), nil
	}
	if s.groups == nil {
		return nil, protocolErrorf("%s is not served (client %q)", kmsg.NameForKey(h.key), h.clientID)
	}
	switch r := req.(type) {
	case *kmsg.FindCoordinatorRequest:
		return s.findCoordinator(ctx, r), nil
	case *kmsg.JoinGroupRequest:
		return s.joinGroup(ctx, h, r), nil
	case *kmsg.SyncGroupRequest:
		return s.syncGroup(ctx, r), nil
	case *kmsg.HeartbeatRequest:
		return s.heartbeat(ctx, r), nil
	case *kmsg.LeaveGroupRequest:
		return s.leaveGroup(ctx, r), nil
	case *kmsg.OffsetCommitRequest:
		return s.offsetCommit(ctx, r), nil
	case *kmsg.OffsetFetchRequest:
		return s.offsetFetch(ctx, r), nil
	case *kmsg.DescribeGroupsRequest:
		return s.describeGroups(ctx, r), nil
	case *kmsg.ListGroupsRequest:
		return s.listGroups(ctx, r), nil
	case *kmsg.DeleteGroupsRequest:
		return s.deleteGroups(ctx, r), nil
	case *kmsg.OffsetDeleteRequest:
		return s.offsetDelete(ctx, r), nil
	}
	return nil, protocolErrorf("%s is not served (client %q)", kmsg.NameForKey(h.key), h.clientID)
}

// timeoutCtx bounds an admin request by its own timeout, or adminTimeout.
func timeoutCtx(ctx context.Context, millis int32) (context.Context, context.CancelFunc) {
	d := adminTimeout
	if millis > 0 {
		d = time.Duration(millis) * time.Millisecond
	}
	return context.WithTimeout(ctx, d)
}

// topicID turns a topic's UUID string into Kafka's 16 bytes (zero if it
// has none or it does not parse).
func topicID(id string) [16]byte {
	var out [16]byte
	raw, err := hex.DecodeString(strings.ReplaceAll(id, "-", ""))
	if err == nil && len(raw) == 16 {
		copy(out[:], raw)
	}
	return out
}
