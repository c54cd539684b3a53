package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	partlog "github.com/strata-broker/strata/broker/log"
	"github.com/strata-broker/strata/tiering"
)

// FetchPartition asks for one partition's records from Offset on.
type FetchPartition struct {
	Topic     string
	Partition int32
	Offset    int64
	MaxBytes  int32
}

// FetchResult is one partition's answer. Data holds whole v2 batches; the
// first may start before the requested offset.
type FetchResult struct {
	Topic          string
	Partition      int32
	HighWatermark  int64
	LogStartOffset int64
	Data           []byte
	NextOffset     int64
	Err            error

	// Buffer, when not nil, is the buffer from FetchOptions.Buffers that Data
	// was read into: Data is a prefix of it. The caller owns it: it may give
	// it back to the pool once nothing references Data any more, or leave it
	// to the garbage collector.
	Buffer *[]byte
}

// FetchOptions bound a fetch as Kafka's fetch request does.
type FetchOptions struct {
	MaxBytes int32         // for the whole response; the first batch is always returned whole
	MinBytes int32         // wait until at least this much is available...
	MaxWait  time.Duration // ...or this long has passed

	// Buffers, if not nil, supplies the buffers partitions are read into, so
	// that the caller can recycle them once the response is sent (see
	// FetchResult.Buffer). Nil: they are allocated and left to the garbage
	// collector.
	Buffers BufferPool
}

// BufferPool supplies read buffers. gRPC's mem.BufferPool has this shape.
type BufferPool interface {
	// Get returns a buffer of length n. Its contents need not be zeroed:
	// a read overwrites every byte it returns.
	Get(n int) *[]byte
	// Put gives back a buffer that Get returned, once nothing references
	// it; its length may have changed.
	Put(*[]byte)
}

// defaultMaxBytes is the response bound when a request leaves it at zero,
// Kafka's fetch.max.bytes default.
const defaultMaxBytes = 50 << 20

// maxFetchBytes caps a response's byte bound below the frontends' largest
// message (100 MiB), leaving room for one first batch larger than the bound.
const maxFetchBytes = 64 << 20

// Fetch reads from each partition. It returns at once when MinBytes are
// available (or on any partition error), otherwise it waits for appends until
// MaxWait or ctx ends, then returns what there is.
func (b *Broker) Fetch(ctx context.Context, parts []FetchPartition, opts FetchOptions) ([]FetchResult, error) {
	if len(parts) == 0 {
		return nil, fmt.Errorf("%w: fetch names no partitions", ErrInvalidRequest)
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = defaultMaxBytes
	}
	// A response must fit in one gRPC message; a larger bound would only make
	// the broker read what it cannot send.
	opts.MaxBytes = min(opts.MaxBytes, maxFetchBytes)
	results := make([]FetchResult, len(parts))
	var deadline <-chan time.Time
	var wake chan struct{}
	var hosted []*Partition
	for {
		total, anyErr := b.readAll(ctx, parts, opts, results)
		if anyErr || total >= int(max(opts.MinBytes, 1)) || opts.MaxWait <= 0 {
			return results, nil
		}
		if wake == nil {
			wake = make(chan struct{}, 1)
			hosted = b.register(parts, wake)
			defer func() { b.unregister(hosted, wake) }()
			timer := time.NewTimer(opts.MaxWait)
			defer timer.Stop()
			deadline = timer.C
			// An append may have landed between the read and registering.
			continue
		}
		select {
		case <-wake:
			// A wake-up may come from a partition being deleted; if the topic
			// exists again, the new partition is the one to wait on.
			b.unregister(hosted, wake)
			hosted = b.register(parts, wake)
		case <-deadline:
			b.readAll(ctx, parts, opts, results)
			return results, nil
		case <-b.draining:
			// Shutting down: answer with what there is rather than hold the
			// listener's graceful stop for MaxWait.
			b.readAll(ctx, parts, opts, results)
			return results, nil
		case <-ctx.Done():
			for _, res := range results {
				if res.Buffer != nil { // never handed out
					opts.Buffers.Put(res.Buffer)
				}
			}
			return nil, ctx.Err()
		}
	}
}

func (b *Broker) register(parts []FetchPartition, wake chan struct{}) []*Partition {
	return b.registerWaiter(len(parts), func(i int) (string, int32) { return parts[i].Topic, parts[i].Partition }, wake)
}

// registerWaiter adds wake to the waiters of the n hosted partitions that
// name gives, and returns them.
func (b *Broker) registerWaiter(n int, name func(i int) (string, int32), wake chan struct{}) []*Partition {
	var hosted []*Partition
	for i := range n {
		if p, err := b.partition(name(i)); err == nil {
			p.addWaiter(wake)
			hosted = append(hosted, p)
		}
	}
	return hosted
}

func (b *Broker) unregister(hosted []*Partition, wake chan struct{}) {
	for _, p := range hosted {
		p.removeWaiter(wake)
	}
}

