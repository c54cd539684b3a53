package grpcapi

import (
	"context"
	"fmt"
	"testing"
	"time"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/broker/txn"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/metastore/metastoretest"
)

// TestTransactionsFromAnyBroker: ListTransactions and DescribeTransactions
// answer for the transactional ids of every coordinator, naming it, and
// filter as Kafka's ListTransactions.
func TestTransactionsFromAnyBroker(t *testing.T) {
	store := metastoretest.New()
	b, c, _ := serveBroker(t, testBroker{store: store, peers: []int32{2}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// An id of each coordinator, written as a coordinator would (updated
	// now: broker 1 expires its ids unused for a week).
	idOf := func(node int32) string {
		for i := 0; ; i++ {
			if id := fmt.Sprintf("tx-%d", i); b.GroupCoordinator(id).NodeID == node {
				return id
			}
		}
	}
	local, remote := idOf(1), idOf(2)
	started := time.Now().Add(-time.Minute).Truncate(time.Millisecond).UTC()
	for _, m := range []metastore.TransactionMeta{
		{TransactionalID: local, ProducerID: 10, ProducerEpoch: 3, LastProducerID: -1, LastProducerEpoch: -1, TimeoutMs: 60_000,
			State: txn.StateCompleteCommit, UpdatedAt: time.Now()},
		{TransactionalID: remote, ProducerID: 20, ProducerEpoch: 1, LastProducerID: -1, LastProducerEpoch: -1, TimeoutMs: 90_000,
			State: txn.StateOngoing, StartTime: started, UpdatedAt: time.Now(), Groups: []string{"g"},
			Partitions: []metastore.TopicPartition{{Topic: "a", Partition: 1}, {Topic: "a", Partition: 0}, {Topic: "b", Partition: 2}}},
	} {
		if _, err := store.PutTransaction(ctx, m, 0); err != nil {
			t.Fatal(err)
		}
	}

	list := func(req *stratav1.ListTransactionsRequest) []string {
		t.Helper()
		resp, err := c.ListTransactions(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range resp.GetTransactions() {
			out = append(out, fmt.Sprintf("%s@%d pid=%d %s", s.GetTransactionalId(), s.GetCoordinator(), s.GetProducerId(), s.GetState()))
		}
		return out
	}
	wantLocal, wantRemote := fmt.Sprintf("%s@1 pid=10 CompleteCommit", local), fmt.Sprintf("%s@2 pid=20 Ongoing", remote)
	all := []string{wantLocal, wantRemote}
	if remote < local {
		all = []string{wantRemote, wantLocal}
	}
	for name, tc := range map[string]struct {
		req  *stratav1.ListTransactionsRequest
		want []string
	}{
		"all":                      {&stratav1.ListTransactionsRequest{}, all},
		"by state":                 {&stratav1.ListTransactionsRequest{States: []string{txn.StateOngoing}}, []string{wantRemote}},
		"by producer id":           {&stratav1.ListTransactionsRequest{ProducerIds: []int64{10}}, []string{wantLocal}},
		"open at least 30s":        {&stratav1.ListTransactionsRequest{MinDurationMs: 30_000}, []string{wantRemote}},
		"open at least 1h":         {&stratav1.ListTransactionsRequest{MinDurationMs: time.Hour.Milliseconds()}, nil},
		"no match for the state":   {&stratav1.ListTransactionsRequest{States: []string{txn.StatePrepareAbort}}, nil},
		"state and producer id":    {&stratav1.ListTransactionsRequest{States: []string{txn.StateOngoing}, ProducerIds: []int64{10}}, nil},
		"negative duration is off": {&stratav1.ListTransactionsRequest{MinDurationMs: -1}, all},
	} {
		if got := list(tc.req); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
	}

	resp, err := c.DescribeTransactions(ctx, &stratav1.DescribeTransactionsRequest{TransactionalIds: []string{remote, "missing"}})
	if err != nil {
		t.Fatal(err)
	}
	d := resp.GetTransactions()
	if len(d) != 2 {
		t.Fatalf("%d descriptions, want 2", len(d))
	}
	want := &stratav1.TransactionDescription{TransactionalId: remote, Coordinator: 2, State: txn.StateOngoing, ProducerId: 20, ProducerEpoch: 1,
		TransactionTimeoutMs: 90_000, TransactionStartTimeMs: started.UnixMilli(), Groups: []string{"g"},
		Partitions: []*stratav1.TopicPartitions{{Topic: "a", Partitions: []int32{0, 1}}, {Topic: "b", Partitions: []int32{2}}}}
	if d[0].String() != want.String() {
		t.Errorf("described %v, want %v", d[0], want)
	}
	if d[1].GetTransactionalId() != "missing" || d[1].GetError().GetReason() != "TRANSACTIONAL_ID_NOT_FOUND" {
		t.Errorf("an unknown id: %v, want TRANSACTIONAL_ID_NOT_FOUND", d[1])
	}
	local0, err := c.DescribeTransactions(ctx, &stratav1.DescribeTransactionsRequest{TransactionalIds: []string{local}})
	if err != nil {
		t.Fatal(err)
	}
	if got := local0.GetTransactions()[0]; got.GetCoordinator() != 1 || got.GetTransactionStartTimeMs() != -1 || len(got.GetPartitions()) != 0 {
		t.Errorf("a completed transaction: %v, want coordinator 1, no start time, no partitions", got)
	}
	bad, err := c.DescribeTransactions(ctx, &stratav1.DescribeTransactionsRequest{TransactionalIds: []string{""}})
	if err != nil {
		t.Fatal(err)
	}
	if e := bad.GetTransactions()[0].GetError(); e == nil {
		t.Errorf("an empty id was described: %v", bad.GetTransactions()[0])
	}
}
