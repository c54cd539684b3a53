package broker

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
)

// Acks is how much durability a producer waits for, as Kafka's acks setting.
type Acks int8

// Kafka's acks values.
const (
	AcksNone   Acks = 0
	AcksLeader Acks = 1
	AcksAll    Acks = -1
)

// PartitionBatches is the data for one partition of a produce request: one or
// more concatenated v2 record batches.
type PartitionBatches struct {
	Partition int32
	Batches   []byte
}

// ProduceResult is the outcome for one partition. Err is set per partition so
// that one partition's failure does not hide the others' offsets.
type ProduceResult struct {
	Partition      int32
	BaseOffset     int64
	LastOffset     int64
	Records        int
	LogStartOffset int64
	Err            error
}

// Produce appends each partition's batches to its log. The batches are
// validated (CRC, size) before anything is written; base offsets are stamped
// into the given buffers. With acks=all the call returns once the records are
// committed (with a single replica, once they are appended).
func (b *Broker) Produce(ctx context.Context, topicName string, acks Acks, parts []PartitionBatches) ([]ProduceResult, error) {
	return b.ProduceWithTimeout(ctx, topicName, acks, DefaultProduceTimeout, parts)
}

// DefaultProduceTimeout is how long acks=all waits for the ISR when the
// request does not say, Kafka's request.timeout.ms.
const DefaultProduceTimeout = 30 * time.Second

// ProduceWithTimeout is Produce with acks=all waiting at most timeout for the
// ISR to have the records (ErrRequestTimedOut after that: the records may
// still become committed). Each partition is checked to be led by this
// broker, and for acks=all to have at least min.insync.replicas in its ISR,
// before anything is written.
func (b *Broker) ProduceWithTimeout(ctx context.Context, topicName string, acks Acks, timeout time.Duration, parts []PartitionBatches) ([]ProduceResult, error) {
	return b.produce(ctx, "", topicName, acks, timeout, parts)
}

// ProduceTransactional is ProduceWithTimeout for a Kafka producer
// request that names its transactional id (Produce v3+): its
// transactional batches are verified with the transaction's state (see
// txnproduce.go). Without a transactional id they are refused.
func (b *Broker) ProduceTransactional(ctx context.Context, transactionalID, topicName string, acks Acks, timeout time.Duration, parts []PartitionBatches) ([]ProduceResult, error) {
	return b.produce(ctx, transactionalID, topicName, acks, timeout, parts)
}

