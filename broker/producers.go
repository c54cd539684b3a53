package broker

// Idempotent producers, as in Kafka: InitProducerID hands out producer ids,
// and each partition remembers, per producer id, the latest epoch and the
// last few batches appended (their sequence numbers and offsets), so that a
// retried batch is answered with its original offsets instead of being
// written twice, and a gap in the sequence is refused. Transactions are not
// supported.

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

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

	// maxCachedBatches is how many of a producer's latest batches a
	// partition remembers: an idempotent Kafka producer has at most five
	// requests in flight per partition, so a retry is one of those.
	maxCachedBatches = 5

	// producerStateScanBytes bounds the work of rebuilding producer state
	// from the log (when a partition opens, and after a follower truncates):
	// only the batch headers of about the last 128 MiB are read. A producer
	// whose latest batch is older than that is unknown afterwards, which
	// costs nothing unless it retries a batch written before that window,
	// when the retry would be written again.
	producerStateScanBytes = 128 << 20
)

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
	b.pidMu.Lock()
	defer b.pidMu.Unlock()
	if b.pidNext >= b.pidEnd {
		first, err := b.store.AllocateProducerIDs(ctx, producerIDBlockSize)
		if err != nil {
			return -1, -1, fmt.Errorf("init producer id: %w", err)
		}
		b.pidNext, b.pidEnd = first, first+producerIDBlockSize
	}
	id = b.pidNext
	b.pidNext++
	return id, 0, nil
}

// batchMeta is what a partition remembers of an appended idempotent batch.
type batchMeta struct {
	firstSeq, lastSeq       int32
	firstOffset, lastOffset int64
}

// producerEntry is a partition's state for one producer id.
type producerEntry struct {
	epoch    int16
	batches  []batchMeta // of epoch, oldest first, at most maxCachedBatches
	lastSeen time.Time   // broker clock of its latest append
}

func (e *producerEntry) find(firstSeq, lastSeq int32) (batchMeta, bool) {
	for _, m := range e.batches {
		if m.firstSeq == firstSeq && m.lastSeq == lastSeq {
			return m, true
		}
	}
	return batchMeta{}, false
}

// producerStates is a partition's idempotent-producer state.
type producerStates struct {
	// mu is held from the sequence checks of a leader append until its
	// state is recorded, so two requests of one producer cannot both pass
	// the checks; followers' appends and rebuilds take it too.
	mu        sync.Mutex
	now       func() time.Time
	expiry    time.Duration // producer.id.expiration.ms
	producers map[int64]*producerEntry
	lastSweep time.Time
}

func newProducerStates() *producerStates {
	return &producerStates{
		now:       time.Now,
		expiry:    defaultProducerIDExpirationMs * time.Millisecond,
		producers: make(map[int64]*producerEntry),
	}
}

// lastSequence is the sequence number of a batch's last record: sequences
// are int32 and wrap around to 0 after MaxInt32, as in Kafka.
func lastSequence(h *record.Header) int32 {
	return addSequence(h.BaseSequence, h.LastOffsetDelta)
}

func addSequence(seq, n int32) int32 {
	if seq > math.MaxInt32-n {
		return n - (math.MaxInt32 - seq) - 1
	}
	return seq + n
}

// entryLocked returns the live state of producer id, nil if it is unknown
// or expired. mu must be held.
func (ps *producerStates) entryLocked(id int64, now time.Time) *producerEntry {
	e := ps.producers[id]
	if e == nil || now.Sub(e.lastSeen) >= ps.expiry {
		return nil
	}
	return e
}

// recordLocked remembers an appended batch of a producer, seen at seen.
// mu must be held.
func (ps *producerStates) recordLocked(h *record.Header, seen, now time.Time) {
	e := ps.entryLocked(h.ProducerID, now)
	if e == nil {
		e = &producerEntry{epoch: h.ProducerEpoch}
		ps.producers[h.ProducerID] = e
	}
	switch {
	case h.ProducerEpoch < e.epoch:
		// Only a leader's log can hold it (it checked the epoch), and then
		// the newer epoch came later: keep the newer one.
		return
	case h.ProducerEpoch > e.epoch:
		e.epoch, e.batches = h.ProducerEpoch, nil
	}
	if len(e.batches) == maxCachedBatches {
		e.batches = append(e.batches[:0], e.batches[1:]...)
	}
	e.batches = append(e.batches, batchMeta{
		firstSeq: h.BaseSequence, lastSeq: lastSequence(h),
		firstOffset: h.BaseOffset, lastOffset: h.LastOffset(),
	})
	if seen.After(e.lastSeen) {
		e.lastSeen = seen
	}
}

// sweepLocked drops expired producers, at most every tenth of the
// expiration time: lookups ignore expired entries anyway, the sweep only
// bounds memory. mu must be held.
func (ps *producerStates) sweepLocked(now time.Time) {
	if now.Sub(ps.lastSweep) < ps.expiry/10 {
		return
	}
	ps.lastSweep = now
	for id, e := range ps.producers {
		if now.Sub(e.lastSeen) >= ps.expiry {
			delete(ps.producers, id)
		}
	}
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
	committed *producerEntry // nil: unknown (or expired) before the request
	known     bool
	epoch     int16
	lastSeq   int32
}

