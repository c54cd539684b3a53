package partlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"slices"
	"sync"

	"github.com/strata-broker/strata/record"
)

// Transactions in the log.
//
// A transactional producer's data batches (transactional bit set, not
// control) open its transaction in the partition at the first one's base
// offset; its commit or abort marker (a control batch, see
// record.EndTxnMarker) closes it. The log follows this on every append (a
// leader's and a follower's alike, which write the same batches) and
// rebuilds it when it is opened or truncated, so that:
//
//   - LastStableOffset(hw) is the partition's last stable offset given its
//     high watermark (which the broker keeps, not the log), Kafka's rule: the
//     first offset of the earliest transaction that is open, or whose marker
//     is not below hw yet, capped by hw. A transaction stays unstable until
//     its marker is replicated because a new leader without the marker has
//     it open again until its coordinator writes the marker anew: what a
//     read_committed consumer, the cleaner or the uploader took as decided
//     must stay decided;
//   - every abort marker leaves an AbortedTxn in the aborted-transaction
//     index of the segment holding the marker, which a read_committed fetch
//     returns with its records (AbortedTransactions).
//
// On disk a sealed segment has a <base>.txnindex beside it (see
// encodeTxnIndex): its aborted transactions and the transactions open at its
// start and at its end. The active segment has none: its entries are kept in
// memory and rebuilt from its batches when the log is opened. So opening a
// log walks the batch headers of the active segment and of the segments
// recovery scanned anyway, plus one segment per missing or stale .txnindex;
// a truncation walks the one segment it cuts. Marker batches are read whole
// (one record of 10 bytes); data batches only by header.

// AbortedTxn is an entry of the aborted-transaction index, Kafka's
// AbortedTxn: a producer's transaction, from its first offset to its abort
// marker, and the partition's last stable offset when the marker was
// written (the first offset of the earliest transaction still open then, or
// the offset after the marker if none was).
type AbortedTxn struct {
	ProducerID       int64
	FirstOffset      int64
	LastOffset       int64 // the abort marker's offset
	LastStableOffset int64
}

// OpenTxn is a producer's transaction still open in the partition.
type OpenTxn struct {
	ProducerID  int64
	FirstOffset int64
}

// txnState is the set of open transactions, in first-offset order. A
// transaction opens at the log end, so a new one always goes last: opening
// is O(1) and finding the earliest is O(1); closing one is O(open) for the
// slice copy, and open transactions are few (one per producer writing to
// the partition inside a transaction). Not safe for concurrent use: Log.mu
// guards the log's.
type txnState struct {
	open  []OpenTxn
	byPID map[int64]int64 // producer id → first offset
	// ended collects the transactions end closes, in marker order, until
	// the log takes them into its endedTxns.
	ended []endedTxn
}

// endedTxn is a transaction closed by a marker the log has not yet seen the
// high watermark pass (Kafka's unreplicated transactions).
type endedTxn struct {
	first, marker int64
}

func newTxnState(open []OpenTxn) *txnState {
	t := &txnState{open: slices.Clone(open), byPID: make(map[int64]int64, len(open))}
	for _, o := range open {
		t.byPID[o.ProducerID] = o.FirstOffset
	}
	return t
}

func (t *txnState) snapshot() []OpenTxn { return slices.Clone(t.open) }

// firstUnstable is the first offset of the earliest open transaction, or -1.
func (t *txnState) firstUnstable() int64 {
	if len(t.open) == 0 {
		return -1
	}
	return t.open[0].FirstOffset
}

// data records a transactional data batch: it opens its producer's
// transaction, or continues the open one.
func (t *txnState) data(h *record.Header) {
	if _, ok := t.byPID[h.ProducerID]; ok {
		return
	}
	t.byPID[h.ProducerID] = h.BaseOffset
	t.open = append(t.open, OpenTxn{ProducerID: h.ProducerID, FirstOffset: h.BaseOffset})
}

