package main

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Log-linear buckets: values below 256 ns are exact, above, each power of two
// is split into histSub buckets, so a bucket is less than 1% wide relative
// to its values.
const (
	histSubBits = 7
	histSub     = 1 << histSubBits
	histBuckets = (64-histSubBits)*histSub + histSub
)

// latencyHistogram records durations with atomic counters: producer callbacks
// on several goroutines record without locks or allocation.
type latencyHistogram struct {
	counts [histBuckets]atomic.Uint64
	total  atomic.Uint64
	max    atomic.Int64
}

func histIndex(v uint64) int {
	if v < 2*histSub {
		return int(v)
	}
	s := bits.Len64(v) - (histSubBits + 1)
	return s*histSub + int(v>>s)
}

// histLower is the smallest value of bucket i, and width its width.
func histLower(i int) (lower, width uint64) {
	if i < 2*histSub {
		return uint64(i), 1
	}
	s := i/histSub - 1
	m := uint64(i - s*histSub)
	return m << s, 1 << s
}

func (h *latencyHistogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histIndex(uint64(d))].Add(1)
	h.total.Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// count is the number of durations recorded.
func (h *latencyHistogram) count() uint64 { return h.total.Load() }

// quantile returns the duration below which a fraction q of the recorded
// ones fall (the middle of its bucket, capped at the maximum), 0 when empty.
func (h *latencyHistogram) quantile(q float64) time.Duration {
	total := h.total.Load()
	if total == 0 {
		return 0
	}
	target := uint64(math.Ceil(q * float64(total)))
	target = max(target, 1)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= target {
			lower, width := histLower(i)
			v := time.Duration(lower + width/2)
			return min(v, time.Duration(h.max.Load()))
		}
	}
	return time.Duration(h.max.Load())
}
