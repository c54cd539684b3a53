package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/record"
)

// StartFrom is where a consumer starts in partitions without an explicit
// offset. The zero value is StartEarliest.
type StartFrom int8

const (
	// StartEarliest starts at each partition's log start offset.
	StartEarliest StartFrom = iota
	// StartLatest starts at each partition's high watermark: only records
	// produced from now on.
	StartLatest
)

// Consumer defaults, applied to zero fields of ConsumerOptions.
const (
	DefaultFetchMaxBytes = 16 << 20
	DefaultFetchMaxWait  = 500 * time.Millisecond
)

// ConsumerOptions configures a Consumer.
type ConsumerOptions struct {
	Topic string
	// Partitions to read; nil means every partition of the topic.
	Partitions []int32
	// Start applies to partitions without an entry in Offsets.
	Start StartFrom
	// Offsets gives the start offset of some partitions; OffsetEarliest and
	// OffsetLatest are allowed as values.
	Offsets map[int32]int64
	// Follow keeps reading as records arrive, over one FetchStream call per
	// leader covering its partitions. Without Follow the consumer reads up
	// to the end of each partition and then returns io.EOF.
	//
	// Each partition is read from its leader. When the leader moves
	// (NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE), or its broker is
	// unreachable or restarting (codes.Unavailable, or the stream ending),
	// the consumer refreshes its metadata and goes on from its position on
	// the new leader, after a backoff (20 ms doubling up to 1 s). With
	// Follow it does so until the poll's ctx ends; without, for up to the
	// client's retry timeout (WithRetryTimeout). Other errors are returned.
	// A leader that goes silent without closing its connections is found
	// out by LeaderCheckInterval.
	Follow bool
	// MaxBytes bounds one fetch response (default 16 MiB); the broker still
	// returns a first batch that is larger, so a consumer is never stuck.
	MaxBytes int32
	// PartitionMaxBytes bounds one partition's share of a response
	// (default MaxBytes).
	PartitionMaxBytes int32
	// MaxWait is how long the broker may wait for new records before it
	// answers (default 500 ms). Without Follow, fetches do not wait.
	MaxWait time.Duration
	// LeaderCheckInterval is how long a fetch (or, with Follow, a stream)
	// may go without a word from its broker before the consumer checks
	// that the broker still leads the partitions, and how often it checks
	// again while the silence lasts (default DefaultLeaderCheckInterval,
	// 1 s; negative turns the checks off). A leader that stopped answering
	// without closing its connections (a paused process, a network
	// partition) is left once the metadata names its successor, rather
	// than waited for. Each check is a metadata refresh, shared with the
	// client's other ones; a stream on a partition that receives nothing
	// is checked every interval for as long as it is idle, since silence
	// is all a stream's broker shows when paused.
	LeaderCheckInterval time.Duration
	// Rack is the consumer's rack (Kafka's client.rack), empty for none.
	// With a rack, each partition is read from an in-sync replica in that
	// rack when its leader is elsewhere and the metadata names one (the
	// lowest node id), so reads stay in the zone (KIP-392 follower
	// fetching); otherwise from the leader. A follower serves records up
	// to its own high watermark, which can trail the leader's by a
	// replication round: without Follow, the end the consumer reads to is
	// that replica's. Offsets are still listed by the leader.
	Rack string
	// ReadCommitted is Kafka's isolation.level=read_committed: each
	// partition is read up to its last stable offset, so no record of a
	// transaction still open is returned, and records of aborted
	// transactions are left out (by the broker: the consumer skips their
	// offsets). Without Follow, the end the consumer reads to is the last
	// stable offset, and OffsetLatest starts there. The default reads up to
	// the high watermark, open and aborted transactions included, as
	// Kafka's read_uncommitted.
	ReadCommitted bool
}

// isolationLevel is the API's isolation level for a consumer that reads
// committed records only, or not.
func isolationLevel(committed bool) stratav1.IsolationLevel {
	if committed {
		return stratav1.IsolationLevel_READ_COMMITTED
	}
	return stratav1.IsolationLevel_READ_UNCOMMITTED
}

