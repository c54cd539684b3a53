// Package tokenbucket limits a flow of bytes to a rate, for callers that
// move whole units (record batches) which cannot be split to fit what is
// left: the balance may go negative, and the debt is repaid at the rate
// before anything more is let through. So a reader of units larger than
// the burst still moves at the rate, never stalls, and on average never
// exceeds it.
package tokenbucket

import (
	"math"
	"sync"
	"time"
)

// Bucket is a token bucket of bytes, safe for concurrent use.
type Bucket struct {
	rate  float64 // bytes per second, > 0
	burst float64
	now   func() time.Time

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// New returns a bucket filling at rate bytes per second up to burst bytes
// (at least one byte), full at first. now is the clock (nil: time.Now).
func New(rate, burst int64, now func() time.Time) *Bucket {
	if now == nil {
		now = time.Now
	}
	b := &Bucket{rate: float64(max(rate, 1)), burst: float64(max(burst, 1)), now: now}
	b.tokens, b.last = b.burst, now()
	return b
}

// refillLocked adds what the rate gave since the last call. mu must be held.
func (b *Bucket) refillLocked() {
	t := b.now()
	if d := t.Sub(b.last); d > 0 {
		b.tokens = min(b.burst, b.tokens+d.Seconds()*b.rate)
	}
	b.last = t
}

// Available returns how many bytes may be taken now, or 0 and how long
// until some may be. A caller that gets n > 0 may read one unit larger than
// n and Take all of it.
func (b *Bucket) Available() (int64, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refillLocked()
	if b.tokens >= 1 {
		return int64(b.tokens), 0
	}
	wait := time.Duration(math.Ceil((1 - b.tokens) / b.rate * float64(time.Second)))
	return 0, max(wait, time.Millisecond)
}

// Take charges n bytes, which may put the bucket in debt.
func (b *Bucket) Take(n int64) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refillLocked()
	b.tokens -= float64(n)
}
