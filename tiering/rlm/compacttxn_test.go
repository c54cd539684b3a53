package rlm

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/tiering"
)

// compactedTxnConfigs make the rig's topic compacted, read from the bucket
// below the local log, and quick to clean again.
var compactedTxnConfigs = map[string]string{
	"cleanup.policy": "compact", "local.retention.bytes": "1",
	"min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "60000",
}

// keyedRecord appends one record of key valued value (padded as the rig's
// records, so that segments roll every few), by producer pid in its
// transaction (pid -1: outside any), and returns its offset.
func (r *rig) keyedRecord(pid int64, key, value string) int64 {
	r.t.Helper()
	b := record.NewBuilder(r.clk.Now().UnixMilli(), 0)
	if pid >= 0 {
		b.SetProducer(pid, 0, 0)
		b.SetTransactional(true)
	}
	b.Append(&record.Record{Key: []byte(key), Value: fmt.Appendf(nil, "%s-%0120d", value, 0)})
	batch, err := b.Build(record.None)
	if err != nil {
		r.t.Fatal(err)
	}
	return r.appendBatch(batch)
}

// committedThenAborted writes key K committed (by producer 8) and then
// aborted (by producer 7, its record and marker in one segment, so that no
// segment boundary ever falls inside the aborted transaction), between
// plain records, and returns the aborted record's and the marker's offsets.
func (r *rig) committedThenAborted() (first, marker int64) {
	r.t.Helper()
	r.produce(0, 8)
	r.keyedRecord(8, "K", "committed")
	r.txnEnd(8, true)
	r.log.Roll()
	first = r.keyedRecord(7, "K", "aborted")
	marker = r.txnEnd(7, false)
	r.log.Roll()
	r.produce(8, 24)
	return first, marker
}

// remoteHeaders reads the bucket's batches from offset 0 to the local log's
// start and returns their headers.
func remoteHeaders(t *testing.T, r *rig) []record.Header {
	t.Helper()
	var out []record.Header
	for offset := int64(0); offset < r.log.LogStartOffset(); {
		res, _, remote, err := r.p.Read(context.Background(), offset, 1<<20, nil)
		if err != nil || !remote || res.NextOffset <= offset {
			t.Fatalf("read at %d: next %d, remote %v, %v", offset, res.NextOffset, remote, err)
		}
		it := record.NewBatches(res.Data)
		for it.Next() {
			out = append(out, it.Header())
		}
		offset = res.NextOffset
	}
	return out
}

// committedK is the values of K a read_committed consumer of the bucket
// gets.
func committedK(t *testing.T, r *rig) []string {
	t.Helper()
	var out []string
	for _, v := range readCommitted(t, r, context.Background()) {
		if strings.HasPrefix(v, "committed-") || strings.HasPrefix(v, "aborted-") {
			out = append(out, v[:strings.IndexByte(v, '-')])
		}
	}
	return out
}

// Remote compaction follows the local cleaner's transaction rules: an
// aborted value of a key never stands for its latest (a read_committed
// consumer keeps the committed one), aborted records go, and the abort
// marker goes in a later pass once past delete.retention.ms, its index
// entry with it.
func TestRemoteCompactionDropsAbortedTransactions(t *testing.T) {
	r := newRig(t, compactedTxnConfigs)
	first, marker := r.committedThenAborted()
	r.round(0)
	m, _ := r.bucketManifest()
	if m.CompactedTo <= marker || r.log.LogStartOffset() <= marker {
		t.Fatalf("compacted to %d, local log from %d: the test needs the transactions cleaned in the bucket (marker at %d)",
			m.CompactedTo, r.log.LogStartOffset(), marker)
	}
	if got := committedK(t, r); !slices.Equal(got, []string{"committed"}) {
		t.Fatalf("read_committed values of K after remote compaction: %q, want the committed one only", got)
	}
	producer7 := func() (data, markers int) {
		for _, h := range remoteHeaders(t, r) {
			switch {
			case h.ProducerID != 7:
			case h.Control():
				markers++
			default:
				data++
			}
		}
		return data, markers
	}
	if data, markers := producer7(); data != 0 || markers != 1 {
		t.Fatalf("first pass: %d data batches and %d markers of the aborted transaction in the bucket, want 0 and 1", data, markers)
	}
	ctx := context.Background()
	want := []partlog.AbortedTxn{{ProducerID: 7, FirstOffset: first, LastOffset: marker, LastStableOffset: marker + 1}}
	if got, _, err := r.p.AbortedTransactions(ctx, 0, r.log.LogStartOffset()); err != nil || !slices.Equal(got, want) {
		t.Fatalf("first pass: aborted transactions %+v, %v; want %+v (its marker is still there)", got, err, want)
	}

	// Past delete.retention.ms, with new records to clean, the next pass
	// drops the marker: no record of its transaction is left.
	r.clk.Advance(2 * time.Minute)
	r.produce(24, 40)
	r.round(1)
	m, _ = r.bucketManifest()
	if m.CompactedTo < 30 {
		t.Fatalf("second pass compacted to %d, want past the new records", m.CompactedTo)
	}
	if data, markers := producer7(); data != 0 || markers != 0 {
		t.Fatalf("second pass: %d data batches and %d markers of the aborted transaction in the bucket, want none", data, markers)
	}
	if got, _, err := r.p.AbortedTransactions(ctx, 0, r.log.LogStartOffset()); err != nil || len(got) != 0 {
		t.Fatalf("second pass: aborted transactions %+v, %v; want none (the marker is gone)", got, err)
	}
	for _, s := range m.Segments {
		x, err := tiering.ReadTxnIndex(ctx, r.store, s)
		if err != nil || len(x.Aborted) != 0 || len(x.Start) != 0 || len(x.End) != 0 {
			t.Fatalf("segment %d: transaction index %+v, %v; want empty", s.BaseOffset, x, err)
		}
	}
	if got := committedK(t, r); !slices.Equal(got, []string{"committed"}) {
		t.Fatalf("read_committed values of K after the second pass: %q, want the committed one only", got)
	}
}

