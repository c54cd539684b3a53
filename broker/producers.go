package broker

// Idempotent producers, as in Kafka: InitProducerID hands out producer ids,
// and each partition remembers, per producer id, the latest epoch and the
// last few batches appended (their sequence numbers and offsets), so that a
// retried batch is answered with its original offsets instead of being
// written twice, and a gap in the sequence is refused. Transactions are not
// supported.
//
// Clients choose the producer ids in their batches, so what they cost is
// bounded twice over: a batch naming an id the cluster never issued is
// refused (UNKNOWN_PRODUCER_ID), and each partition keeps at most
// producer.state.max.entries producers, forgetting the least recently used
// (KIP-936 throttles the rate of new ids per principal instead; there are
// no principals yet).

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
)

const (
	// defaultProducerIDExpirationMs is Kafka's producer.id.expiration.ms
	// default: a partition forgets a producer not seen for a day.
	defaultProducerIDExpirationMs = 24 * 60 * 60 * 1000

	// producerIDBlockSize is how many producer ids a broker takes from the
	// metastore at once: one etcd transaction per thousand producers. Ids
	// left in a block when the broker stops are never used.
	producerIDBlockSize = 1000

	// producerStateScanBytes bounds the work of rebuilding producer state
	// from the log (when a partition opens, and after a follower truncates):
	// only the batch headers of about the last 128 MiB are read. A producer
	// whose latest batch is older than that is unknown afterwards, which
	// costs nothing unless it retries a batch written before that window,
	// when the retry would be written again.
	producerStateScanBytes = 128 << 20
)

// producerIDs hands out producer ids and knows which ones the cluster has
// issued.
type producerIDs struct {
	// mu guards [next, end), the block of ids taken from the metastore
	// that InitProducerID hands out.
	mu         sync.Mutex
	next, end  int64
	issued     issuedIDs
	unknownIDs prometheus.Counter // batches refused for an id never issued
	evictions  prometheus.Counter // producers evicted by the per-partition cap
}

func newProducerIDs(b *Broker, read func(context.Context) (int64, error), allocate func(context.Context, int64) (int64, error), reg prometheus.Registerer) *producerIDs {
	ids := &producerIDs{
		issued: issuedIDs{read: read, allocate: allocate, turn: make(chan struct{}, 1)},
		unknownIDs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_produce_unknown_producer_id_total",
			Help: "Produce requests' partitions refused with UNKNOWN_PRODUCER_ID: a batch named a producer id far above any the cluster issued.",
		}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_producer_state_evictions_total",
			Help: "Producers a partition forgot, least recently used first, to keep within producer.state.max.entries.",
		}),
	}
	if reg != nil {
		reg.MustRegister(ids.unknownIDs, ids.evictions, &producerStateCollector{b: b})
	}
	return ids
}

// producerStateEntriesDesc is one series for the whole broker: a series per
// partition would cost more than the entries it counts.
var producerStateEntriesDesc = prometheus.NewDesc("strata_producer_state_entries",
	"Idempotent producers remembered by the partitions hosted on this broker (a producer counts once per partition it wrote to).", nil, nil)

// producerStateCollector sums the partitions' producer state at scrape
// time, so appends keep no gauge up to date.
type producerStateCollector struct{ b *Broker }

func (c *producerStateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- producerStateEntriesDesc }

func (c *producerStateCollector) Collect(ch chan<- prometheus.Metric) {
	n := 0
	for _, p := range c.b.hosted.allPartitions() {
		n += p.producers.len()
	}
	ch <- prometheus.MustNewConstMetric(producerStateEntriesDesc, prometheus.GaugeValue, float64(n))
}

