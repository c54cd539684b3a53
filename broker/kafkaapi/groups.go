package kafkaapi

import (
	"context"
	"time"

	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/metastore"
)

// Groups is the group coordinator the frontend needs; *group.Coordinator
// implements it.
type Groups interface {
	Join(ctx context.Context, req group.JoinRequest) (group.JoinResult, error)
	Sync(ctx context.Context, req group.SyncRequest) ([]byte, error)
	Heartbeat(ctx context.Context, groupName, memberID string, generation int32) error
	Leave(ctx context.Context, groupName string, memberIDs, instanceIDs []string) []error
	CommitOffsets(ctx context.Context, groupName, memberID string, generation int32, offsets []metastore.OffsetCommit) error
	FetchOffsets(ctx context.Context, groupName string) ([]metastore.OffsetCommit, error)
	Describe(ctx context.Context, groupName string) (group.Description, error)
	List(ctx context.Context) ([]group.Summary, error)
	Delete(ctx context.Context, groupName string) error
	DeleteOffsets(ctx context.Context, groupName, topic string, partitions []int32) error
	CommitTxnOffsets(ctx context.Context, req group.TxnCommitRequest) error
	FetchStableOffsets(ctx context.Context, groupName string) ([]metastore.OffsetCommit, []metastore.TopicPartition, error)
	ConsumerGroupHeartbeat(ctx context.Context, req group.ConsumerHeartbeat) (group.ConsumerHeartbeatResult, error)
	DescribeConsumerGroup(ctx context.Context, groupName string) (group.ConsumerDescription, error)
	CheckConsumerMember(ctx context.Context, groupName, memberID string, epoch int32) error
}

var _ Groups = (*group.Coordinator)(nil)

// maxRebalanceWait bounds how long a JoinGroup or SyncGroup may wait,
// whatever the member's rebalance timeout says.
const maxRebalanceWait = 10 * time.Minute

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