// Consumer reads records of one topic from a set of partitions, in offset
// order per partition. It keeps its positions itself (no consumer group).
// A Consumer is not safe for concurrent use: call Poll or PollBatches from
// one goroutine at a time, and Close when done.
type Consumer struct {
	c    *Client
	opts ConsumerOptions

	parts   []*consumerPart // sorted by partition
	byID    map[int32]*consumerPart
	started bool
	closed  bool
	// pendingErr is an error found in a response whose other partitions
	// had records: those are returned first, the error by the next poll.
	pendingErr error

	// streams holds the Follow streams by leader; they all deliver to
	// items, which is made on the first poll.
	streams map[int32]*fetchStream
	items   chan streamItem
	// lastLeader is the leader fetched from last without Follow: fetches
	// take the leaders in turn.
	lastLeader int32

	// Partitions whose leader must be found again (lost) wait until
	// retryAt, then the metadata is refreshed (newer than failedAt).
	// retries counts the failures since a leader last delivered, for the
	// backoff; failingSince is the first of them (the retry timeout runs
	// from there), lastErr the latest.
	retries      int
	retryAt      time.Time
	failedAt     time.Time
	failingSince time.Time
	lastErr      error

	// bufs recycles response buffers of PollBatches: their batches are
	// valid only until the next poll, while Poll's records alias their
	// response for good. batchBuf is the buffer of the response the last
	// PollBatches returned.
	bufs     bufferPool
	batchBuf []byte
}

type consumerPart struct {
	id  int32
	pos int64 // next offset to return
	hw  int64 // high watermark in the last response, -1 before any
	// done (without Follow) means pos reached the high watermark.
	done bool
	// lost means the partition is not to be fetched until its leader is
	// found again; with Follow, it is set while no stream serves it.
	lost bool
	// stream is the Follow stream serving the partition, nil when none.
	stream *fetchStream
}

// Batch is one record batch as fetched, not decoded: a way to count what a
// consumer reads without allocating a Record per record.
type Batch struct {
	Topic     string
	Partition int32
	Header    record.Header
	// Data is the whole v2 batch. It aliases the fetch response, whose
	// buffer the consumer reuses: it is valid until the next Poll or
	// PollBatches.
	Data []byte
	// Records is the number of records in the batch at or above the
	// consumer's position (the first batch of a fetch may start earlier).
	Records int
}

// NewConsumer returns a consumer of opts.Topic on c. It talks to the broker
// on the first Poll.
func NewConsumer(c *Client, opts ConsumerOptions) (*Consumer, error) {
	if opts.Topic == "" {
		return nil, errors.New("consumer: no topic")
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultFetchMaxBytes
	}
	if opts.PartitionMaxBytes <= 0 {
		opts.PartitionMaxBytes = opts.MaxBytes
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = DefaultFetchMaxWait
	}
	if opts.LeaderCheckInterval == 0 {
		opts.LeaderCheckInterval = DefaultLeaderCheckInterval
	}
	return &Consumer{
		c:          c,
		opts:       opts,
		byID:       make(map[int32]*consumerPart),
		streams:    make(map[int32]*fetchStream),
		lastLeader: noLeader,
		bufs:       make(bufferPool, 4),
	}, nil
}

// Poll returns the next records, in offset order per partition. With Follow
// it blocks until there are records or ctx ends; without Follow it returns
// io.EOF once every partition has reached the high watermark it reported.
// A failure the broker reports for a partition is a *PartitionError (for
// example codes.OutOfRange for a position outside the log, codes.DataLoss for
// a range that cannot be read, with the offsets). Key, Value and header
// values alias the fetched response and are not reused by the consumer.
func (c *Consumer) Poll(ctx context.Context) ([]Record, error) {
	for {
		resp, err := c.next(ctx)
		if err != nil {
			return nil, err
		}
		recs, err := c.decodeRecords(resp)
		if len(recs) > 0 {
			c.pendingErr = err
			return recs, nil
		}
		if err != nil {
			return nil, err
		}
		if err := c.idle(ctx); err != nil {
			return nil, err
		}
	}
}