// InitProducerID returns a new producer id with epoch 0, unique in the
// cluster and never reused, even across broker restarts. Transactions are not
// supported: a non-empty transactionalID is ErrTransactionsUnsupported.
//
// Ids come from blocks reserved in the metastore; the call that finds the
// block used up reserves the next one, within ctx, while other callers wait
// for it.
func (b *Broker) InitProducerID(ctx context.Context, transactionalID string) (id int64, epoch int16, err error) {
	if transactionalID != "" {
		return -1, -1, fmt.Errorf("init producer id for transactional id %q: %w", transactionalID, ErrTransactionsUnsupported)
	}
	if b.hosted.isClosed() {
		return -1, -1, fmt.Errorf("init producer id: %w", ErrBrokerClosed)
	}
	ids := b.pids
	ids.mu.Lock()
	defer ids.mu.Unlock()
	if ids.next >= ids.end {
		first, err := b.store.AllocateProducerIDs(ctx, producerIDBlockSize)
		if err != nil {
			return -1, -1, fmt.Errorf("init producer id: %w", err)
		}
		ids.next, ids.end = first, first+producerIDBlockSize
		ids.issued.raise(ids.end)
	}
	id = ids.next
	ids.next++
	return id, 0, nil
}

// issuedIDs knows which producer ids the cluster has issued. Blocks are
// reserved from the metastore in increasing order, so an id was issued if
// and only if it is below the metastore's high-water mark (ids of a block a
// broker never handed out count as issued: telling them apart would cost a
// record per id). below is a lower bound of that mark, raised by this
// broker's own blocks and by reading the metastore. Another broker may have
// issued an id after the last read, so an id at or above the bound is
// refused only on the word of a read that started after the question was
// asked.
type issuedIDs struct {
	read func(context.Context) (int64, error)
	// allocate reserves a block of ids (the metastore's AllocateProducerIDs).
	allocate func(context.Context, int64) (int64, error)
	below    atomic.Int64
	// turn is held by the metastore read in flight, one at a time: callers
	// that arrive during a read wait for it and share the next one, so a
	// flood of made-up ids costs the metastore one read at a time.
	turn    chan struct{}
	started atomic.Uint64 // reads started
	latest  uint64        // number of the latest read that succeeded; turn guards it
}

// raise makes v the bound if it is higher.
func (c *issuedIDs) raise(v int64) {
	for {
		cur := c.below.Load()
		if v <= cur || c.below.CompareAndSwap(cur, v) {
			return
		}
	}
}

// known reports whether id is below the bound: issued, for sure.
func (c *issuedIDs) known(id int64) bool { return id < c.below.Load() }

// wasIssued reports whether producer id was issued by the cluster. It reads
// the metastore, within ctx, only for an id at or above the bound; an
// error means the metastore could not be read.
func (c *issuedIDs) wasIssued(ctx context.Context, id int64) (bool, error) {
	if c.known(id) {
		return true, nil
	}
	asked := c.started.Load()
	if err := c.takeTurn(ctx); err != nil {
		return false, err
	}
	defer func() { <-c.turn }()
	if c.known(id) {
		return true, nil
	}
	if c.latest > asked {
		// A read that started after the question saw no such id.
		return false, nil
	}
	n := c.started.Add(1)
	next, err := c.read(ctx)
	if err != nil {
		return false, err
	}
	c.raise(next)
	c.latest = n
	return id < next, nil
}

