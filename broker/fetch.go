package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	partlog "github.com/strata-broker/strata/broker/log"
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
}

// FetchOptions bound a fetch as Kafka's fetch request does.
type FetchOptions struct {
	MaxBytes int32         // for the whole response; the first batch is always returned whole
	MinBytes int32         // wait until at least this much is available...
	MaxWait  time.Duration // ...or this long has passed
}

// defaultMaxBytes is the response bound when a request leaves it at zero,
// Kafka's fetch.max.bytes default.
const defaultMaxBytes = 50 << 20

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
	results := make([]FetchResult, len(parts))
	var deadline <-chan time.Time
	var wake chan struct{}
	for {
		total, anyErr := b.readAll(parts, opts.MaxBytes, results)
		if anyErr || total >= int(max(opts.MinBytes, 1)) || opts.MaxWait <= 0 {
			return results, nil
		}
		if wake == nil {
			wake = make(chan struct{}, 1)
			hosted := b.register(parts, wake)
			defer b.unregister(hosted, wake)
			timer := time.NewTimer(opts.MaxWait)
			defer timer.Stop()
			deadline = timer.C
			// An append may have landed between the read and registering.
			continue
		}
		select {
		case <-wake:
		case <-deadline:
			b.readAll(parts, opts.MaxBytes, results)
			return results, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (b *Broker) register(parts []FetchPartition, wake chan struct{}) []*Partition {
	var hosted []*Partition
	for _, fp := range parts {
		if p, err := b.partition(fp.Topic, fp.Partition); err == nil {
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
func (b *Broker) readAll(parts []FetchPartition, maxBytes int32, results []FetchResult) (int, bool) {
	budget := int(maxBytes)
	total := 0
	anyErr := false
	for i, fp := range parts {
		res := &results[i]
		*res = FetchResult{Topic: fp.Topic, Partition: fp.Partition, NextOffset: fp.Offset}
		p, err := b.partition(fp.Topic, fp.Partition)
		if err != nil {
			res.Err = err
			anyErr = true
			continue
		}
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
		rr, err := p.log.Read(fp.Offset, max(limit, 1), res.HighWatermark)
		if err != nil {
			res.Err = fmt.Errorf("fetch %s-%d at offset %d: %w", fp.Topic, fp.Partition, fp.Offset, err)
			anyErr = true
			var corrupt *partlog.CorruptionError
			if errors.As(err, &corrupt) {
				b.metrics.corruptReads.WithLabelValues(fp.Topic).Inc()
			}
			continue
		}
		res.Data = rr.Data
		if len(rr.Data) > 0 {
			res.NextOffset = rr.NextOffset
		}
		total += len(rr.Data)
		budget -= len(rr.Data)
		b.metrics.fetchBytes.WithLabelValues(fp.Topic).Add(float64(len(rr.Data)))
	}
	return total, anyErr
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
	p, err := b.partition(topicName, partition)
	if err != nil {
		return 0, 0, false, err
	}
	switch ts {
	case EarliestTimestamp:
		return p.LogStartOffset(), -1, true, nil
	case LatestTimestamp:
		return p.HighWatermark(), -1, true, nil
	}
	if ts < 0 {
		return 0, 0, false, fmt.Errorf("%w: timestamp %d (use -2 for earliest, -1 for latest)", ErrInvalidRequest, ts)
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
