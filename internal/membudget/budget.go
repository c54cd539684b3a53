// Package membudget bounds the memory that requests in flight may hold
// together, as Kafka's queued.max.request.bytes does: a request reserves what
// it will need before it allocates, and waits while others hold the budget,
// so concurrent large requests queue instead of multiplying.
package membudget

import (
	"context"
	"fmt"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// Budget is a pool of bytes shared by every holder. The zero value is not
// usable; a nil *Budget grants everything at once (no limit).
type Budget struct {
	total int64
	sem   *semaphore.Weighted
	held  atomic.Int64
}

// New returns a budget of total bytes; total <= 0 means unlimited (nil).
func New(total int64) *Budget {
	if total <= 0 {
		return nil
	}
	return &Budget{total: total, sem: semaphore.NewWeighted(total)}
}

// Reservation is bytes held from a Budget until Release.
type Reservation struct {
	b *Budget
	n int64
}

// Acquire reserves n bytes, waiting until they are free or ctx ends. A
// request larger than the whole budget waits for all of it, so it runs alone
// rather than never.
func (b *Budget) Acquire(ctx context.Context, n int64) (Reservation, error) {
	if b == nil || n <= 0 {
		return Reservation{}, nil
	}
	n = min(n, b.total)
	if err := b.sem.Acquire(ctx, n); err != nil {
		return Reservation{}, fmt.Errorf("wait for %d bytes of the request memory budget: %w", n, err)
	}
	b.held.Add(n)
	return Reservation{b: b, n: n}, nil
}

// TryAcquire reserves n bytes only if they are free now.
func (b *Budget) TryAcquire(n int64) (Reservation, bool) {
	if b == nil || n <= 0 {
		return Reservation{}, true
	}
	n = min(n, b.total)
	if !b.sem.TryAcquire(n) {
		return Reservation{}, false
	}
	b.held.Add(n)
	return Reservation{b: b, n: n}, true
}

// Release returns the bytes; releasing twice or the zero Reservation is a
// no-op.
func (r *Reservation) Release() {
	if r.b == nil || r.n == 0 {
		return
	}
	r.b.held.Add(-r.n)
	r.b.sem.Release(r.n)
	r.n = 0
}

// Held is how many bytes are reserved now (for a gauge).
func (b *Budget) Held() int64 {
	if b == nil {
		return 0
	}
	return b.held.Load()
}

// Total is the budget's size, 0 for unlimited.
func (b *Budget) Total() int64 {
	if b == nil {
		return 0
	}
	return b.total
}
