package topicconfig

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestLogDirFailureRetry(t *testing.T) {
	for _, c := range []struct {
		raw  string // "" for unset
		want time.Duration
	}{
		{"", DefaultLogDirFailureRetry},
		{"100", 100 * time.Millisecond},
		{" 2500 ", 2500 * time.Millisecond},
		{"3600000", time.Hour},
	} {
		settings := map[string]string{}
		if c.raw != "" {
			settings["log.dir.failure.retry.ms"] = c.raw
		}
		got, err := LogDirFailureRetry(settings)
		if err != nil || got != c.want {
			t.Errorf("log.dir.failure.retry.ms=%q: %v, %v; want %v", c.raw, got, err, c.want)
		}
	}
	for _, raw := range []string{"99", "0", "-1", "3600001", "5s", ""} {
		_, err := LogDirFailureRetry(map[string]string{"log.dir.failure.retry.ms": raw})
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "log.dir.failure.retry.ms") {
			t.Errorf("log.dir.failure.retry.ms=%q: %v, want an invalid config error naming the key", raw, err)
		}
	}
}
