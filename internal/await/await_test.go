package await

import (
	"errors"
	"testing"
	"time"
)

func TestPollReturnsOnceConditionHolds(t *testing.T) {
	calls := 0
	err := Poll(time.Minute, func() error {
		calls++
		if calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("Poll = %v after %d calls, want nil after 3", err, calls)
	}
}

func TestPollReportsLastErrorAfterTimeout(t *testing.T) {
	last := errors.New("broker 2 not in ISR")
	err := Poll(30*time.Millisecond, func() error { return last })
	if !errors.Is(err, last) {
		t.Fatalf("Poll = %v, want it to wrap %v", err, last)
	}
}
