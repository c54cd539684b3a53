package rlm

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/tiering"
)

// txnRecord appends one record valued value, by producer pid in its
// transaction (pid -1: outside any), and returns its offset.
func (r *rig) txnRecord(pid int64, value string) int64 {
	r.t.Helper()
	b := record.NewBuilder(r.clk.Now().UnixMilli(), 0)
	if pid >= 0 {
		b.SetProducer(pid, 0, 0)
		b.SetTransactional(true)
	}
	// Padded as the rig's own records, so segments roll every few.
	b.Append(&record.Record{Value: fmt.Appendf(nil, "%s-%0120d", value, 0)})
	batch, err := b.Build(record.None)
	if err != nil {
		r.t.Fatal(err)
	}
	return r.appendBatch(batch)
}

// txnEnd appends pid's commit or abort marker and returns its offset.
func (r *rig) txnEnd(pid int64, commit bool) int64 {
	r.t.Helper()
	return r.appendBatch(record.BuildEndTxnMarker(record.EndTxnMarker{ProducerID: pid, Commit: commit, CoordinatorEpoch: 1}, r.clk.Now().UnixMilli()))
}

func (r *rig) appendBatch(batch []byte) int64 {
	r.t.Helper()
	res, err := r.log.Append(batch, 1)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.log.Flush(); err != nil {
		r.t.Fatal(err)
	}
	r.replica.set(func(f *fakeReplica) { f.hw = r.log.LogEndOffset() })
	return res.FirstOffset
}

// Segments go to the bucket only once every transaction with records in
// them is decided (below the last stable offset, as Kafka's copy task),
// each with its transaction index.
func TestUploadStopsAtTheLastStableOffset(t *testing.T) {
	r := newRig(t, nil)
	r.produce(0, 10)
	open := r.txnRecord(9, "u")
	r.produce(11, 40) // several sealed segments past the open transaction
	if sealed := r.sealed(); sealed[len(sealed)-1].NextOffset <= open+10 {
		t.Fatalf("sealed segments end at %d: the test needs some well past %d", sealed[len(sealed)-1].NextOffset, open)
	}
	r.round(0)
	m, found := r.bucketManifest()
	if !found || m.EndOffset() > open || len(m.Segments) == 0 {
		t.Fatalf("manifest found %v, %d segments ending at %d; want some, ending at or below the open transaction's %d",
			found, len(m.Segments), m.EndOffset(), open)
	}

	r.txnEnd(9, false)
	r.log.Roll()
	r.round(1)
	m, _ = r.bucketManifest()
	if want := r.sealed()[len(r.sealed())-1].NextOffset; m.EndOffset() != want {
		t.Fatalf("manifest ends at %d once the transaction is aborted, want %d (every sealed segment)", m.EndOffset(), want)
	}
	objects := r.keys(testTP.layout().SegmentsPrefix(0))
	for _, s := range m.Segments {
		if s.TxnIndexKey == "" || !slices.Contains(objects, s.TxnIndexKey) {
			t.Fatalf("segment %d: transaction index %q, not among the objects", s.BaseOffset, s.TxnIndexKey)
		}
	}
}

// A read_committed read from the bucket gets the aborted transactions of
// the range it read: from the remote segments' indexes, and from the local
// log while the marker is not uploaded yet.
func TestRemoteReadsReportTheirAbortedTransactions(t *testing.T) {
	r := newRig(t, map[string]string{"local.retention.bytes": "1"})
	ctx := context.Background()
	r.produce(0, 3)
	first := r.txnRecord(7, "aborted")
	r.txnRecord(8, "committed")
	for range 6 {
		r.txnRecord(7, "aborted")
		r.txnRecord(8, "committed")
	}
	r.txnEnd(8, true)
	r.log.Roll()
	marker := r.txnEnd(7, false) // in the active segment: local only
	r.round(0)
	if start := r.log.LogStartOffset(); start == 0 || start > marker {
		t.Fatalf("local log starts at %d: the test needs the transactions' records in the bucket only, the marker at %d local", start, marker)
	}
	want := []partlog.AbortedTxn{{ProducerID: 7, FirstOffset: first, LastOffset: marker, LastStableOffset: marker + 1}}
	check := func(when string) {
		t.Helper()
		kept := readCommitted(t, r, ctx)
		if slices.ContainsFunc(kept, func(v string) bool { return strings.HasPrefix(v, "aborted") }) {
			t.Fatalf("%s: an aborted record read: %q", when, kept)
		}
		committed := 0
		for _, v := range kept {
			if strings.HasPrefix(v, "committed") {
				committed++
			}
		}
		if committed != 7 || !strings.HasPrefix(kept[0], "value-00000") {
			t.Fatalf("%s: %d committed records kept, want 7, and the first %.11q", when, committed, kept[0])
		}
		got, _, err := r.p.AbortedTransactions(ctx, 0, r.log.LogStartOffset())
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("%s: aborted transactions of the whole remote range: %+v, %v; want %+v", when, got, err, want)
		}
		// A range after every record of the transaction has nothing.
		if got, _, err := r.p.AbortedTransactions(ctx, marker+1, marker+2); err != nil || len(got) != 0 {
			t.Fatalf("%s: aborted transactions after the marker: %+v, %v", when, got, err)
		}
	}
	check("marker local only")

	r.produce(100, 110) // rolls the marker's segment
	r.round(1)
	if m, _ := r.bucketManifest(); m.EndOffset() <= marker {
		t.Fatalf("the marker's segment was not uploaded (manifest ends at %d)", m.EndOffset())
	}
	check("marker in the bucket")
}

// readCommitted reads the bucket's records from offset 0 in small reads,
// leaving out the batches of the aborted transactions each read reports,
// and returns the values kept. It stops where a read's records are not
// known decided, as the broker's fetch does.
func readCommitted(t *testing.T, r *rig, ctx context.Context) []string {
	t.Helper()
	var kept []string
	for offset := int64(0); offset < r.log.LogStartOffset(); {
		res, _, remote, err := r.p.Read(ctx, offset, 700, nil)
		if err != nil || !remote || len(res.Data) == 0 {
			t.Fatalf("read at %d: %d bytes, remote %v, %v", offset, len(res.Data), remote, err)
		}
		ab, end, err := r.p.AbortedTransactions(ctx, offset, res.NextOffset)
		if err != nil {
			t.Fatal(err)
		}
		filter := tiering.NewAbortedFilter(ab)
		it := record.NewBatches(res.Data)
		for it.Next() {
			h := it.Header()
			if h.BaseOffset >= end {
				return kept
			}
			if h.Control() || filter.Aborted(&h) {
				continue
			}
			err := record.ForEach(it.Bytes(), func(rec *record.Record) error {
				if rec.Offset >= offset {
					kept = append(kept, string(rec.Value))
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		offset = res.NextOffset
	}
	return kept
}