// takeTurn waits until no other read or reservation of the metastore is
// running, or ctx ends; the caller gives the turn back with <-c.turn.
func (c *issuedIDs) takeTurn(ctx context.Context) error {
	select {
	case c.turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// adoptWindow is how far above the cluster's issued mark an id may be and
// still be adopted rather than refused.
const adoptWindow = metastore.MaxProducerIDBlock

// adopt reserves every id up to and including id, which is at or above the
// mark but within adoptWindow of it, so that the cluster never issues it to
// another producer; false when id is further away. The reservation is one
// metastore transaction, one at a time like the reads.
func (c *issuedIDs) adopt(ctx context.Context, id int64) (bool, error) {
	if err := c.takeTurn(ctx); err != nil {
		return false, err
	}
	defer func() { <-c.turn }()
	if c.known(id) {
		return true, nil
	}
	gap := id - c.below.Load()
	if gap < 0 || gap >= adoptWindow {
		return false, nil
	}
	c.started.Add(1) // the allocation is a newer word than any read before it
	first, err := c.allocate(ctx, gap+1)
	if err != nil {
		return false, err
	}
	// first is at or above the mark read before, so the block reaches id.
	c.raise(first + gap + 1)
	return c.known(id), nil
}

// issuedCheckTimeout bounds the metastore read that confirms a producer id
// this broker has not seen issued yet.
const issuedCheckTimeout = 10 * time.Second

// checkProducerIDs refuses batches that name a producer id far above any
// the cluster issued, with ErrUnknownProducerID. Kafka takes any id (a
// producer it does not know starts at any sequence), so a client could make
// a partition keep state for as many ids as it cares to invent; a producer
// that got its id from InitProducerId never meets this.
//
// An id just above the issued mark (within adoptWindow) is adopted instead:
// the ids up to it are reserved and the batch accepted. Such ids are what a
// client holds after the cluster's metadata was rebuilt under it (topics
// restored from the bucket into a new etcd, whose allocator starts again at
// 0). Refusing them does not make the client ask for a new id: franz-go
// answers UNKNOWN_PRODUCER_ID by bumping its epoch locally and sending the
// same id again, for ever. Reserving them also keeps the new cluster from
// issuing the same id to another producer. Random made-up ids are far above
// the mark and still refused.
//
// Only the leader's produce path checks: followers, and a log read back at
// start, hold batches a leader accepted.
func (b *Broker) checkProducerIDs(ctx context.Context, batches []byte) error {
	highest := int64(-1)
	it := record.NewBatches(batches)
	for it.Next() {
		highest = max(highest, it.Header().ProducerID)
	}
	if highest < 0 || b.pids.issued.known(highest) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, issuedCheckTimeout)
	defer cancel()
	ok, err := b.pids.issued.wasIssued(ctx, highest)
	if err == nil && !ok {
		if ok, err = b.pids.issued.adopt(ctx, highest); ok {
			b.logger.Info("adopted a producer id the cluster had not issued, as one a client kept across a rebuilt cluster", "producer_id", highest)
		}
	}
	switch {
	case err != nil:
		return fmt.Errorf("producer id %d: cannot tell whether the cluster issued it: %w", highest, err)
	case !ok:
		b.pids.unknownIDs.Inc()
		return fmt.Errorf("producer id %d is far above any the cluster issued (InitProducerId hands ids out): %w", highest, ErrUnknownProducerID)
	}
	return nil
}

// producerStates is a partition's idempotent-producer state and the lock
// its checks and appends share.
type producerStates struct {
	// mu is held from the sequence checks of a leader append until its
	// state is recorded, so two requests of one producer cannot both pass
	// the checks; followers' appends and rebuilds take it too.
	mu     sync.Mutex
	now    func() time.Time
	logger *slog.Logger
	table  *partlog.ProducerStates
	// snapBase is the base offset of the log's active segment when the
	// state was last snapshotted or loaded: a snapshot is written once the
	// log has rolled past it (see snapshotIfRolledLocked).
	snapBase int64
	// loaded tells how the state was last rebuilt from the log.
	loaded partlog.ProducerLoad
	// guards are the transactional producers whose next transaction is
	// being, or was, verified with its coordinator's state (see
	// txnproduce.go); nil until the first.
	guards map[int64]*txnGuard
}

func newProducerStates() *producerStates {
	return &producerStates{
		now:    time.Now,
		logger: slog.New(slog.DiscardHandler),
		table:  partlog.NewProducerStates(partlog.ProducerStateConfig{Expiry: defaultProducerIDExpirationMs * time.Millisecond}),
	}
}

// len is how many producers the partition remembers.
func (ps *producerStates) len() int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.table.Len()
}

