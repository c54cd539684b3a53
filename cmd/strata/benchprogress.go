package main

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// defaultProgressInterval is how often bench produce prints a progress line,
// as kafka-producer-perf-test does (every 5 s).
const defaultProgressInterval = 5 * time.Second

// progressWindow counts what one progress line reports: the records
// acknowledged since the previous line and the latency of the timed ones.
// Producer callbacks update it from several goroutines; a record that lands
// while a line is being taken counts in this line or the next, never twice.
type progressWindow struct {
	records atomic.Int64
	latN    atomic.Int64
	latSum  atomic.Int64 // nanoseconds
	latMax  atomic.Int64 // nanoseconds
}

func (w *progressWindow) acked() { w.records.Add(1) }

func (w *progressWindow) timed(d time.Duration) {
	w.latN.Add(1)
	w.latSum.Add(int64(d))
	for {
		m := w.latMax.Load()
		if int64(d) <= m || w.latMax.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// take returns the line for a window of length elapsed and starts the next
// window. The format is kafka-producer-perf-test's.
func (w *progressWindow) take(elapsed time.Duration, recordSize int) string {
	n := w.records.Swap(0)
	latN, latSum, latMax := w.latN.Swap(0), w.latSum.Swap(0), w.latMax.Swap(0)
	var perSec, avg float64
	if s := elapsed.Seconds(); s > 0 {
		perSec = float64(n) / s
	}
	if latN > 0 {
		avg = ms(time.Duration(latSum / latN))
	}
	return fmt.Sprintf("%d records sent, %.1f records/sec (%.2f MiB/sec), %.1f ms avg latency, %.1f ms max latency.",
		n, perSec, perSec*float64(recordSize)/mib, avg, ms(time.Duration(latMax)))
}

// report prints a line to out every interval until the returned stop is
// called; stop waits for the goroutine to end, so nothing is printed after
// it returns. A zero interval prints nothing.
func (w *progressWindow) report(out io.Writer, every time.Duration, recordSize int) (stop func()) {
	if every <= 0 || out == nil {
		return func() {}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-quit:
				return
			case now := <-t.C:
				fmt.Fprintln(out, w.take(now.Sub(last), recordSize))
				last = now
			}
		}
	}()
	return func() {
		close(quit)
		wg.Wait()
	}
}
