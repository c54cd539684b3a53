// Package tmpfs gives tests a small filesystem of their own that fills up:
// a size-limited tmpfs mounted for the test's duration, where a write past
// its size fails with ENOSPC as on a full disk.
package tmpfs
