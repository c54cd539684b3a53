package partlog

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/strata-broker/strata/record"
)

// MaxProducerBatches is how many of a producer's latest batches a partition
// remembers: an idempotent Kafka producer has at most five requests in
// flight per partition, so a retry is one of those.
const MaxProducerBatches = 5

// DefaultMaxProducerEntries is how many producers a ProducerStates keeps
// when its config does not say; the broker's producer.state.max.entries
// has the same default.
const DefaultMaxProducerEntries = 10_000

// ProducerBatch is what a partition remembers of a batch an idempotent
// producer appended.
type ProducerBatch struct {
	FirstSeq, LastSeq       int32
	FirstOffset, LastOffset int64
}

// ProducerEntry is a partition's state for one producer id. Callers read
// it; only ProducerStates changes it.
type ProducerEntry struct {
	Epoch int16
	// Batches are of Epoch, oldest first, at most MaxProducerBatches.
	Batches []ProducerBatch
	// CoordinatorEpoch is the transaction coordinator epoch of the
	// producer's latest end-transaction marker, -1 when none is known (as
	// Kafka, the entry keeps it): a marker of an older coordinator epoch is
	// refused.
	CoordinatorEpoch int32
	// Marker is the producer's latest end-transaction marker of Epoch, when
	// HasMarker.
	Marker    ProducerMarker
	HasMarker bool

	id       int64
	lastSeen time.Time
	// prev and next link the entries from the most recently used to the
	// least, through the ProducerStates' sentinel.
	prev, next *ProducerEntry
}

// ProducerMarker is what a partition remembers of a producer's latest
// end-transaction marker.
type ProducerMarker struct {
	Commit bool
	Offset int64
}

// Find returns the remembered batch with exactly these sequences.
func (e *ProducerEntry) Find(firstSeq, lastSeq int32) (ProducerBatch, bool) {
	for _, m := range e.Batches {
		if m.FirstSeq == firstSeq && m.LastSeq == lastSeq {
			return m, true
		}
	}
	return ProducerBatch{}, false
}

// ProducerStateConfig bounds a ProducerStates.
type ProducerStateConfig struct {
	// Expiry forgets a producer not seen for this long (Kafka's
	// producer.id.expiration.ms); zero never does.
	Expiry time.Duration
	// MaxEntries is how many producers are kept at most; recording one
	// more evicts the least recently used. Zero means
	// DefaultMaxProducerEntries.
	MaxEntries int
	// Evicted, if set, is told how many producers were evicted to stay
	// within MaxEntries (not those that expired), for a metric.
	Evicted func(n int)
}

// ProducerStates is a partition's idempotent-producer state: per producer
// id, its latest epoch and its latest batches, so that a retried batch can
// be recognised and a gap in a producer's sequence refused (the rules are
// the broker's). Clients choose producer ids, so the state is bounded: at
// most MaxEntries producers, the least recently used evicted first; an
// evicted producer is unknown afterwards, exactly like one whose state
// expired. Get and Record take constant time.
//
// A ProducerStates is not safe for concurrent use: the caller serialises
// checks and appends under one lock anyway.
type ProducerStates struct {
	cfg     ProducerStateConfig
	entries map[int64]*ProducerEntry
	// lru is the sentinel of the recency list: lru.next is the most
	// recently recorded entry, lru.prev the least.
	lru ProducerEntry
}

// NewProducerStates returns an empty state bounded by cfg.
func NewProducerStates(cfg ProducerStateConfig) *ProducerStates {
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxProducerEntries
	}
	ps := &ProducerStates{cfg: cfg}
	ps.Reset()
	return ps
}

// Reset forgets every producer.
func (ps *ProducerStates) Reset() {
	ps.entries = make(map[int64]*ProducerEntry)
	ps.lru.prev, ps.lru.next = &ps.lru, &ps.lru
}

// Len is how many producers are remembered, expired ones not yet dropped
// included.
func (ps *ProducerStates) Len() int { return len(ps.entries) }

// Get returns the state of producer id, nil if it is unknown, expired or
// was evicted. It changes nothing, not even the recency of the entry: the
// broker looks producers up before deciding to append. The entry is valid
// until the next Record or Reset, which may recycle it.
func (ps *ProducerStates) Get(id int64, now time.Time) *ProducerEntry {
	e := ps.lookup(id)
	if e == nil || ps.expired(e, now) {
		return nil
	}
	return e
}

// lookup returns producer id's entry, nil if there is none. A partition
// usually hears from one producer again and again, and the most recently
// used entry is at hand in the recency list: a produce spread over
// thousands of partitions spares a map probe in each, whose memory is
// rarely in the CPU cache by then.
func (ps *ProducerStates) lookup(id int64) *ProducerEntry {
	if e := ps.lru.next; e != &ps.lru && e.id == id {
		return e
	}
	return ps.entries[id]
}

func (ps *ProducerStates) expired(e *ProducerEntry, now time.Time) bool {
	return ps.cfg.Expiry > 0 && now.Sub(e.lastSeen) >= ps.cfg.Expiry
}

