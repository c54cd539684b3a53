package partlog

import (
	"errors"
	"os"
	"syscall"
	"testing"
)

// A lazy load that fails on I/O takes the log offline, and OpenSealed,
// which the tiering upload calls without asking whether the log is
// online, must not hand out the segment as if it were loaded: its max
// timestamp, never loaded, would be uploaded as "none".
func TestOpenSealedRefusesALazySegmentWhoseLoadFailed(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 3000, IndexIntervalBytes: 200})
	l := e.open()
	newWriter(t, l).appendMany(60, 4, 30)
	victim := l.Segments()[1].BaseOffset
	l = e.reopen(l)
	// The filesystem refuses the segment's file: a directory stands where
	// it was.
	if err := os.Rename(e.segPath(victim, logSuffix), e.segPath(victim, logSuffix+".moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(e.segPath(victim, logSuffix), 0o755); err != nil {
		t.Fatal(err)
	}
	sealed, err := l.OpenSealed(victim)
	if err == nil {
		sealed.Close()
		t.Fatalf("OpenSealed of a segment whose load failed: max timestamp %d, want an error", sealed.Info.MaxTimestamp)
	}
	if !errors.Is(err, syscall.EISDIR) {
		t.Fatalf("OpenSealed of a segment whose load failed: %v, want the load's error (EISDIR)", err)
	}
	if err := l.Failed(); !errors.Is(err, syscall.EISDIR) {
		t.Fatalf("log after a failed load: %v, want offline (EISDIR)", err)
	}
}