// hasProducerBatch reports whether any batch carries a producer id. Batches
// it cannot parse are left to the log's validation.
func hasProducerBatch(batches []byte) bool {
	it := record.NewBatches(batches)
	for it.Next() {
		if it.Header().ProducerID >= 0 {
			return true
		}
	}
	return false
}

// seqView is what the checks of one request know of a producer: its state
// before the request, then advanced by the request's earlier batches.
type seqView struct {
	committed *partlog.ProducerEntry // nil: unknown (expired, evicted) before the request
	// epochKnown: epoch is the producer's latest; known: lastSeq is its
	// last sequence too. A producer whose latest epoch came with an
	// end-transaction marker (a coordinator bumped it to fence it) has an
	// epoch and no sequence.
	epochKnown bool
	known      bool
	epoch      int16
	lastSeq    int32
}

// checkLocked applies the idempotence rules to every batch of a leader
// append, in order, and returns for each batch the batch it duplicates, if
// it does; nil when none does, as is nearly always the case. Nothing is
// changed. mu must be held.
//
// A request's batches for one partition are nearly always from one
// producer, and a produce spread over thousands of partitions checks one
// batch per partition: the first producer's view lives on the stack, and
// a map is made only for a second producer.
func (ps *producerStates) checkLocked(batches []byte, now time.Time) ([]*partlog.ProducerBatch, error) {
	var (
		dups    []*partlog.ProducerBatch
		first   seqView
		firstID int64 = -1
		more    map[int64]*seqView
	)
	it := record.NewBatches(batches)
	for i := 0; it.Next(); i++ {
		h := it.Header()
		if dups != nil {
			dups = append(dups, nil)
		}
		if h.ProducerID < 0 {
			continue
		}
		if h.ProducerEpoch < 0 || h.BaseSequence < 0 {
			return nil, fmt.Errorf("batch %d: %w", i, &record.CorruptError{
				Reason: fmt.Sprintf("producer id %d with epoch %d and base sequence %d", h.ProducerID, h.ProducerEpoch, h.BaseSequence)})
		}
		var v *seqView
		switch {
		case h.ProducerID == firstID:
			v = &first
		case firstID < 0:
			firstID, first = h.ProducerID, ps.viewLocked(h.ProducerID, now)
			v = &first
		default:
			if more == nil {
				more = make(map[int64]*seqView)
			}
			if v = more[h.ProducerID]; v == nil {
				view := ps.viewLocked(h.ProducerID, now)
				v = &view
				more[h.ProducerID] = v
			}
		}
		firstSeq, lastSeq := h.BaseSequence, partlog.LastSequence(&h)
		switch {
		case v.epochKnown && h.ProducerEpoch < v.epoch:
			return nil, fmt.Errorf("batch %d: producer %d: epoch %d, latest is %d: %w",
				i, h.ProducerID, h.ProducerEpoch, v.epoch, ErrInvalidProducerEpoch)
		case !v.known, h.ProducerEpoch > v.epoch:
			// Unknown producer (new, expired, evicted, or older than the
			// state rebuilt from the log), a bumped epoch, or an epoch with
			// no batch yet: any sequence starts it, as Kafka does since
			// KIP-360.
		default:
			if c := v.committed; c != nil && c.Epoch == h.ProducerEpoch {
				if m, ok := c.Find(firstSeq, lastSeq); ok {
					if dups == nil {
						dups = make([]*partlog.ProducerBatch, i+1)
					}
					dups[i] = &m
					continue
				}
			}
			if want := partlog.AddSequence(v.lastSeq, 1); firstSeq != want {
				return nil, fmt.Errorf("batch %d: producer %d epoch %d: sequence %d..%d, expected %d next: %w",
					i, h.ProducerID, h.ProducerEpoch, firstSeq, lastSeq, want, ErrOutOfOrderSequence)
			}
		}
		v.epochKnown, v.known, v.epoch, v.lastSeq = true, true, h.ProducerEpoch, lastSeq
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("record batches: %w", err)
	}
	return dups, nil
}

