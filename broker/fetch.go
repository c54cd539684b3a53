package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/tiering"
)

// FetchPartition asks for one partition's records from Offset on.
type FetchPartition struct {
	Topic     string
	Partition int32
	Offset    int64
	MaxBytes  int32
	// TopicID, when set, is the incarnation of Topic the client named (by
	// id): a topic deleted and created again under the same name is
	// another topic, answered with ErrUnknownTopicID.
	TopicID string
	// CheckLeaderEpoch fences the fetch with CurrentLeaderEpoch, the
	// partition's leader epoch as the client knows it (Kafka's
	// current_leader_epoch, KIP-320): an older one than this replica's is
	// ErrFencedLeaderEpoch, a newer one ErrUnknownLeaderEpoch, so that a
	// client with newer metadata does not read a deposed leader's log.
	CheckLeaderEpoch   bool
	CurrentLeaderEpoch int32
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
	// PreferredReadReplica, when not -1, is the replica the consumer is to
	// read the partition from instead (follower fetching); Data is empty.
	PreferredReadReplica int32
	// LastStableOffset is the partition's last stable offset as the replica
	// serving the fetch knows it, whatever the isolation level (Kafka sends
	// it to both).
	LastStableOffset int64
	// Aborted, for a read_committed fetch, lists the aborted transactions
	// whose records Data may hold (Kafka's aborted_transactions): a
	// consumer drops a transactional batch of an entry's producer from the
	// entry's first offset to its abort marker. Nil for read_uncommitted.
	Aborted []partlog.AbortedTxn

	// Buffer, when not nil, is the buffer from FetchOptions.Buffers that Data
	// was read into: Data is a prefix of it. The caller owns it: it may give
	// it back to the pool once nothing references Data any more, or leave it
	// to the garbage collector.
	Buffer *[]byte

	// Pieces, for a fetch that asked for them (FetchOptions.Pieces), hold
	// the batches read from the object store instead of Data: consecutive
	// slices of the reader's cached chunks, which stay held until Release.
	Pieces  [][]byte
	release func()
}

// Len is the bytes of batches the result holds, in Data or Pieces.
func (r *FetchResult) Len() int {
	n := len(r.Data)
	for _, p := range r.Pieces {
		n += len(p)
	}
	return n
}

// Release gives back what the result holds of the object store reader's
// cache; Pieces must not be used afterwards. A result never released only
// keeps those chunks' buffers from being reused.
func (r *FetchResult) Release() {
	if r.release != nil {
		r.release()
	}
	r.release, r.Pieces = nil, nil
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
	// Pieces lets reads from the object store return their batches where
	// they lie (FetchResult.Pieces) rather than gathered into one buffer,
	// for a caller that writes them out from there.
	Pieces bool

	// FollowerReads lets a follower answer (KIP-392): from its own log, up
	// to its high watermark. Otherwise partitions not led here fail with
	// ErrNotLeader. Kafka allows it from Fetch v11 on.
	FollowerReads bool
	// IsolationLevel is what the consumer may read: ReadUncommitted up to
	// the high watermark, ReadCommitted up to the last stable offset, with
	// the aborted transactions of what is returned (FetchResult.Aborted).
	IsolationLevel IsolationLevel
	// DropAborted, with ReadCommitted, removes the batches of aborted
	// transactions from Data instead of leaving their filtering to the
	// consumer, for clients that do not filter (the gRPC API). NextOffset
	// still moves past them.
	DropAborted bool

	// ClientRack is the consumer's rack (client.rack), empty for none: the
	// bytes served are counted by rack relation, and with
	// RedirectToRackReplica a leader with
	// replica.selector.class=RackAwareReplicaSelector may answer with a
	// preferred read replica in that rack (see readreplica.go).
	ClientRack string
	// RedirectToRackReplica lets the leader answer PreferredReadReplica
	// instead of records. Only for clients that act on the answer (Kafka's
	// Fetch v11+): the gRPC reply has no such field, and a client told
	// nothing would fetch the leader again at once, in a loop.
	RedirectToRackReplica bool
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
		total, done := b.readAll(ctx, parts, opts, results)
		if done || total >= int(max(opts.MinBytes, 1)) || opts.MaxWait <= 0 {
			b.countServed(results, opts.ClientRack)
			return results, nil
		}
		if wake == nil {
			wake = make(chan struct{}, 1)
			hosted = b.hosted.register(parts, wake)
			defer func() { unregister(hosted, wake) }()
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
			unregister(hosted, wake)
			hosted = b.hosted.register(parts, wake)
		case <-deadline:
			b.readAll(ctx, parts, opts, results)
			b.countServed(results, opts.ClientRack)
			return results, nil
		case <-b.draining:
			// Shutting down: answer with what there is rather than hold the
			// listener's graceful stop for MaxWait.
			b.readAll(ctx, parts, opts, results)
			b.countServed(results, opts.ClientRack)
			return results, nil
		case <-ctx.Done():
			for i := range results {
				if res := &results[i]; res.Buffer != nil { // never handed out
					opts.Buffers.Put(res.Buffer)
				}
				results[i].Release()
			}
			return nil, ctx.Err()
		}
	}
}

