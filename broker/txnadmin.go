package broker

// Transactions as operators see them: any broker answers for every
// transactional id of the cluster from the stored state, where the Kafka
// API's ListTransactions and DescribeTransactions answer only for the ids
// the broker coordinates.

import (
	"context"
	"errors"
	"fmt"

	"github.com/strata-broker/strata/broker/txn"
	"github.com/strata-broker/strata/metastore"
)

// TransactionStatus is a transactional id's stored state and the broker
// coordinating it now.
type TransactionStatus struct {
	metastore.TransactionMeta
	// Coordinator is the node id of the broker coordinating the id (the
	// group coordinator of the same name); -1 while no broker is live.
	Coordinator int32
}

// ClusterTransactions lists every transactional id of the cluster that
// matches f, sorted by id. What it reads is the coordinators' last stored
// transition, so a transaction a coordinator is completing shows as
// PrepareX until its CompleteX is stored.
func (b *Broker) ClusterTransactions(ctx context.Context, f txn.ListFilter) ([]TransactionStatus, error) {
	all, err := b.store.ListTransactions(ctx)
	if err != nil {
		return nil, fmt.Errorf("list transactions: %w", err)
	}
	now := b.now()
	out := make([]TransactionStatus, 0, len(all))
	for _, m := range all {
		if f.Match(m, now) {
			out = append(out, TransactionStatus{TransactionMeta: m, Coordinator: b.GroupCoordinator(m.TransactionalID).NodeID})
		}
	}
	return out, nil
}

// ClusterTransaction describes one transactional id of the cluster:
// txn.ErrTransactionalIDNotFound if it has no state.
func (b *Broker) ClusterTransaction(ctx context.Context, id string) (TransactionStatus, error) {
	if id == "" || len(id) > metastore.MaxTransactionalIDBytes {
		return TransactionStatus{}, fmt.Errorf("describe transaction: transactional id of %d bytes: %w", len(id), ErrInvalidRequest)
	}
	m, err := b.store.GetTransaction(ctx, id)
	if errors.Is(err, metastore.ErrTransactionNotFound) {
		return TransactionStatus{}, fmt.Errorf("describe transaction: transactional id %q: %w", id, txn.ErrTransactionalIDNotFound)
	}
	if err != nil {
		return TransactionStatus{}, fmt.Errorf("describe transaction: %w", err)
	}
	return TransactionStatus{TransactionMeta: m, Coordinator: b.GroupCoordinator(id).NodeID}, nil
}
