package txn

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/strata-broker/strata/metastore"
)

// counts is a Metrics that counts.
type counts struct {
	mu                       sync.Mutex
	commits, aborts, timeout int
}

func (c *counts) TransactionCompleted(commit bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if commit {
		c.commits++
	} else {
		c.aborts++
	}
}

func (c *counts) TransactionTimedOut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timeout++
}

func (c *counts) want(t *testing.T, what string, commits, aborts, timeout int) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.commits != commits || c.aborts != aborts || c.timeout != timeout {
		t.Fatalf("%s: %d commits, %d aborts, %d timed out; want %d, %d, %d", what, c.commits, c.aborts, c.timeout, commits, aborts, timeout)
	}
}

func (f *fixture) countedCoordinator(owns func(string) bool) (*Coordinator, *markers, *counts) {
	m, n := &markers{}, &counts{}
	return New(f.store, storePIDs{f.store}, m, Config{
		MaxTimeout: time.Minute, IDExpiration: time.Hour, GroupMarkers: m, Owns: owns, Now: f.clock.Now, Metrics: n,
	}), m, n
}

func wantOpen(t *testing.T, c *Coordinator, what string, want int) {
	t.Helper()
	if got := c.OpenTransactions(); got != want {
		t.Fatalf("%s: %d open transactions, want %d", what, got, want)
	}
}

// TestMetricsCountOutcomes: every way a transaction ends is counted once,
// by outcome, and a timeout also as a timeout; OpenTransactions follows
// the transactions from their first partition to their completion.
func TestMetricsCountOutcomes(t *testing.T) {
	f := newFixture(t)
	c, _, n := f.countedCoordinator(nil)
	a, ae := mustInit(t, c, "a", -1, -1)
	b, be := mustInit(t, c, "b", -1, -1)
	wantOpen(t, c, "after InitProducerId", 0)
	for id, p := range map[string][2]int64{"a": {a, int64(ae)}, "b": {b, int64(be)}} {
		if err := c.AddPartitions(ctx(t), id, p[0], int16(p[1]), []metastore.TopicPartition{tp("x", 0)}); err != nil {
			t.Fatal(err)
		}
	}
	wantOpen(t, c, "two transactions open", 2)

	if err := c.EndTxn(ctx(t), "a", a, ae, true); err != nil {
		t.Fatal(err)
	}
	wantOpen(t, c, "after a commit", 1)
	n.want(t, "after a commit", 1, 0, 0)
	if err := c.EndTxn(ctx(t), "a", a, ae, true); err != nil {
		t.Fatal(err)
	}
	n.want(t, "a retried commit", 1, 0, 0)

	// b times out.
	c.Tick(ctx(t), f.clock.Advance(11*time.Second))
	wantOpen(t, c, "after the timeout", 0)
	n.want(t, "after the timeout", 1, 1, 1)

	// A new InitProducerId of an id with an open transaction aborts it.
	if err := c.AddPartitions(ctx(t), "a", a, ae, []metastore.TopicPartition{tp("x", 1)}); err != nil {
		t.Fatal(err)
	}
	wantOpen(t, c, "a's second transaction", 1)
	if _, _, err := c.InitProducerID(ctx(t), "a", 10_000, -1, -1); !errors.Is(err, ErrConcurrentTransactions) {
		t.Fatalf("InitProducerId over an open transaction: %v", err)
	}
	wantOpen(t, c, "after the fencing abort", 0)
	n.want(t, "after the fencing abort", 1, 2, 1)
}

// TestMetricsTakeover: a transaction decided by a coordinator that failed
// to complete it stays open on it, and is counted complete by the one
// that takes it over, once.
func TestMetricsTakeover(t *testing.T) {
	f := newFixture(t)
	old, oldMarkers, oldCounts := f.countedCoordinator(nil)
	pid, epoch := mustInit(t, old, "t", -1, -1)
	if err := old.AddPartitions(ctx(t), "t", pid, epoch, []metastore.TopicPartition{tp("x", 0)}); err != nil {
		t.Fatal(err)
	}
	oldMarkers.setFail(errors.New("leader unreachable"))
	if err := old.EndTxn(ctx(t), "t", pid, epoch, false); err != nil {
		t.Fatal(err)
	}
	wantOpen(t, old, "PrepareAbort left behind", 1)
	oldCounts.want(t, "markers failed", 0, 0, 0)

	next, _, nextCounts := f.countedCoordinator(nil)
	wantOpen(t, next, "before Load", 0)
	if err := next.Load(ctx(t)); err != nil {
		t.Fatal(err)
	}
	wantOpen(t, next, "after Load completed it", 0)
	nextCounts.want(t, "after Load", 0, 1, 0)
	next.Tick(ctx(t), f.clock.Now())
	nextCounts.want(t, "after another tick", 0, 1, 0)
}