func (b *Broker) produce(ctx context.Context, txnID, topicName string, acks Acks, timeout time.Duration, parts []PartitionBatches) ([]ProduceResult, error) {
	if timeout <= 0 {
		timeout = DefaultProduceTimeout
	}
	if acks != AcksNone && acks != AcksLeader && acks != AcksAll {
		return nil, fmt.Errorf("%w: acks must be 0, 1 or all (-1), got %d", ErrInvalidRequest, acks)
	}
	if IsInternalTopic(topicName) {
		// Kafka appends to its internal topics only on its own behalf.
		return nil, fmt.Errorf("%w: cannot append to internal topic %s", ErrInvalidTopic, topicName)
	}
	tcfg, err := b.hosted.TopicConfig(topicName)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	// The partitions appended to, by result: acks=all waits on the very
	// replicas it appended to, without looking them up again.
	appended := make([]*Partition, len(parts))
	epochs := make([]int32, len(parts))
	results := make([]ProduceResult, len(parts))
	appendOne := func(i int, sums *produceSums) {
		pb := parts[i]
		res := &results[i]
		res.Partition = pb.Partition
		p, err := b.hosted.leaderPartition(topicName, pb.Partition)
		if err != nil {
			res.Err = err
			return
		}
		if len(pb.Batches) == 0 {
			res.Err = fmt.Errorf("%w: no record batches for partition %d", ErrInvalidRequest, pb.Partition)
			return
		}
		// Made-up producer ids are refused before their records are decoded.
		if err := b.checkProducerIDs(ctx, pb.Batches); err != nil {
			res.Err = fmt.Errorf("produce to %s-%d: %w", topicName, pb.Partition, err)
			sums.failed++
			return
		}
		if err := b.checkProduced(ctx, pb.Batches, txnID != "", tcfg.CompactEnabled(), int(tcfg.MaxMessageBytes)); err != nil {
			res.Err = fmt.Errorf("produce to %s-%d: %w", topicName, pb.Partition, err)
			sums.failed++
			return
		}
		var guards map[int64]*txnGuard
		if txnID != "" {
			if guards, err = b.verifyTransactional(ctx, p, txnID, pb.Batches); err != nil {
				res.Err = fmt.Errorf("produce to %s-%d: %w", topicName, pb.Partition, err)
				sums.failed++
				return
			}
		}
		ar, epoch, err := p.leaderAppendVerified(pb.Batches, acks, int(tcfg.MinInsyncReplicas), b.leaseOK, b.registered(), guards)
		if err != nil {
			b.offline.check(p, err)
			res.Err = fmt.Errorf("produce to %s-%d: %w", topicName, pb.Partition, err)
			sums.failed++
			return
		}
		appended[i], epochs[i] = p, epoch
		res.BaseOffset, res.LastOffset, res.Records = ar.FirstOffset, ar.LastOffset, ar.Records
		res.LogStartOffset = p.LogStartOffset()
		sums.bytes += len(pb.Batches)
		sums.records += ar.Records
	}
	// A request spread over many partitions is appended by several
	// goroutines: a connection's requests are served one at a time, and a
	// single goroutine making a write system call for each of a thousand
	// partitions would leave the other cores idle while the client waits.
	// A partition named twice goes to one goroutine, which keeps its
	// batches in the request's order.
	workers := min(runtime.GOMAXPROCS(0), len(parts)/producePartitionsPerWorker)
	sums := make([]produceSums, max(workers, 1))
	if workers <= 1 {
		for i := range parts {
			appendOne(i, &sums[0])
		}
	} else {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range parts {
					if int(uint32(parts[i].Partition))%workers == w {
						appendOne(i, &sums[w])
					}
				}
			}()
		}
		wg.Wait()
	}
	// The counters are added once per request: a request spread over
	// thousands of partitions would otherwise look its series up for
	// every one of them.
	var bytes, records, failed int
	for _, s := range sums {
		bytes, records, failed = bytes+s.bytes, records+s.records, failed+s.failed
	}
	if failed > 0 {
		b.metrics.produceErrors.WithLabelValues(topicName).Add(float64(failed))
	}
	if bytes > 0 {
		b.metrics.produceBytes.WithLabelValues(topicName).Add(float64(bytes))
		b.metrics.produceRecords.WithLabelValues(topicName).Add(float64(records))
	}
	if acks == AcksAll {
		// All partitions were appended first, so they replicate in parallel.
		for i := range results {
			res := &results[i]
			p := appended[i]
			if p == nil {
				continue
			}
			err := p.waitCommitted(ctx, res.LastOffset, epochs[i], int(tcfg.MinInsyncReplicas), max(time.Until(start.Add(timeout)), 0))
			if err != nil {
				res.Err = fmt.Errorf("produce to %s-%d: %w", topicName, res.Partition, err)
			}
		}
	}
	b.metrics.produceLatency.Observe(time.Since(start).Seconds())
	return results, nil
}

// producePartitionsPerWorker is how many partitions of a request each
// goroutine appending them gets at least: a goroutine costs about what
// appending one batch does, so a request of a few partitions is appended
// by the goroutine serving it.
const producePartitionsPerWorker = 64

// produceSums is what one goroutine appending a request's partitions
// counts for the produce metrics.
type produceSums struct {
	bytes, records, failed int
}

// EncodeRecords builds one uncompressed v2 batch from structured records, for
// frontends that receive records rather than batches. Zero timestamps become
// the broker's clock.
func (b *Broker) EncodeRecords(recs []record.Record) ([]byte, error) {
	if len(recs) == 0 {
		return nil, fmt.Errorf("%w: no records", ErrInvalidRequest)
	}
	now := b.now().UnixMilli()
	base := recs[0].Timestamp
	if base == 0 {
		base = now
	}
	size := 0
	for i := range recs {
		size += record.RecordSize(&recs[i], 0, int32(i)) + 8
	}
	bld := record.NewBuilder(base, size)
	for i := range recs {
		r := recs[i]
		if r.Timestamp == 0 {
			r.Timestamp = now
		}
		bld.Append(&r)
	}
	out, err := bld.Build(record.None)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	return out, nil
}

