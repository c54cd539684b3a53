package compaction

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/internal/fakeclock"
)

func newCleanerWorker(t *testing.T, h *fakeHost, cfg CleanerConfig) *CleanerWorker {
	t.Helper()
	cfg.Backoff = 5 * time.Millisecond
	cfg.MapBytes = 1 << 20
	cfg.Partitions, cfg.TopicConfig, cfg.Now = h.replicas, h.topicConfig, h.clock.Now
	w, err := NewCleanerWorker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

// A compacted topic nobody writes to any more is still compacted to the
// end: once max.compaction.lag.ms has passed, the worker rolls the idle
// active segment (which is never compacted) and cleans it.
func TestCleanerWorkerRollsAnIdleActiveSegment(t *testing.T) {
	clock := fakeclock.New(now)
	h := newFakeHost(clock)
	h.configure(t, "prices", map[string]string{"cleanup.policy": "compact", "max.compaction.lag.ms": "60000"})
	r := h.host(t, "prices", 0)
	const keys, rounds = 20, 10
	for round := range rounds {
		appendKeyed(t, r.log, clock, keys, round)
	}
	w := newCleanerWorker(t, h, CleanerConfig{})
	ctx := context.Background()
	for range 3 {
		if w.cleanDirtiest(ctx) {
			t.Fatal("cleaned within max.compaction.lag.ms")
		}
	}
	if n := len(r.log.Segments()); n != 1 {
		t.Fatalf("%d segments before max.compaction.lag.ms passed, want the active one only", n)
	}
	clock.Advance(2 * time.Minute) // the records are now older than the lag
	await.True(t, 10*time.Second, "the idle segment to be rolled and compacted", func() bool {
		w.cleanDirtiest(ctx)
		return r.log.CleanerOffset() == int64(keys*rounds)
	})
	got := readAll(t, r.log)
	if len(got) != keys {
		t.Fatalf("%d records after compaction, want %d", len(got), keys)
	}
	for _, rec := range got {
		if want := fmt.Sprintf("v%d-", rounds-1); !strings.HasPrefix(string(rec.Value), want) {
			t.Fatalf("%s = %q, want the last round's value", rec.Key, rec.Value)
		}
	}
}

// Of the replicas due, the dirtiest is cleaned first; every compacted
// replica's dirty ratio and lag are reported, and a pass is counted.
func TestCleanerWorkerCleansTheDirtiestFirst(t *testing.T) {
	clock := fakeclock.New(now)
	h := newFakeHost(clock)
	compact := map[string]string{"cleanup.policy": "compact", "segment.bytes": "2048", "min.cleanable.dirty.ratio": "0.01"}
	h.configure(t, "profiles", compact)
	reg := prometheus.NewPedanticRegistry()
	w := newCleanerWorker(t, h, CleanerConfig{Registerer: reg})
	ctx := context.Background()

	// Partition 1 is compacted once, then gets a little more: less dirty
	// than partition 0, never compacted.
	p1 := h.host(t, "profiles", 1)
	for round := range 20 {
		appendKeyed(t, p1.log, clock, 10, round)
	}
	flush(t, p1)
	if !w.cleanDirtiest(ctx) || p1.log.CleanerOffset() == 0 {
		t.Fatalf("first pass: cleaner offset %d", p1.log.CleanerOffset())
	}
	for round := 20; round < 25; round++ {
		appendKeyed(t, p1.log, clock, 10, round)
	}
	flush(t, p1)
	p0 := h.host(t, "profiles", 0)
	for round := range 20 {
		appendKeyed(t, p0.log, clock, 10, round)
	}
	flush(t, p0)
	read := testutil.ToFloat64(w.bytesRead)
	clock.Advance(time.Minute)

	p1Cleaned := p1.log.CleanerOffset()
	if !w.cleanDirtiest(ctx) {
		t.Fatal("second pass cleaned nothing")
	}
	if p0.log.CleanerOffset() == 0 || p1.log.CleanerOffset() != p1Cleaned {
		t.Fatalf("cleaner offsets %d and %d (was %d), want partition 0 cleaned", p0.log.CleanerOffset(), p1.log.CleanerOffset(), p1Cleaned)
	}
	if r0, r1 := testutil.ToFloat64(w.dirtyRatio.WithLabelValues("profiles", "0")), testutil.ToFloat64(w.dirtyRatio.WithLabelValues("profiles", "1")); r0 != 1 || r1 <= 0 || r1 >= 1 {
		t.Fatalf("dirty ratios %v and %v before the pass, want 1 and between", r0, r1)
	}
	if lag := testutil.ToFloat64(w.lagSeconds.WithLabelValues("profiles", "0")); lag < 60 {
		t.Fatalf("compaction lag %v s, want the minute the records waited", lag)
	}
	if got := testutil.ToFloat64(w.bytesRead); got <= read || testutil.ToFloat64(w.bytesWritten) >= got {
		t.Fatalf("read %v bytes (%v before the pass), wrote %v", got, read, testutil.ToFloat64(w.bytesWritten))
	}
	if got := testutil.ToFloat64(w.lastRun); got != float64(clock.Now().Unix()) {
		t.Fatalf("last run %v, want the clock's %v", got, clock.Now().Unix())
	}
	if n, err := testutil.GatherAndCount(reg, "strata_log_cleaner_dirty_ratio", "strata_log_cleaner_pass_seconds"); err != nil || n != 3 {
		t.Fatalf("cleaner series: %d, %v; want two ratios and the histogram", n, err)
	}
}

// Topics without compact in their cleanup.policy, and topics without a
// config, are neither cleaned nor reported.
func TestCleanerWorkerSkipsOtherTopics(t *testing.T) {
	clock := fakeclock.New(now)
	h := newFakeHost(clock)
	h.configure(t, "events", map[string]string{"segment.bytes": "2048", "min.cleanable.dirty.ratio": "0.01"})
	h.configure(t, "gone", map[string]string{"cleanup.policy": "compact", "segment.bytes": "2048", "min.cleanable.dirty.ratio": "0.01"})
	for _, topic := range []string{"events", "gone"} {
		r := h.host(t, topic, 0)
		for round := range 20 {
			appendKeyed(t, r.log, clock, 10, round)
		}
		flush(t, r)
	}
	h.mu.Lock()
	delete(h.configs, "gone")
	h.mu.Unlock()
	w := newCleanerWorker(t, h, CleanerConfig{})
	if w.cleanDirtiest(context.Background()) {
		t.Fatal("cleaned a topic that is not compacted")
	}
	if n := testutil.CollectAndCount(w.dirtyRatio); n != 0 {
		t.Fatalf("%d dirty ratio series, want none", n)
	}
}

// Run cleans in the background until Close, which waits for it; a disabled
// worker's Run returns at once.
func TestCleanerWorkerRunAndClose(t *testing.T) {
	clock := fakeclock.New(now)
	h := newFakeHost(clock)
	h.configure(t, "profiles", map[string]string{"cleanup.policy": "compact", "segment.bytes": "2048"})
	r := h.host(t, "profiles", 0)
	for round := range 20 {
		appendKeyed(t, r.log, clock, 10, round)
	}
	flush(t, r)

	if err := newCleanerWorker(t, h, CleanerConfig{Disabled: true}).Run(context.Background()); err != nil {
		t.Fatalf("disabled Run: %v", err)
	}
	if r.log.CleanerOffset() != 0 {
		t.Fatal("a disabled cleaner cleaned")
	}

	w := newCleanerWorker(t, h, CleanerConfig{})
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	await.True(t, 10*time.Second, "the worker to clean", func() bool { return r.log.CleanerOffset() > 0 })
	w.Close()
	// Close waited for Run's loop to end; the goroutine delivering Run's
	// result may still be on its way.
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	if err := w.Run(context.Background()); err != nil {
		t.Fatalf("Run after Close: %v", err)
	}
}

// flush makes every segment but the active one sealed and durable: what
// the cleaner may clean.
func flush(t *testing.T, r *fakeReplica) {
	t.Helper()
	if err := r.log.Roll(); err != nil {
		t.Fatal(err)
	}
	if err := r.log.Flush(); err != nil {
		t.Fatal(err)
	}
}
