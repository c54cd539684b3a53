//go:build !linux

package testenv

import (
	"errors"
	"testing"
)

// LimitMemory needs Linux's memory cgroups; elsewhere it skips the test.
func LimitMemory(t testing.TB, pid int, limit int64) {
	t.Helper()
	t.Skip("testenv: memory cgroups are Linux-only")
}

// Memory needs Linux's /proc.
func Memory(pid int) (rss, peak int64, err error) {
	return 0, 0, errors.New("testenv: process memory is read from Linux's /proc")
}