// Record remembers an appended batch of the producer h names (h carries
// its offsets), seen at now, making the producer the most recently used.
// A batch of an epoch older than the producer's latest is ignored: only a
// leader's log can hold one (it checked the epoch) and then the newer epoch
// came later. Producers that expired are dropped, and the least recently
// used ones evicted to keep at most MaxEntries.
func (ps *ProducerStates) Record(h *record.Header, now time.Time) {
	e := ps.touch(h.ProducerID, h.ProducerEpoch, now)
	if e == nil {
		return
	}
	if len(e.Batches) == MaxProducerBatches {
		e.Batches = append(e.Batches[:0], e.Batches[1:]...)
	}
	e.Batches = append(e.Batches, ProducerBatch{
		FirstSeq: h.BaseSequence, LastSeq: LastSequence(h),
		FirstOffset: h.BaseOffset, LastOffset: h.LastOffset(),
	})
}

// RecordMarker remembers an end-transaction marker of the producer h names
// (h carries its offset), as Record does a data batch: the marker's
// producer epoch becomes the producer's (a coordinator that fenced a
// producer bumped it, so the fenced producer's later batches are refused)
// and its coordinator epoch the producer's. m nil is a marker known by its
// header only (a log walked by batch headers): the epoch is kept, the
// coordinator epoch and the marker stay unknown.
func (ps *ProducerStates) RecordMarker(h *record.Header, m *record.EndTxnMarker, now time.Time) {
	e := ps.touch(h.ProducerID, h.ProducerEpoch, now)
	if e == nil || m == nil {
		return
	}
	e.CoordinatorEpoch = max(e.CoordinatorEpoch, m.CoordinatorEpoch)
	e.Marker, e.HasMarker = ProducerMarker{Commit: m.Commit, Offset: h.BaseOffset}, true
}

// touch returns producer id's entry, created if need be, made the most
// recently used and moved to epoch if that is newer (which forgets the
// older epoch's batches and marker); nil, changing nothing, when epoch is
// older than the producer's.
func (ps *ProducerStates) touch(id int64, epoch int16, now time.Time) *ProducerEntry {
	e := ps.lookup(id)
	if e != nil && ps.expired(e, now) {
		ps.remove(e)
		e = nil
	}
	if e == nil {
		ps.dropExpired(now)
		var reuse *ProducerEntry
		evicted := 0
		for len(ps.entries) >= ps.cfg.MaxEntries {
			reuse = ps.lru.prev
			ps.remove(reuse)
			evicted++
		}
		if evicted > 0 && ps.cfg.Evicted != nil {
			ps.cfg.Evicted(evicted)
		}
		// A full state recycles the entry it evicted, so a stream of new
		// producers (or a log tail of them, loading) allocates nothing.
		if reuse != nil {
			*reuse = ProducerEntry{Batches: reuse.Batches[:0]}
		} else {
			reuse = &ProducerEntry{}
		}
		e = reuse
		e.id, e.Epoch, e.CoordinatorEpoch = id, epoch, -1
		ps.entries[id] = e
	} else {
		if epoch < e.Epoch {
			return nil
		}
		e.unlink()
	}
	e.linkAfter(&ps.lru)
	if now.After(e.lastSeen) {
		e.lastSeen = now
	}
	if epoch > e.Epoch {
		e.Epoch, e.Batches, e.HasMarker = epoch, e.Batches[:0], false
	}
	return e
}

// dropExpired removes expired producers from the least recently used end:
// entries are recorded in time order, so the first one that has not
// expired ends the sweep (a clock that stepped back can leave an expired
// entry behind it, which Get ignores and eviction reaches in time).
func (ps *ProducerStates) dropExpired(now time.Time) {
	for e := ps.lru.prev; e != &ps.lru && ps.expired(e, now); e = ps.lru.prev {
		ps.remove(e)
	}
}

func (ps *ProducerStates) remove(e *ProducerEntry) {
	e.unlink()
	delete(ps.entries, e.id)
}

