package group_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/broker/txn"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/metastore/metastoretest"
)

// openTxn stores transactional id "tx" with producer 7, epoch 2, its
// transaction Ongoing with groups added, as AddOffsetsToTxn leaves it.
func openTxn(t *testing.T, store *metastoretest.Store, state string, groups ...string) {
	t.Helper()
	ctx := context.Background()
	prev := int64(0)
	if cur, err := store.GetTransaction(ctx, "tx"); err == nil {
		prev = cur.Revision
	}
	if _, err := store.PutTransaction(ctx, metastore.TransactionMeta{
		TransactionalID: "tx", ProducerID: 7, ProducerEpoch: 2, LastProducerID: -1, LastProducerEpoch: -1,
		TimeoutMs: 60_000, State: state, Groups: groups, UpdatedAt: time.Now(),
	}, prev); err != nil {
		t.Fatal(err)
	}
}

// stableGroup stores group "g" stable at generation 3 with member "m1"
// (static instance "i1"), for the coordinator to take over.
func stableGroup(t *testing.T, store *metastoretest.Store) {
	t.Helper()
	if _, err := store.PutGroup(context.Background(), metastore.GroupMeta{
		Group: "g", ProtocolType: "consumer", Protocol: "range", Generation: 3, Leader: "m1", State: group.StateStable,
		Members: []metastore.GroupMember{{MemberID: "m1", InstanceID: "i1", SessionTimeoutMs: 10_000, RebalanceTimeoutMs: 10_000}},
	}, 0); err != nil {
		t.Fatal(err)
	}
}

func txnCommit(member, instance string, generation int32, offsets ...metastore.OffsetCommit) group.TxnCommitRequest {
	return group.TxnCommitRequest{
		Group: "g", TransactionalID: "tx", ProducerID: 7, ProducerEpoch: 2,
		MemberID: member, InstanceID: instance, Generation: generation, Offsets: offsets,
	}
}

func off(p int32, o int64) metastore.OffsetCommit {
	return metastore.OffsetCommit{Topic: "t", Partition: p, Offset: o, LeaderEpoch: -1}
}

func committed(t *testing.T, c *group.Coordinator) map[int32]int64 {
	t.Helper()
	offs, err := c.FetchOffsets(context.Background(), "g")
	if err != nil {
		t.Fatal(err)
	}
	got := map[int32]int64{}
	for _, o := range offs {
		got[o.Partition] = o.Offset
	}
	return got
}

