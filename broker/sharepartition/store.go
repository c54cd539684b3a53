package sharepartition

import (
	"context"
	"time"

	"github.com/strata-broker/strata/metastore"
)

// DefaultStoreTimeout bounds each call to the Store. A write is made
// holding the partition's write lock, so a metastore that does not answer
// would otherwise stop every request of the partition for good; a write
// cut short is retried or, if it landed after all, found by its
// compare-and-swap.
const DefaultStoreTimeout = 10 * time.Second

// boundedStore is a Store whose calls each end within timeout.
type boundedStore struct {
	Store
	timeout time.Duration
}

func (s boundedStore) GetShareState(ctx context.Context, group, topic string, partition int32) (metastore.ShareState, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.Store.GetShareState(ctx, group, topic, partition)
}

func (s boundedStore) PutShareState(ctx context.Context, st metastore.ShareState, prevRevision int64) (metastore.ShareState, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.Store.PutShareState(ctx, st, prevRevision)
}

func (s boundedStore) ListShareStates(ctx context.Context, group string) ([]metastore.ShareState, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.Store.ListShareStates(ctx, group)
}

func (s boundedStore) DeleteShareStates(ctx context.Context, group, topic string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.Store.DeleteShareStates(ctx, group, topic)
}