// readAll reads every partition into results and returns the bytes read and
// whether the fetch is to be answered at once: a partition failed, or sends
// the consumer to another replica. Partitions read from the object store are
// read in parallel once the others are done: each may wait on GETs, and a
// consumer replaying many partitions from the bucket would otherwise wait
// for them one after another.
func (b *Broker) readAll(ctx context.Context, parts []FetchPartition, opts FetchOptions, results []FetchResult) (int, bool) {
	budget := int(opts.MaxBytes)
	total := 0
	done := false
	var remote []remoteFetch
	for i, fp := range parts {
		res := &results[i]
		if res.Buffer != nil {
			// A result of an earlier round of the long poll, which nobody
			// outside Fetch has seen: its buffer can be reused at once.
			opts.Buffers.Put(res.Buffer)
		}
		res.Release()
		*res = FetchResult{Topic: fp.Topic, Partition: fp.Partition, NextOffset: fp.Offset, PreferredReadReplica: -1}
		if b.virtualTopic(fp.Topic) {
			b.readVirtual(fp, res)
			if res.Err == nil && fp.CheckLeaderEpoch {
				res.Err = checkCurrentEpoch(fp.Topic, fp.Partition, fp.CurrentLeaderEpoch, 0)
			}
			done = done || res.Err != nil
			continue
		}
		if fp.TopicID != "" {
			if t, ok := b.hosted.meta(fp.Topic); !ok || t.ID != fp.TopicID {
				res.Err = fmt.Errorf("fetch %s-%d by id %s: %w", fp.Topic, fp.Partition, fp.TopicID, ErrUnknownTopicID)
				done = true
				continue
			}
		}
		p, follower, err := b.hosted.readablePartition(fp.Topic, fp.Partition, opts.FollowerReads)
		if err == nil && fp.CheckLeaderEpoch {
			err = p.checkCurrentEpoch(fp.CurrentLeaderEpoch)
		}
		if err != nil {
			res.Err = err
			done = true
			continue
		}
		unknown := p.remote.EnsureManifest(ctx)
		res.HighWatermark = p.HighWatermark()
		// Capped by the high watermark read just before: it may have moved
		// since, and a response never shows an LSO above its HW.
		res.LastStableOffset = min(p.LastStableOffset(), res.HighWatermark)
		res.LogStartOffset = p.LogStartOffset()
		if opts.IsolationLevel == ReadCommitted {
			// Present (empty) for read_committed, null otherwise, as Kafka.
			res.Aborted = []partlog.AbortedTxn{}
		}
		limit := int(fp.MaxBytes)
		if limit <= 0 || limit > budget {
			limit = budget
		}
		if (total > 0 || len(remote) > 0) && limit <= 0 {
			// The response is full; the rest waits for the next fetch. The first
			// partition with data always gets a batch, however large.
			continue
		}
		if unknown != nil && fp.Offset < p.log.LogStartOffset() {
			// The bucket may hold it, but its manifest cannot be read: the
			// client is to retry, not to take the offset for gone.
			res.Err = fmt.Errorf("fetch %s-%d at offset %d: %w", fp.Topic, fp.Partition, fp.Offset, unknown)
			done = true
			continue
		}
		if fp.Offset < res.LogStartOffset {
			// Deleted (retention, DeleteRecords), even if a crash left the
			// local log start behind the bucket's.
			res.Err = fmt.Errorf("fetch %s-%d: %w", fp.Topic, fp.Partition,
				&partlog.OffsetOutOfRangeError{Offset: fp.Offset, Start: res.LogStartOffset, End: res.HighWatermark})
			done = true
			continue
		}
		if follower && fp.Offset >= res.HighWatermark {
			// Past what this follower knows to be committed, which may lag
			// the leader's: nothing yet, not out of range (a client told
			// so by a follower resets its position).
			continue
		}
		if !follower && opts.RedirectToRackReplica {
			if id := b.preferredReadReplica(p, fp.Offset, opts.ClientRack); id >= 0 {
				res.PreferredReadReplica = id
				done = true // answered at once, as Kafka does
				continue
			}
		}
		limit = max(limit, 1)
		if b.rlm.Enabled() && fp.Offset < p.log.LogStartOffset() {
			// Below the local log: the object store has it. Its share of
			// the budget is taken now, whatever it turns out to read.
			remote = append(remote, remoteFetch{i: i, p: p, limit: limit})
			budget -= limit
			continue
		}
		n, failed := b.readPartition(ctx, fp, p, limit, false, opts, res)
		total += n
		budget -= n
		done = done || failed
	}
	if len(remote) == 0 {
		return total, done
	}
	read := make([]int, len(remote))
	failed := make([]bool, len(remote))
	one := func(k int) {
		r := remote[k]
		read[k], failed[k] = b.readPartition(ctx, parts[r.i], r.p, r.limit, true, opts, &results[r.i])
	}
	if len(remote) == 1 {
		one(0)
	} else {
		sem := make(chan struct{}, maxParallelRemoteReads)
		var wg sync.WaitGroup
		for k := range remote {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				one(k)
			})
		}
		wg.Wait()
	}
	for k := range remote {
		total += read[k]
		done = done || failed[k]
	}
	return total, done
}

