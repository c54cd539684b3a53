package metastore

import (
	"fmt"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ListTransactions reads in pages of txnScanPage keys; more ids than a page,
// and ids whose escaped keys sort differently from the ids themselves, all
// come back once, sorted by id.
func TestListTransactionsPages(t *testing.T) {
	s := NewTestStore(t)
	ctx := testContext(t)
	n := txnScanPage + 44
	for i := range n {
		// "#" sorts before "$", but its escape "%23" sorts after it.
		id := fmt.Sprintf("id%03d$", i)
		if i%2 == 1 {
			id = fmt.Sprintf("id%03d#", i-1)
		}
		if _, err := s.PutTransaction(ctx, TransactionMeta{TransactionalID: id, State: "Empty", LastProducerID: -1, LastProducerEpoch: -1}, 0); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.ListTransactions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != n {
		t.Fatalf("listed %d ids, want %d", len(list), n)
	}
	for i := 1; i < len(list); i++ {
		if list[i-1].TransactionalID >= list[i].TransactionalID {
			t.Fatalf("ids out of order at %d: %q then %q", i, list[i-1].TransactionalID, list[i].TransactionalID)
		}
	}
	// One key per id, under the prefix, with the id escaped.
	resp, err := s.client.Get(ctx, s.transactionsPrefix()+"id000%23", clientv3.WithCountOnly())
	if err != nil || resp.Count != 1 {
		t.Fatalf("key of id000#: %v, %v", resp, err)
	}
}
