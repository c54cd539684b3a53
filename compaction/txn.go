package compaction

import (
	"fmt"
	"slices"

	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
)

// Transactions in a compacted log, Kafka's LogCleaner rules:
//
//   - the records of aborted transactions are dropped, and never enter the
//     offset map (an aborted record must not stand for its key's latest);
//   - a commit or abort marker is dropped once its transaction has no
//     record left in the log and its segment's newest record is older than
//     delete.retention.ms (a consumer that read the transaction's records
//     must still find the marker, as it must a tombstone). "No record left"
//     is decided as Kafka's CleanedTransactionMetadata decides it: the pass
//     met no batch of the transaction, so an aborted transaction's marker
//     outlives its records by at least one pass. Strata asks one thing
//     more: the transaction began inside the run of segments being cleaned
//     (it is not open at the run's start), so that no segment outside the
//     run holds a record of it, and the transactions open at each segment
//     boundary, which the .txnindex files keep, stay true;
//   - markers and control batches never enter the offset map either (their
//     keys are control keys, not the topic's), and a kept marker keeps its
//     offsets and producer id: it never absorbs the offsets of dropped
//     batches, which would clear them;
//   - nothing at or past the last stable offset is cleaned (the worker
//     bounds Inspect by it), so every transaction with a record in the
//     cleaned section is decided and its marker is in the log.

// txnLog is what the cleaner asks of a log about its transactions. A Log
// without it is cleaned keeping every transactional batch and marker. The
// local log answers from memory; the object store's view reads the
// segments' indexes, and a failed read fails the pass: cleaning as if there
// were no transactions would let aborted records shadow committed ones.
type txnLog interface {
	// AbortedTransactions lists the aborted transactions with a record or
	// a marker in [from, upTo), ordered by marker.
	AbortedTransactions(from, upTo int64) ([]partlog.AbortedTxn, error)
	// TransactionsOpenAt lists the transactions open at the start of the
	// segment starting at base; ok is false if none starts there.
	TransactionsOpenAt(base int64) (open []partlog.OpenTxn, ok bool, err error)
}

// txnFilter follows the transactions of a run of batches read in offset
// order, as Kafka's CleanedTransactionMetadata does.
type txnFilter struct {
	// known: the log told its transactions; without, nothing is dropped.
	known bool
	// pending are the aborted transactions not reached yet, by first
	// offset; aborting those reached and not yet ended, by producer (the
	// value is the marker's offset).
	pending  []partlog.AbortedTxn
	aborting map[int64]int64
	// before holds the producers whose transaction was open at the start
	// of the run: records of it may lie in segments not being rewritten.
	// Without it (no segment starts at the run's base any more: the pass
	// will find the run stale) no marker goes.
	before      map[int64]bool
	beforeKnown bool
	// met holds the producers with a batch of their current transaction
	// in the run.
	met map[int64]bool
}

// newTxnFilter prepares the filter of the batches in [base, end); markers
// can go only when base is a segment's base offset.
func newTxnFilter(l Log, base, end int64) (*txnFilter, error) {
	f := &txnFilter{aborting: map[int64]int64{}, before: map[int64]bool{}, met: map[int64]bool{}}
	tl, ok := l.(txnLog)
	if !ok {
		return f, nil
	}
	f.known = true
	open, ok, err := tl.TransactionsOpenAt(base)
	if err != nil {
		return nil, fmt.Errorf("compaction: transactions open at %d: %w", base, err)
	}
	f.beforeKnown = ok
	for _, o := range open {
		f.before[o.ProducerID] = true
	}
	if f.pending, err = tl.AbortedTransactions(base, end); err != nil {
		return nil, fmt.Errorf("compaction: aborted transactions of %d..%d: %w", base, end, err)
	}
	slices.SortStableFunc(f.pending, func(a, b partlog.AbortedTxn) int {
		switch {
		case a.FirstOffset < b.FirstOffset:
			return -1
		case a.FirstOffset > b.FirstOffset:
			return 1
		}
		return 0
	})
	return f, nil
}

// reach moves the aborted transactions beginning at or before offset to
// aborting.
func (f *txnFilter) reach(offset int64) {
	for len(f.pending) > 0 && f.pending[0].FirstOffset <= offset {
		e := f.pending[0]
		f.pending = f.pending[1:]
		f.aborting[e.ProducerID] = e.LastOffset
	}
}

// aborted reports whether a data batch belongs to an aborted transaction,
// and records that its producer's transaction has a batch in the run.
func (f *txnFilter) aborted(h *record.Header) bool {
	if !f.known || !h.Transactional() || h.Control() || h.ProducerID < 0 {
		return false
	}
	f.reach(h.LastOffset())
	f.met[h.ProducerID] = true
	marker, ok := f.aborting[h.ProducerID]
	return ok && h.BaseOffset < marker
}

// markerDone follows a control batch and reports whether it is a marker
// whose transaction has nothing left in the log: it may go once past
// delete.retention.ms.
func (f *txnFilter) markerDone(h *record.Header, batch []byte) bool {
	if !f.known || !h.Transactional() || h.ProducerID < 0 {
		return false
	}
	f.reach(h.LastOffset())
	_, m, ok, err := record.ParseControlBatch(batch)
	if err != nil || !ok {
		return false // not a marker (or unreadable): kept as it is
	}
	pid := h.ProducerID
	met, before := f.met[pid], f.before[pid]
	delete(f.met, pid)
	delete(f.before, pid)
	if !m.Commit {
		delete(f.aborting, pid)
	}
	return !met && !before && f.beforeKnown
}