// KeyPartition picks the partition for a record the way Kafka's default
// partitioner does: murmur2 of a non-null key; unkeyed records go to next.
func (b *Broker) KeyPartition(topicName string, key []byte, next func(n int32) int32) (int32, error) {
	n, err := b.hosted.PartitionCount(topicName)
	if err != nil {
		return 0, err
	}
	if key == nil {
		return next(n), nil
	}
	return record.KeyPartition(key, n), nil
}

// checkProduced applies the rules Kafka applies to batches from producers, on
// top of the log's own checks (magic, length, CRC, size): no control batches,
// transactional batches only in a request naming a transactional id, and records whose offset deltas run 0..count-1 with nothing left over, so
// that the offsets a batch takes are exactly its records. Records are read
// (decompressed if need be, as a stream, see inflation) to prove it: a batch
// that fails here would fail every consumer later. A batch larger than
// max.message.bytes is refused before that, and one whose records inflate
// past inflateLimit as soon as they do. With needKeys (a compacted topic)
// every record must have a key, as Kafka requires: compaction keeps the
// latest record per key and has nothing to go by without one.
func (b *Broker) checkProduced(ctx context.Context, batches []byte, transactional, needKeys bool, maxMessageBytes int) error {
	limit := inflateLimit(maxMessageBytes)
	it := record.NewBatches(batches)
	for i := 0; it.Next(); i++ {
		h := it.Header()
		if _, err := record.Validate(it.Bytes()); err != nil {
			return fmt.Errorf("batch %d: %w", i, err)
		}
		if h.Size() > maxMessageBytes {
			return &partlog.RecordTooLargeError{Batch: i, Size: h.Size(), Max: maxMessageBytes}
		}
		if h.Control() {
			return fmt.Errorf("batch %d: %w", i, &record.CorruptError{Reason: "control batches cannot be produced by clients"})
		}
		if h.Transactional() && !transactional {
			// Its transaction could not be verified (txnproduce.go).
			return fmt.Errorf("batch %d: producer %d: a transactional batch in a request that names no transactional id: %w",
				i, h.ProducerID, ErrInvalidRequest)
		}
		if h.Transactional() && h.ProducerID < 0 {
			return fmt.Errorf("batch %d: %w", i, &record.CorruptError{Reason: "transactional batch without a producer id"})
		}
		if int64(h.LastOffsetDelta) != int64(h.RecordCount)-1 {
			return fmt.Errorf("batch %d: %w", i, &record.CorruptError{
				Reason: fmt.Sprintf("last offset delta %d does not match %d records", h.LastOffsetDelta, h.RecordCount)})
		}
		n := int64(0)
		scan := func() error {
			return record.Scan(it.Bytes(), limit, func(r *record.RecordInfo) error {
				if r.Offset-h.BaseOffset != n {
					return &record.CorruptError{Reason: fmt.Sprintf("record %d has offset delta %d", n, r.Offset-h.BaseOffset)}
				}
				if needKeys && r.KeySize < 0 {
					return fmt.Errorf("%w: record %d has no key; a compacted topic (cleanup.policy=compact) accepts only records with keys", ErrInvalidRecord, n)
				}
				n++
				return nil
			})
		}
		var err error
		if h.Compression() == record.None {
			err = scan()
		} else {
			err = b.inflate.do(ctx, scan)
		}
		var tooLarge *record.InflatedTooLargeError
		if errors.As(err, &tooLarge) {
			return fmt.Errorf("batch %d: %w (%d times max.message.bytes)", i, err, inflationFactor)
		}
		if err != nil {
			return fmt.Errorf("batch %d: %w", i, err)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("record batches: %w", err)
	}
	return nil
}