// checkLocked applies the idempotence rules to every batch of a leader
// append, in order, and returns for each batch the batch it duplicates, if
// it does. Nothing is changed. mu must be held.
func (ps *producerStates) checkLocked(batches []byte, now time.Time) ([]*batchMeta, error) {
	var (
		dups  []*batchMeta
		views map[int64]*seqView
	)
	it := record.NewBatches(batches)
	for i := 0; it.Next(); i++ {
		h := it.Header()
		dups = append(dups, nil)
		if h.ProducerID < 0 {
			continue
		}
		if h.Transactional() {
			return nil, fmt.Errorf("batch %d: producer %d: transactional batch: %w", i, h.ProducerID, ErrTransactionsUnsupported)
		}
		if h.ProducerEpoch < 0 || h.BaseSequence < 0 {
			return nil, fmt.Errorf("batch %d: %w", i, &record.CorruptError{
				Reason: fmt.Sprintf("producer id %d with epoch %d and base sequence %d", h.ProducerID, h.ProducerEpoch, h.BaseSequence)})
		}
		if views == nil {
			views = make(map[int64]*seqView)
		}
		v := views[h.ProducerID]
		if v == nil {
			v = &seqView{committed: ps.entryLocked(h.ProducerID, now)}
			if c := v.committed; c != nil && len(c.batches) > 0 {
				v.known, v.epoch, v.lastSeq = true, c.epoch, c.batches[len(c.batches)-1].lastSeq
			}
			views[h.ProducerID] = v
		}
		firstSeq, lastSeq := h.BaseSequence, lastSequence(&h)
		switch {
		case !v.known, h.ProducerEpoch > v.epoch:
			// Unknown producer (new, expired, or older than the state
			// rebuilt from the log), or a bumped epoch: any sequence starts
			// it (KIP-360).
		case h.ProducerEpoch < v.epoch:
			return nil, fmt.Errorf("batch %d: producer %d: epoch %d, latest is %d: %w",
				i, h.ProducerID, h.ProducerEpoch, v.epoch, ErrInvalidProducerEpoch)
		default:
			if c := v.committed; c != nil && c.epoch == h.ProducerEpoch {
				if m, ok := c.find(firstSeq, lastSeq); ok {
					dups[i] = &m
					continue
				}
			}
			if want := addSequence(v.lastSeq, 1); firstSeq != want {
				return nil, fmt.Errorf("batch %d: producer %d epoch %d: sequence %d..%d, expected %d next: %w",
					i, h.ProducerID, h.ProducerEpoch, firstSeq, lastSeq, want, ErrOutOfOrderSequence)
			}
		}
		v.known, v.epoch, v.lastSeq = true, h.ProducerEpoch, lastSeq
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("record batches: %w", err)
	}
	return dups, nil
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
func (p *Partition) appendAsLeader(batches []byte, epoch int32) (partlog.AppendResult, error) {
	if !hasProducerBatch(batches) {
		return p.log.Append(batches, epoch)
	}
	ps := p.producers
	ps.mu.Lock()
	defer ps.mu.Unlock()
	now := ps.now()
	ps.sweepLocked(now)
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
		if res, err = p.log.Append(toAppend, epoch); err != nil {
			return res, err
		}
		// The offsets are stamped in toAppend now.
		it := record.NewBatches(toAppend)
		for it.Next() {
			if h := it.Header(); h.ProducerID >= 0 {
				ps.recordLocked(&h, now, now)
			}
		}
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
			first, last = d.firstOffset, d.lastOffset
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

// trackReplicated updates the producer state with batches a follower copied
// from its leader (already appended, offsets as in the leader's log), so
// that it can take over as leader knowing recent sequences.
func (p *Partition) trackReplicated(batches []byte) {
	if !hasProducerBatch(batches) {
		return
	}
	ps := p.producers
	ps.mu.Lock()
	defer ps.mu.Unlock()
	now := ps.now()
	ps.sweepLocked(now)
	it := record.NewBatches(batches)
	for it.Next() {
		if h := it.Header(); h.ProducerID >= 0 && !h.Control() {
			ps.recordLocked(&h, now, now)
		}
	}
}

// rebuildProducerState replaces the producer state with what the batch
// headers of the log's tail (producerStateScanBytes) show, after the log
// was opened or truncated. Producers found are taken as seen now: batch
// timestamps are the clients' and may be old (mirrored data), and the scan
// bounds how many entries this can keep.
func (p *Partition) rebuildProducerState() error {
	ps := p.producers
	ps.mu.Lock()
	defer ps.mu.Unlock()
	now := ps.now()
	ps.producers = make(map[int64]*producerEntry)
	ps.lastSweep = now
	err := p.log.WalkTailHeaders(producerStateScanBytes, func(h *record.Header) {
		if h.ProducerID >= 0 && !h.Control() {
			ps.recordLocked(h, now, now)
		}
	})
	if err != nil {
		return fmt.Errorf("%s-%d: rebuild producer state: %w", p.Topic, p.Index, err)
	}
	return nil
}