// end closes the producer's transaction at a marker at offset and returns
// its first offset (the marker's own when no transaction was open: Kafka
// writes markers to partitions a transaction added but never wrote to) and
// the last stable offset once it is closed.
func (t *txnState) end(pid, offset int64) (first, lso int64) {
	first = offset
	if f, ok := t.byPID[pid]; ok {
		first = f
		delete(t.byPID, pid)
		// open is ordered by first offset (decodeTxnIndex checks a file's),
		// and first offsets are distinct: each is a different batch's.
		i, _ := slices.BinarySearchFunc(t.open, f, func(o OpenTxn, f int64) int {
			switch {
			case o.FirstOffset < f:
				return -1
			case o.FirstOffset > f:
				return 1
			}
			return 0
		})
		t.open = slices.Delete(t.open, i, i+1)
		t.ended = append(t.ended, endedTxn{first: f, marker: offset})
	}
	lso = offset + 1
	if len(t.open) > 0 {
		lso = t.open[0].FirstOffset
	}
	return first, lso
}

// apply follows one batch, whose bytes batch returns when it is a control
// batch (only then are they needed), and returns the aborted-index entry an
// abort marker makes. A control batch that is not an end-transaction marker
// (Kafka's KRaft records) or cannot be parsed changes nothing; the latter is
// reported, with the state left as it was.
func (t *txnState) apply(h *record.Header, batch func() ([]byte, error)) (*AbortedTxn, error) {
	if h.ProducerID < 0 || !h.Transactional() {
		return nil, nil
	}
	if !h.Control() {
		t.data(h)
		return nil, nil
	}
	b, err := batch()
	if err != nil {
		return nil, err
	}
	_, m, ok, err := record.ParseControlBatch(b)
	if err != nil {
		return nil, fmt.Errorf("control batch at offset %d: %w", h.BaseOffset, err)
	}
	if !ok {
		return nil, nil
	}
	first, lso := t.end(h.ProducerID, h.BaseOffset)
	if m.Commit {
		return nil, nil
	}
	return &AbortedTxn{ProducerID: h.ProducerID, FirstOffset: first, LastOffset: h.BaseOffset, LastStableOffset: lso}, nil
}