// maxParallelRemoteReads bounds the partitions of one fetch read from the
// object store at once; each may have several GETs in flight.
const maxParallelRemoteReads = 4

// remoteFetch is a partition of a fetch to read from the object store.
type remoteFetch struct {
	i     int // in the fetch's partitions
	p     *Partition
	limit int
}

// readPartition reads one partition into res, from the object store first
// when below the local log (tryRemote), and returns the bytes read and
// whether it failed.
func (b *Broker) readPartition(ctx context.Context, fp FetchPartition, p *Partition, limit int, tryRemote bool, opts FetchOptions, res *FetchResult) (int, bool) {
	var (
		rr     partlog.ReadResult
		buf    *[]byte
		remote bool
		err    error
	)
	if tryRemote && opts.IsolationLevel == ReadCommitted && fp.Offset >= res.LastStableOffset {
		// Segments are uploaded only below the last stable offset, so this
		// holds only if a DeleteRecords moved the log start past an open
		// transaction: nothing is stable to read yet.
		return 0, false
	}
	gather := tryRemote
	if tryRemote && opts.Pieces && !opts.DropAborted { // dropping needs the batches gathered
		gather = false
		var pc tiering.Pieces
		pc, remote, err = p.remote.ReadPieces(ctx, fp.Offset, limit)
		if remote && err == nil && opts.IsolationLevel == ReadCommitted && pc.Len > 0 {
			var ab []partlog.AbortedTxn
			var end int64
			if ab, end, err = p.remote.AbortedTransactions(ctx, fp.Offset, pc.NextOffset); err != nil {
				pc.Release()
			} else if end < pc.NextOffset {
				// Part of it is not known committed: gathered below, where
				// it is cut (rare: see rlm.Partition.AbortedTransactions).
				pc.Release()
				gather = true
			} else if len(ab) > 0 {
				res.Aborted = ab
			}
		}
		if remote && err == nil && !gather {
			res.Pieces, res.release = pc.Data, pc.Release
			if pc.Len > 0 {
				res.NextOffset = pc.NextOffset
			}
			b.metrics.fetchBytes.WithLabelValues(fp.Topic).Add(float64(pc.Len))
			return pc.Len, false
		}
	}
	if gather {
		var tr tiering.ReadResult
		tr, buf, remote, err = p.remote.Read(ctx, fp.Offset, limit, opts.Buffers)
		rr = partlog.ReadResult{Data: tr.Data, NextOffset: tr.NextOffset}
	}
	if !remote {
		upTo := res.HighWatermark
		if opts.IsolationLevel == ReadCommitted {
			upTo = res.LastStableOffset
		}
		rr, buf, err = readLog(p.log, fp.Offset, limit, upTo, opts.Buffers)
		b.offline.check(p, err)
	}
	if err != nil {
		from := ""
		if remote {
			from = " from the object store"
		}
		res.Err = fmt.Errorf("fetch %s-%d at offset %d%s: %w", fp.Topic, fp.Partition, fp.Offset, from, err)
		var corrupt *partlog.CorruptionError
		if errors.As(err, &corrupt) || errors.Is(err, tiering.ErrCorrupt) {
			b.metrics.corruptReads.WithLabelValues(fp.Topic).Inc()
		}
		return 0, true
	}
	var ab []partlog.AbortedTxn
	if len(rr.Data) > 0 && opts.IsolationLevel == ReadCommitted {
		// The transactions aborted in what was read, as Kafka collects
		// them: markers at or after the fetch offset, first offsets before
		// the end of the data.
		if !remote {
			ab = p.log.AbortedTransactions(fp.Offset, rr.NextOffset)
		} else {
			var end int64
			if ab, end, err = p.remote.AbortedTransactions(ctx, fp.Offset, rr.NextOffset); err != nil {
				if buf != nil {
					opts.Buffers.Put(buf)
				}
				res.Err = fmt.Errorf("fetch %s-%d at offset %d from the object store: %w", fp.Topic, fp.Partition, fp.Offset, err)
				return 0, true
			}
			if end < rr.NextOffset {
				rr = cutBefore(rr, end)
				if len(rr.Data) == 0 && buf != nil {
					opts.Buffers.Put(buf)
					buf = nil
				}
			}
		}
	}
	res.Data, res.Buffer = rr.Data, buf
	read := len(rr.Data)
	if read > 0 {
		res.NextOffset = rr.NextOffset
		if opts.IsolationLevel == ReadCommitted {
			if len(ab) > 0 {
				res.Aborted = ab
				if opts.DropAborted {
					res.Data = dropAborted(res.Data, ab, buf != nil)
					if len(res.Data) == 0 && buf != nil {
						// Nothing left to send from it: back to the pool now,
						// as a read of nothing would not have taken it.
						opts.Buffers.Put(buf)
						res.Buffer = nil
					}
				}
			}
		}
	}
	b.metrics.fetchBytes.WithLabelValues(fp.Topic).Add(float64(read))
	return read, false
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
// LatestTimestamp the end a consumer of isolation level iso reads to (the
// high watermark, or the last stable offset for ReadCommitted), otherwise
// the first offset whose timestamp is at or after ts and below that end
// (found=false when there is none), as Kafka.
func (b *Broker) ListOffset(topicName string, partition int32, ts int64, iso IsolationLevel) (offset, timestamp int64, found bool, err error) {
	if b.virtualTopic(topicName) {
		// Empty: earliest and latest are 0, no record has a timestamp.
		if partition < 0 || partition >= b.offsetsPartitions {
			return 0, 0, false, fmt.Errorf("%s-%d: %w", topicName, partition, ErrUnknownTopicOrPartition)
		}
		if ts == LatestTimestamp || ts == EarliestTimestamp {
			return 0, -1, true, nil
		}
		return 0, 0, false, nil
	}
	p, err := b.hosted.leaderPartition(topicName, partition)
	if err != nil {
		return 0, 0, false, err
	}
	end := p.HighWatermark
	if iso == ReadCommitted {
		end = p.LastStableOffset
	}
	unknown := p.remote.EnsureManifest(context.Background())
	switch {
	case ts == LatestTimestamp:
		return end(), -1, true, nil
	case unknown != nil:
		// The log start, and what the bucket holds, are not known.
		return 0, 0, false, fmt.Errorf("list offsets %s-%d: %w", topicName, partition, unknown)
	case ts == EarliestTimestamp:
		return p.LogStartOffset(), -1, true, nil
	}
	if ts < 0 {
		return 0, 0, false, fmt.Errorf("%w: timestamp %d (use -2 for earliest, -1 for latest)", ErrInvalidRequest, ts)
	}
	// Records only in the object store come first: a timestamp one of them
	// reaches is answered from there.
	if off, got, ok, err := p.remote.OffsetForTimestamp(context.Background(), ts); err != nil || ok {
		if err != nil {
			return 0, 0, false, fmt.Errorf("list offsets %s-%d: %w", topicName, partition, err)
		}
		return off, got, ok, nil
	}
	var off, got int64
	var ok bool
	err = b.inflate.do(context.Background(), func() error {
		var err error
		off, got, ok, err = p.log.OffsetForTimestamp(ts)
		return err
	})
	if err != nil {
		b.offline.check(p, err)
		return 0, 0, false, fmt.Errorf("list offsets %s-%d: %w", topicName, partition, err)
	}
	if ok && off >= end() {
		return 0, 0, false, nil
	}
	return off, got, ok, nil
}

// cutBefore keeps the batches of rr that start before offset: a
// read_committed read ends at a transaction not known decided, which starts
// at a batch boundary (its first batch's base offset).
func cutBefore(rr partlog.ReadResult, offset int64) partlog.ReadResult {
	pos, next := 0, offset
	for pos < len(rr.Data) {
		h, err := record.ParseHeader(rr.Data[pos:]) // checked by the read
		if err != nil || h.BaseOffset >= offset {
			break
		}
		pos += h.Size()
		next = h.BaseOffset + int64(h.LastOffsetDelta) + 1
	}
	return partlog.ReadResult{Data: rr.Data[:pos], NextOffset: next}
}
