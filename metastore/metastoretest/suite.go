package metastoretest

import (
	"context"
	"time"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/sasl"
)

// Metastore is what the conformance suite exercises: every method of
// *metastore.Store that the broker, the group coordinator and the controller
// call. Both *metastore.Store and *Store implement it.
type Metastore interface {
	CreateTopic(ctx context.Context, t metastore.Topic, assignments [][]int32) (metastore.Topic, error)
	GetTopic(ctx context.Context, name string) (metastore.Topic, error)
	ListTopics(ctx context.Context) ([]metastore.Topic, int64, error)
	AlterTopicConfigs(ctx context.Context, name string, set map[string]string, del []string, validate func(map[string]string) error) (metastore.Topic, error)
	AddPartitions(ctx context.Context, t metastore.Topic, assignments [][]int32) (metastore.Topic, error)
	DeleteTopic(ctx context.Context, name string) error
	WatchTopics(ctx context.Context) <-chan metastore.TopicEvent
	WatchTopicsSince(ctx context.Context, known []metastore.Topic, rev int64) <-chan metastore.TopicEvent

	PartitionStates(ctx context.Context, topic string) ([]metastore.PartitionState, error)
	CompareAndSwapPartitionState(ctx context.Context, old, next metastore.PartitionState) (metastore.PartitionState, error)
	FollowPartitions(ctx context.Context, fn func(metastore.PartitionsUpdate))

	Brokers(ctx context.Context) ([]metastore.BrokerInfo, error)
	FollowBrokers(ctx context.Context, fn func([]metastore.BrokerInfo))
	RemoveBroker(ctx context.Context, nodeID int32) error
	Controller(ctx context.Context) (int32, error)
	ClusterID(ctx context.Context) (string, error)

	AllocateProducerIDs(ctx context.Context, n int64) (first int64, err error)
	ProducerIDHighWater(ctx context.Context) (int64, error)

	DeletedTopics(ctx context.Context) ([]metastore.DeletedTopic, error)
	DeletedTopic(ctx context.Context, id string) (metastore.DeletedTopic, bool, error)
	FinishTopicDeletion(ctx context.Context, d metastore.DeletedTopic) error

	CommitOffsets(ctx context.Context, group, memberID string, generation int32, offsets []metastore.OffsetCommit) error
	FetchOffsets(ctx context.Context, group string) ([]metastore.OffsetCommit, error)
	DeleteOffsets(ctx context.Context, group, topic string, partitions []int32) error
	GetGroup(ctx context.Context, group string) (metastore.GroupMeta, error)
	PutGroup(ctx context.Context, meta metastore.GroupMeta, prevRevision int64) (metastore.GroupMeta, error)
	ListGroups(ctx context.Context) ([]metastore.GroupMeta, error)
	DeleteGroup(ctx context.Context, group string) error
	ExpireGroupOffsets(ctx context.Context, now time.Time, retention time.Duration) ([]string, error)
	ScanGroupOffsets(ctx context.Context, maxKeys int, fn func(metastore.GroupOffsets)) (bool, error)
	CommitTxnOffsets(ctx context.Context, group string, producer metastore.TxnProducer, memberID string, generation int32, offsets []metastore.OffsetCommit) error
	FetchOffsetsAndPending(ctx context.Context, group string) ([]metastore.OffsetCommit, []metastore.TopicPartition, error)
	CompleteTxnOffsets(ctx context.Context, group string, producerID int64, commit bool) ([]metastore.TopicPartition, error)

	GetShareGroup(ctx context.Context, group string) (metastore.ShareGroupMeta, error)
	PutShareGroup(ctx context.Context, meta metastore.ShareGroupMeta, prevRevision int64) (metastore.ShareGroupMeta, error)
	DeleteShareGroup(ctx context.Context, group string, revision int64) error
	ListShareGroups(ctx context.Context) ([]metastore.ShareGroupMeta, error)
	GetGroupConfigs(ctx context.Context, group string) (map[string]string, int64, error)
	AlterGroupConfigs(ctx context.Context, group string, set map[string]string, del []string, validate func(map[string]string) error) (map[string]string, error)
	GetShareState(ctx context.Context, group, topic string, partition int32) (metastore.ShareState, error)
	PutShareState(ctx context.Context, st metastore.ShareState, prevRevision int64) (metastore.ShareState, error)
	ListShareStates(ctx context.Context, group string) ([]metastore.ShareState, error)
	DeleteShareStates(ctx context.Context, group, topic string) (int, error)

	GetTransaction(ctx context.Context, id string) (metastore.TransactionMeta, error)
	PutTransaction(ctx context.Context, meta metastore.TransactionMeta, prevRevision int64) (metastore.TransactionMeta, error)
	DeleteTransaction(ctx context.Context, id string, revision int64) error
	ListTransactions(ctx context.Context) ([]metastore.TransactionMeta, error)

	CreateACLs(ctx context.Context, bindings []acl.Binding) error
	ListACLs(ctx context.Context, filter acl.Filter) ([]acl.Binding, error)
	DeleteACLs(ctx context.Context, filters []acl.Filter) ([][]acl.Binding, error)
	FollowACLs(ctx context.Context, fn func([]acl.Binding))

	AlterScramCredentials(ctx context.Context, user string, upserts []sasl.ScramCredential, deletions []string) error
	ListScramCredentials(ctx context.Context) ([]metastore.UserScramCredential, error)
	GetScramCredential(ctx context.Context, user, mechanism string) (sasl.ScramCredential, bool, error)
	FollowScramCredentials(ctx context.Context, fn func([]metastore.UserScramCredential))
}

