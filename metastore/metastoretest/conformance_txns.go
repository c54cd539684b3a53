package metastoretest

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/strata-broker/strata/metastore"
)

// testTransactions pins the transaction coordinator's store: one value per
// transactional id, read back as written (partitions and groups sorted,
// times to the ms), changed only by compare-and-swap on its revision.
func testTransactions(t *testing.T, target Target) {
	s, ctx := target.Store, testCtx(t)
	if _, err := s.GetTransaction(ctx, "t/1"); !errors.Is(err, metastore.ErrTransactionNotFound) {
		t.Fatalf("GetTransaction of an unknown id: %v, want ErrTransactionNotFound", err)
	}
	if list, err := s.ListTransactions(ctx); err != nil || len(list) != 0 {
		t.Fatalf("ListTransactions of an empty store: %v, %v", list, err)
	}
	start := time.Date(2024, 5, 1, 12, 0, 0, 987654321, time.UTC)
	meta := metastore.TransactionMeta{
		TransactionalID: "t/1", ProducerID: 7, ProducerEpoch: 3, LastProducerID: -1, LastProducerEpoch: 2,
		TimeoutMs: 60000, State: "Ongoing",
		Partitions: []metastore.TopicPartition{{Topic: "b", Partition: 1}, {Topic: "a", Partition: 2}, {Topic: "b", Partition: 0}, {Topic: "a", Partition: 2}},
		Groups:     []string{"g2", "g1", "g2"},
		StartTime:  start, UpdatedAt: start.Add(time.Second), CoordinatorEpoch: 4,
	}
	put, err := s.PutTransaction(ctx, meta, 0)
	if err != nil {
		t.Fatal(err)
	}
	wantParts := []metastore.TopicPartition{{Topic: "a", Partition: 2}, {Topic: "b", Partition: 0}, {Topic: "b", Partition: 1}}
	if put.Revision <= 0 || !reflect.DeepEqual(put.Partitions, wantParts) || !reflect.DeepEqual(put.Groups, []string{"g1", "g2"}) ||
		!put.StartTime.Equal(time.UnixMilli(start.UnixMilli())) || put.StartTime.Location() != time.UTC {
		t.Fatalf("stored %+v: want a revision, sorted partitions and groups without duplicates, times to the ms", put)
	}
	got, err := s.GetTransaction(ctx, "t/1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, put) {
		t.Fatalf("read back\n%+v\nstored\n%+v", got, put)
	}
	if _, err := s.PutTransaction(ctx, meta, 0); !errors.Is(err, metastore.ErrConflict) {
		t.Fatalf("creating an existing id: %v, want ErrConflict", err)
	}
	next := put
	next.State, next.Partitions, next.Groups, next.StartTime = "CompleteCommit", nil, nil, time.Time{}
	cur, err := s.PutTransaction(ctx, next, put.Revision-1)
	if !errors.Is(err, metastore.ErrConflict) || !reflect.DeepEqual(cur, put) {
		t.Fatalf("put from a stale revision: %+v, %v; want ErrConflict and the current %+v", cur, err, put)
	}
	again, err := s.PutTransaction(ctx, next, put.Revision)
	if err != nil || again.Revision <= put.Revision || !again.StartTime.IsZero() || again.Partitions != nil {
		t.Fatalf("put from the current revision: %+v, %v", again, err)
	}
	if got, err := s.GetTransaction(ctx, "t/1"); err != nil || !reflect.DeepEqual(got, again) {
		t.Fatalf("read back %+v, %v; want %+v", got, err, again)
	}
	for _, bad := range []metastore.TransactionMeta{
		{TransactionalID: "", State: "Empty"},
		{TransactionalID: strings.Repeat("x", metastore.MaxTransactionalIDBytes+1), State: "Empty"},
		{TransactionalID: "x", ProducerID: -1, State: "Empty"},
		{TransactionalID: "x"},
		{TransactionalID: "x", State: "Ongoing", Partitions: []metastore.TopicPartition{{Topic: "a", Partition: -1}}},
	} {
		if _, err := s.PutTransaction(ctx, bad, 0); err == nil {
			t.Fatalf("stored %+v", bad)
		}
	}
	other, err := s.PutTransaction(ctx, metastore.TransactionMeta{TransactionalID: "t%1", State: "Empty", LastProducerID: -1, LastProducerEpoch: -1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	list, err := s.ListTransactions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || !reflect.DeepEqual(list[0], other) || !reflect.DeepEqual(list[1], again) {
		t.Fatalf("ListTransactions = %+v, want t%%1 and t/1 as stored, by id", list)
	}
	if err := s.DeleteTransaction(ctx, "t/1", put.Revision); !errors.Is(err, metastore.ErrConflict) {
		t.Fatalf("delete at a stale revision: %v, want ErrConflict", err)
	}
	if err := s.DeleteTransaction(ctx, "t/1", again.Revision); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTransaction(ctx, "t/1", again.Revision); !errors.Is(err, metastore.ErrTransactionNotFound) {
		t.Fatalf("delete of a deleted id: %v, want ErrTransactionNotFound", err)
	}
	if _, err := s.GetTransaction(ctx, "t/1"); !errors.Is(err, metastore.ErrTransactionNotFound) {
		t.Fatalf("GetTransaction after delete: %v", err)
	}
	if _, err := s.PutTransaction(ctx, meta, 0); err != nil {
		t.Fatalf("re-creating a deleted id: %v", err)
	}
}
