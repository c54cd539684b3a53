package rlm

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// A transaction whose abort marker the leader appended but no follower has
// yet is not decided: a new leader without the marker reopens it (and
// aborts it). So the last stable offset stays at its first offset until the
// high watermark passes the marker, no segment holding its records goes to
// the bucket, and after a failover to a replica without the marker a
// read_committed read returns none of them.
func TestUnreplicatedAbortMarkerKeepsTheTransactionLocal(t *testing.T) {
	r := newRig(t, map[string]string{"local.retention.bytes": "1"})
	ctx := context.Background()
	r.produce(0, 3)
	first := r.txnRecord(7, "aborted")
	for range 6 {
		r.txnRecord(7, "aborted")
		r.txnRecord(-1, "plain")
	}
	r.log.Roll()
	hw := r.log.LogEndOffset()
	marker := r.txnEnd(7, false)                      // appended by the leader...
	r.replica.set(func(f *fakeReplica) { f.hw = hw }) // ...not yet replicated
	if lso := r.replica.LastStableOffset(); lso != first {
		t.Fatalf("LSO %d with the marker at %d at or above the high watermark %d, want the transaction's first offset %d", lso, marker, hw, first)
	}
	r.round(0)
	if m, ok := r.bucketManifest(); ok && m.EndOffset() > first {
		t.Fatalf("manifest ends at %d, past the undecided transaction's first offset %d", m.EndOffset(), first)
	}
	if start := r.log.LogStartOffset(); start > first {
		t.Fatalf("local log starts at %d, past the undecided transaction's first offset %d", start, first)
	}
	// The leader fails; the replica taking over has no marker (same log cut
	// at the high watermark).
	if err := r.log.TruncateTo(marker); err != nil {
		t.Fatal(err)
	}
	if !r.log.HasOpenTransaction(7) {
		t.Fatalf("no transaction open after losing the marker")
	}
	if lso := r.replica.LastStableOffset(); lso != first {
		t.Fatalf("LSO %d after losing the marker, want %d", lso, first)
	}
	kept := readCommitted(t, r, ctx)
	if slices.ContainsFunc(kept, func(v string) bool { return strings.HasPrefix(v, "aborted") }) {
		t.Fatalf("read_committed from the bucket returned records of the transaction whose outcome is not known: %d records, e.g. %.12q", len(kept), kept)
	}
}

// Once the high watermark passes the marker the transaction is decided:
// the last stable offset moves past it and its segments are uploaded, with
// its records filtered out of read_committed reads.
func TestReplicatedAbortMarkerReleasesTheTransaction(t *testing.T) {
	r := newRig(t, map[string]string{"local.retention.bytes": "1"})
	ctx := context.Background()
	r.produce(0, 3)
	first := r.txnRecord(7, "aborted")
	for range 6 {
		r.txnRecord(7, "aborted")
		r.txnRecord(-1, "plain")
	}
	hw := r.log.LogEndOffset()
	marker := r.txnEnd(7, false)
	r.replica.set(func(f *fakeReplica) { f.hw = hw })
	if lso := r.replica.LastStableOffset(); lso != first {
		t.Fatalf("LSO %d before the marker is replicated, want %d", lso, first)
	}
	r.replica.set(func(f *fakeReplica) { f.hw = marker })
	if lso := r.replica.LastStableOffset(); lso != first {
		t.Fatalf("LSO %d with the high watermark at the marker, want %d", lso, first)
	}
	r.produce(20, 23)
	r.log.Roll()
	end := r.log.LogEndOffset()
	if lso := r.replica.LastStableOffset(); lso != end {
		t.Fatalf("LSO %d once the marker is below the high watermark, want the high watermark %d", lso, end)
	}
	r.round(0)
	if m, ok := r.bucketManifest(); !ok || m.EndOffset() <= marker {
		t.Fatalf("manifest (found %v) ends at %d, not past the decided transaction's marker %d", ok, m.EndOffset(), marker)
	}
	kept := readCommitted(t, r, ctx)
	if slices.ContainsFunc(kept, func(v string) bool { return strings.HasPrefix(v, "aborted") }) || !slices.ContainsFunc(kept, func(v string) bool { return strings.HasPrefix(v, "plain") }) {
		t.Fatalf("read_committed from the bucket kept %.12q", kept)
	}
}

// A bucket can still hold a transaction the local log has open: uploaded
// by a leader that took it as decided and then lost the marker to a
// failover (a broker without the rule above). A read_committed read from
// the bucket does not take its records as committed: it ends at its first
// offset, until the local log learns the outcome.
func TestRemoteReadStopsAtATransactionTheLocalLogHasOpen(t *testing.T) {
	r := newRig(t, map[string]string{"local.retention.bytes": "1"})
	ctx := context.Background()
	r.produce(0, 3)
	first := r.txnRecord(7, "aborted")
	for range 6 {
		r.txnRecord(7, "aborted")
		r.txnRecord(-1, "plain")
	}
	r.log.Roll()
	marker := r.txnEnd(7, false) // the high watermark passes it: uploaded
	r.round(0)
	m, _ := r.bucketManifest()
	if m.EndOffset() <= first || r.log.LogStartOffset() <= first {
		t.Fatalf("manifest ends at %d, local log starts at %d: the transaction from %d is not in the bucket only", m.EndOffset(), r.log.LogStartOffset(), first)
	}
	if err := r.log.TruncateTo(marker); err != nil {
		t.Fatal(err)
	}
	if !r.log.HasOpenTransaction(7) {
		t.Fatalf("no transaction open after losing the marker")
	}
	r.replica.set(func(f *fakeReplica) { f.hw = marker })
	if _, end, err := r.p.AbortedTransactions(ctx, 0, r.log.LogStartOffset()); err != nil || end != first {
		t.Fatalf("a read of the bucket ends at %d (%v), want the open transaction's first offset %d", end, err, first)
	}
	kept := readCommitted(t, r, ctx)
	if slices.ContainsFunc(kept, func(v string) bool { return strings.HasPrefix(v, "aborted") || strings.HasPrefix(v, "plain") }) ||
		!slices.ContainsFunc(kept, func(v string) bool { return strings.HasPrefix(v, "value") }) {
		t.Fatalf("read_committed from the bucket kept %.12q, want the records before the open transaction only", kept)
	}
}
