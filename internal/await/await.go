// Package await is the project's one way for a test to wait for a condition:
// it polls with a deadline instead of sleeping, so a test is as fast as the
// system under test and fails with what it was waiting for, never hangs.
package await

import (
	"fmt"
	"testing"
	"time"
)

// DefaultTimeout bounds a wait when the caller has no better figure. It is
// generous because the suite runs under -race on two shared cores; a
// condition that holds returns at the first poll after it does.
const DefaultTimeout = 30 * time.Second

// interval between polls: short enough not to slow tests, long enough that a
// condition doing RPCs does not load the broker it is waiting on.
const interval = 10 * time.Millisecond

// True polls cond until it returns true, and fails the test if it has not
// within timeout.
func True(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	NoError(t, timeout, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

// NoError polls cond until it returns nil, and fails the test with cond's
// last error if it has not within timeout.
func NoError(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := Poll(timeout, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// Poll calls cond until it returns nil or timeout passes, and returns nil or
// cond's last error. It is for helpers that must not fail the test from their
// own goroutine (t.Fatal is only allowed on the test's).
func Poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("not within %v: %w", timeout, err)
		}
		time.Sleep(interval)
	}
}

var errNotYet = notYet{}

type notYet struct{}

func (notYet) Error() string { return "condition still false" }