// PollBatches is Poll without decoding records: it returns the fetched
// batches, with the records below the consumer's position counted out.
// Control batches (transaction markers) are skipped. CRCs are checked. The
// batches' bytes are valid until the next Poll or PollBatches.
func (c *Consumer) PollBatches(ctx context.Context) ([]Batch, error) {
	for {
		resp, err := c.next(ctx)
		if err != nil {
			return nil, err
		}
		batches, err := c.collectBatches(resp)
		if len(batches) > 0 {
			c.pendingErr = err
			c.batchBuf = resp.buf
			return batches, nil
		}
		c.bufs.put(resp.buf)
		if err != nil {
			return nil, err
		}
		if err := c.idle(ctx); err != nil {
			return nil, err
		}
	}
}

// idleDelay spaces fetches that returned nothing while a partition was
// still below its high watermark, which should not happen but must not spin.
const idleDelay = 10 * time.Millisecond

// idle is called after a response without records. Follow mode has nothing to
// wait for: the stream delivers when there is data.
func (c *Consumer) idle(ctx context.Context) error {
	if c.opts.Follow {
		return nil
	}
	for _, cp := range c.parts {
		if !cp.done {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(idleDelay):
				return nil
			}
		}
	}
	return nil
}

// Positions returns the next offset the consumer will return for each
// partition (empty before the first poll).
func (c *Consumer) Positions() map[int32]int64 {
	out := make(map[int32]int64, len(c.parts))
	for _, cp := range c.parts {
		out[cp.id] = cp.pos
	}
	return out
}

// Close stops the consumer's fetch streams. It does not close the Client.
func (c *Consumer) Close() error {
	c.closed = true
	for _, s := range c.streams {
		c.dropStream(s)
	}
	return nil
}

// next returns the next fetch response to process.
func (c *Consumer) next(ctx context.Context) (*fetchResponse, error) {
	if c.closed {
		return nil, ErrClosed
	}
	if c.batchBuf != nil {
		// The caller is done with the batches of the last PollBatches.
		c.bufs.put(c.batchBuf)
		c.batchBuf = nil
	}
	if err := c.pendingErr; err != nil {
		c.pendingErr = nil
		return nil, err
	}
	if !c.started {
		if err := c.start(ctx); err != nil {
			return nil, err
		}
		c.started = true
	}
	if c.opts.Follow {
		return c.nextStreamed(ctx)
	}
	return c.nextFetched(ctx)
}