// readAll reads every partition into results and returns the bytes read and
// whether any partition failed.
func (b *Broker) readAll(ctx context.Context, parts []FetchPartition, opts FetchOptions, results []FetchResult) (int, bool) {
	budget := int(opts.MaxBytes)
	total := 0
	anyErr := false
	for i, fp := range parts {
		res := &results[i]
		if res.Buffer != nil {
			// A result of an earlier round of the long poll, which nobody
			// outside Fetch has seen: its buffer can be reused at once.
			opts.Buffers.Put(res.Buffer)
		}
		*res = FetchResult{Topic: fp.Topic, Partition: fp.Partition, NextOffset: fp.Offset}
		p, err := b.leaderPartition(fp.Topic, fp.Partition)
		if err != nil {
			res.Err = err
			anyErr = true
			continue
		}
		b.ensureRemote(ctx, p)
		res.HighWatermark = p.HighWatermark()
		res.LogStartOffset = p.LogStartOffset()
		limit := int(fp.MaxBytes)
		if limit <= 0 || limit > budget {
			limit = budget
		}
		if total > 0 && limit <= 0 {
			// The response is full; the rest waits for the next fetch. The first
			// partition with data always gets a batch, however large.
			continue
		}
		if fp.Offset < res.LogStartOffset {
			// Deleted (retention, DeleteRecords), even if a crash left the
			// local log start behind the bucket's.
			res.Err = fmt.Errorf("fetch %s-%d: %w", fp.Topic, fp.Partition,
				&partlog.OffsetOutOfRangeError{Offset: fp.Offset, Start: res.LogStartOffset, End: res.HighWatermark})
			anyErr = true
			continue
		}
		var (
			rr     partlog.ReadResult
			buf    *[]byte
			remote bool
		)
		if fp.Offset < p.log.LogStartOffset() {
			// Below the local log: the object store has it.
			var tr tiering.ReadResult
			tr, buf, remote, err = b.remoteRead(ctx, p, fp.Offset, max(limit, 1), opts.Buffers)
			rr = partlog.ReadResult{Data: tr.Data, NextOffset: tr.NextOffset}
		}
		if !remote {
			rr, buf, err = readLog(p.log, fp.Offset, max(limit, 1), res.HighWatermark, opts.Buffers)
		}
		if err != nil {
			from := ""
			if remote {
				from = " from the object store"
			}
			res.Err = fmt.Errorf("fetch %s-%d at offset %d%s: %w", fp.Topic, fp.Partition, fp.Offset, from, err)
			anyErr = true
			var corrupt *partlog.CorruptionError
			if errors.As(err, &corrupt) || errors.Is(err, tiering.ErrCorrupt) {
				b.metrics.corruptReads.WithLabelValues(fp.Topic).Inc()
			}
			continue
		}
		res.Data, res.Buffer = rr.Data, buf
		if len(rr.Data) > 0 {
			res.NextOffset = rr.NextOffset
		}
		total += len(rr.Data)
		budget -= len(rr.Data)
		b.metrics.fetchBytes.WithLabelValues(fp.Topic).Add(float64(len(rr.Data)))
	}
	return total, anyErr
}

// readLog reads from l, into buffers from pool if it is not nil, and returns
// the buffer that the result's Data is a prefix of (nil if none). Other
// buffers the read took (the log may need a larger one, or read again past
// damage) go straight back to the pool; after an error, all are left to the
// garbage collector.
func readLog(l *partlog.Log, offset int64, maxBytes int, maxOffset int64, pool BufferPool) (partlog.ReadResult, *[]byte, error) {
	if pool == nil {
		rr, err := l.Read(offset, maxBytes, maxOffset)
		return rr, nil, err
	}
	var taken []*[]byte
	rr, err := l.ReadInto(offset, maxBytes, maxOffset, func(n int) []byte {
		b := pool.Get(n)
		taken = append(taken, b)
		return *b
	})
	if err != nil {
		return rr, nil, err
	}
	var kept *[]byte
	if len(rr.Data) > 0 {
		// ReadInto returns a prefix of the last buffer it took. Check rather
		// than trust: a buffer wrongly given back would be overwritten while
		// still in use.
		if len(taken) == 0 {
			return rr, nil, nil
		}
		last := taken[len(taken)-1]
		if cap(*last) < len(rr.Data) || &(*last)[:1][0] != &rr.Data[0] {
			return rr, nil, nil
		}
		kept, taken = last, taken[:len(taken)-1]
	}
	for _, b := range taken {
		pool.Put(b)
	}
	return rr, kept, nil
}

// OffsetSpec values for ListOffsets, as in Kafka.
const (
	LatestTimestamp   int64 = -1
	EarliestTimestamp int64 = -2
)

// ListOffset finds an offset by time: EarliestTimestamp gives the log start,
// LatestTimestamp the high watermark, otherwise the first offset whose
// timestamp is at or after ts (found=false when there is none).
func (b *Broker) ListOffset(topicName string, partition int32, ts int64) (offset, timestamp int64, found bool, err error) {
	p, err := b.leaderPartition(topicName, partition)
	if err != nil {
		return 0, 0, false, err
	}
	b.ensureRemote(context.Background(), p)
	switch ts {
	case EarliestTimestamp:
		return p.LogStartOffset(), -1, true, nil
	case LatestTimestamp:
		return p.HighWatermark(), -1, true, nil
	}
	if ts < 0 {
		return 0, 0, false, fmt.Errorf("%w: timestamp %d (use -2 for earliest, -1 for latest)", ErrInvalidRequest, ts)
	}
	// Records only in the object store come first: a timestamp one of them
	// reaches is answered from there.
	if off, got, ok, err := b.remoteOffsetForTimestamp(context.Background(), p, ts); err != nil || ok {
		if err != nil {
			return 0, 0, false, fmt.Errorf("list offsets %s-%d: %w", topicName, partition, err)
		}
		return off, got, ok, nil
	}
	off, got, ok, err := p.log.OffsetForTimestamp(ts)
	if err != nil {
		return 0, 0, false, fmt.Errorf("list offsets %s-%d: %w", topicName, partition, err)
	}
	if ok && off >= p.HighWatermark() {
		return 0, 0, false, nil
	}
	return off, got, ok, nil
}
