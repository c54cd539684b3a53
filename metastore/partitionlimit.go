package metastore

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrPartitionLimit matches (errors.Is) every *PartitionLimitError.
var ErrPartitionLimit = errors.New("metastore: the cluster's partition limit is reached")

// PartitionLimitError refuses a topic or partitions that would take the
// cluster past Topic.PartitionLimit; nothing was written.
type PartitionLimitError struct {
	Limit   int64 // the limit the caller set
	Current int64 // partitions in the cluster when the request was decided
	Adding  int64 // partitions the request would add
}

func (e *PartitionLimitError) Error() string {
	return fmt.Sprintf("the cluster has %d partitions; %d more would exceed the limit of %d", e.Current, e.Adding, e.Limit)
}

func (e *PartitionLimitError) Is(target error) bool { return target == ErrPartitionLimit }

// CheckPartitionLimit applies a partition limit to a request adding adding
// partitions to a cluster whose topics are topics: the rule every
// implementation of the metastore shares. A limit <= 0 is none.
func CheckPartitionLimit(limit int64, topics []Topic, adding int) error {
	if limit <= 0 {
		return nil
	}
	var current int64
	for _, t := range topics {
		current += int64(t.Partitions)
	}
	if current+int64(adding) > limit {
		return &PartitionLimitError{Limit: limit, Current: current, Adding: int64(adding)}
	}
	return nil
}

// partitionLimitCompare counts the cluster's partitions against limit and
// returns the compare that keeps the count true until the transaction that
// adds adding partitions commits: no topic created or changed since it was
// counted (a deleted one only leaves more room). nil when limit is none.
func (s *Store) partitionLimitCompare(ctx context.Context, limit int64, adding int) ([]clientv3.Cmp, error) {
	if limit <= 0 {
		return nil, nil
	}
	topics, rev, err := s.ListTopics(ctx)
	if err != nil {
		return nil, err
	}
	if err := CheckPartitionLimit(limit, topics, adding); err != nil {
		return nil, err
	}
	return []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(s.topicsPrefix()), "<", rev+1).WithPrefix()}, nil
}
