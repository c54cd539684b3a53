package kafkaapi

import (
	"context"
	"time"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/broker/txn"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/topicconfig"
)

// Core is what the frontend needs of the broker core; *broker.Broker
// implements it.
type Core interface {
	ClusterID(ctx context.Context) (string, error)
	BrokerSettings() map[string]string
	Metadata(ctx context.Context, topics []string) (broker.Metadata, error)

	ProduceWithTimeout(ctx context.Context, topic string, acks broker.Acks, timeout time.Duration, parts []broker.PartitionBatches) ([]broker.ProduceResult, error)
	InitProducerID(ctx context.Context, transactionalID string) (int64, int16, error)
	ProduceTransactional(ctx context.Context, transactionalID, topic string, acks broker.Acks, timeout time.Duration, parts []broker.PartitionBatches) ([]broker.ProduceResult, error)
	Fetch(ctx context.Context, parts []broker.FetchPartition, opts broker.FetchOptions) ([]broker.FetchResult, error)
	// EachTopicID lists the topics' names and ids (Fetch names topics by id).
	EachTopicID(f func(name, id string))
	// TopicByID is the name of the topic with id (its UUID string).
	TopicByID(id string) (string, bool)
	ListOffsetsAt(ctx context.Context, topic string, partition, currentEpoch int32, ts int64, iso broker.IsolationLevel) (broker.ListedOffset, error)
	DeleteRecords(ctx context.Context, topic string, partition int32, offset int64) (int64, error)
	// OffsetForLeaderEpoch is where a leader epoch ends on the partition's
	// leader (see broker/epochs.go).
	OffsetForLeaderEpoch(topic string, partition, currentEpoch, epoch int32) (broker.EpochEndOffset, error)
	// DescribeProducers lists a hosted partition's producers (see
	// broker/describeproducers.go).
	DescribeProducers(topic string, partition int32) ([]broker.ActiveProducer, error)

	CreateTopic(ctx context.Context, spec broker.TopicSpec) (broker.TopicDescription, error)
	DeleteTopic(ctx context.Context, name string) error
	ListTopics(ctx context.Context) ([]metastore.Topic, error)
	DescribeTopic(ctx context.Context, name string) (broker.TopicDescription, error)
	AlterTopicConfigs(ctx context.Context, name string, set map[string]string, del []string, validateOnly bool) ([]topicconfig.Entry, error)
	CreatePartitions(ctx context.Context, topic string, count int32, assignments [][]int32, validateOnly bool) error
	// Moving partitions and electing leaders (see broker/reassign.go,
	// broker/elect.go).
	AlterPartitionReassignments(ctx context.Context, moves []broker.Reassignment) []error
	ListPartitionReassignments(ctx context.Context, parts []metastore.TopicPartition) ([]metastore.PartitionState, error)
	ElectLeaders(ctx context.Context, unclean bool, parts []metastore.TopicPartition) ([]broker.ElectionResult, error)
	// DescribeLogDirs lists the replicas hosted here with their local log
	// sizes (see broker/logdirs.go).
	DescribeLogDirs(parts []metastore.TopicPartition) broker.LogDirs
	// GroupCoordinator names the broker coordinating a consumer group, or
	// a transactional id (the same choice).
	GroupCoordinator(group string) metastore.BrokerInfo

	// Transactions (see broker/transactions.go).
	InitTransactionalProducerID(ctx context.Context, id string, timeoutMs int32, expectedID int64, expectedEpoch int16) (int64, int16, error)
	AddPartitionsToTxn(ctx context.Context, id string, producerID int64, epoch int16, parts []metastore.TopicPartition) (map[metastore.TopicPartition]error, error)
	AddOffsetsToTxn(ctx context.Context, id string, producerID int64, epoch int16, group string) error
	EndTxn(ctx context.Context, id string, producerID int64, epoch int16, commit bool) error
	DescribeTransaction(ctx context.Context, id string) (metastore.TransactionMeta, error)
	ListTransactions(ctx context.Context, f txn.ListFilter) ([]metastore.TransactionMeta, error)

	// ACLsEnabled tells whether an authorizer is configured; without one
	// the ACL APIs answer SECURITY_DISABLED.
	ACLsEnabled() bool
	CreateACLs(ctx context.Context, bindings []acl.Binding) error
	DescribeACLs(ctx context.Context, filter acl.Filter) ([]acl.Binding, error)
	DeleteACLs(ctx context.Context, filters []acl.Filter) ([][]acl.Binding, error)

	// Users' SCRAM credentials (see broker/users.go).
	AlterUserScramCredentials(ctx context.Context, deletions []broker.ScramDeletion, upsertions []broker.ScramUpsertion) []broker.UserScramResult
	DescribeUserScramCredentials(ctx context.Context, users []string) ([]broker.UserScramCredentials, error)
}

var _ Core = (*broker.Broker)(nil)
