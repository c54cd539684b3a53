package tiering

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
)

// Transactions in the bucket.
//
// A segment is uploaded only once it lies wholly below the partition's last
// stable offset (as Kafka's copy task), so every transaction with records
// in a remote segment was committed or aborted before the upload; its
// marker, though, may lie in a later segment, remote or still local only.
// Each remote segment carries its .txnindex: the aborted transactions whose
// markers it holds and the transactions open at its end. A read of [from,
// upTo) needs the aborted transactions whose marker is at or after from and
// whose first offset is below upTo; they are in the segments from the one
// holding from on, and the search can stop after the first segment ending
// at or past upTo whose end has no transaction open that started below
// upTo: any later marker closes a transaction that starts at or after upTo.
// Kafka stops at an entry whose last stable offset reaches upTo; the open
// set at the segment's end stops the search also when no abort follows.

// ReadTxnIndex reads and checks a remote segment's transaction index. A
// segment without one (uploaded before transactions existed) has none
// aborted and none open.
func ReadTxnIndex(ctx context.Context, st Store, seg SegmentMeta) (partlog.TxnIndex, error) {
	if seg.TxnIndexKey == "" {
		return partlog.TxnIndex{}, nil
	}
	// Bounded by what the segment can hold, not a fixed size a client
	// could outgrow (abort markers with no data add 34 bytes of index
	// per 78 of log): a segment's index stays readable.
	raw, err := readAll(ctx, st, seg.TxnIndexKey, partlog.MaxTxnIndexSize(seg.Size))
	if err != nil {
		return partlog.TxnIndex{}, fmt.Errorf("transaction index of remote segment %d: %w", seg.BaseOffset, err)
	}
	x, err := partlog.DecodeTxnIndex(raw, seg.NextOffset)
	if err != nil {
		return partlog.TxnIndex{}, fmt.Errorf("%w: transaction index %s: %v", ErrCorrupt, seg.TxnIndexKey, err)
	}
	return x, nil
}

// AbortedSearch is the result of looking for the aborted transactions of a
// range in remote segments.
type AbortedSearch struct {
	// Aborted are the entries found, ordered by marker offset, each once
	// (overlapping segments hold some markers twice).
	Aborted []partlog.AbortedTxn
	// Open, when not empty, are the transactions still open at the end of
	// the last remote segment that started below the range's end: their
	// markers are past the bucket, in the local log or not written yet, so
	// the search is not complete without it.
	Open []partlog.OpenTxn
}

// CollectAborted searches segs from the i-th for the aborted transactions
// of [from, upTo), reading each segment's index through load (which may
// cache them: readers, replay and remote compaction keep their own).
func CollectAborted(ctx context.Context, segs []SegmentMeta, i int, from, upTo int64,
	load func(context.Context, SegmentMeta) (partlog.TxnIndex, error)) (AbortedSearch, error) {
	var res AbortedSearch
	seen := map[int64]bool{} // marker offsets
	for i = max(i, 0); i < len(segs); i++ {
		x, err := load(ctx, segs[i])
		if err != nil {
			return AbortedSearch{}, err
		}
		for _, e := range x.Aborted {
			if e.LastOffset >= from && e.FirstOffset < upTo && !seen[e.LastOffset] {
				seen[e.LastOffset] = true
				res.Aborted = append(res.Aborted, e)
			}
		}
		res.Open = res.Open[:0]
		for _, o := range x.End {
			if o.FirstOffset < upTo {
				res.Open = append(res.Open, o)
			}
		}
		if segs[i].NextOffset >= upTo && len(res.Open) == 0 {
			break
		}
	}
	slices.SortFunc(res.Aborted, func(a, b partlog.AbortedTxn) int { return cmp.Compare(a.LastOffset, b.LastOffset) })
	if len(res.Open) == 0 {
		res.Open = nil
	}
	return res, nil
}

// AbortedTransactions returns the aborted transactions a read of [from,
// upTo) must report, looking in segs from the i-th (the one holding from)
// on. Decoded indexes are kept, as offset indexes are.
func (r *Reader) AbortedTransactions(ctx context.Context, segs []SegmentMeta, i int, from, upTo int64) (AbortedSearch, error) {
	return CollectAborted(ctx, segs, i, from, upTo, r.txnIndex)
}

