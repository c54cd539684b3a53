package client

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultLeaderCheckInterval is how long a produce or fetch call may go
// unanswered before the client asks the cluster whether the broker still
// leads the call's partitions (ProducerOptions.LeaderCheckInterval,
// ConsumerOptions.LeaderCheckInterval).
//
// A leader that stops answering without closing its connections (a paused
// process, a network partition) is replaced in about the broker session
// timeout (2 s by default), but nothing fails the calls waiting on it
// before their own timeout (30 s for produce). Brokers answer a produce
// within milliseconds when healthy, even acks=all ones, so a second of
// silence is worth one Metadata request, and a check every second finds
// the successor within a second of its election.
const DefaultLeaderCheckInterval = time.Second

// leaderSource is what a leader watch needs of the cluster; *Client is the
// one outside tests.
type leaderSource interface {
	// leaderEpochOf returns a partition's leader (noLeader when none) and
	// leader epoch in the cached metadata; it must not block.
	leaderEpochOf(topic string, partition int32) (leader, epoch int32)
	// refreshMetadataAvoiding makes the cached metadata of topics at least
	// as new as since, asking node last.
	refreshMetadataAvoiding(ctx context.Context, topics []string, since time.Time, node int32) error
}

// leaderMovedError ends a call that a leader watch abandoned: its broker
// had not answered for a while, and the metadata says it no longer leads
// one of the call's partitions. It carries codes.Unavailable, so the call is
// retried where the partitions are led now.
type leaderMovedError struct {
	node      int32
	topic     string
	partition int32
	// leader and epoch are the partition's in the metadata that showed the
	// move; epoch is the one the call was sent under.
	leader, epoch, sentEpoch int32
	silent                   time.Duration
}

func (e *leaderMovedError) Error() string {
	now := fmt.Sprintf("broker %d leads it at epoch %d", e.leader, e.epoch)
	if e.leader == noLeader {
		now = fmt.Sprintf("it has no leader (epoch %d)", e.epoch)
	}
	return fmt.Sprintf("broker %d did not answer for %v and lost the leadership of topic %q partition %d (sent at leader epoch %d; %s): call abandoned",
		e.node, e.silent.Round(time.Millisecond), e.topic, e.partition, e.sentEpoch, now)
}

// GRPCStatus makes the error a codes.Unavailable one: the broker is, as far
// as the call is concerned, unreachable.
func (e *leaderMovedError) GRPCStatus() *status.Status {
	return status.New(codes.Unavailable, e.Error())
}

// watchedPartition is a partition of a watched call with the leader epoch
// the call was sent under.
type watchedPartition struct {
	id    int32
	epoch int32
}

// leaderWatch follows one call to a broker while it is outstanding. Once the
// call has shown no sign of life for the interval (no answer to a request;
// no message on a stream), and every interval after that while it stays
// silent, it refreshes the metadata through the client's shared rounds,
// asking the silent broker last. If the broker no longer leads one of the
// call's partitions, or leads it at a higher epoch (it lost the leadership
// in between), the watch cancels the call with a *leaderMovedError as the
// cause. Otherwise the call goes on: a slow leader is not abandoned.
//
// The watch costs nothing until the interval passes: its goroutine starts
// then, from a timer. The caller owns it and ends it with stop.
type leaderWatch struct {
	src      leaderSource
	node     int32
	topic    string
	parts    []watchedPartition
	interval time.Duration
	// ctx is the call's context, which bounds the watch's refreshes too;
	// abort cancels it.
	ctx   context.Context
	abort context.CancelCauseFunc
	// active is when the call last showed its broker alive (Unix
	// nanoseconds): when it was sent, or its stream's latest message.
	active atomic.Int64
	timer  *time.Timer
	// done is closed when run returns; moved is set before, when the watch
	// abandoned the call.
	done  chan struct{}
	moved *leaderMovedError
}

// startLeaderWatch starts watching a call to node about some partitions of
// topic; ctx is the call's context and abort cancels it. The partitions'
// epochs are taken from the cached metadata, which the call was routed by.
// It returns nil (a watch that does nothing) when interval is not positive.
func startLeaderWatch(ctx context.Context, abort context.CancelCauseFunc, src leaderSource, node int32, topic string, partitions []int32, interval time.Duration) *leaderWatch {
	if interval <= 0 {
		return nil
	}
	w := &leaderWatch{
		src:      src,
		node:     node,
		topic:    topic,
		parts:    make([]watchedPartition, len(partitions)),
		interval: interval,
		ctx:      ctx,
		abort:    abort,
		done:     make(chan struct{}),
	}
	for i, p := range partitions {
		_, epoch := src.leaderEpochOf(topic, p)
		w.parts[i] = watchedPartition{id: p, epoch: epoch}
	}
	w.active.Store(time.Now().UnixNano())
	w.timer = time.AfterFunc(interval, w.run)
	return w
}

// touch records that the call's broker just answered (a stream message), so
// the watch stays quiet for another interval.
func (w *leaderWatch) touch() {
	if w != nil {
		w.active.Store(time.Now().UnixNano())
	}
}

// stop ends the watch, cancelling the call's context if it is still live
// (so call it once the call is over), and waits for a check in progress.
// It returns the error the watch abandoned the call with, nil if it did not.
func (w *leaderWatch) stop() *leaderMovedError {
	if w == nil {
		return nil
	}
	w.abort(context.Canceled)
	if w.timer.Stop() {
		return nil // run never started
	}
	<-w.done
	return w.moved
}

func (w *leaderWatch) run() {
	defer close(w.done)
	topics := []string{w.topic}
	for w.ctx.Err() == nil {
		silent := time.Since(time.Unix(0, w.active.Load()))
		if silent < w.interval {
			if sleepCtx(w.ctx, w.interval-silent) != nil {
				return
			}
			continue
		}
		// Metadata from half an interval ago is newer than the silence,
		// and lets the watches of concurrent calls share one request.
		since := time.Now().Add(-w.interval / 2)
		err := w.src.refreshMetadataAvoiding(w.ctx, topics, since, w.node)
		if w.ctx.Err() != nil {
			return
		}
		if err == nil {
			if moved := w.check(); moved != nil {
				moved.silent = time.Since(time.Unix(0, w.active.Load()))
				w.moved = moved
				w.abort(moved)
				return
			}
		}
		// A failed refresh is tried again next time: the cluster may
		// answer by then, and the call goes on meanwhile.
		if sleepCtx(w.ctx, w.interval) != nil {
			return
		}
	}
}

// check compares the cached metadata with what the call was sent under.
func (w *leaderWatch) check() *leaderMovedError {
	for _, p := range w.parts {
		leader, epoch := w.src.leaderEpochOf(w.topic, p.id)
		if leader != w.node || epoch > p.epoch {
			return &leaderMovedError{node: w.node, topic: w.topic, partition: p.id, leader: leader, epoch: epoch, sentEpoch: p.epoch}
		}
	}
	return nil
}
