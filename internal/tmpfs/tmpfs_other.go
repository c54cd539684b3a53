//go:build !linux

package tmpfs

import "testing"

// Mount skips the test: mounting a tmpfs is Linux's.
func Mount(t testing.TB, dir string, size int64) {
	t.Helper()
	t.Skip("tmpfs: mounting a tmpfs needs Linux")
}

// Available is never reached: Mount skipped the test.
func Available(t testing.TB, dir string) int64 {
	t.Helper()
	t.Fatal("tmpfs: not on Linux")
	return 0
}

// Fill is never reached: Mount skipped the test.
func Fill(t testing.TB, path string, leave int64) int64 {
	t.Helper()
	t.Fatal("tmpfs: not on Linux")
	return 0
}
