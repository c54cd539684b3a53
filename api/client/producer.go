package client

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/record"
)

// Acks is how much replication a produce request waits for. The zero value is
// AcksAll, the safe default.
type Acks int8

const (
	// AcksAll waits until every in-sync replica has the records (Kafka's
	// acks=all, -1).
	AcksAll Acks = iota
	// AcksLeader waits until the leader has appended the records (acks=1).
	AcksLeader
	// AcksNone does not wait for the append (acks=0). gRPC still answers
	// every request, but results carry offset -1.
	AcksNone
)

// ParseAcks parses Kafka's spellings: "all" or "-1", "1", "0".
func ParseAcks(s string) (Acks, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "all", "-1":
		return AcksAll, nil
	case "1", "leader":
		return AcksLeader, nil
	case "0", "none":
		return AcksNone, nil
	}
	return AcksAll, fmt.Errorf("invalid acks %q (want 0, 1 or all)", s)
}

func (a Acks) String() string {
	switch a {
	case AcksAll:
		return "all"
	case AcksLeader:
		return "1"
	case AcksNone:
		return "0"
	}
	return fmt.Sprintf("acks(%d)", int8(a))
}

func (a Acks) proto() stratav1.Acks {
	switch a {
	case AcksLeader:
		return stratav1.Acks_ACKS_LEADER
	case AcksNone:
		return stratav1.Acks_ACKS_NONE
	}
	return stratav1.Acks_ACKS_ALL
}

// NoLinger as ProducerOptions.Linger sends records as soon as a request slot
// is free; records produced meanwhile still share a batch.
const NoLinger time.Duration = -1

// Producer defaults, applied to zero fields of ProducerOptions.
const (
	DefaultLinger           = 5 * time.Millisecond
	DefaultBatchBytes       = 1 << 20
	DefaultMaxInFlight      = 5
	DefaultMaxBufferedBytes = 64 << 20
	DefaultMaxRequestBytes  = 16 << 20
	DefaultRequestTimeout   = 30 * time.Second
	DefaultDeliveryTimeout  = 2 * time.Minute
	DefaultMetadataMaxAge   = 5 * time.Minute
)

// requestGrace is added to the request timeout for the RPC deadline, so the
// broker's own timeout (timeout_ms) answers first.
const requestGrace = 5 * time.Second

// initialBatchCapacity is the buffer a new batch starts with; it grows up to
// BatchBytes as records arrive, and recycled batches keep their buffers.
const initialBatchCapacity = 64 << 10

// ProducerOptions configures a Producer. Zero fields take the defaults.
//
// Each partition's batches go to the partition's leader; the partitions of
// a topic with the same leader share a request. A partition whose request
// fails in a way that a retry may fix is retried, after a metadata refresh
// and a backoff (RetryBackoff doubling up to RetryBackoffMax), until
// DeliveryTimeout: the broker no longer leads it (NOT_LEADER_OR_FOLLOWER), it
// has no leader yet (LEADER_NOT_AVAILABLE), the broker does not know it
// (UNKNOWN_TOPIC_OR_PARTITION, unless the refreshed metadata says the topic
// or partition does not exist, which fails at once), acks=all could not be
// met (NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT), any other codes.Unavailable,
// or the whole call failed with codes.Unavailable or codes.DeadlineExceeded
// (the broker restarting, or gone mid-call). Other failures are not retried.
//
// A request its broker has not answered for LeaderCheckInterval makes the
// producer ask the cluster (through the client's shared metadata refreshes)
// whether that broker still leads the request's partitions, and again every
// interval while it stays unanswered. If it no longer leads one of them (a
// leader paused or cut off from the cluster, whose successor was elected),
// the request is abandoned, and all its partitions are retried as above,
// with codes.Unavailable: there is no need to wait for RequestTimeout.
//
// Delivery is at least once, as with Kafka's producer without idempotence:
// a request the broker appended but did not acknowledge (it died first, the
// call timed out, or acks=all timed out replicating) is appended again by its
// retry, so records can be written twice. A partition has no other request in
// flight while one of its batches waits for a retry, and a retried batch goes
// out ahead of the partition's later ones, so retries keep each partition's
// order; only a request that timed out and is appended late, after its retry,
// can leave a duplicate behind later records.
type ProducerOptions struct {
	// Acks is the replication a request waits for (default AcksAll).
	Acks Acks
	// Linger is how long a batch waits for more records before it is sent
	// (default 5 ms; NoLinger to send as soon as possible).
	Linger time.Duration
	// BatchBytes bounds an encoded batch (default 1 MiB, which fits Kafka's
	// default max.message.bytes). A single larger record gets a batch of its
	// own.
	BatchBytes int
	// MaxInFlight is the number of produce requests outstanding at once
	// (default 5). A partition has at most one request in flight, so its
	// batches are appended in the order they were produced: the broker
	// handles concurrent gRPC calls concurrently and would not keep the
	// order of two in-flight requests.
	MaxInFlight int
	// Compression of batches (default none).
	Compression record.Compression
	// MaxBufferedBytes bounds the records buffered and in flight; Produce
	// blocks above it (default 64 MiB).
	MaxBufferedBytes int
	// MaxRequestBytes bounds one request: the batches that queued for a
	// partition while its previous request was in flight are sent together
	// up to this size (default 16 MiB).
	MaxRequestBytes int
	// RequestTimeout bounds one attempt of a produce request, including
	// replication for AcksAll and waiting for the connection to the broker
	// to be (re-)established (default 30 s).
	RequestTimeout time.Duration
	// LeaderCheckInterval is how long a request may go unanswered before
	// the producer checks that its broker still leads the request's
	// partitions, and how often it checks again while the request stays
	// unanswered (default DefaultLeaderCheckInterval, 1 s; negative turns
	// the checks off, leaving a silent leader to RequestTimeout). Each
	// check is a metadata refresh, shared with the client's other ones.
	LeaderCheckInterval time.Duration
	// DeliveryTimeout bounds how long a record may be retried, counted from
	// when its batch was opened (default 2 minutes, Kafka's
	// delivery.timeout.ms). No attempt starts after it; an attempt started
	// before it may still take up to RequestTimeout. A record that runs out
	// of time fails with the last attempt's error.
	DeliveryTimeout time.Duration
	// RetryBackoff is the wait before the first retry of a partition's
	// batches; it doubles with each further retry, up to RetryBackoffMax
	// (default 20 ms, Kafka's retry.backoff.ms). Waits vary by ±20%.
	RetryBackoff time.Duration
	// RetryBackoffMax caps the retry backoff (default 250 ms; see
	// DefaultRetryBackoffMax for why it is below Kafka's 1 s).
	RetryBackoffMax time.Duration
	// MetadataMaxAge is how long the producer uses a topic's partition
	// count and leaders before it asks for the metadata again (default 5
	// minutes, Kafka's metadata.max.age.ms). A request that finds the topic
	// missing (codes.NotFound) makes the next Produce to it ask at once, so
	// a topic deleted and re-created with more partitions gets keyed records
	// to the right partitions; so does a record for a partition beyond the
	// known count.
	MetadataMaxAge time.Duration
}