func TestTxnOffsetsArePendingUntilTheTransactionCommits(t *testing.T) {
	store, _, c := newTickedCoordinator(t)
	ctx := context.Background()
	stableGroup(t, store)
	openTxn(t, store, metastore.TxnStateOngoing, "g")
	if err := c.CommitTxnOffsets(ctx, txnCommit("m1", "i1", 3, off(0, 10), off(1, 11))); err != nil {
		t.Fatalf("transactional commit: %v", err)
	}
	offs, pending, err := c.FetchStableOffsets(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	want := []metastore.TopicPartition{{Topic: "t", Partition: 0}, {Topic: "t", Partition: 1}}
	if len(offs) != 0 || !slices.Equal(pending, want) {
		t.Fatalf("before the transaction ends: committed %v, pending %v; want none and %v", offs, pending, want)
	}
	openTxn(t, store, "PrepareCommit", "g")
	if err := c.CompleteTxnOffsets(ctx, []string{"g", "g"}, 7, true); err != nil {
		t.Fatalf("complete: %v", err)
	}
	if got := committed(t, c); got[0] != 10 || got[1] != 11 || len(got) != 2 {
		t.Errorf("after the commit: %v, want 0:10 1:11", got)
	}
	if _, pending, _ := c.FetchStableOffsets(ctx, "g"); len(pending) != 0 {
		t.Errorf("still pending after the commit: %v", pending)
	}

	// The next transaction aborts: its offsets never show.
	openTxn(t, store, metastore.TxnStateOngoing, "g")
	if err := c.CommitTxnOffsets(ctx, txnCommit("", "", -1, off(0, 20))); err != nil {
		t.Fatalf("transactional commit without a generation: %v", err)
	}
	if err := c.CompleteTxnOffsets(ctx, []string{"g"}, 7, false); err != nil {
		t.Fatalf("abort: %v", err)
	}
	if got := committed(t, c); got[0] != 10 {
		t.Errorf("after the abort: %v, want 0 still at 10", got)
	}
}

func TestTxnOffsetCommitRefusals(t *testing.T) {
	store, _, c := newTickedCoordinator(t)
	ctx := context.Background()
	stableGroup(t, store)
	openTxn(t, store, metastore.TxnStateOngoing, "g")
	for _, tc := range []struct {
		name string
		req  group.TxnCommitRequest
		want error
	}{
		{"old generation", txnCommit("m1", "", 2, off(0, 1)), group.ErrIllegalGeneration},
		{"unknown member", txnCommit("m2", "", 3, off(0, 1)), group.ErrUnknownMemberID},
		{"member without generation", txnCommit("m1", "", -1, off(0, 1)), group.ErrIllegalGeneration},
		{"fenced static member", txnCommit("m9", "i1", 3, off(0, 1)), group.ErrFencedInstanceID},
		{"older producer epoch", func() group.TxnCommitRequest {
			r := txnCommit("m1", "", 3, off(0, 1))
			r.ProducerEpoch = 1
			return r
		}(), txn.ErrProducerFenced},
		{"other producer id", func() group.TxnCommitRequest {
			r := txnCommit("m1", "", 3, off(0, 1))
			r.ProducerID = 8
			return r
		}(), txn.ErrInvalidProducerIDMapping},
	} {
		if err := c.CommitTxnOffsets(ctx, tc.req); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	openTxn(t, store, metastore.TxnStateOngoing, "other")
	if err := c.CommitTxnOffsets(ctx, txnCommit("m1", "i1", 3, off(0, 1))); !errors.Is(err, txn.ErrInvalidTxnState) {
		t.Errorf("group not added to the transaction: got %v, want INVALID_TXN_STATE", err)
	}
	if _, pending, _ := c.FetchStableOffsets(ctx, "g"); len(pending) != 0 {
		t.Errorf("refused commits left pending offsets: %v", pending)
	}
	// A group without stored state takes only commits outside any
	// generation.
	openTxn(t, store, metastore.TxnStateOngoing, "new")
	req := txnCommit("", "", 0, off(0, 1))
	req.Group = "new"
	if err := c.CommitTxnOffsets(ctx, req); !errors.Is(err, group.ErrIllegalGeneration) {
		t.Errorf("generation 0 of a group without state: got %v, want ILLEGAL_GENERATION", err)
	}
}

// TestPlainCommitAfterTxnCompletionIsWritten guards the coordinator's cache
// of stored offsets: a transaction completed elsewhere changed the stored
// offset, so the same plain commit as before must be written again.
func TestPlainCommitAfterTxnCompletionIsWritten(t *testing.T) {
	store, _, c := newTickedCoordinator(t)
	ctx := context.Background()
	stableGroup(t, store)
	if err := c.CommitOffsets(ctx, "g", "m1", 3, []metastore.OffsetCommit{off(0, 5)}); err != nil {
		t.Fatal(err)
	}
	openTxn(t, store, metastore.TxnStateOngoing, "g")
	if err := c.CommitTxnOffsets(ctx, txnCommit("m1", "", 3, off(0, 10))); err != nil {
		t.Fatal(err)
	}
	// Completed by another broker's coordinator, as the transaction
	// coordinator usually is elsewhere.
	other := group.New(store, group.Config{})
	if err := other.CompleteTxnOffsets(ctx, []string{"g"}, 7, true); err != nil {
		t.Fatal(err)
	}
	if got := committed(t, c); got[0] != 10 {
		t.Fatalf("after the commit: %v, want 0:10", got)
	}
	if err := c.CommitOffsets(ctx, "g", "m1", 3, []metastore.OffsetCommit{off(0, 5)}); err != nil {
		t.Fatal(err)
	}
	if got := committed(t, c); got[0] != 5 {
		t.Errorf("plain commit of 5 after the transaction: stored %v, want 0:5", got)
	}
}

func TestDeleteGroupWithOnlyPendingTxnOffsets(t *testing.T) {
	store := metastoretest.New()
	c := group.New(store, group.Config{})
	ctx := context.Background()
	openTxn(t, store, metastore.TxnStateOngoing, "g")
	if err := c.CommitTxnOffsets(ctx, txnCommit("", "", -1, off(0, 1))); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "g"); err != nil {
		t.Fatalf("delete a group with pending offsets: %v", err)
	}
	if err := c.CompleteTxnOffsets(ctx, []string{"g"}, 7, true); err != nil {
		t.Fatal(err)
	}
	if got := committed(t, c); len(got) != 0 {
		t.Errorf("a deleted group's transaction committed %v", got)
	}
	if err := c.Delete(ctx, "g"); !errors.Is(err, group.ErrGroupIDNotFound) {
		t.Errorf("delete again: got %v, want GROUP_ID_NOT_FOUND", err)
	}
}

// The metastore's fence of transactional commits names the coordinator's
// open state by its stored string: they must not drift apart.
func TestTxnOngoingStateMatchesTheCoordinators(t *testing.T) {
	if metastore.TxnStateOngoing != txn.StateOngoing {
		t.Fatalf("metastore.TxnStateOngoing %q, txn.StateOngoing %q", metastore.TxnStateOngoing, txn.StateOngoing)
	}
}

// TestTxnOffsetCommitOfAConsumerProtocolMember: a member of a
// consumer-protocol group (KIP-848) commits transactional offsets with its
// member epoch in the generation field, as franz-go's
// GroupTransactSession does; a stale epoch or an unknown member is refused
// as a plain commit would be.
func TestTxnOffsetCommitOfAConsumerProtocolMember(t *testing.T) {
	e := newConsumerEnv(t)
	res := e.join("m1")
	openTxn(t, e.store, metastore.TxnStateOngoing, "g")
	ctx := context.Background()
	if err := e.c.CommitTxnOffsets(ctx, txnCommit("m1", "", res.MemberEpoch, off(0, 5))); err != nil {
		t.Fatalf("commit at the member's epoch %d: %v", res.MemberEpoch, err)
	}
	if _, pending, _ := e.c.FetchStableOffsets(ctx, "g"); len(pending) != 1 {
		t.Fatalf("pending offsets after the commit: %v, want one partition", pending)
	}
	if err := e.c.CommitTxnOffsets(ctx, txnCommit("m1", "", res.MemberEpoch+1, off(0, 6))); !errors.Is(err, group.ErrStaleMemberEpoch) {
		t.Errorf("commit at another epoch: got %v, want STALE_MEMBER_EPOCH", err)
	}
	if err := e.c.CommitTxnOffsets(ctx, txnCommit("m2", "", res.MemberEpoch, off(0, 6))); !errors.Is(err, group.ErrUnknownMemberID) {
		t.Errorf("commit by a stranger: got %v, want UNKNOWN_MEMBER_ID", err)
	}
	if err := e.c.CommitTxnOffsets(ctx, txnCommit("", "", -1, off(0, 6))); !errors.Is(err, group.ErrUnknownMemberID) {
		t.Errorf("commit from outside a group with members: got %v, want UNKNOWN_MEMBER_ID", err)
	}
}