// start resolves the partitions and their start offsets.
func (c *Consumer) start(ctx context.Context) error {
	topic := c.opts.Topic
	ids := c.opts.Partitions
	n, err := c.c.partitionCount(ctx, topic, false)
	if err != nil {
		return fmt.Errorf("consume topic %q: %w", topic, err)
	}
	if ids == nil {
		for id := range n {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return fmt.Errorf("consume topic %q: no partitions", topic)
	}
	// Group the partitions whose offset must be looked up by what to look
	// up: earliest or latest.
	lookups := map[int64][]int32{}
	offsets := make(map[int32]int64, len(ids))
	for _, id := range ids {
		off, ok := c.opts.Offsets[id]
		if !ok {
			off = OffsetEarliest
			if c.opts.Start == StartLatest {
				off = OffsetLatest
			}
		}
		if off < 0 {
			if off != OffsetEarliest && off != OffsetLatest {
				return fmt.Errorf("consume topic %q partition %d: invalid start offset %d", topic, id, off)
			}
			lookups[off] = append(lookups[off], id)
		}
		offsets[id] = off
	}
	for ts, ps := range lookups {
		found, err := c.c.listOffsets(ctx, topic, ps, ts, c.opts.ReadCommitted, c.opts.LeaderCheckInterval)
		if err != nil {
			return err
		}
		for _, id := range ps {
			offsets[id] = found[id]
		}
	}
	c.parts = c.parts[:0]
	clear(c.byID)
	for id, off := range offsets {
		// A following consumer has no stream yet: its partitions start
		// lost, to be routed by the first poll.
		cp := &consumerPart{id: id, pos: off, hw: -1, lost: c.opts.Follow}
		c.parts = append(c.parts, cp)
		c.byID[id] = cp
	}
	sort.Slice(c.parts, func(i, j int) bool { return c.parts[i].id < c.parts[j].id })
	return nil
}

func (c *Consumer) fetchRequest(parts []*consumerPart, minBytes int32, wait time.Duration) *stratav1.FetchRequest {
	req := &stratav1.FetchRequest{
		MaxBytes:  c.opts.MaxBytes,
		MinBytes:  minBytes,
		MaxWaitMs: int32(wait / time.Millisecond),
		Rack:      c.opts.Rack,

		IsolationLevel: isolationLevel(c.opts.ReadCommitted),
	}
	for _, cp := range parts {
		req.Partitions = append(req.Partitions, &stratav1.FetchPartition{
			Topic:     c.opts.Topic,
			Partition: cp.id,
			Offset:    cp.pos,
			MaxBytes:  c.opts.PartitionMaxBytes,
		})
	}
	return req
}

// src tells which broker to read each partition from: its leader, or with
// a rack, the replica in that rack (see ConsumerOptions.Rack).
func (c *Consumer) src() readSource { return readSource{c: c.c, rack: c.opts.Rack} }

// anyLost reports whether a partition still to be read waits for its leader.
func (c *Consumer) anyLost() bool {
	return slices.ContainsFunc(c.parts, func(cp *consumerPart) bool { return cp.lost && !cp.done })
}

// failed records a failure of some partitions' leader and schedules the
// next attempt to find it.
func (c *Consumer) failed(err error) {
	now := time.Now()
	c.retries++
	c.retryAt = now.Add(retryDelay(DefaultRetryBackoff, DefaultRetryBackoffMax, c.retries, nil))
	c.failedAt = now
	if c.failingSince.IsZero() {
		c.failingSince = now
	}
	c.lastErr = err
}

// recovered forgets past failures once a leader found after them delivers.
func (c *Consumer) recovered() {
	c.retries = 0
	c.failingSince = time.Time{}
	c.lastErr = nil
}

// lose marks partitions lost after err: with Follow, the streams serving
// them end, and their other partitions are routed again with them.
func (c *Consumer) lose(parts []*consumerPart, err error) {
	for _, cp := range parts {
		if cp.stream != nil {
			c.dropStream(cp.stream)
		}
		cp.lost = true
	}
	c.failed(err)
}

// route finds the leaders of the lost partitions, refreshing the metadata
// first if they were lost by a failure, and with Follow opens streams for
// them. A partition without a leader stays lost. It returns an error only
// when reading cannot go on: the topic or partition no longer exists, or ctx
// ended.
func (c *Consumer) route(ctx context.Context) error {
	topic := c.opts.Topic
	if !c.failedAt.IsZero() {
		if err := c.c.refreshMetadata(ctx, []string{topic}, c.failedAt); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.c.logger.Debug("consumer: metadata refresh failed", "topic", topic, "err", err)
			c.failed(err)
			return nil
		}
	}
	byLeader := map[int32][]*consumerPart{}
	unrouted := false
	for _, cp := range c.parts {
		if !cp.lost || cp.done {
			continue
		}
		if err := c.c.checkPartition(topic, cp.id); err != nil {
			return fmt.Errorf("consume topic %q partition %d: %w", topic, cp.id, err)
		}
		leader, _ := c.src().leaderEpochOf(topic, cp.id)
		if leader == noLeader {
			unrouted = true
			continue
		}
		byLeader[leader] = append(byLeader[leader], cp)
	}
	for leader, parts := range byLeader {
		if !c.opts.Follow {
			for _, cp := range parts {
				cp.lost = false
			}
			continue
		}
		if s := c.streams[leader]; s != nil {
			// One stream per leader: this one's partitions join the new.
			parts = append(parts, s.parts...)
			c.dropStream(s)
		}
		conn, err := c.c.nodeConn(leader)
		if err != nil {
			unrouted = true
			c.failed(err)
			continue
		}
		sort.Slice(parts, func(i, j int) bool { return parts[i].id < parts[j].id })
		s := c.openFetchStream(conn, leader, parts)
		c.streams[leader] = s
		for _, cp := range parts {
			cp.stream = s
			cp.lost = false
		}
	}
	if unrouted {
		c.failed(leaderNotAvailable(topic, -1))
	}
	return nil
}