func (o ProducerOptions) withDefaults() ProducerOptions {
	if o.Linger == 0 {
		o.Linger = DefaultLinger
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = DefaultBatchBytes
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.MaxBufferedBytes <= 0 {
		o.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if o.MaxRequestBytes > MaxMessageBytes-1<<20 {
		o.MaxRequestBytes = MaxMessageBytes - 1<<20
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.LeaderCheckInterval == 0 {
		o.LeaderCheckInterval = DefaultLeaderCheckInterval
	}
	if o.DeliveryTimeout <= 0 {
		o.DeliveryTimeout = DefaultDeliveryTimeout
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = DefaultRetryBackoff
	}
	if o.RetryBackoffMax <= 0 {
		o.RetryBackoffMax = DefaultRetryBackoffMax
	}
	o.RetryBackoffMax = max(o.RetryBackoffMax, o.RetryBackoff)
	if o.MetadataMaxAge <= 0 {
		o.MetadataMaxAge = DefaultMetadataMaxAge
	}
	return o
}

// Result is where a produced record landed.
type Result struct {
	Topic     string
	Partition int32
	// Offset is the record's offset, or -1 when it is unknown (AcksNone, or
	// the record failed).
	Offset int64
}

// Producer batches records per partition and sends them as record-batch v2
// bytes. It is safe for concurrent use.
//
// Every record's callback is called exactly once, with its Result or an
// error. Callbacks of one partition are called in produce order, from the
// producer's goroutines (or, for records refused before they were buffered,
// from the goroutine calling Produce). They must not block: a blocked
// callback holds back its partition and a request slot. For the same reason
// a callback must not call Flush or Close, which wait for callbacks.
type Producer struct {
	opts    ProducerOptions
	cluster producerCluster

	// ctx bounds requests; Close cancels it once everything is flushed,
	// CloseContext earlier (with its context's error as the cause) when it
	// gives up.
	ctx       context.Context
	cancel    context.CancelCauseFunc
	wg        sync.WaitGroup
	timerWake chan struct{}
	timerStop chan struct{}
	closeOnce sync.Once
	closeErr  error

	mu   sync.Mutex
	cond *sync.Cond // signalled when a partition becomes ready, and on stop
	// topics holds the batching state of every topic produced to.
	topics map[string]*topicState
	// ready lists partitions with something to send and no request in
	// flight, in the order they became ready; a partition waiting out a
	// retry backoff stays in it.
	ready []*partState
	// retryAt is when the earliest retry backoff of a ready partition ends
	// (zero when none is known): timerLoop wakes the workers then.
	retryAt time.Time
	// lingerQ holds the open batches by deadline. Linger is one duration,
	// so deadlines are in the order batches were opened and a FIFO suffices.
	lingerQ    []lingerEntry
	lingerHead int
	// buffered counts the encoded bytes of records not yet completed.
	buffered int
	// space is closed (and replaced) when buffered bytes are released while
	// spaceWaiters > 0.
	space        chan struct{}
	spaceWaiters int
	closed       bool // Produce refuses records
	stopping     bool // workers exit once nothing is ready
	rng          *rand.Rand
	freeBatches  []*batch
	maxFree      int
}

type topicState struct {
	name string
	// parts holds the state of every partition the topic has had while the
	// producer used it. A partition's state is never replaced, so its
	// batches stay in order (one request in flight) across metadata
	// refreshes.
	parts []*partState
	// count is the partition count records are spread over; it can be
	// below len(parts) after the topic was re-created with fewer.
	count int32
	// refreshed is when count was last looked up.
	refreshed time.Time
	// stale means a request found the topic missing: the next Produce
	// describes it again before choosing a partition.
	stale bool
	// refreshing means a Produce is describing the topic because count is
	// older than MetadataMaxAge; the others go on with count meanwhile.
	refreshing bool
	// sticky is the partition unkeyed records go to, -1 when none is
	// chosen; prevSticky the one before.
	sticky, prevSticky int32
}

type partState struct {
	topic *topicState
	id    int32
	// open is the batch records are appended to, nil when none.
	open *batch
	// openSeq counts the batches opened, to tell a linger entry's batch.
	openSeq uint64
	// due means the open batch's linger expired: send it when possible.
	due bool
	// sealed are complete batches waiting for a request, oldest first.
	sealed []*batch
	// tail is the newest sealed batch not yet completed: Flush waits for it.
	tail     *batch
	inFlight bool
	queued   bool // in Producer.ready
	// retries counts the failed attempts of the batches at the head of
	// sealed, for the backoff; zero after a success. notBefore is when they
	// may be sent again, lastErr the error they fail with if they run out
	// of DeliveryTimeout.
	retries   int
	notBefore time.Time
	lastErr   error
}

type batch struct {
	b      *record.Builder
	baseTS int64
	// opened is when the batch was opened: its DeliveryTimeout runs from
	// there.
	opened time.Time
	cbs    []func(Result, error)
	bytes  int           // encoded bytes accounted in Producer.buffered
	data   []byte        // the built batch, set by the sending worker
	done   chan struct{} // closed after the callbacks ran; made when sealed
	// refs counts who still uses data: the producer until the request
	// completes, and gRPC until it has written the buffer. At zero the
	// batch is recycled.
	refs atomic.Int32
	pool *batchPool // gRPC frees data through it
}

type lingerEntry struct {
	ps       *partState
	seq      uint64
	deadline time.Time
}

// producerCluster is what a Producer needs of the cluster; *Client is the
// one outside tests.
type producerCluster interface {
	leaderSource
	// partitionCount returns a topic's partition count; refresh asks the
	// cluster rather than the cache.
	partitionCount(ctx context.Context, topic string, refresh bool) (int32, error)
	// leaderOf returns the node leading a partition in the cached
	// metadata, noLeader when there is none; it must not block.
	leaderOf(topic string, partition int32) int32
	// refreshMetadata makes the cached metadata of topics at least as new
	// as since.
	refreshMetadata(ctx context.Context, topics []string, since time.Time) error
	// checkPartition returns a codes.NotFound error when the cached
	// metadata says the partition does not exist.
	checkPartition(topic string, partition int32) error
	// produce sends a request to a node.
	produce(ctx context.Context, node int32, w *produceWire) (*stratav1.ProduceResponse, error)
}

// produce sends a produce request to a broker. Without WaitForReady: a
// broker that is down fails the call at once, and the producer retries on
// whichever broker the refreshed metadata names, rather than waiting for
// this one to come back.
func (c *Client) produce(ctx context.Context, node int32, w *produceWire) (*stratav1.ProduceResponse, error) {
	conn, err := c.nodeConn(node)
	if err != nil {
		return nil, err
	}
	resp := new(stratav1.ProduceResponse)
	if err := conn.Invoke(ctx, stratav1.Strata_Produce_FullMethodName, w, resp, codecOption); err != nil {
		return nil, err
	}
	return resp, nil
}

// NewProducer starts a producer on c. Close it to flush and stop its
// goroutines.
func NewProducer(c *Client, opts ProducerOptions) *Producer {
	return newProducer(c, opts)
}

func newProducer(cluster producerCluster, opts ProducerOptions) *Producer {
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancelCause(context.Background())
	p := &Producer{
		opts:      opts,
		cluster:   cluster,
		ctx:       ctx,
		cancel:    cancel,
		timerWake: make(chan struct{}, 1),
		timerStop: make(chan struct{}),
		topics:    make(map[string]*topicState),
		space:     make(chan struct{}),
		rng:       rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		maxFree:   min(64, opts.MaxBufferedBytes/opts.BatchBytes+opts.MaxInFlight),
	}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(opts.MaxInFlight + 1)
	for range opts.MaxInFlight {
		go p.worker()
	}
	go p.timerLoop()
	return p
}

// Produce buffers r for topic and returns; cb (which may be nil) gets the
// outcome. Key, value and headers are copied before Produce returns, so the
// caller may reuse them. r.Topic and r.Offset are ignored.
//
// Produce blocks while the producer buffers more than MaxBufferedBytes, and
// while it looks up the partition count of a topic it has not seen; ctx
// bounds those waits. Once buffered, a record is sent whatever ctx does.
func (p *Producer) Produce(ctx context.Context, topic string, r Record, cb func(Result, error)) {
	if cb == nil {
		cb = ignoreResult
	}
	fail := func(partition int32, err error) {
		cb(Result{Topic: topic, Partition: partition, Offset: -1}, err)
	}
	if err := ctx.Err(); err != nil {
		fail(r.Partition, err)
		return
	}
	rec := record.Record{Key: r.Key, Value: r.Value, Headers: r.Headers}
	if r.Timestamp.IsZero() {
		rec.Timestamp = time.Now().UnixMilli()
	} else {
		rec.Timestamp = r.Timestamp.UnixMilli()
	}
	// An upper bound of the record's encoded size (varints of the deltas
	// take at most 10 + 5 bytes) for the buffer bound and the size check.
	est := record.RecordSize(&rec, 0, 0) + 15
	if est+record.HeaderSize > p.opts.MaxRequestBytes {
		fail(r.Partition, status.Errorf(codes.InvalidArgument,
			"record of %d bytes exceeds the maximum request size of %d bytes", est, p.opts.MaxRequestBytes))
		return
	}

	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		fail(r.Partition, ErrClosed)
		return
	}
	t := p.topics[topic]
	if t == nil || t.stale || (!t.refreshing && time.Since(t.refreshed) > p.opts.MetadataMaxAge) {
		var err error
		if t, err = p.lookupLocked(ctx, topic, t); err != nil {
			p.mu.Unlock()
			fail(r.Partition, err)
			return
		}
	}
	for p.buffered > 0 && p.buffered+est > p.opts.MaxBufferedBytes {
		ch := p.space
		p.spaceWaiters++
		p.mu.Unlock()
		var err error
		select {
		case <-ch:
		case <-ctx.Done():
			err = ctx.Err()
		}
		p.mu.Lock()
		p.spaceWaiters--
		if err == nil && p.closed {
			err = ErrClosed
		}
		if err != nil {
			p.mu.Unlock()
			fail(r.Partition, err)
			return
		}
	}

	if r.Partition >= t.count && !t.stale {
		// The topic may have grown since the count was read.
		t.stale = true
		var err error
		if t, err = p.lookupLocked(ctx, topic, t); err != nil {
			p.mu.Unlock()
			fail(r.Partition, err)
			return
		}
	}
	n := t.count
	var part int32
	sticky := false
	switch {
	case r.Partition >= 0:
		if r.Partition >= n {
			p.mu.Unlock()
			fail(r.Partition, status.Errorf(codes.InvalidArgument,
				"topic %q has %d partitions, no partition %d", topic, n, r.Partition))
			return
		}
		part = r.Partition
	case r.Key != nil:
		part = keyedPartition(r.Key, n)
	default:
		part = p.stickyLocked(t)
		sticky = true
	}
	ps := t.parts[part]
	if ps.open != nil && !p.fits(ps.open, &rec) {
		p.sealLocked(ps)
		p.queueLocked(ps)
		if sticky {
			// The sticky partition's batch is full: switch partitions
			// now rather than start a nearly empty batch here.
			ps = t.parts[p.stickyLocked(t)]
			if ps.open != nil && !p.fits(ps.open, &rec) {
				p.sealLocked(ps)
				p.queueLocked(ps)
			}
		}
	}
	if ps.open == nil {
		p.openLocked(ps, rec.Timestamp)
	}
	bt := ps.open
	before := bt.b.Size()
	bt.b.Append(&rec)
	size := bt.b.Size() - before
	bt.cbs = append(bt.cbs, cb)
	bt.bytes += size
	p.buffered += size
	if bt.b.Size()+size > p.opts.BatchBytes {
		// A record like this one would not fit any more: send now rather
		// than wait for the next record or the linger.
		p.sealLocked(ps)
	}
	p.queueLocked(ps)
	p.mu.Unlock()
}

func ignoreResult(Result, error) {}

// lookupLocked looks up the partition count of a topic the producer has not
// seen (t nil), whose state is stale, or whose count is older than
// MetadataMaxAge, and returns the topic's state. It unlocks while asking.
// A failed refresh of a count that is merely old is not an error, except
// NotFound: the record is produced with the count known. Lock should be held.
func (p *Producer) lookupLocked(ctx context.Context, topic string, t *topicState) (*topicState, error) {
	aging := t != nil && !t.stale
	if aging {
		t.refreshing = true // one Produce refreshes; the others go on
	}
	p.mu.Unlock()
	n, err := p.cluster.partitionCount(ctx, topic, t != nil)
	p.mu.Lock()
	if aging {
		t.refreshing = false
	}
	if p.closed {
		return nil, ErrClosed
	}
	if err != nil {
		if aging && status.Code(err) != codes.NotFound {
			return t, nil
		}
		if t != nil {
			t.stale = true
		}
		return nil, err
	}
	if t = p.topics[topic]; t == nil {
		t = &topicState{name: topic, sticky: -1, prevSticky: -1}
		p.topics[topic] = t
	}
	for int32(len(t.parts)) < n {
		t.parts = append(t.parts, &partState{topic: t, id: int32(len(t.parts))})
	}
	t.count = n
	t.refreshed = time.Now()
	t.stale = false
	if t.sticky >= n {
		t.sticky = -1
	}
	return t, nil
}

// markStale makes the next Produce to t describe the topic again.
func (p *Producer) markStale(t *topicState) {
	p.mu.Lock()
	t.stale = true
	p.mu.Unlock()
}

// stickyLocked returns the topic's sticky partition, choosing one if needed.
// Lock should be held.
func (p *Producer) stickyLocked(t *topicState) int32 {
	if t.sticky < 0 {
		t.sticky = nextSticky(p.rng, t.prevSticky, t.count)
		t.prevSticky = t.sticky
	}
	return t.sticky
}

// fits reports whether r can join bt without exceeding BatchBytes. An empty
// batch takes any record.
func (p *Producer) fits(bt *batch, r *record.Record) bool {
	if bt.b.Len() == 0 {
		return true
	}
	return bt.b.Size()+record.RecordSize(r, r.Timestamp-bt.baseTS, int32(bt.b.Len())) <= p.opts.BatchBytes
}

// openLocked starts a new open batch on ps. Lock should be held.
func (p *Producer) openLocked(ps *partState, ts int64) {
	var bt *batch
	if n := len(p.freeBatches); n > 0 {
		bt = p.freeBatches[n-1]
		p.freeBatches[n-1] = nil
		p.freeBatches = p.freeBatches[:n-1]
		bt.b.Reset(ts, 0)
	} else {
		bt = &batch{b: record.NewBuilder(ts, min(p.opts.BatchBytes, initialBatchCapacity))}
		bt.pool = &batchPool{p: p, bt: bt}
	}
	bt.refs.Store(1)
	bt.baseTS = ts
	bt.opened = time.Now()
	ps.open = bt
	ps.openSeq++
	if p.opts.Linger < 0 {
		ps.due = true
		return
	}
	if p.lingerHead == len(p.lingerQ) {
		p.wakeTimer()
	}
	p.lingerQ = append(p.lingerQ, lingerEntry{ps: ps, seq: ps.openSeq, deadline: time.Now().Add(p.opts.Linger)})
}

// sealLocked closes ps's open batch and queues it for sending (but does not
// put ps in the ready list: see queueLocked). Lock should be held.
func (p *Producer) sealLocked(ps *partState) {
	bt := ps.open
	ps.open = nil
	ps.due = false
	bt.done = make(chan struct{})
	ps.sealed = append(ps.sealed, bt)
	ps.tail = bt
	if t := ps.topic; t.sticky == ps.id {
		t.sticky = -1
	}
}

// queueLocked puts ps in the ready list if it has something to send and no
// request in flight. Lock should be held.
func (p *Producer) queueLocked(ps *partState) {
	if ps.inFlight || ps.queued || (len(ps.sealed) == 0 && (ps.open == nil || !ps.due)) {
		return
	}
	ps.queued = true
	p.ready = append(p.ready, ps)
	p.cond.Signal()
}

// Flush sends every buffered record without waiting for the linger, and waits
// until all records produced before the call have completed (their callbacks
// have returned), or ctx ends.
func (p *Producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	var waits []chan struct{}
	for _, t := range p.topics {
		for _, ps := range t.parts {
			if ps.open != nil {
				p.sealLocked(ps)
				p.queueLocked(ps)
			}
			if ps.tail != nil {
				waits = append(waits, ps.tail.done)
			}
		}
	}
	p.mu.Unlock()
	for _, ch := range waits {
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("flush: %w", ctx.Err())
		}
	}
	return nil
}

// Close is CloseContext(context.Background()): it waits as long as the
// buffered records take, retries included.
func (p *Producer) Close() error {
	return p.CloseContext(context.Background())
}

// CloseContext refuses further records, flushes the buffered ones, and stops
// the producer's goroutines. Records produced concurrently with it may fail
// with ErrClosed. If ctx ends first, it gives up: requests in flight are
// cancelled, and every record not yet completed fails with ctx's error (a
// cancelled request may still have been appended). It returns once the
// callbacks have run and the goroutines have stopped, with the flush's error.
// Only the first call closes; later ones return its result at once.
func (p *Producer) CloseContext(ctx context.Context) error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		close(p.space) // wake Produce calls waiting for buffer space
		p.space = make(chan struct{})
		p.mu.Unlock()

		if p.closeErr = p.Flush(ctx); p.closeErr != nil {
			// Fail what is pending: workers fail every request they take
			// from now on, and in-flight ones end with ctx's error.
			p.cancel(ctx.Err())
		}

		p.mu.Lock()
		p.stopping = true
		p.cond.Broadcast()
		p.mu.Unlock()
		close(p.timerStop)
		p.wg.Wait()
		p.cancel(ErrClosed)
	})
	return p.closeErr
}

