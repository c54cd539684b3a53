// Package fakeclock is the project's one clock for tests: a time that moves
// only when the test moves it, for the components that take a
// `func() time.Time` (retention, compaction, tiering, the group coordinator,
// the ISR's lag decision), so that a test of a timeout need not wait for it.
package fakeclock

import (
	"sync"
	"time"
)

// Clock is a settable time, safe for concurrent use: the components under
// test read it from their own goroutines.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a clock showing t.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now is the clock's time; pass the method value where a component takes a
// func() time.Time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d (back, if d is negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