// nextFetched fetches once, from the next leader in turn, the partitions it
// leads that are not yet at their end.
func (c *Consumer) nextFetched(ctx context.Context) (*fetchResponse, error) {
	topic := c.opts.Topic
	for {
		if c.anyLost() {
			if time.Since(c.failingSince) >= c.c.retryTimeout {
				return nil, fmt.Errorf("fetch from topic %q: gave up after %v: %w", topic, c.c.retryTimeout, c.lastErr)
			}
			if !time.Now().Before(c.retryAt) {
				if err := c.route(ctx); err != nil {
					return nil, err
				}
			}
		}
		byLeader := map[int32][]*consumerPart{}
		for _, cp := range c.parts {
			if !cp.done && !cp.lost {
				l, _ := c.src().leaderEpochOf(topic, cp.id)
				byLeader[l] = append(byLeader[l], cp)
			}
		}
		if len(byLeader) == 0 {
			if c.anyLost() {
				// Nothing else to read meanwhile: wait out the backoff.
				if err := sleepCtx(ctx, time.Until(c.retryAt)); err != nil {
					return nil, err
				}
				continue
			}
			return nil, io.EOF
		}
		if parts := byLeader[noLeader]; parts != nil {
			c.lose(parts, leaderNotAvailable(topic, parts[0].id))
			delete(byLeader, noLeader)
			if len(byLeader) == 0 {
				continue
			}
		}
		leader := c.nextLeader(byLeader)
		parts := byLeader[leader]
		resp := &fetchResponse{pool: c.bufs}
		conn, err := c.c.nodeConn(leader)
		if err == nil {
			callCtx, abort := context.WithCancelCause(ctx)
			watch := startLeaderWatch(callCtx, abort, c.src(), leader, topic, partitionIDs(parts), c.opts.LeaderCheckInterval)
			err = conn.Invoke(callCtx, stratav1.Strata_Fetch_FullMethodName, c.fetchRequest(parts, 0, 0), resp, codecOption)
			if moved := watch.stop(); moved != nil && err != nil {
				err = moved
			}
			abort(nil)
		}
		if err != nil {
			err = fmt.Errorf("fetch from topic %q: %w", topic, err)
			if ctx.Err() != nil || !callRetriable(err) {
				return nil, err
			}
			c.lose(parts, err)
			continue
		}
		return resp, nil
	}
}

// nextLeader picks the leader after the last one fetched from, in node id
// order, so that every leader gets its turn.
func (c *Consumer) nextLeader(byLeader map[int32][]*consumerPart) int32 {
	ids := slices.Sorted(maps.Keys(byLeader))
	for _, id := range ids {
		if id > c.lastLeader {
			c.lastLeader = id
			return id
		}
	}
	c.lastLeader = ids[0]
	return ids[0]
}

// nextStreamed returns the next response of the Follow streams, (re)opening
// streams for partitions that have none when their backoff allows.
func (c *Consumer) nextStreamed(ctx context.Context) (*fetchResponse, error) {
	if c.items == nil {
		c.items = make(chan streamItem, 4)
	}
	for {
		if c.anyLost() && !time.Now().Before(c.retryAt) {
			if err := c.route(ctx); err != nil {
				return nil, err
			}
		}
		var wake <-chan time.Time
		var timer *time.Timer
		if c.anyLost() {
			timer = time.NewTimer(time.Until(c.retryAt))
			wake = timer.C
		}
		var item streamItem
		select {
		case <-ctx.Done():
		case <-wake:
		case item = <-c.items:
		}
		if timer != nil {
			timer.Stop()
		}
		switch {
		case item.src == nil && ctx.Err() != nil:
			return nil, ctx.Err()
		case item.src != nil:
			if c.streams[item.src.node] != item.src {
				// From a stream closed since: its partitions were
				// routed again from their positions.
				if item.resp != nil {
					c.bufs.put(item.resp.buf)
				}
				continue
			}
			if item.err == nil {
				if item.src.opened.After(c.failedAt) && !c.anyLost() {
					c.recovered()
				}
				return item.resp, nil
			}
			c.dropStream(item.src)
			if !errors.Is(item.err, io.EOF) && !callRetriable(item.err) {
				return nil, fmt.Errorf("fetch stream from topic %q: %w", c.opts.Topic, item.err)
			}
			// The broker ended the stream, is unreachable for now, or
			// no longer leads: follow on from the current positions
			// (the responses received before the failure were returned
			// first) wherever the partitions are led now.
			c.failed(item.err)
		}
	}
}

// dropStream closes a Follow stream and marks its partitions lost.
func (c *Consumer) dropStream(s *fetchStream) {
	s.close()
	if c.streams[s.node] == s {
		delete(c.streams, s.node)
	}
	for _, cp := range s.parts {
		if cp.stream == s {
			cp.stream = nil
			cp.lost = true
		}
	}
}

