package compaction

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-broker/strata/partlog"
)

// Replica is a partition replica its broker hosts, as the local workers
// (RetentionWorker, CleanerWorker) see it.
type Replica interface {
	// Name is the replica's topic and partition, for logs and metric labels.
	Name() (topic string, partition int32)
	Log() *partlog.Log
	// HighWatermark bounds what the workers may delete or rewrite: records
	// above it are not committed yet.
	HighWatermark() int64
}

// lastStableOffset is r's last stable offset, as
// broker.Partition.LastStableOffset computes it: neither retention nor the
// cleaner goes past it.
func lastStableOffset(r Replica) int64 {
	return r.Log().LastStableOffset(r.HighWatermark())
}

// LeaderReplica is a Replica that retention may shorten, which only its
// leader may do.
type LeaderReplica interface {
	Replica
	// LeaderEpoch is the epoch in which the broker leads the replica; ok is
	// false when it does not, or cannot trust its lease to.
	LeaderEpoch() (epoch int32, ok bool)
	// RetainBelow deletes the log's segments below offset if the broker
	// still leads in epoch, and otherwise returns an error wrapping
	// ErrLeadershipLost.
	RetainBelow(offset int64, epoch int32) error
}

// ErrLeadershipLost is what LeaderReplica.RetainBelow wraps when the broker
// was deposed since retention decided: the new leader decides in its turn,
// so the worker skips the replica quietly.
var ErrLeadershipLost = errors.New("compaction: leadership lost")

// errRunning is Run's answer to a second call while the first runs: two
// loops would act on the same logs and metrics at once.
var errRunning = errors.New("compaction: worker already running")

// lifecycle lets a worker's Close stop the Run its owner started on another
// goroutine and wait for it, whichever of the two comes first.
type lifecycle struct {
	mu     sync.Mutex
	closed bool
	// cancel and done are the running Run's, nil when none runs.
	cancel context.CancelFunc
	done   chan struct{}
}

// run calls fn with a ctx that ends with ctx or at close, and returns when
// fn does; after close it returns at once.
func (l *lifecycle) run(ctx context.Context, fn func(ctx context.Context)) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	if l.cancel != nil {
		l.mu.Unlock()
		return errRunning
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	l.cancel, l.done = cancel, done
	l.mu.Unlock()
	defer func() {
		cancel()
		l.mu.Lock()
		l.cancel, l.done = nil, nil
		l.mu.Unlock()
		close(done)
	}()
	fn(ctx)
	return nil
}

// close stops the current Run, if any, waits for it, and makes later ones
// return at once.
func (l *lifecycle) close() {
	l.mu.Lock()
	l.closed = true
	cancel, done := l.cancel, l.done
	l.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// register is MustRegister without the panic: a conflict is a
// configuration error for the constructor to return.
func register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	return nil
}