var (
	_ Metastore = (*metastore.Store)(nil)
	_ Metastore = (*Store)(nil)
)

// BrokerRegistration is what the suite uses of a broker registration; the
// implementations' registration types differ, so Target adapts them.
type BrokerRegistration interface {
	NodeID() int32
	Epoch() int64
	ReplicaSecret() metastore.ReplicaSecret
	Done() <-chan struct{}
	Err() error
	Close() error
}

// Term is what the suite uses of a controller term.
type Term interface {
	Done() <-chan struct{}
	Resign(ctx context.Context) error
	CompareAndSwapPartitionState(ctx context.Context, old, next metastore.PartitionState) (metastore.PartitionState, error)
}

// Target is a metastore under test: the store and its broker registration
// and controller election, whose types are the implementation's own.
type Target struct {
	Store              Metastore
	RegisterBroker     func(ctx context.Context, info metastore.BrokerInfo, ttl time.Duration) (BrokerRegistration, error)
	CampaignController func(ctx context.Context, reg BrokerRegistration) (Term, error)
}

// EtcdTarget is the Target of a store over etcd.
func EtcdTarget(s *metastore.Store) Target {
	return Target{
		Store: s,
		RegisterBroker: func(ctx context.Context, info metastore.BrokerInfo, ttl time.Duration) (BrokerRegistration, error) {
			r, err := s.RegisterBroker(ctx, info, ttl)
			if err != nil {
				return nil, err // not a nil *metastore.Registration in a non-nil interface
			}
			return r, nil
		},
		CampaignController: func(ctx context.Context, reg BrokerRegistration) (Term, error) {
			t, err := s.CampaignController(ctx, reg.(*metastore.Registration))
			if err != nil {
				return nil, err
			}
			return t, nil
		},
	}
}

// Target is the Target of the in-memory store.
func (s *Store) Target() Target {
	return Target{
		Store: s,
		RegisterBroker: func(ctx context.Context, info metastore.BrokerInfo, ttl time.Duration) (BrokerRegistration, error) {
			r, err := s.RegisterBroker(ctx, info, ttl)
			if err != nil {
				return nil, err // not a nil *Registration in a non-nil interface
			}
			return r, nil
		},
		CampaignController: func(ctx context.Context, reg BrokerRegistration) (Term, error) {
			t, err := s.CampaignController(ctx, reg.(*Registration))
			if err != nil {
				return nil, err
			}
			return t, nil
		},
	}
}
