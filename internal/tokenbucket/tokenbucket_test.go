package tokenbucket

import (
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/fakeclock"
)

func TestBurstThenRate(t *testing.T) {
	clk := fakeclock.New(time.Unix(0, 0))
	b := New(1000, 500, clk.Now)
	if n, wait := b.Available(); n != 500 || wait != 0 {
		t.Fatalf("a new bucket offers %d (wait %v), want its burst of 500", n, wait)
	}
	b.Take(500)
	if n, wait := b.Available(); n != 0 || wait != time.Millisecond {
		t.Fatalf("an empty bucket offers %d, wait %v; want 0 and 1ms (one byte at 1000/s)", n, wait)
	}
	clk.Advance(100 * time.Millisecond)
	if n, _ := b.Available(); n != 100 {
		t.Fatalf("after 100ms at 1000/s the bucket offers %d, want 100", n)
	}
	clk.Advance(10 * time.Second)
	if n, _ := b.Available(); n != 500 {
		t.Fatalf("after a long idle time the bucket offers %d, want no more than its burst 500", n)
	}
}

// A unit far larger than the burst is let through whole and its debt
// repaid at the rate: the taker is slowed, never stopped.
func TestLargeUnitsAreRepaidAtTheRate(t *testing.T) {
	clk := fakeclock.New(time.Unix(0, 0))
	b := New(1000, 100, clk.Now)
	b.Take(5000) // 4,900 in debt
	n, wait := b.Available()
	if n != 0 || wait != 4901*time.Millisecond {
		t.Fatalf("after 5000 bytes through a 100-byte bucket: offers %d, wait %v; want 0, 4.901s", n, wait)
	}
	clk.Advance(wait)
	if n, _ := b.Available(); n < 1 {
		t.Fatalf("after waiting as told the bucket offers %d, want at least one byte", n)
	}
}

// However the taker sizes its reads, it moves at the rate over time, and
// every wait the bucket asks for ends with bytes available.
func TestNoStarvationAndTheRateHolds(t *testing.T) {
	clk := fakeclock.New(time.Unix(0, 0))
	const rate = 10_000
	b := New(rate, rate/10, clk.Now)
	start := clk.Now()
	var moved int64
	for i := range 1000 {
		n, wait := b.Available()
		if n == 0 {
			if wait <= 0 {
				t.Fatalf("step %d: nothing available and no wait", i)
			}
			clk.Advance(wait)
			if n, _ := b.Available(); n == 0 {
				t.Fatalf("step %d: still nothing available after the wait of %v", i, wait)
			}
			continue
		}
		unit := int64(700 + 300*(i%5)) // units often larger than what is available
		b.Take(unit)
		moved += unit
	}
	elapsed := clk.Now().Sub(start).Seconds()
	got := float64(moved) / elapsed
	// The first burst is free; beyond it the rate holds within a unit.
	if got > rate*1.05 || got < rate*0.9 {
		t.Fatalf("moved %d bytes in %.2fs: %.0f B/s, want about %d", moved, elapsed, got, rate)
	}
}