// viewLocked is producer id's view before the request's batches. mu must
// be held.
func (ps *producerStates) viewLocked(id int64, now time.Time) seqView {
	v := seqView{committed: ps.table.Get(id, now)}
	if c := v.committed; c != nil {
		v.epochKnown, v.epoch = true, c.Epoch
		if len(c.Batches) > 0 {
			v.known, v.lastSeq = true, c.Batches[len(c.Batches)-1].LastSeq
		}
	}
	return v
}

// appendAsLeader appends batches to the log as the leader of epoch, applying
// the idempotent-producer rules to batches that carry a producer id: a batch
// that repeats one of its producer's latest batches is not written again
// (the result reports the original offsets), a lower producer epoch is
// ErrInvalidProducerEpoch and a gap in the sequence ErrOutOfOrderSequence,
// with nothing written. The caller holds roleMu.
//
// With duplicates, FirstOffset is the first batch's (original) base offset
// and LastOffset the highest last offset of all the batches, what acks=all
// waits for; Records counts every record given, Batches only those written.
//
// The batches' CRCs were checked before (see leaderAppend), so the log
// checks everything else but those.
func (p *Partition) appendAsLeader(batches []byte, epoch int32, guards map[int64]*txnGuard) (partlog.AppendResult, error) {
	if !hasProducerBatch(batches) {
		return p.log.AppendChecked(batches, epoch)
	}
	ps := p.producers
	ps.mu.Lock()
	defer ps.mu.Unlock()
	// The request's verifications are used up, appended or not: a batch
	// that failed is verified again when it is sent again.
	defer ps.dropGuardsLocked(guards)
	now := ps.now()
	dups, err := ps.checkLocked(batches, now)
	if err != nil {
		return partlog.AppendResult{}, fmt.Errorf("%s-%d: %w", p.Topic, p.Index, err)
	}
	toAppend, ndup := batches, 0
	for _, d := range dups {
		if d != nil {
			ndup++
		}
	}
	if ndup > 0 {
		// Only the new batches are written; a retry is normally the only
		// batch of its request, so this copy is rare.
		toAppend = nil
		it := record.NewBatches(batches)
		for i := 0; it.Next(); i++ {
			if dups[i] == nil {
				toAppend = append(toAppend, it.Bytes()...)
			}
		}
	}
	res := partlog.AppendResult{MaxTimestamp: -1}
	if len(toAppend) > 0 {
		it := record.NewBatches(toAppend)
		for it.Next() {
			if h := it.Header(); h.Transactional() {
				if err := p.checkTxnAppendLocked(&h, epoch, guards); err != nil {
					return partlog.AppendResult{}, err
				}
			}
		}
		if res, err = p.log.AppendChecked(toAppend, epoch); err != nil {
			return res, err
		}
		// The offsets are stamped in toAppend now.
		it = record.NewBatches(toAppend)
		for it.Next() {
			if h := it.Header(); h.ProducerID >= 0 {
				ps.table.Record(&h, now)
			}
		}
		p.snapshotIfRolledLocked()
	}
	if ndup == 0 {
		return res, nil
	}
	// Report the request as a whole, duplicates at their original offsets.
	written := record.NewBatches(toAppend)
	it := record.NewBatches(batches)
	out := res
	out.Records = 0
	for i := 0; it.Next(); i++ {
		h := it.Header()
		var first, last int64
		if d := dups[i]; d != nil {
			first, last = d.FirstOffset, d.LastOffset
		} else {
			written.Next()
			wh := written.Header()
			first, last = wh.BaseOffset, wh.LastOffset()
		}
		if i == 0 {
			out.FirstOffset, out.LastOffset = first, last
		}
		out.LastOffset = max(out.LastOffset, last)
		out.Records += int(h.RecordCount)
	}
	return out, nil
}

