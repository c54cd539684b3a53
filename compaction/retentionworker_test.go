package compaction

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/internal/fakeclock"
)

// newRetentionWorker runs nothing: the tests call Round themselves, or Run.
func newRetentionWorker(t *testing.T, h *fakeHost, reg prometheus.Registerer, logger *slog.Logger) *RetentionWorker {
	t.Helper()
	w, err := NewRetentionWorker(RetentionConfig{
		Interval:    5 * time.Millisecond,
		Partitions:  h.leaderReplicas,
		TopicConfig: h.topicConfig,
		Now:         h.clock.Now,
		Logger:      logger,
		Registerer:  reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

func segmentsSize(r *fakeReplica) (n int, size int64) {
	for _, s := range r.log.Segments() {
		n++
		size += s.Size
	}
	return n, size
}

// retention.ms deletes every segment whose records are all older, the
// active one too (the log rolls), and nothing before they are; the metrics
// count what went.
func TestRetentionWorkerDeletesExpiredSegments(t *testing.T) {
	clock := fakeclock.New(now)
	h := newFakeHost(clock)
	h.configure(t, "events", map[string]string{"segment.bytes": "1024"})
	r := h.host(t, "events", 0)
	appendValues(t, r.log, clock, 100)
	segments, size := segmentsSize(r)
	if segments < 5 {
		t.Fatalf("%d segments, want several", segments)
	}
	reg := prometheus.NewPedanticRegistry()
	w := newRetentionWorker(t, h, reg, nil)
	ctx := context.Background()

	// Two hours later, within the default retention.ms (7 days), and then
	// within a retention.ms of three hours: nothing goes.
	clock.Advance(2 * time.Hour)
	w.Round(ctx)
	h.configure(t, "events", map[string]string{"segment.bytes": "1024", "retention.ms": "10800000"})
	w.Round(ctx)
	if n, _ := segmentsSize(r); n != segments || r.log.LogStartOffset() != 0 {
		t.Fatalf("%d segments from %d before the records expired, want %d from 0", n, r.log.LogStartOffset(), segments)
	}
	if got := testutil.ToFloat64(w.lastRun); got != float64(clock.Now().UnixMilli())/1000 {
		t.Errorf("last run %v, want the clock's %v", got, clock.Now())
	}

	// retention.ms of one hour: every record is past it.
	h.configure(t, "events", map[string]string{"segment.bytes": "1024", "retention.ms": "3600000"})
	w.Round(ctx)
	if got := testutil.ToFloat64(w.deletedSegments.WithLabelValues("events", TierLocal)); got != float64(segments) {
		t.Errorf("deleted segments metric %v, want %d", got, segments)
	}
	if got := testutil.ToFloat64(w.deletedBytes.WithLabelValues("events", TierLocal)); got != float64(size) {
		t.Errorf("deleted bytes metric %v, want %d", got, size)
	}
	if r.log.LogStartOffset() != 100 || r.log.Size() != 0 {
		t.Fatalf("log start %d, size %d; want 100 and 0", r.log.LogStartOffset(), r.log.Size())
	}
	if n, err := testutil.GatherAndCount(reg, "strata_log_retention_deleted_bytes_total", "strata_log_retention_last_run_timestamp_seconds"); err != nil || n != 3 {
		t.Errorf("registered retention series: %d, %v; want both tiers' bytes and the last run", n, err)
	}
	// The log goes on where it was.
	appendValues(t, r.log, clock, 1)
	if end := r.log.LogEndOffset(); end != 101 {
		t.Fatalf("log end %d after one more record, want 101", end)
	}
}

// retention.bytes deletes the oldest segments while the log stays at least
// that large without them, as Kafka: never below retention.bytes; the
// records' age does not matter to it.
func TestRetentionWorkerKeepsRetentionBytes(t *testing.T) {
	clock := fakeclock.New(now)
	h := newFakeHost(clock)
	h.configure(t, "sized", map[string]string{"segment.bytes": "1024", "retention.bytes": "3000"})
	r := h.host(t, "sized", 0)
	appendValues(t, r.log, clock, 100)
	w := newRetentionWorker(t, h, nil, nil)
	ctx := context.Background()

	w.Round(ctx)
	segs := r.log.Segments()
	if r.log.LogStartOffset() == 0 || segs[0].BaseOffset != r.log.LogStartOffset() {
		t.Fatalf("log start %d, segments %+v: want the oldest gone", r.log.LogStartOffset(), segs)
	}
	if size := r.log.Size(); size < 3000 || size-segs[0].Size >= 3000 {
		t.Fatalf("log of %d bytes, oldest segment %d: want the fewest segments holding 3000 bytes", size, segs[0].Size)
	}
	w.Round(ctx)
	clock.Advance(time.Hour)
	w.Round(ctx)
	if got := r.log.Segments()[0].BaseOffset; got != segs[0].BaseOffset {
		t.Fatalf("log start moved from %d to %d with nothing appended", segs[0].BaseOffset, got)
	}
}

// A topic with cleanup.policy=compact has no time or size retention.
func TestRetentionWorkerLeavesCompactTopics(t *testing.T) {
	clock := fakeclock.New(now)
	h := newFakeHost(clock)
	overrides := map[string]string{"segment.bytes": "1024", "cleanup.policy": "compact", "retention.ms": "1000", "retention.bytes": "0"}
	h.configure(t, "table", overrides)
	r := h.host(t, "table", 0)
	appendValues(t, r.log, clock, 50)
	w := newRetentionWorker(t, h, nil, nil)
	ctx := context.Background()
	clock.Advance(time.Hour)
	w.Round(ctx)
	if got := r.log.LogStartOffset(); got != 0 {
		t.Fatalf("log start of a compact topic %d, want 0", got)
	}
	// The same topic with delete added loses them.
	overrides["cleanup.policy"] = "compact,delete"
	h.configure(t, "table", overrides)
	w.Round(ctx)
	if got := r.log.LogStartOffset(); got != 50 {
		t.Fatalf("log start with compact,delete %d, want 50", got)
	}
}

// Tiered topics are the tiering task's, and a topic without a config (being
// created or deleted) waits for a later round.
func TestRetentionWorkerSkipsTieredAndUnknownTopics(t *testing.T) {
	clock := fakeclock.New(now)
	h := newFakeHost(clock)
	h.configure(t, "tiered", map[string]string{"segment.bytes": "1024", "retention.ms": "1000", "remote.storage.enable": "true"})
	h.configure(t, "gone", map[string]string{"segment.bytes": "1024", "retention.ms": "1000"})
	tiered, gone := h.host(t, "tiered", 0), h.host(t, "gone", 0)
	appendValues(t, tiered.log, clock, 30)
	appendValues(t, gone.log, clock, 30)
	h.mu.Lock()
	delete(h.configs, "gone")
	h.mu.Unlock()
	w := newRetentionWorker(t, h, nil, nil)
	clock.Advance(time.Hour)
	w.Round(context.Background())
	if tiered.log.LogStartOffset() != 0 || gone.log.LogStartOffset() != 0 {
		t.Fatalf("log starts %d and %d, want both at 0", tiered.log.LogStartOffset(), gone.log.LogStartOffset())
	}
}

// Only the leader, in the epoch the worker saw, deletes; losing the
// leadership meanwhile is expected and not worth a warning, unlike other
// failures.
func TestRetentionWorkerOnlyAsLeader(t *testing.T) {
	clock := fakeclock.New(now)
	h := newFakeHost(clock)
	h.configure(t, "events", map[string]string{"segment.bytes": "1024", "retention.ms": "1000"})
	r := h.host(t, "events", 0)
	appendValues(t, r.log, clock, 30)
	clock.Advance(time.Hour)
	var logs bytes.Buffer
	w := newRetentionWorker(t, h, nil, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	ctx := context.Background()

	r.set(false, 1, nil) // a follower
	w.Round(ctx)
	if r.retains != 0 {
		t.Fatalf("%d deletions tried as a follower", r.retains)
	}
	r.set(true, 2, ErrLeadershipLost) // deposed between the check and the deletion
	w.Round(ctx)
	if r.log.LogStartOffset() != 0 || logs.Len() != 0 {
		t.Fatalf("log start %d, logged %q; want 0 and nothing", r.log.LogStartOffset(), logs.String())
	}
	r.set(true, 2, errors.New("disk on fire"))
	w.Round(ctx)
	if !strings.Contains(logs.String(), "retention: cannot delete segments") || !strings.Contains(logs.String(), "disk on fire") {
		t.Fatalf("logged %q, want the failure", logs.String())
	}
	if got := testutil.ToFloat64(w.deletedSegments.WithLabelValues("events", TierLocal)); got != 0 {
		t.Fatalf("%v segments counted as deleted, want 0", got)
	}
	r.set(true, 2, nil)
	w.Round(ctx)
	if got := r.log.LogStartOffset(); got != 30 {
		t.Fatalf("log start %d as the leader, want 30", got)
	}
}

// Every hosted topic has series at zero for both tiers, which the tiering
// task counts into too; the series of a topic no longer hosted go.
func TestRetentionWorkerMetricSeries(t *testing.T) {
	clock := fakeclock.New(now)
	h := newFakeHost(clock)
	for _, topic := range []string{"a", "b"} {
		h.configure(t, topic, nil)
		h.host(t, topic, 0)
		h.host(t, topic, 1)
	}
	w := newRetentionWorker(t, h, nil, nil)
	ctx := context.Background()
	w.Round(ctx)
	if n := testutil.CollectAndCount(w.deletedSegments); n != 4 {
		t.Fatalf("%d deleted-segments series for 2 topics, want 4", n)
	}
	w.Count("b", TierRemote, 3, 300)
	if got := testutil.ToFloat64(w.deletedBytes.WithLabelValues("b", TierRemote)); got != 300 {
		t.Fatalf("remote bytes %v, want 300", got)
	}
	h.unhost("a")
	w.Round(ctx)
	if n := testutil.CollectAndCount(w.deletedSegments); n != 2 {
		t.Fatalf("%d deleted-segments series once a is gone, want b's 2", n)
	}
	if got := testutil.ToFloat64(w.deletedSegments.WithLabelValues("b", TierRemote)); got != 3 {
		t.Fatalf("b's remote segments %v after a round, want 3", got)
	}
}

// Run applies retention every interval until Close, which waits for it;
// a second Run meanwhile is refused, and one after Close returns at once.
func TestRetentionWorkerRunAndClose(t *testing.T) {
	clock := fakeclock.New(now)
	h := newFakeHost(clock)
	h.configure(t, "events", map[string]string{"segment.bytes": "1024", "retention.ms": "1000"})
	r := h.host(t, "events", 0)
	appendValues(t, r.log, clock, 30)
	w := newRetentionWorker(t, h, nil, nil)
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	clock.Advance(time.Hour)
	await.True(t, 10*time.Second, "the worker to apply retention", func() bool { return r.log.LogStartOffset() == 30 })
	if err := w.Run(context.Background()); !errors.Is(err, errRunning) {
		t.Fatalf("second Run: %v, want %v", err, errRunning)
	}
	w.Close()
	// Close waited for Run's loop to end (worker_test.go checks that); the
	// goroutine delivering Run's result may still be on its way.
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
	w.Close()

	// A worker whose context ends stops too, and can be closed unstarted.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := newRetentionWorker(t, h, nil, nil).Run(ctx); err != nil {
		t.Fatalf("Run with an ended context: %v", err)
	}
	newRetentionWorker(t, h, nil, nil).Close()
}

// A second worker on the same registry is an error, not a panic.
func TestRetentionWorkerRegistrationConflict(t *testing.T) {
	h := newFakeHost(fakeclock.New(now))
	reg := prometheus.NewRegistry()
	newRetentionWorker(t, h, reg, nil)
	_, err := NewRetentionWorker(RetentionConfig{Interval: time.Second, Partitions: h.leaderReplicas, TopicConfig: h.topicConfig, Registerer: reg})
	if err == nil || !strings.Contains(err.Error(), "register metrics") {
		t.Fatalf("second worker on one registry: %v", err)
	}
}
