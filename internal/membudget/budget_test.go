package membudget

import (
	"context"
	"testing"
	"time"
)

func TestConcurrentRequestsWaitForTheBudget(t *testing.T) {
	b := New(100)
	ctx := context.Background()
	first, err := b.Acquire(ctx, 70)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.TryAcquire(40); ok {
		t.Fatal("40 more bytes were granted while 70 of 100 were held")
	}
	got := make(chan error, 1)
	go func() {
		r, err := b.Acquire(ctx, 40)
		if err == nil {
			defer r.Release()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("second request ran while the first held the budget (err %v)", err)
	case <-time.After(50 * time.Millisecond):
	}
	if b.Held() != 70 {
		t.Fatalf("held %d, want 70", b.Held())
	}
	first.Release()
	first.Release() // a second release must not free bytes twice
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

func TestRequestLargerThanBudgetRunsAlone(t *testing.T) {
	b := New(100)
	r, err := b.Acquire(context.Background(), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if b.Held() != 100 {
		t.Fatalf("held %d, want the whole budget", b.Held())
	}
	r.Release()
	if b.Held() != 0 {
		t.Fatalf("held %d after release", b.Held())
	}
}

func TestAcquireGivesUpWithItsContext(t *testing.T) {
	b := New(10)
	r, _ := b.Acquire(context.Background(), 10)
	defer r.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := b.Acquire(ctx, 1); err == nil {
		t.Fatal("acquired from a full budget")
	}
}

func TestNilBudgetIsUnlimited(t *testing.T) {
	var b *Budget = New(0)
	r, err := b.Acquire(context.Background(), 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	r.Release()
	if b.Held() != 0 || b.Total() != 0 {
		t.Fatal("nil budget reports holdings")
	}
}
