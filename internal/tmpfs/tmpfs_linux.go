package tmpfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// Mount mounts a tmpfs of size bytes at dir (created if missing) and
// unmounts it when the test ends. It skips the test where mounting is not
// permitted (the test is not root, or lacks CAP_SYS_ADMIN in a container).
// Cleanups run last-in first-out: whatever writes to dir must be stopped by
// a cleanup registered after Mount.
func Mount(t testing.TB, dir string, size int64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("tmpfs: %v", err)
	}
	err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d,mode=0755", size))
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		t.Skipf("cannot mount a tmpfs at %s: %v", dir, err)
	}
	if err != nil {
		t.Fatalf("tmpfs: mount at %s: %v", dir, err)
	}
	t.Cleanup(func() {
		// Detached: a file some process still holds open must not keep
		// the mount, and the temporary directory under it, in place.
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("tmpfs: unmount %s: %v", dir, err)
		}
	})
}

// Available returns the bytes that can still be written under dir.
func Available(t testing.TB, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatalf("tmpfs: statfs %s: %v", dir, err)
	}
	return int64(st.Bavail) * st.Bsize
}

// Fill writes a file at path that leaves about leave bytes free on its
// filesystem, and returns its size. Removing the file gives the space back.
func Fill(t testing.TB, path string, leave int64) int64 {
	t.Helper()
	n := Available(t, filepath.Dir(path)) - leave
	if n <= 0 {
		return 0
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatalf("tmpfs: %v", err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	var written int64
	for written < n {
		m, err := f.Write(chunk[:min(int64(len(chunk)), n-written)])
		written += int64(m)
		if err != nil {
			t.Fatalf("tmpfs: fill %s: %v after %d bytes", path, err, written)
		}
	}
	return written
}
