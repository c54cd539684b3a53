package txn

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-broker/strata/metastore"
)

// An id that moved to another coordinator and back, before this one
// learned of it, is not answered from what this one remembers: a retried
// EndTxn of a transaction it completed earlier would otherwise be told
// NONE while the producer's newer transaction, opened at the other
// coordinator, is still open (and later aborted at its timeout). The
// coordinator confirms with the store and steps down; the client's retry
// then commits the right transaction.
func TestStaleEntryIsConfirmedBeforeAnAnswerFromMemory(t *testing.T) {
	f := newFixture(t)
	var aOwns atomic.Bool
	aOwns.Store(true)
	a, am := f.coordinator(func(string) bool { return aOwns.Load() })
	b, _ := f.coordinator(func(string) bool { return !aOwns.Load() })
	pid, epoch := mustInit(t, a, "x", -1, -1)
	if err := a.AddPartitions(ctx(t), "x", pid, epoch, []metastore.TopicPartition{tp("t", 0)}); err != nil {
		t.Fatal(err)
	}
	if err := a.EndTxn(ctx(t), "x", pid, epoch, true); err != nil {
		t.Fatal(err)
	}
	aOwns.Store(false)
	if err := b.AddPartitions(ctx(t), "x", pid, epoch, []metastore.TopicPartition{tp("t", 1)}); err != nil {
		t.Fatal(err)
	}
	aOwns.Store(true) // back to a, which was not told
	am.taken()
	err := a.EndTxn(ctx(t), "x", pid, epoch, true)
	if !errors.Is(err, ErrNotCoordinator) {
		t.Fatalf("EndTxn answered from a stale entry: %v (stored %s), want NOT_COORDINATOR", err, f.stored(t, "x").State)
	}
	if err := a.EndTxn(ctx(t), "x", pid, epoch, true); err != nil {
		t.Fatalf("the retried EndTxn: %v", err)
	}
	if m := f.stored(t, "x"); m.State != StateCompleteCommit {
		t.Fatalf("stored %s, want CompleteCommit", m.State)
	}
	calls := am.taken()
	if len(calls) != 1 || !slices.Equal(calls[0].Partitions, []metastore.TopicPartition{tp("t", 1)}) || !calls[0].Commit {
		t.Fatalf("markers written %+v, want a commit of t-1", calls)
	}
}

// After OwnershipChanged every held id is read again before its next use,
// so the same flap is answered right at once.
func TestOwnershipChangedRereadsHeldIDs(t *testing.T) {
	f := newFixture(t)
	var aOwns atomic.Bool
	aOwns.Store(true)
	a, _ := f.coordinator(func(string) bool { return aOwns.Load() })
	b, _ := f.coordinator(func(string) bool { return !aOwns.Load() })
	pid, epoch := mustInit(t, a, "x", -1, -1)
	if err := a.AddPartitions(ctx(t), "x", pid, epoch, []metastore.TopicPartition{tp("t", 0)}); err != nil {
		t.Fatal(err)
	}
	aOwns.Store(false)
	a.OwnershipChanged()
	if err := b.AddPartitions(ctx(t), "x", pid, epoch, []metastore.TopicPartition{tp("t", 1)}); err != nil {
		t.Fatal(err)
	}
	aOwns.Store(true)
	a.OwnershipChanged()
	if err := a.EndTxn(ctx(t), "x", pid, epoch, false); err != nil {
		t.Fatal(err)
	}
	if m := f.stored(t, "x"); m.State != StateCompleteAbort {
		t.Fatalf("stored %s, want CompleteAbort", m.State)
	}
}

// A transaction whose markers cannot be written holds a tick for at most
// CompleteTimeout: the other ids' timed-out transactions are still
// aborted in the same tick.
func TestTickIsNotHeldByMarkersThatCannotBeWritten(t *testing.T) {
	f := newFixture(t)
	stuck := &stuckMarkers{}
	c := New(f.store, storePIDs{f.store}, stuck, Config{MaxTimeout: time.Minute, IDExpiration: time.Hour, Now: f.clock.Now,
		CompleteTimeout: 50 * time.Millisecond})
	p1, e1 := mustInit(t, c, "a-stuck", -1, -1)
	stuck.pid.Store(p1)
	if err := c.AddPartitions(ctx(t), "a-stuck", p1, e1, []metastore.TopicPartition{tp("offline", 0)}); err != nil {
		t.Fatal(err)
	}
	healthy := []string{"h0", "h1", "h2", "h3"}
	for _, id := range healthy {
		p, e := mustInit(t, c, id, -1, -1)
		if err := c.AddPartitions(ctx(t), id, p, e, []metastore.TopicPartition{tp("healthy", 0)}); err != nil {
			t.Fatal(err)
		}
	}
	// Decided, but its markers cannot be written.
	if err := c.EndTxn(ctx(t), "a-stuck", p1, e1, true); err != nil {
		t.Fatal(err)
	}
	if m := f.stored(t, "a-stuck"); m.State != StatePrepareCommit {
		t.Fatalf("stored %s, want PrepareCommit", m.State)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Tick(ctx(t), f.clock.Advance(2*time.Minute))
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("a tick is still writing the stuck transaction's markers")
	}
	for _, id := range healthy {
		if m := f.stored(t, id); m.State != StateCompleteAbort {
			t.Errorf("%s: %s after its timeout, want CompleteAbort", id, m.State)
		}
	}
	if m := f.stored(t, "a-stuck"); m.State != StatePrepareCommit {
		t.Fatalf("the stuck transaction: %s, want PrepareCommit (retried at the next tick)", m.State)
	}
}

// stuckMarkers writes every producer's markers but one's, whose partitions
// have no leader until ctx ends.
type stuckMarkers struct{ pid atomic.Int64 }

func (s *stuckMarkers) WriteMarkers(ctx context.Context, _ []metastore.TopicPartition, pid int64, _ int16, _ int32, _ bool) error {
	if pid == s.pid.Load() {
		<-ctx.Done()
		return errors.New("no leader")
	}
	return nil
}

// failingStore fails every write with err, as etcd does during an
// election.
type failingStore struct {
	Store
	err error
}

func (s failingStore) PutTransaction(context.Context, metastore.TransactionMeta, int64) (metastore.TransactionMeta, error) {
	return metastore.TransactionMeta{}, s.err
}

// A store that cannot be written answers COORDINATOR_NOT_AVAILABLE, which
// clients retry, not an unknown error, which Java's producer treats as
// fatal.
func TestStoreErrorsAreCoordinatorNotAvailable(t *testing.T) {
	f := newFixture(t)
	c := New(failingStore{f.store, errors.New("etcdserver: leader changed")}, storePIDs{f.store}, &markers{}, Config{Now: f.clock.Now})
	_, _, err := c.InitProducerID(ctx(t), "x", 1000, -1, -1)
	if !errors.Is(err, ErrCoordinatorNotAvailable) {
		t.Fatalf("InitProducerId with etcd failing: %v, want COORDINATOR_NOT_AVAILABLE", err)
	}
}