func (e *ProducerEntry) unlink() {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (e *ProducerEntry) linkAfter(at *ProducerEntry) {
	e.prev, e.next = at, at.next
	at.next.prev = e
	at.next = e
}

// LastSequence is the sequence number of a batch's last record: sequences
// are int32 and wrap around to 0 after MaxInt32, as in Kafka.
func LastSequence(h *record.Header) int32 {
	return AddSequence(h.BaseSequence, h.LastOffsetDelta)
}

// AddSequence is seq advanced by n, wrapping around after MaxInt32.
func AddSequence(seq, n int32) int32 {
	if seq > math.MaxInt32-n {
		return n - (math.MaxInt32 - seq) - 1
	}
	return seq + n
}

// WalkTailHeaders calls fn, in offset order, with the header of every batch
// in about the last maxBytes of the log: it starts at a batch boundary (the
// start of a segment, or an offset-index entry) at most maxBytes before the
// end, so it may visit a little less than maxBytes, never more. Only headers
// are read and CRCs are not checked; a damaged batch ends the walk of its
// segment (the next one is still walked) and is reported as a
// *CorruptionError. It is for rebuilding state derived from the tail of
// the log (the broker's idempotent-producer state) at a bounded cost.
//
// The header passed to fn is reused between calls. WalkTailHeaders runs
// concurrently with Append, seeing what was published when it reached each
// segment; it holds off truncation and segment deletion until it returns.
func (l *Log) WalkTailHeaders(maxBytes int64, fn func(h *record.Header)) error {
	_, err := l.walkTailHeaders(maxBytes, fn)
	return err
}

// walkTailHeaders is WalkTailHeaders, also reporting how many segments it
// read.
func (l *Log) walkTailHeaders(maxBytes int64, fn func(h *record.Header)) (int, error) {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if l.closed.Load() {
		return 0, ErrLogClosed
	}
	// Find the first segment to walk, and where in it to start.
	first, startPos, startOff := len(l.segs), int64(0), int64(0)
	budget := maxBytes
	for i := len(l.segs) - 1; i >= 0 && budget > 0; i-- {
		s := l.segs[i]
		size := s.size.Load()
		if size <= budget {
			first, startPos, startOff = i, 0, s.base
			budget -= size
			continue
		}
		// Only part of this segment fits: start at the first indexed batch
		// inside the budget, if there is one.
		if off, at, ok := s.entryAfter(size-budget-1, size); ok {
			first, startPos, startOff = i, at, off
		}
		break
	}
	return l.walkHeadersLocked(first, startPos, startOff, fn)
}

// WalkHeadersFrom calls fn, in offset order, with the header of every batch
// from offset (a batch boundary; a batch holding offset is skipped) to the
// log end, and returns how many segments it read: none when offset is the
// log end. An offset below the first segment walks the whole log. Damage,
// concurrency and the reuse of the header are as for WalkTailHeaders.
func (l *Log) WalkHeadersFrom(offset int64, fn func(h *record.Header)) (int, error) {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if l.closed.Load() {
		return 0, ErrLogClosed
	}
	if len(l.segs) == 0 || offset >= l.leo.Load() {
		return 0, nil
	}
	i := l.segmentFor(offset)
	s := l.segs[i]
	pos, base := int64(0), s.base
	if offset > s.base {
		var err error
		if pos, base, err = l.locate(s, s.size.Load(), offset); err != nil {
			return 0, fmt.Errorf("log: walk batch headers from %d: %w", offset, err)
		}
	}
	return l.walkHeadersLocked(i, pos, base, func(h *record.Header) {
		if h.BaseOffset >= offset {
			fn(h)
		}
	})
}

// walkHeadersLocked walks the batch headers from segment first, at byte
// startPos where the batch at startOff starts, to the log end, reporting
// the segments read. segMu must be held.
func (l *Log) walkHeadersLocked(first int, startPos, startOff int64, fn func(h *record.Header)) (int, error) {
	var damaged []error
	read := 0
	for i := first; i < len(l.segs); i++ {
		s := l.segs[i]
		pos, off := int64(0), s.base
		if i == first {
			pos, off = startPos, startOff
		}
		size := s.size.Load()
		if pos >= size {
			continue
		}
		read++
		f, err := s.acquire()
		if err != nil {
			return read, err
		}
		sc := newScanner(f, size, scanChunk)
		_, _, dmg, err := sc.walk(pos, off, false, func(_ int64, h *record.Header) { fn(h) })
		s.release()
		if err != nil {
			return read, l.ioError(s, err)
		}
		if dmg != nil {
			damaged = append(damaged, fmt.Errorf("log: walk batch headers: %w", l.corruption(s, dmg.pos, dmg.offset, s.next.Load(), dmg.err)))
		}
	}
	return read, errors.Join(damaged...)
}

// ProducerInfo is what Kafka's DescribeProducers shows of one producer.
type ProducerInfo struct {
	ID    int64
	Epoch int16
	// LastSequence is the last sequence of the producer's latest batch, -1
	// when only a marker of it is remembered.
	LastSequence int32
	// LastSeen is when the producer's latest batch or marker was appended.
	LastSeen         time.Time
	CoordinatorEpoch int32
}

// Producers lists the producers remembered and not expired at now, most
// recently used first; at most MaxEntries of them.
func (ps *ProducerStates) Producers(now time.Time) []ProducerInfo {
	out := make([]ProducerInfo, 0, len(ps.entries))
	for e := ps.lru.next; e != &ps.lru; e = e.next {
		if ps.expired(e, now) {
			continue
		}
		last := int32(-1)
		if n := len(e.Batches); n > 0 {
			last = e.Batches[n-1].LastSeq
		}
		out = append(out, ProducerInfo{ID: e.id, Epoch: e.Epoch, LastSequence: last, LastSeen: e.lastSeen, CoordinatorEpoch: e.CoordinatorEpoch})
	}
	return out
}