// forEachBatch walks the batches of a response at or above the consumer's
// positions, advancing them, and calls fn for each data batch with the
// partition and the position before the batch. It processes every partition
// before returning the first error.
//
// A partition whose leader moved is not an error: it is marked lost, to be
// read from its new leader.
func (c *Consumer) forEachBatch(resp *fetchResponse, fn func(cp *consumerPart, h *record.Header, data []byte, from int64) error) error {
	var firstErr, lostErr error
	var lost []*consumerPart
	for _, pr := range resp.GetPartitions() {
		cp := c.byID[pr.GetPartition()]
		if cp == nil || (pr.GetTopic() != "" && pr.GetTopic() != c.opts.Topic) {
			continue
		}
		if perr := newPartitionError(c.opts.Topic, cp.id, pr.GetError(), cp.pos, pr.GetNextOffset()); perr != nil && perr.leaderMoved() {
			lost = append(lost, cp)
			lostErr = perr
			continue
		}
		if err := c.partitionBatches(cp, pr, fn); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if len(lost) > 0 {
		c.lose(lost, lostErr)
	} else if !c.opts.Follow && firstErr == nil && !c.anyLost() {
		c.recovered()
	}
	return firstErr
}

func (c *Consumer) partitionBatches(cp *consumerPart, pr *fetchResult, fn func(*consumerPart, *record.Header, []byte, int64) error) error {
	if perr := newPartitionError(c.opts.Topic, cp.id, pr.GetError(), cp.pos, pr.GetNextOffset()); perr != nil {
		return perr
	}
	cp.hw = pr.GetHighWatermark()
	if lso := pr.lastStableOffset; c.opts.ReadCommitted && lso >= 0 {
		// The end of what a read_committed consumer may read now.
		cp.hw = lso
	}
	it := record.NewBatches(pr.GetRecordBatches())
	complete := 0
	for it.Next() {
		complete++
		h := it.Header()
		if h.NextOffset() <= cp.pos {
			continue
		}
		data := it.Bytes()
		if _, err := record.Validate(data); err != nil {
			return c.corrupt(cp, h.BaseOffset, h.NextOffset(), err)
		}
		from := cp.pos
		cp.pos = h.NextOffset()
		if h.Control() {
			continue
		}
		if err := fn(cp, &h, data, from); err != nil {
			return err
		}
	}
	if err := it.Err(); err != nil && !(complete > 0 && errors.Is(err, record.ErrShortBuffer)) {
		// A truncated batch after complete ones is tolerated, as Kafka
		// clients do: it is read whole by the next fetch.
		return c.corrupt(cp, cp.pos, -1, fmt.Errorf("batch at byte %d of the response: %w", it.Position(), err))
	}
	if next := pr.GetNextOffset(); next > cp.pos {
		cp.pos = next
	}
	if !c.opts.Follow && cp.hw >= 0 && cp.pos >= cp.hw {
		cp.done = true
	}
	return nil
}

// corrupt reports a batch the consumer cannot read as codes.DataLoss, with
// the offsets.
func (c *Consumer) corrupt(cp *consumerPart, from, next int64, err error) error {
	return &PartitionError{
		Topic:      c.opts.Topic,
		Partition:  cp.id,
		Code:       codes.DataLoss,
		Message:    err.Error(),
		Offset:     from,
		NextOffset: next,
	}
}

func (c *Consumer) decodeRecords(resp *fetchResponse) ([]Record, error) {
	// Size the result from the batch headers: one allocation per poll. A
	// record takes at least minRecordBytes, which bounds a lying count.
	const minRecordBytes = 7
	n := 0
	for _, pr := range resp.GetPartitions() {
		it := record.NewBatches(pr.GetRecordBatches())
		for it.Next() {
			n += min(int(it.Header().RecordCount), len(it.Bytes())/minRecordBytes)
		}
	}
	out := make([]Record, 0, n)
	topic := c.opts.Topic
	err := c.forEachBatch(resp, func(cp *consumerPart, h *record.Header, data []byte, from int64) error {
		err := record.ForEach(data, func(r *record.Record) error {
			if r.Offset < from {
				return nil
			}
			rec := Record{
				Topic:     topic,
				Partition: cp.id,
				Offset:    r.Offset,
				Key:       r.Key,
				Value:     r.Value,
				Timestamp: time.UnixMilli(r.Timestamp),
			}
			if len(r.Headers) > 0 {
				rec.Headers = r.Headers
				r.Headers = nil // ForEach allocates headers anew; do not share
			}
			out = append(out, rec)
			return nil
		})
		if err != nil {
			return c.corrupt(cp, h.BaseOffset, h.NextOffset(), err)
		}
		return nil
	})
	return out, err
}

func (c *Consumer) collectBatches(resp *fetchResponse) ([]Batch, error) {
	var out []Batch
	err := c.forEachBatch(resp, func(cp *consumerPart, h *record.Header, data []byte, from int64) error {
		n := int(h.RecordCount)
		if h.BaseOffset < from {
			n = 0
			err := record.ForEach(data, func(r *record.Record) error {
				if r.Offset >= from {
					n++
				}
				return nil
			})
			if err != nil {
				return c.corrupt(cp, h.BaseOffset, h.NextOffset(), err)
			}
		}
		out = append(out, Batch{Topic: c.opts.Topic, Partition: cp.id, Header: *h, Data: data, Records: n})
		return nil
	})
	return out, err
}

// partitionIDs returns the partitions' numbers.
func partitionIDs(parts []*consumerPart) []int32 {
	ids := make([]int32, len(parts))
	for i, cp := range parts {
		ids[i] = cp.id
	}
	return ids
}

// fetchStream runs one FetchStream call to one leader; a goroutine receives
// its responses into the consumer's items channel, ahead of the consumer by
// the channel's capacity.
type fetchStream struct {
	node   int32
	parts  []*consumerPart
	opened time.Time
	cancel context.CancelFunc
	done   chan struct{}
}

type streamItem struct {
	src  *fetchStream
	resp *fetchResponse
	err  error
}

// openFetchStream opens a Follow stream of parts on their leader, node.
func (c *Consumer) openFetchStream(conn *grpc.ClientConn, node int32, parts []*consumerPart) *fetchStream {
	req := c.fetchRequest(parts, 1, c.opts.MaxWait)
	// ctx is the stream's life, ended by close; the call has a context of
	// its own, which the leader watch may end earlier, so that the failure
	// still reaches the consumer.
	ctx, cancel := context.WithCancel(context.Background())
	callCtx, abort := context.WithCancelCause(ctx)
	watch := startLeaderWatch(callCtx, abort, c.src(), node, c.opts.Topic, partitionIDs(parts), c.opts.LeaderCheckInterval)
	s := &fetchStream{node: node, parts: parts, opened: time.Now(), cancel: cancel, done: make(chan struct{})}
	bufs, items := c.bufs, c.items
	go func() {
		defer close(s.done)
		err := s.run(ctx, callCtx, watch, conn, req, bufs, items)
		if moved := watch.stop(); moved != nil && ctx.Err() == nil {
			err = moved
		}
		abort(nil)
		select {
		case items <- streamItem{src: s, err: err}:
		case <-ctx.Done():
		}
	}()
	return s
}

// run calls FetchStream on callCtx and forwards its responses until it
// fails or ends (io.EOF), or ctx ends. Each response tells watch the broker
// is alive.
func (s *fetchStream) run(ctx, callCtx context.Context, watch *leaderWatch, conn *grpc.ClientConn, req *stratav1.FetchRequest, bufs bufferPool, items chan<- streamItem) error {
	stream, err := conn.NewStream(callCtx, &stratav1.Strata_ServiceDesc.Streams[0], stratav1.Strata_FetchStream_FullMethodName, codecOption)
	if err != nil {
		return err
	}
	// SendMsg reports io.EOF when the call already ended; RecvMsg then
	// returns its status.
	if err := stream.SendMsg(req); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	for {
		resp := &fetchResponse{pool: bufs}
		if err := stream.RecvMsg(resp); err != nil {
			return err
		}
		watch.touch()
		select {
		case items <- streamItem{src: s, resp: resp}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// close cancels the call and waits for the receiving goroutine.
func (s *fetchStream) close() {
	s.cancel()
	<-s.done
}
