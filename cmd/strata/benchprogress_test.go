package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/await"
)

func TestProgressWindowLine(t *testing.T) {
	var w progressWindow
	for range 50 {
		w.acked()
	}
	w.timed(2 * time.Millisecond)
	w.timed(4 * time.Millisecond)
	got := w.take(2*time.Second, 1024)
	want := "50 records sent, 25.0 records/sec (0.02 MiB/sec), 3.0 ms avg latency, 4.0 ms max latency."
	if got != want {
		t.Errorf("first window:\n got %q\nwant %q", got, want)
	}
	// The next window starts empty.
	if got, want := w.take(time.Second, 1024), "0 records sent, 0.0 records/sec (0.00 MiB/sec), 0.0 ms avg latency, 0.0 ms max latency."; got != want {
		t.Errorf("second window:\n got %q\nwant %q", got, want)
	}
}

// lockedBuffer is written by the reporter's goroutine and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestProgressReportPrintsUntilStopped(t *testing.T) {
	var w progressWindow
	w.acked()
	var out lockedBuffer
	stop := w.report(&out, time.Millisecond, 100)
	await.True(t, 10*time.Second, "two progress lines", func() bool { return strings.Count(out.String(), "\n") >= 2 })
	stop()
	printed := out.String()
	if !strings.HasPrefix(printed, "1 records sent, ") {
		t.Errorf("first line should count the one record: %q", printed)
	}
	// stop waited for the goroutine: nothing more comes.
	w.acked()
	if out.String() != printed {
		t.Errorf("printed after stop: %q", strings.TrimPrefix(out.String(), printed))
	}
	if stop := w.report(&out, 0, 100); stop == nil {
		t.Error("a zero interval must still return a stop function")
	} else {
		stop()
	}
}