// walkTxns follows the batches of s's first size bytes (read through r)
// from the state st, returning the aborted-index entries of s. Damage ends
// the walk: recovery has cut it already, and below a recovery point it is
// a read-time error reported elsewhere.
func walkTxns(r io.ReaderAt, s *segment, size int64, st *txnState) ([]AbortedTxn, error) {
	sc := newScanner(r, size, scanChunk)
	var aborted []AbortedTxn
	var applyErr error
	_, _, _, err := sc.walk(0, s.base, false, func(pos int64, h *record.Header) {
		n := h.Size()
		e, err := st.apply(h, func() ([]byte, error) { return sc.read(pos, n) })
		if err != nil {
			applyErr = errors.Join(applyErr, err)
		}
		if e != nil {
			aborted = append(aborted, *e)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("log: rebuild transactions of %s: %w", s.name(), err)
	}
	return aborted, applyErr
}

// FirstUnstableOffset is the first offset of the earliest transaction still
// open in the log, or -1 when none is, whether or not the markers of
// transactions closed since are replicated: what the log's own bookkeeping
// needs. The last stable offset is LastStableOffset's. A log start moved
// past a transaction's first offset (DeleteRecords) raises it to the log
// start, as in Kafka.
func (l *Log) FirstUnstableOffset() int64 {
	f := l.firstUnstable.Load()
	if f < 0 {
		return -1
	}
	return max(f, l.logStart.Load())
}

// FirstUnstableOffsetAt is the first offset of the earliest transaction
// that is open or whose marker is at or above the high watermark hw, or -1
// when there is none (Kafka's firstUnstableOffset). It forgets the closed
// transactions whose markers are below hw: the high watermark of a
// partition does not go back past a replicated marker.
func (l *Log) FirstUnstableOffsetAt(hw int64) int64 {
	l.ended.mu.Lock()
	f := l.firstUnstable.Load()
	i := 0
	for i < len(l.ended.txns) && l.ended.txns[i].marker < hw {
		i++
	}
	l.ended.txns = l.ended.txns[i:]
	for _, e := range l.ended.txns {
		if f < 0 || e.first < f {
			f = e.first
		}
	}
	l.ended.mu.Unlock()
	if f < 0 {
		return -1
	}
	return max(f, l.logStart.Load())
}

// LastStableOffset is the partition's last stable offset given its high
// watermark hw: FirstUnstableOffsetAt(hw), or hw when that is -1 or above.
func (l *Log) LastStableOffset(hw int64) int64 {
	if f := l.FirstUnstableOffsetAt(hw); f >= 0 && f < hw {
		return f
	}
	return hw
}

// endedTxns are the transactions closed by a marker the high watermark has
// not been seen to pass, in marker order. mu also orders their publication
// with firstUnstable's, so that a reader never sees a transaction in
// neither.
type endedTxns struct {
	mu   sync.Mutex
	txns []endedTxn
}

// publishTxnsLocked publishes st: its first unstable offset and the
// transactions it closed, after those kept (the still-unreplicated ones
// whose markers are below keepBelow; none when keepBelow is negative).
// Log.mu must be held.
func (l *Log) publishTxnsLocked(st *txnState, keepBelow int64) {
	l.ended.mu.Lock()
	n := 0
	for n < len(l.ended.txns) && l.ended.txns[n].marker < keepBelow {
		n++
	}
	l.ended.txns = append(l.ended.txns[:n], st.ended...)
	st.ended = st.ended[:0]
	l.firstUnstable.Store(st.firstUnstable())
	l.ended.mu.Unlock()
}

// OpenTransactions lists the transactions open in the log, earliest first.
func (l *Log) OpenTransactions() []OpenTxn {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.txns == nil {
		return nil
	}
	return l.txns.snapshot()
}

// HasOpenTransaction reports whether the producer has a transaction open
// in the log, without copying the list.
func (l *Log) HasOpenTransaction(producerID int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.txns == nil {
		return false
	}
	_, ok := l.txns.byPID[producerID]
	return ok
}

// AbortedTransactions returns the aborted transactions a fetch of the
// offsets [from, upTo) must report, as Kafka's Fetch response carries them:
// those whose abort marker is at or after from and whose first offset is
// below upTo, ordered by marker offset. Only segments that can hold such a
// marker are looked at: from the one holding from to the end.
func (l *Log) AbortedTransactions(from, upTo int64) []AbortedTxn {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	l.abortMu.RLock()
	defer l.abortMu.RUnlock()
	var out []AbortedTxn
	if len(l.segs) == 0 {
		return nil
	}
	for _, s := range l.segs[l.segmentFor(from):] {
		for _, e := range s.aborted {
			if e.LastOffset >= from && e.FirstOffset < upTo {
				out = append(out, e)
			}
		}
	}
	return out
}

// trackTxnsLocked follows the batches just written to the active segment a
// and publishes the new first unstable offset. mu must be held; the log end
// is not yet published, so no reader sees a transaction's records before it
// is counted open.
func (l *Log) trackTxnsLocked(a *segment, batches []byte) {
	var added []AbortedTxn
	for pos := 0; pos < len(batches); {
		h, _ := record.ParseHeader(batches[pos:]) // validated
		b := batches[pos : pos+h.Size()]
		e, err := l.txns.apply(&h, func() ([]byte, error) { return b, nil })
		if err != nil {
			l.logger.Warn("log: unreadable control batch; the transaction state ignores it", "dir", l.dir, "offset", h.BaseOffset, "err", err)
		}
		if e != nil {
			added = append(added, *e)
		}
		pos += h.Size()
	}
	if len(added) > 0 {
		l.abortMu.Lock()
		a.aborted = append(a.aborted, added...)
		l.abortMu.Unlock()
	}
	l.publishTxnsLocked(l.txns, math.MaxInt64)
}

// retrackTxnsLocked rebuilds the state after s was cut (s is the active
// segment now): from the transactions open at its start, walking what
// remains of it. mu must be held.
func (l *Log) retrackTxnsLocked(s *segment) error {
	st := newTxnState(s.txnStart)
	f, err := s.acquire()
	if err != nil {
		return err
	}
	aborted, err := walkTxns(f, s, s.size.Load(), st)
	s.release()
	if err != nil {
		l.logger.Warn("log: rebuilding transactions after a truncation", "dir", l.dir, "segment", s.name(), "err", err)
	}
	l.abortMu.Lock()
	s.aborted = aborted
	l.abortMu.Unlock()
	s.txnEnd = nil
	l.txns = st
	// Markers before s are still there; those of s that are left were
	// walked again, and one cut off reopened its transaction.
	l.publishTxnsLocked(st, s.base)
	if s == l.segs[0] {
		// Its .txnindex went with the cut.
		return l.keepTxnStart(s)
	}
	return nil
}

// .txnindex layout (big endian), Strata's own: magic "STN1", the offset
// after the segment's last batch (int64, to tell a stale file), the count
// (uint32) and entries (producer id, first offset: 16 bytes each) of the
// transactions open at the segment's start, the count and entries of the
// aborted transactions in Kafka's TransactionIndex entry layout (version
// int16 = 0, producer id, first offset, last offset, last stable offset: 34
// bytes each), the count and entries of the transactions open at its end,
// then the CRC-32C of everything before it.
var txnIndexMagic = [4]byte{'S', 'T', 'N', '1'}

const (
	txnIndexSuffix   = ".txnindex"
	openTxnSize      = 16
	abortedEntrySize = 34 // Kafka's AbortedTxn.TOTAL_SIZE
)

type txnIndex struct {
	next       int64
	start, end []OpenTxn
	aborted    []AbortedTxn
}

func encodeTxnIndex(x txnIndex) []byte {
	b := make([]byte, 0, 4+8+12+openTxnSize*(len(x.start)+len(x.end))+abortedEntrySize*len(x.aborted)+4)
	b = append(b, txnIndexMagic[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(x.next))
	b = appendOpenTxns(b, x.start)
	b = binary.BigEndian.AppendUint32(b, uint32(len(x.aborted)))
	for _, e := range x.aborted {
		b = binary.BigEndian.AppendUint16(b, 0)
		b = binary.BigEndian.AppendUint64(b, uint64(e.ProducerID))
		b = binary.BigEndian.AppendUint64(b, uint64(e.FirstOffset))
		b = binary.BigEndian.AppendUint64(b, uint64(e.LastOffset))
		b = binary.BigEndian.AppendUint64(b, uint64(e.LastStableOffset))
	}
	b = appendOpenTxns(b, x.end)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func appendOpenTxns(b []byte, open []OpenTxn) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(open)))
	for _, o := range open {
		b = binary.BigEndian.AppendUint64(b, uint64(o.ProducerID))
		b = binary.BigEndian.AppendUint64(b, uint64(o.FirstOffset))
	}
	return b
}

// txnReader decodes a .txnindex, remembering the first problem.
type txnReader struct {
	b   []byte
	err error
}

func (r *txnReader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = fmt.Errorf("%d bytes left, %d needed", len(r.b), n)
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *txnReader) count(size int) int {
	b := r.take(4)
	if b == nil {
		return 0
	}
	n := int(binary.BigEndian.Uint32(b))
	if n > len(r.b)/size {
		r.err = fmt.Errorf("%d entries of %d bytes in %d bytes", n, size, len(r.b))
		return 0
	}
	return n
}

func (r *txnReader) openTxns() []OpenTxn {
	n := r.count(openTxnSize)
	out := make([]OpenTxn, 0, n)
	for range n {
		b := r.take(openTxnSize)
		if b == nil {
			return nil
		}
		out = append(out, OpenTxn{ProducerID: int64(binary.BigEndian.Uint64(b)), FirstOffset: int64(binary.BigEndian.Uint64(b[8:]))})
	}
	return out
}

// ordered reports whether open transactions are in strictly increasing
// first-offset order, one per producer, as txnState keeps them.
func ordered(open []OpenTxn) bool {
	seen := make(map[int64]bool, len(open))
	for i, o := range open {
		if seen[o.ProducerID] || i > 0 && o.FirstOffset <= open[i-1].FirstOffset {
			return false
		}
		seen[o.ProducerID] = true
	}
	return true
}

func decodeTxnIndex(raw []byte) (txnIndex, error) {
	var x txnIndex
	if len(raw) < 4+8+12+4 {
		return x, fmt.Errorf("%d bytes, too short", len(raw))
	}
	body := raw[:len(raw)-4]
	if got, want := crc32.Checksum(body, castagnoli), binary.BigEndian.Uint32(raw[len(raw)-4:]); got != want {
		return x, fmt.Errorf("checksum %#08x, computed %#08x", want, got)
	}
	if !bytes.Equal(body[:4], txnIndexMagic[:]) {
		return x, fmt.Errorf("bad magic %q", body[:4])
	}
	r := &txnReader{b: body[4:]}
	if b := r.take(8); b != nil {
		x.next = int64(binary.BigEndian.Uint64(b))
	}
	x.start = r.openTxns()
	n := r.count(abortedEntrySize)
	x.aborted = make([]AbortedTxn, 0, n)
	for range n {
		b := r.take(abortedEntrySize)
		if b == nil {
			break
		}
		x.aborted = append(x.aborted, AbortedTxn{
			ProducerID:       int64(binary.BigEndian.Uint64(b[2:])),
			FirstOffset:      int64(binary.BigEndian.Uint64(b[10:])),
			LastOffset:       int64(binary.BigEndian.Uint64(b[18:])),
			LastStableOffset: int64(binary.BigEndian.Uint64(b[26:])),
		})
	}
	x.end = r.openTxns()
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	if r.err == nil && (!ordered(x.start) || !ordered(x.end)) {
		r.err = errors.New("open transactions out of order")
	}
	if r.err != nil {
		return txnIndex{}, r.err
	}
	return x, nil
}

// writeTxnIndex writes a sealed segment's .txnindex (tmp, fsync, rename;
// the caller fsyncs the directory). sealMu must be held; the segment's
// transaction fields do not change while it is sealed.
func (l *Log) writeTxnIndex(s *segment) error {
	l.abortMu.RLock()
	x := txnIndex{next: s.next.Load(), start: s.txnStart, end: s.txnEnd, aborted: s.aborted}
	raw := encodeTxnIndex(x)
	l.abortMu.RUnlock()
	return writeFileAtomic(s.dir, segmentName(s.base, txnIndexSuffix), raw)
}

// activeTxnIndexMin is the size from which a clean shutdown writes the
// active segment's .txnindex: below it the walk at the next open reads no
// more than one scan chunk.
const activeTxnIndexMin = scanChunk

// writeActiveTxnIndex writes, at a clean shutdown, the active segment's
// .txnindex as of its end, so that the next open need not walk the whole
// segment to learn its aborted transactions and those still open. Only
// that open trusts it (the clean shutdown marker vouches that the segment
// did not change since); after a crash the segment is walked as ever, and
// seal replaces the file. The fsync is batch's (nil: at once). mu is held.
func (l *Log) writeActiveTxnIndex(batch *SyncBatch) error {
	a := l.active()
	next := a.next.Load()
	if a.size.Load() < activeTxnIndexMin || a.txnIndexNext == next {
		return nil
	}
	l.abortMu.RLock()
	raw := encodeTxnIndex(txnIndex{next: next, start: a.txnStart, end: l.txns.snapshot(), aborted: a.aborted})
	l.abortMu.RUnlock()
	if err := batch.PublishFile(l.dir, segmentName(a.base, txnIndexSuffix), raw); err != nil {
		return fmt.Errorf("log: transaction index of the active segment: %w", err)
	}
	a.txnIndexNext = next
	return nil
}

// keepTxnStart makes sure the transactions open at the start of s, the
// first segment, survive a crash: they are known only from the segments
// before it, which are gone, and s has no complete .txnindex while it is
// active or not yet sealed. A start-only file (end offset -1) holds them
// until seal writes the complete one. Without open transactions there is
// nothing to keep. s.sealMu must not be held.
func (l *Log) keepTxnStart(s *segment) error {
	s.sealMu.Lock()
	defer s.sealMu.Unlock()
	if s.durable.Load() || s.removed || len(s.txnStart) == 0 {
		return nil
	}
	return PublishFile(s.dir, segmentName(s.base, txnIndexSuffix), encodeTxnIndex(txnIndex{next: -1, start: s.txnStart}))
}

// readTxnIndex reads s's .txnindex; a missing or damaged one is an error.
func readTxnIndex(s *segment) (txnIndex, error) {
	raw, err := os.ReadFile(s.path(txnIndexSuffix))
	if err != nil {
		return txnIndex{}, err
	}
	x, err := decodeTxnIndex(raw)
	if err != nil {
		return txnIndex{}, fmt.Errorf("%s: %w", segmentName(s.base, txnIndexSuffix), err)
	}
	return x, nil
}

// loadTransactions rebuilds the transaction state and every segment's
// aborted-transaction index. A sealed segment's .txnindex is used when it
// describes the segment as it is (same end) and starts from the state the
// segments before it end in; otherwise the segment's batches are walked
// (and its .txnindex rewritten). The first segment's start comes from its
// .txnindex, or is empty without one. The active segment is walked unless a
// clean shutdown left a .txnindex of it as it still is (see
// writeActiveTxnIndex): a walk reads the whole segment.
func (ld *loader) loadTransactions() error {
	l := ld.l
	var st *txnState
	wrote := false
	for i, s := range ld.segs {
		active := i == len(ld.segs)-1
		x, ok := ld.txnIndexes[s]
		var err error
		if !ok {
			x, err = readTxnIndex(s)
		}
		usable := err == nil && (!active || ld.clean) && x.next == s.next.Load() &&
			(st == nil || slices.Equal(x.start, st.open))
		if st == nil {
			start := []OpenTxn(nil)
			if err == nil {
				start = x.start
			}
			st = newTxnState(start)
		}
		s.txnStart = st.snapshot()
		if usable {
			s.aborted = x.aborted
			if active {
				s.txnIndexNext = x.next
			} else {
				s.txnEnd = x.end
			}
			st = newTxnState(x.end)
			continue
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			l.logger.Warn("log: rebuilding a damaged transaction index", "dir", l.dir, "segment", s.name(), "err", err)
		}
		f, err := s.acquire()
		if err != nil {
			return err
		}
		aborted, werr := walkTxns(f, s, s.size.Load(), st)
		s.release()
		if werr != nil {
			l.logger.Warn("log: rebuilding the transaction index", "dir", l.dir, "segment", s.name(), "err", werr)
		}
		s.aborted = aborted
		if active {
			break
		}
		s.txnEnd = st.snapshot()
		s.sealMu.Lock()
		err = l.writeTxnIndex(s)
		s.sealMu.Unlock()
		if err != nil {
			return err
		}
		wrote = true
	}
	ld.txns = st
	// Until the rename is durable the old index stays, or none: either is
	// rebuilt like this at the next open.
	if !wrote || l.openSync.deferDir(l.dir) {
		return nil
	}
	return syncDir(l.dir)
}

// maxOpenAtSegmentStart bounds, for MaxTxnIndexSize, the transactions open
// at a segment's start: one per producer inside a transaction on the
// partition, so far fewer in practice.
const maxOpenAtSegmentStart = 1 << 20

// MaxTxnIndexSize bounds the .txnindex of a segment of segmentSize bytes,
// for a reader to refuse a larger one without trusting a limit a client
// could outgrow: each of its batches (at least record.HeaderSize bytes)
// adds at most one aborted entry (a marker) or one transaction open at its
// end (a data batch opening one), and the transactions open at its start
// are counted at both ends.
func MaxTxnIndexSize(segmentSize int64) int64 {
	const fixed = 4 + 8 + 3*4 + 4 // magic, end offset, three counts, CRC
	batches := max(segmentSize, 0) / record.HeaderSize
	return fixed + 2*openTxnSize*maxOpenAtSegmentStart + abortedEntrySize*batches
}

// TxnIndex is a sealed segment's .txnindex as an uploader copies it and a
// remote reader decodes it: the transactions open at the segment's start
// and at its end, and the aborted transactions whose markers it holds.
type TxnIndex struct {
	Start, End []OpenTxn
	Aborted    []AbortedTxn
}

// MemorySize is about the bytes x takes in memory, for caches to bound:
// two int64s per open transaction, four per aborted one.
func (x TxnIndex) MemorySize() int64 {
	return int64(len(x.Start)+len(x.End))*16 + int64(len(x.Aborted))*32
}

// DecodeTxnIndex checks and decodes the .txnindex of the segment ending
// before next (a file describing another end is stale, and an error).
func DecodeTxnIndex(raw []byte, next int64) (TxnIndex, error) {
	x, err := decodeTxnIndex(raw)
	if err != nil {
		return TxnIndex{}, err
	}
	if x.next != next {
		return TxnIndex{}, fmt.Errorf("transaction index of a segment ending at %d, not %d", x.next, next)
	}
	return TxnIndex{Start: x.start, End: x.end, Aborted: x.aborted}, nil
}

// EncodeTxnIndex is the .txnindex of a segment ending before next holding
// x: for a segment written outside a log (remote compaction's), which
// takes the entries of the segments it replaces.
func EncodeTxnIndex(next int64, x TxnIndex) []byte {
	return encodeTxnIndex(txnIndex{next: next, start: x.Start, end: x.End, aborted: x.Aborted})
}