// wakeTimer makes timerLoop look at its deadlines again.
func (p *Producer) wakeTimer() {
	select {
	case p.timerWake <- struct{}{}:
	default:
	}
}

// timerLoop marks open batches due when their linger expires, and wakes the
// workers when a partition's retry backoff ends.
func (p *Producer) timerLoop() {
	defer p.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		p.mu.Lock()
		now := time.Now()
		for p.lingerHead < len(p.lingerQ) && !p.lingerQ[p.lingerHead].deadline.After(now) {
			e := p.lingerQ[p.lingerHead]
			p.lingerQ[p.lingerHead] = lingerEntry{}
			p.lingerHead++
			if e.ps.open != nil && e.ps.openSeq == e.seq {
				e.ps.due = true
				p.queueLocked(e.ps)
			}
		}
		if p.lingerHead == len(p.lingerQ) {
			p.lingerQ, p.lingerHead = p.lingerQ[:0], 0
		} else if p.lingerHead > len(p.lingerQ)/2 {
			n := copy(p.lingerQ, p.lingerQ[p.lingerHead:])
			clear(p.lingerQ[n:])
			p.lingerQ, p.lingerHead = p.lingerQ[:n], 0
		}
		if !p.retryAt.IsZero() && !p.retryAt.After(now) {
			p.cond.Broadcast()
			p.retryAt = p.nextRetryLocked(now)
		}
		wait := time.Duration(-1)
		if p.lingerHead < len(p.lingerQ) {
			wait = p.lingerQ[p.lingerHead].deadline.Sub(now)
		}
		if !p.retryAt.IsZero() {
			if w := p.retryAt.Sub(now); wait < 0 || w < wait {
				wait = w
			}
		}
		p.mu.Unlock()
		if wait >= 0 {
			timer.Reset(wait)
		}
		select {
		case <-p.timerStop:
			timer.Stop()
			return
		case <-p.timerWake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// nextRetryLocked returns the earliest backoff end after now among the
// ready partitions, zero when none waits. Lock should be held.
func (p *Producer) nextRetryLocked(now time.Time) time.Time {
	var next time.Time
	for _, ps := range p.ready {
		if ps.notBefore.After(now) && (next.IsZero() || ps.notBefore.Before(next)) {
			next = ps.notBefore
		}
	}
	return next
}

// request is one produce request being sent: batches of some partitions of
// one topic that have the same leader.
type request struct {
	topic  *topicState
	leader int32
	parts  []*partRequest
}

type partRequest struct {
	ps      *partState
	batches []*batch
	records int
	err     error // set when the partition failed
	base    int64 // base offset from the response
	// lastErr is the partition's error from its previous attempt, nil when
	// the batches were not tried before.
	lastErr error
	// more means the partition has more batches in flight than these
	// (these expired ahead of the others): completing these must not end
	// the partition's in-flight state.
	more bool
}

// worker sends one request at a time; MaxInFlight workers run.
func (p *Producer) worker() {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		var req *request
		for {
			if req = p.takeLocked(time.Now()); req != nil {
				break
			}
			if p.stopping && len(p.ready) == 0 {
				p.mu.Unlock()
				return
			}
			p.cond.Wait()
		}
		p.mu.Unlock()
		p.sendRequest(req)
	}
}

// sendable reports whether ps may be sent now: it is not waiting out a
// retry backoff, or the producer is giving up (CloseContext), in which case
// waiting is pointless. Lock should be held.
func (p *Producer) sendable(ps *partState, now time.Time) bool {
	return !ps.notBefore.After(now) || p.ctx.Err() != nil
}

// takeLocked builds a request from the first sendable ready partition and
// the other sendable ready partitions of its topic with the same leader, up
// to MaxRequestBytes. The partitions taken are marked in flight. It returns
// nil when no partition is sendable. Lock should be held.
func (p *Producer) takeLocked(now time.Time) *request {
	first := slices.IndexFunc(p.ready, func(ps *partState) bool { return p.sendable(ps, now) })
	if first < 0 {
		return nil
	}
	t := p.ready[first].topic
	req := &request{topic: t, leader: p.cluster.leaderOf(t.name, p.ready[first].id)}
	total := 0
	kept := p.ready[:0]
	for i, ps := range p.ready {
		if i < first || ps.topic != t || !p.sendable(ps, now) ||
			(i > first && p.cluster.leaderOf(t.name, ps.id) != req.leader) ||
			(len(req.parts) > 0 && total >= p.opts.MaxRequestBytes) {
			kept = append(kept, ps)
			continue
		}
		if ps.open != nil && ps.due {
			p.sealLocked(ps)
		}
		n := 0
		for n < len(ps.sealed) {
			size := ps.sealed[n].b.Size()
			if (n > 0 || len(req.parts) > 0) && total+size > p.opts.MaxRequestBytes {
				break
			}
			total += size
			n++
		}
		if n == 0 {
			if len(ps.sealed) > 0 {
				kept = append(kept, ps) // next request
			} else {
				ps.queued = false
			}
			continue
		}
		pr := &partRequest{ps: ps, batches: make([]*batch, n), lastErr: ps.lastErr}
		copy(pr.batches, ps.sealed)
		rest := copy(ps.sealed, ps.sealed[n:])
		clear(ps.sealed[rest:])
		ps.sealed = ps.sealed[:rest]
		for _, bt := range pr.batches {
			pr.records += len(bt.cbs)
		}
		ps.queued = false
		ps.inFlight = true
		req.parts = append(req.parts, pr)
	}
	clear(p.ready[len(kept):])
	p.ready = kept
	if len(req.parts) == 0 {
		return nil
	}
	return req
}

// sendRequest encodes, sends and completes one request. Partitions that
// failed in a way a retry may fix go back to the head of their queue after a
// metadata refresh, to be sent after a backoff to whichever broker then leads
// them; they stay in flight until then, so nothing of theirs overtakes them.
func (p *Producer) sendRequest(req *request) {
	t := req.topic
	now := time.Now()
	var sending, done, expired []*partRequest
	for _, pr := range req.parts {
		pr.base = -1
		if pr.err = p.encode(pr); pr.err != nil {
			done = append(done, pr)
			continue
		}
		if pr.lastErr != nil {
			// Batches that already failed and have run out of time
			// fail now, without another attempt.
			if x := p.splitExpired(pr, now, pr.lastErr); x != nil {
				expired = append(expired, x)
			}
		}
		if len(pr.batches) > 0 {
			sending = append(sending, pr)
		}
	}
	if len(expired) > 0 {
		p.complete(t, expired)
	}
	var retry []*partRequest
	if len(sending) > 0 {
		if err := context.Cause(p.ctx); err != nil {
			p.failAll(t.name, sending, err) // CloseContext gave up
			done = append(done, sending...)
		} else {
			retry = p.attempt(req.leader, t, sending)
			for _, pr := range sending {
				if !slices.Contains(retry, pr) {
					done = append(done, pr)
				}
			}
		}
	}
	if len(retry) > 0 {
		var final []*partRequest
		retry, final = p.prepareRetry(t, retry)
		done = append(done, final...)
	}
	if len(done) > 0 {
		p.complete(t, done)
	}
	if len(retry) > 0 {
		p.requeue(t, retry)
	}
}

// attempt sends the partitions' batches once to leader and sets each
// partition's base offset or error. It returns the partitions whose error is
// worth a retry.
func (p *Producer) attempt(leader int32, t *topicState, parts []*partRequest) (retry []*partRequest) {
	topic := t.name
	var resp *stratav1.ProduceResponse
	var err error
	if leader == noLeader {
		for _, pr := range parts {
			pr.base, pr.err = -1, leaderNotAvailable(topic, pr.ps.id)
		}
		return parts
	}
	w := &produceWire{
		topic:     topic,
		acks:      p.opts.Acks.proto(),
		timeoutMs: int32(p.opts.RequestTimeout / time.Millisecond),
	}
	ids := make([]int32, len(parts))
	for i, pr := range parts {
		w.parts = append(w.parts, wirePart{partition: pr.ps.id, batches: pr.batches})
		ids[i] = pr.ps.id
	}
	timeoutCtx, cancel := context.WithTimeout(p.ctx, p.opts.RequestTimeout+requestGrace)
	ctx, abort := context.WithCancelCause(timeoutCtx)
	watch := startLeaderWatch(ctx, abort, p.cluster, leader, topic, ids, p.opts.LeaderCheckInterval)
	resp, err = p.cluster.produce(ctx, leader, w)
	if moved := watch.stop(); moved != nil && err != nil {
		// The broker was deposed while it held the request: the
		// request may or may not have been appended, as after any
		// unanswered call, and is retried on the new leader.
		err = moved
	}
	abort(nil)
	cancel()
	closing := context.Cause(p.ctx)
	if err != nil && closing != nil {
		// CloseContext cancelled the call: report its context's error.
		err = closing
	}
	results := make(map[int32]*stratav1.ProducePartitionResult, len(resp.GetPartitions()))
	for _, r := range resp.GetPartitions() {
		results[r.GetPartition()] = r
	}
	for _, pr := range parts {
		pr.base = -1
		pr.err = nil
		retriable := false
		if err != nil {
			pr.err = fmt.Errorf("produce %d records to topic %q partition %d: %w", pr.records, topic, pr.ps.id, err)
			retriable = closing == nil && callRetriable(err)
		} else if res := results[pr.ps.id]; res == nil {
			pr.err = status.Errorf(codes.Internal, "produce to topic %q partition %d: no result in the response", topic, pr.ps.id)
		} else if perr := newPartitionError(topic, pr.ps.id, res.GetError(), -1, -1); perr != nil {
			pr.err = perr
			retriable = closing == nil && perr.produceRetriable()
		} else if p.opts.Acks != AcksNone && res.GetBaseOffset() >= 0 {
			pr.base = res.GetBaseOffset()
		}
		if retriable {
			retry = append(retry, pr)
		}
	}
	return retry
}

// prepareRetry refreshes the metadata after the partitions failed, and
// splits them into those to retry and those that failed for good: the
// broker did not know the topic or partition, and neither does the refreshed
// metadata.
func (p *Producer) prepareRetry(t *topicState, parts []*partRequest) (retry, final []*partRequest) {
	failed := time.Now()
	ctx, cancel := context.WithTimeout(p.ctx, p.opts.RequestTimeout)
	err := p.cluster.refreshMetadata(ctx, []string{t.name}, failed)
	cancel()
	if err != nil {
		// Retry all the same: the cluster may be back by then.
		retry = parts
		return retry, nil
	}
	stale := false
	for _, pr := range parts {
		if unknownTopic(pr.err) {
			if err := p.cluster.checkPartition(t.name, pr.ps.id); err != nil {
				stale = true
				final = append(final, pr)
				continue
			}
		}
		retry = append(retry, pr)
	}
	if stale {
		p.markStale(t)
	}
	return retry, final
}

// requeue puts failed partitions' batches back at the head of their queues,
// to be sent again after their backoff; the batches that ran out of
// DeliveryTimeout fail now with the partition's error.
func (p *Producer) requeue(t *topicState, parts []*partRequest) {
	now := time.Now()
	var expired []*partRequest
	for _, pr := range parts {
		if x := p.splitExpired(pr, now, pr.err); x != nil {
			expired = append(expired, x)
		}
	}
	if len(expired) > 0 {
		// Their callbacks run before the partition can be taken again:
		// it is still in flight.
		p.complete(t, expired)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range parts {
		if len(pr.batches) == 0 {
			continue // all expired: complete released the partition
		}
		ps := pr.ps
		ps.sealed = append(pr.batches[:len(pr.batches):len(pr.batches)], ps.sealed...)
		ps.retries++
		ps.lastErr = pr.err
		ps.notBefore = now.Add(retryDelay(p.opts.RetryBackoff, p.opts.RetryBackoffMax, ps.retries, p.rng))
		// Waiting past the oldest batch's deadline is pointless: it fails
		// then, rather than after the whole backoff.
		if d := pr.batches[0].opened.Add(p.opts.DeliveryTimeout); d.Before(ps.notBefore) {
			ps.notBefore = d
		}
		ps.inFlight = false
		p.queueLocked(ps)
		if p.retryAt.IsZero() || ps.notBefore.Before(p.retryAt) {
			p.retryAt = ps.notBefore
			p.wakeTimer()
		}
	}
}

// splitExpired removes from pr the leading batches whose DeliveryTimeout has
// passed and returns them as a part failed with err, or nil when none has.
// Batches are in the order they were opened, so the expired ones lead.
func (p *Producer) splitExpired(pr *partRequest, now time.Time, err error) *partRequest {
	n := 0
	for n < len(pr.batches) && !now.Before(pr.batches[n].opened.Add(p.opts.DeliveryTimeout)) {
		n++
	}
	if n == 0 {
		return nil
	}
	x := &partRequest{ps: pr.ps, batches: pr.batches[:n:n], err: err, base: -1, more: n < len(pr.batches)}
	for _, bt := range x.batches {
		x.records += len(bt.cbs)
	}
	pr.batches = pr.batches[n:]
	pr.records -= x.records
	return x
}

// failAll fails the partitions with err without sending them.
func (p *Producer) failAll(topic string, parts []*partRequest, err error) {
	for _, pr := range parts {
		pr.base = -1
		pr.err = fmt.Errorf("produce %d records to topic %q partition %d: %w", pr.records, topic, pr.ps.id, err)
	}
}

// encode builds the partition's batches.
func (p *Producer) encode(pr *partRequest) error {
	for _, bt := range pr.batches {
		if bt.data != nil {
			continue // built for an earlier attempt
		}
		data, err := bt.b.Build(p.opts.Compression)
		if err != nil {
			return fmt.Errorf("encode batch for topic %q partition %d: %w", pr.ps.topic.name, pr.ps.id, err)
		}
		bt.data = data
	}
	return nil
}

// complete releases the buffer space of some partitions of a request, calls
// their callbacks in order and hands the partitions back to the ready list
// (except those with more batches in flight).
func (p *Producer) complete(t *topicState, parts []*partRequest) {
	released := 0
	for _, pr := range parts {
		for _, bt := range pr.batches {
			released += bt.bytes
		}
	}
	p.mu.Lock()
	p.buffered -= released
	if p.spaceWaiters > 0 {
		close(p.space)
		p.space = make(chan struct{})
	}
	p.mu.Unlock()

	// Callbacks run before the partition leaves the in-flight state, so the
	// next request of the partition cannot complete (and call back) first.
	topic := t.name
	for _, pr := range parts {
		off := pr.base
		for _, bt := range pr.batches {
			for _, cb := range bt.cbs {
				cb(Result{Topic: topic, Partition: pr.ps.id, Offset: off}, pr.err)
				if off >= 0 {
					off++
				}
			}
		}
	}

	p.mu.Lock()
	for _, pr := range parts {
		ps := pr.ps
		for _, bt := range pr.batches {
			if ps.tail == bt {
				ps.tail = nil
			}
		}
		if pr.more {
			continue
		}
		ps.inFlight = false
		ps.retries, ps.notBefore, ps.lastErr = 0, time.Time{}, nil
		p.queueLocked(ps)
	}
	p.mu.Unlock()
	for _, pr := range parts {
		for _, bt := range pr.batches {
			close(bt.done)
			p.release(bt)
		}
	}
}

// release drops one reference to bt's buffer; the last one recycles the
// batch for a later one. A batch whose buffer gRPC never frees is left to the
// garbage collector.
func (p *Producer) release(bt *batch) {
	if bt.refs.Add(-1) != 0 {
		return
	}
	clear(bt.cbs)
	bt.cbs = bt.cbs[:0]
	bt.bytes = 0
	bt.data = nil
	bt.done = nil
	p.mu.Lock()
	if len(p.freeBatches) < p.maxFree {
		p.freeBatches = append(p.freeBatches, bt)
	}
	p.mu.Unlock()
}