// A transaction index the pass cannot read fails the pass before anything
// is replaced: cleaning as if the bucket had no transactions would drop
// committed records.
func TestRemoteCompactionFailsOnUnreadableTxnIndex(t *testing.T) {
	r := newRig(t, compactedTxnConfigs)
	isTxnIndex := func(key string) bool { return strings.HasSuffix(key, ".txnindex") }
	r.store.FailGet.Store(&isTxnIndex)
	_, marker := r.committedThenAborted()
	r.round(0)
	uploaded, _ := r.bucketManifest()
	if uploaded.EndOffset() <= marker {
		t.Fatalf("the bucket ends at %d: the test needs the transactions uploaded (marker at %d)", uploaded.EndOffset(), marker)
	}
	if uploaded.CompactedTo != 0 || r.metric("strata_tiering_errors_total", "step", "compact") == 0 {
		t.Fatalf("with the indexes unreadable: compacted to %d, %v compaction errors; want a failed pass",
			uploaded.CompactedTo, r.metric("strata_tiering_errors_total", "step", "compact"))
	}
	if deleted := r.store.Deleted(); len(deleted) != 0 {
		t.Fatalf("objects deleted by the failed pass: %q; want every uploaded segment in place", deleted)
	}

	r.store.FailGet.Store(nil)
	r.round(1)
	if m, _ := r.bucketManifest(); m.CompactedTo <= marker {
		t.Fatalf("once the indexes read again: compacted to %d, want past %d", m.CompactedTo, marker)
	}
	if got := committedK(t, r); !slices.Equal(got, []string{"committed"}) {
		t.Fatalf("read_committed values of K: %q, want the committed one only", got)
	}
}

// A transaction open at the bucket's end (its marker still only on the
// local disk) stops the pass before its first record: the bucket cannot
// tell whether it was aborted. Once the marker is uploaded the pass goes
// on, and drops the aborted value.
func TestRemoteCompactionStopsBeforeATransactionOpenAtTheBucketEnd(t *testing.T) {
	r := newRig(t, compactedTxnConfigs)
	r.produce(0, 8)
	r.keyedRecord(-1, "K", "committed")
	r.log.Roll()
	first := r.keyedRecord(7, "K", "aborted")
	r.produce(8, 20) // segments holding the open transaction's later offsets
	marker := r.txnEnd(7, false)
	r.round(0)
	m, _ := r.bucketManifest()
	if m.EndOffset() >= marker || m.EndOffset() <= first {
		t.Fatalf("the bucket ends at %d: the test needs it past the transaction's start %d and before its marker %d",
			m.EndOffset(), first, marker)
	}
	if m.CompactedTo == 0 || m.CompactedTo > first {
		t.Fatalf("compacted to %d: want a pass that cleaned up to the open transaction's start %d, not past it", m.CompactedTo, first)
	}

	r.produce(20, 30) // rolls the marker's segment, which goes to the bucket
	r.round(1)
	if m, _ = r.bucketManifest(); m.CompactedTo <= marker {
		t.Fatalf("with the marker in the bucket: compacted to %d, want past %d", m.CompactedTo, marker)
	}
	if got := committedK(t, r); !slices.Equal(got, []string{"committed"}) {
		t.Fatalf("read_committed values of K: %q, want the committed one only", got)
	}
}