// appendReplicated appends batches a follower copied from its leader
// (offsets as in the leader's log) and records their producers, so that it
// can take over as leader knowing recent sequences. Both happen under the
// producer state's lock: a snapshot must never see the log ahead of the
// state.
func (p *Partition) appendReplicated(batches []byte) error {
	ps := p.producers
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if _, err := p.log.AppendReplicated(batches); err != nil {
		return err
	}
	p.trackReplicatedLocked(batches)
	return nil
}

// trackReplicatedLocked updates the producer state with batches a follower
// appended. ps.mu must be held.
func (p *Partition) trackReplicatedLocked(batches []byte) {
	if !hasProducerBatch(batches) {
		return
	}
	ps := p.producers
	now := ps.now()
	it := record.NewBatches(batches)
	for it.Next() {
		h := it.Header()
		if h.Transactional() {
			// As on the leader, a marker ends what was verified; and a
			// replica's verifications predate its leader's appends.
			delete(ps.guards, h.ProducerID)
		}
		switch {
		case h.ProducerID < 0:
		case h.Control():
			// The coordinator epoch the leader checked comes along, so
			// that this replica, as leader, refuses the same zombies.
			if _, m, ok, err := record.ParseControlBatch(it.Bytes()); err == nil && ok {
				ps.table.RecordMarker(&h, &m, now)
			} else {
				ps.table.RecordMarker(&h, nil, now)
			}
		default:
			ps.table.Record(&h, now)
		}
	}
	p.snapshotIfRolledLocked()
}

// snapshotIfRolledLocked writes a producer snapshot once the log has rolled
// since the last one (Kafka snapshots at every roll), so that a restart or
// a truncation replays at most about a segment of batch headers. It costs
// two fsyncs per segment, under the lock. A failure is logged: the next
// roll tries again, and loading falls back to an older snapshot or a scan.
// ps.mu must be held and every producer batch in the log recorded.
func (p *Partition) snapshotIfRolledLocked() {
	ps := p.producers
	base := p.log.ActiveSegmentBase()
	if base == ps.snapBase {
		return
	}
	ps.snapBase = base
	if _, err := p.log.WriteProducerSnapshot(ps.table, ps.now()); err != nil {
		ps.logger.Warn("cannot write producer snapshot", "topic", p.Topic, "partition", p.Index, "err", err)
	}
}

// snapshotProducersTo writes a producer snapshot of the log's end, before
// the log is closed, so that the next open reads no segment for the state;
// its fsyncs are left to batch (nil: at once).
func (p *Partition) snapshotProducersTo(batch *partlog.SyncBatch) error {
	ps := p.producers
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if _, err := p.log.WriteProducerSnapshotTo(batch, ps.table, ps.now()); err != nil {
		return fmt.Errorf("%s-%d: %w", p.Topic, p.Index, err)
	}
	return nil
}

// rebuildProducerState replaces the producer state with the log's, after
// the log was opened or truncated: from its newest producer snapshot and
// the batch headers after it, or without one from the batch headers of its
// tail (producerStateScanBytes); it keeps no more producers than the
// partition's bound, the most recent ones. Producers found in the log are
// taken as seen now: batch timestamps are the clients' and may be old
// (mirrored data).
func (p *Partition) rebuildProducerState() error {
	ps := p.producers
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.guards = nil // what was verified was against the log before
	ps.snapBase = p.log.ActiveSegmentBase()
	info, err := ps.table.Load(p.log, producerStateScanBytes, ps.now())
	ps.loaded = info
	if err != nil {
		return fmt.Errorf("%s-%d: rebuild producer state: %w", p.Topic, p.Index, err)
	}
	ps.logger.Debug("producer state loaded", "topic", p.Topic, "partition", p.Index,
		"snapshot_offset", info.SnapshotOffset, "segments_read", info.Segments, "bytes_read", info.Bytes, "producers", ps.table.Len())
	return nil
}
