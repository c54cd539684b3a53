package partlog

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// After a clean shutdown the recovery point already says where the log
// ends: opening it does not write the checkpoint again.
func TestCleanOpenKeepsTheRecoveryPointFile(t *testing.T) {
	e := newEnv(t, Config{})
	l := e.open()
	newWriter(t, l).appendMany(4, 2, 50)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rp := filepath.Join(e.dir, recoveryPointFile)
	before := inode(t, rp)
	l = e.open()
	if after := inode(t, rp); after != before {
		t.Fatalf("the recovery point file was replaced (inode %d, then %d) although it did not change", before, after)
	}
	// A crash, not a clean shutdown: the recovery point is behind the log
	// end. A recovery this small keeps it there (scanning again costs less
	// than making the scanned bytes durable); the first flush moves it.
	newWriter(t, l).append(3, 10)
	crashed := t.TempDir()
	copyDir(t, e.dir, crashed)
	e2 := &env{t: t, dir: crashed, cfg: e.cfg, clock: e.clock, logs: &logBuffer{}, files: NewFileCache(envOpenFiles)}
	l2 := e2.open()
	kept, err := readCheckpoint(crashed, recoveryPointFile)
	if err != nil || kept >= l2.LogEndOffset() {
		t.Fatalf("recovery point after a small recovery %d, %v; want it kept below the log end %d", kept, err, l2.LogEndOffset())
	}
	if err := l2.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, err := readCheckpoint(crashed, recoveryPointFile); err != nil || got != l2.LogEndOffset() {
		t.Fatalf("recovery point after a flush %d, %v; want the log end %d", got, err, l2.LogEndOffset())
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		t.Skip("no inode numbers on this system")
	}
	return sys.Ino
}
