package rlm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/tiering"
)

// ReadError is a read of the object store for a fetch or an offset lookup
// that failed for want of the store: it was down or unreachable, answered
// with an error, or lacked an object the manifest names. Unlike damaged
// data, it may succeed when tried again, once the store is back: the broker
// tells clients to retry.
type ReadError struct {
	Topic     string
	Partition int32
	// Offset is the offset read; -1 when the partition's manifest was
	// being read.
	Offset int64
	Err    error
}

func (e *ReadError) Error() string {
	if e.Offset < 0 {
		return fmt.Sprintf("read the manifest of %s-%d from the object store: %v", e.Topic, e.Partition, e.Err)
	}
	return fmt.Sprintf("read %s-%d at offset %d from the object store: %v", e.Topic, e.Partition, e.Offset, e.Err)
}

func (e *ReadError) Unwrap() error { return e.Err }

// readFailed turns an error of a read of the store into a *ReadError,
// counted and logged. What is not the store's failure passes through: the
// caller's own end, damaged data, an offset outside the bucket's records.
func (p *Partition) readFailed(ctx context.Context, offset int64, err error) error {
	var oor *partlog.OffsetOutOfRangeError
	if err == nil || ctx.Err() != nil || errors.Is(err, tiering.ErrCorrupt) || errors.As(err, &oor) {
		return err
	}
	re := &ReadError{Topic: p.tp.Topic, Partition: p.tp.Partition, Offset: offset, Err: err}
	p.m.readFailures.note(re, p.m.env.now())
	return re
}

// readFailureLogInterval spaces out the log lines of failed remote reads:
// while the store is down every fetch below the local log fails, and the
// broker says so once in a while with a count, not once per fetch.
const readFailureLogInterval = 10 * time.Second

// readFailures counts failed remote reads and logs them, at most one line
// per readFailureLogInterval.
type readFailures struct {
	logger *slog.Logger
	count  func(topic string) // the metric; nil without a store

	mu         sync.Mutex
	lastLogged time.Time
	suppressed int
}

func (f *readFailures) note(re *ReadError, now time.Time) {
	if f.count != nil {
		f.count(re.Topic)
	}
	f.mu.Lock()
	if !f.lastLogged.IsZero() && now.Sub(f.lastLogged) < readFailureLogInterval {
		f.suppressed++
		f.mu.Unlock()
		return
	}
	suppressed := f.suppressed
	f.lastLogged, f.suppressed = now, 0
	f.mu.Unlock()
	f.logger.Warn("tiering: remote read failed; clients are told to retry",
		"topic", re.Topic, "partition", re.Partition, "offset", re.Offset, "err", re.Err,
		"failures_not_logged", suppressed)
}