// txnIndex returns a segment's decoded transaction index, from memory or
// the store.
func (r *Reader) txnIndex(ctx context.Context, seg SegmentMeta) (partlog.TxnIndex, error) {
	if seg.TxnIndexKey == "" {
		return partlog.TxnIndex{}, nil
	}
	r.idxMu.Lock()
	if e, ok := r.txnElems[seg.TxnIndexKey]; ok {
		r.idxOrder.MoveToFront(e)
		x := r.txnIndexes[seg.TxnIndexKey]
		r.idxMu.Unlock()
		return x, nil
	}
	r.idxMu.Unlock()
	start := time.Now()
	x, err := ReadTxnIndex(ctx, r.st, seg)
	if err != nil {
		if isCorrupt(err) {
			r.corrupt.Inc()
		}
		return partlog.TxnIndex{}, err
	}
	r.getSeconds.WithLabelValues("txnindex").Observe(time.Since(start).Seconds())
	r.idxMu.Lock()
	defer r.idxMu.Unlock()
	if _, ok := r.txnElems[seg.TxnIndexKey]; !ok {
		r.txnIndexes[seg.TxnIndexKey] = x
		r.txnElems[seg.TxnIndexKey] = r.idxOrder.PushFront(seg.TxnIndexKey)
		r.addIndexBytesLocked(seg.TxnIndexKey, x.MemorySize())
	}
	return x, nil
}

// AbortedFilter tells the batches of aborted transactions, by Kafka's
// consumer rule: a transactional data batch of an entry's producer whose
// base offset lies between the entry's first offset and its marker (a
// producer has one transaction open at a time, so its entries never
// overlap).
type AbortedFilter map[int64][]partlog.AbortedTxn

// NewAbortedFilter indexes entries by producer.
func NewAbortedFilter(entries []partlog.AbortedTxn) AbortedFilter {
	f := AbortedFilter{}
	for _, e := range entries {
		f[e.ProducerID] = append(f[e.ProducerID], e)
	}
	return f
}

// Aborted reports whether the batch h heads belongs to an aborted
// transaction. Control batches never do: readers skip them anyway.
func (f AbortedFilter) Aborted(h *record.Header) bool {
	if !h.Transactional() || h.Control() {
		return false
	}
	for _, e := range f[h.ProducerID] {
		if e.FirstOffset <= h.BaseOffset && h.BaseOffset <= e.LastOffset {
			return true
		}
	}
	return false
}

// MergeTxnIndexes is the transaction index of the run segs (consecutive, as
// a manifest lists them), each segment's read through load: the
// transactions open at the first one's start and at the last one's end,
// and every aborted transaction, once. A segment replacing the run (remote
// compaction's) has these open transactions; of the aborted ones it keeps
// those whose marker it still holds.
func MergeTxnIndexes(ctx context.Context, segs []SegmentMeta,
	load func(context.Context, SegmentMeta) (partlog.TxnIndex, error)) (partlog.TxnIndex, error) {
	var out partlog.TxnIndex
	seen := map[int64]bool{}
	for i, s := range segs {
		x, err := load(ctx, s)
		if err != nil {
			return partlog.TxnIndex{}, err
		}
		if i == 0 {
			out.Start = x.Start
		}
		if i == len(segs)-1 {
			out.End = x.End
		}
		for _, e := range x.Aborted {
			if !seen[e.LastOffset] {
				seen[e.LastOffset] = true
				out.Aborted = append(out.Aborted, e)
			}
		}
	}
	slices.SortFunc(out.Aborted, func(a, b partlog.AbortedTxn) int { return cmp.Compare(a.LastOffset, b.LastOffset) })
	return out, nil
}

// UploadTxnIndex stores x as the transaction index of the segment meta
// names (ending before its NextOffset) and records its key in meta. An
// index with nothing in it is not stored: no index reads the same.
func UploadTxnIndex(ctx context.Context, st Store, meta *SegmentMeta, x partlog.TxnIndex) error {
	if len(x.Start) == 0 && len(x.End) == 0 && len(x.Aborted) == 0 {
		return nil
	}
	raw := partlog.EncodeTxnIndex(meta.NextOffset, x)
	key := TxnIndexKey(meta.Key)
	if err := st.Put(ctx, key, bytes.NewReader(raw), int64(len(raw))); err != nil {
		return fmt.Errorf("upload transaction index of segment %d: %w", meta.BaseOffset, err)
	}
	meta.TxnIndexKey = key
	return nil
}
