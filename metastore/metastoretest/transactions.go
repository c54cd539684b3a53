package metastoretest

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/strata-broker/strata/metastore"
)

// copyTxn gives the store and its callers their own slices.
func copyTxn(m metastore.TransactionMeta) metastore.TransactionMeta {
	m.Partitions = slices.Clone(m.Partitions)
	m.Groups = slices.Clone(m.Groups)
	return m
}

func checkTxnID(id string) error {
	if id == "" || len(id) > metastore.MaxTransactionalIDBytes {
		return fmt.Errorf("bad transactional id %q", id)
	}
	return nil
}

// GetTransaction is metastore.Store.GetTransaction.
func (s *Store) GetTransaction(ctx context.Context, id string) (metastore.TransactionMeta, error) {
	if err := checkTxnID(id); err != nil {
		return metastore.TransactionMeta{}, fmt.Errorf("metastore: get transaction: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return metastore.TransactionMeta{}, fmt.Errorf("metastore: get transaction %q: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.txns[id]
	if !ok {
		return metastore.TransactionMeta{}, fmt.Errorf("metastore: get transaction %q: %w", id, metastore.ErrTransactionNotFound)
	}
	return copyTxn(m), nil
}

// PutTransaction is metastore.Store.PutTransaction: a compare-and-swap on
// the transactional id's revision.
func (s *Store) PutTransaction(ctx context.Context, meta metastore.TransactionMeta, prevRevision int64) (metastore.TransactionMeta, error) {
	id := meta.TransactionalID
	if err := metastore.CheckTransaction(meta); err != nil {
		return metastore.TransactionMeta{}, fmt.Errorf("metastore: put transaction %q: %w", id, err)
	}
	if prevRevision < 0 {
		return metastore.TransactionMeta{}, fmt.Errorf("metastore: put transaction %q: negative revision %d", id, prevRevision)
	}
	if err := ctx.Err(); err != nil {
		return metastore.TransactionMeta{}, fmt.Errorf("metastore: put transaction %q: %w", id, err)
	}
	meta = metastore.NormalizeTransaction(meta)
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.txns[id]
	if !ok {
		cur = metastore.TransactionMeta{TransactionalID: id}
	}
	if cur.Revision != prevRevision {
		return copyTxn(cur), fmt.Errorf("metastore: put transaction %q: revision %d is stale (now %d): %w",
			id, prevRevision, cur.Revision, metastore.ErrConflict)
	}
	meta.Revision = s.write()
	s.txns[id] = copyTxn(meta)
	return meta, nil
}

// DeleteTransaction is metastore.Store.DeleteTransaction.
func (s *Store) DeleteTransaction(ctx context.Context, id string, revision int64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("metastore: delete transaction %q: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.txns[id]
	if !ok {
		return fmt.Errorf("metastore: delete transaction %q: %w", id, metastore.ErrTransactionNotFound)
	}
	if cur.Revision != revision {
		return fmt.Errorf("metastore: delete transaction %q: revision %d is stale: %w", id, revision, metastore.ErrConflict)
	}
	s.write()
	delete(s.txns, id)
	return nil
}

// ListTransactions is metastore.Store.ListTransactions.
func (s *Store) ListTransactions(ctx context.Context) ([]metastore.TransactionMeta, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("metastore: list transactions: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []metastore.TransactionMeta
	for _, m := range s.txns {
		out = append(out, copyTxn(m))
	}
	slices.SortFunc(out, func(a, b metastore.TransactionMeta) int { return strings.Compare(a.TransactionalID, b.TransactionalID) })
	return out, nil
}
