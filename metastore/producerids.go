package metastore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// FirstProducerID is the first id AllocateProducerIDs hands out in a new
// cluster. Kafka starts at 0 too; -1 means "no producer id" in a batch.
const FirstProducerID int64 = 0

// MaxProducerIDBlock bounds one allocation, so a bad caller cannot burn the
// id space in a few calls.
const MaxProducerIDBlock int64 = 1 << 20

// ErrProducerIDsExhausted means the 63-bit producer id space is used up.
var ErrProducerIDsExhausted = errors.New("metastore: producer ids exhausted")

// producerIDKey holds the next producer id not yet handed out, in decimal.
// One key for the whole cluster: ids are allocated in blocks, so it is
// written rarely.
func (s *Store) producerIDKey() string { return s.prefix + "/producer-ids/next" }

// ProducerIDHighWater returns the first producer id not yet handed out:
// every id below it was allocated to some broker (ids of a block a broker
// never used included) and no id at or above it was. Blocks are allocated
// in increasing order, so this is how a broker tells an id the cluster
// issued from one a client made up. The read is linearizable: it reflects
// every allocation that completed before the call.
func (s *Store) ProducerIDHighWater(ctx context.Context) (int64, error) {
	key := s.producerIDKey()
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("metastore: producer id high water: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return FirstProducerID, nil
	}
	next, err := strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64)
	if err != nil || next < FirstProducerID {
		return 0, fmt.Errorf("metastore: producer id high water: key %q holds %q, not a producer id", key, resp.Kvs[0].Value)
	}
	return next, nil
}

// AllocateProducerIDs reserves the block [first, first+n) of producer ids
// for the caller, cluster-wide: no other call, on any broker, before or after
// a restart, gets any of them. Ids of a block the caller does not use are
// lost, never reissued. It retries while other brokers allocate at the same
// time; ctx bounds the whole call.
func (s *Store) AllocateProducerIDs(ctx context.Context, n int64) (first int64, err error) {
	if n <= 0 || n > MaxProducerIDBlock {
		return 0, fmt.Errorf("metastore: allocate producer ids: block size %d not in [1, %d]", n, MaxProducerIDBlock)
	}
	key := s.producerIDKey()
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("metastore: allocate producer ids: %w", err)
	}
	kvs := resp.Kvs
	for {
		next, rev := FirstProducerID, int64(0) // mod revision 0 compares equal to a missing key
		if len(kvs) > 0 {
			next, err = strconv.ParseInt(string(kvs[0].Value), 10, 64)
			if err != nil || next < FirstProducerID {
				return 0, fmt.Errorf("metastore: allocate producer ids: key %q holds %q, not a producer id", key, kvs[0].Value)
			}
			rev = kvs[0].ModRevision
		}
		if next > math.MaxInt64-n {
			return 0, fmt.Errorf("metastore: allocate producer ids: next is %d: %w", next, ErrProducerIDsExhausted)
		}
		// The Else branch reads the winner's value, so a lost race costs no
		// extra round trip.
		txn, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
			Then(clientv3.OpPut(key, strconv.FormatInt(next+n, 10))).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			return 0, fmt.Errorf("metastore: allocate producer ids: %w", err)
		}
		if txn.Succeeded {
			return next, nil
		}
		kvs = txn.Responses[0].GetResponseRange().Kvs
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("metastore: allocate producer ids: %w", err)
		}
	}
}
