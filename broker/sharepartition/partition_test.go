package sharepartition

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/strata-broker/strata/metastore"
)

var testCfg = Config{LockDuration: 30 * time.Second, DeliveryLimit: 3, MaxRecordLocks: 100}

var t0 = time.Unix(1_700_000_000, 0)

func batches(ranges ...int64) []Batch {
	var out []Batch
	for i := 0; i+1 < len(ranges); i += 2 {
		out = append(out, Batch{BaseOffset: ranges[i], LastOffset: ranges[i+1]})
	}
	return out
}

func ack(first, last int64, t int8) []AckBatch {
	return []AckBatch{{FirstOffset: first, LastOffset: last, Types: []int8{t}}}
}

func TestAcquireHandsOutEachRecordOnce(t *testing.T) {
	p := NewPartition(testCfg, 0)
	got := p.Acquire("a", batches(0, 4, 5, 9), 6, t0)
	if want := []AcquiredRange{{0, 5, 1}}; !slices.Equal(got, want) {
		t.Fatalf("a acquired %v, want %v", got, want)
	}
	if off, ok := p.NextFetchOffset(); !ok || off != 6 {
		t.Fatalf("next fetch offset %d %v, want 6", off, ok)
	}
	// b reads the same batches again: only what a does not hold.
	got = p.Acquire("b", batches(0, 4, 5, 9), 100, t0)
	if want := []AcquiredRange{{6, 9, 1}}; !slices.Equal(got, want) {
		t.Fatalf("b acquired %v, want %v", got, want)
	}
	if p.StartOffset() != 0 || p.EndOffset() != 10 {
		t.Fatalf("SPSO %d SPEO %d, want 0 and 10", p.StartOffset(), p.EndOffset())
	}
}

func TestLockExpiryMakesRecordsAvailableWithTheirCount(t *testing.T) {
	p := NewPartition(testCfg, 0)
	p.Acquire("a", batches(0, 2), 100, t0)
	if next := p.Expire(t0.Add(29 * time.Second)); !next.Equal(t0.Add(30 * time.Second)) {
		t.Fatalf("next deadline %v, want t0+30s", next)
	}
	if _, ok := p.NextFetchOffset(); !ok {
		t.Fatal("window full")
	}
	if off, _ := p.NextFetchOffset(); off != 3 {
		t.Fatalf("records still locked were offered again (next %d)", off)
	}
	p.Expire(t0.Add(30 * time.Second))
	if off, _ := p.NextFetchOffset(); off != 0 {
		t.Fatalf("after expiry next fetch offset %d, want 0", off)
	}
	got := p.Acquire("b", batches(0, 2), 100, t0.Add(31*time.Second))
	if want := []AcquiredRange{{0, 2, 2}}; !slices.Equal(got, want) {
		t.Fatalf("redelivery %v, want %v", got, want)
	}
	if err := p.Acknowledge("a", ack(0, 0, AckAccept), t0.Add(32*time.Second)); !errors.Is(err, ErrInvalidRecordState) {
		t.Fatalf("ack by the member whose lock expired: %v, want ErrInvalidRecordState", err)
	}
}

func TestReleaseRejectAndDeliveryLimit(t *testing.T) {
	p := NewPartition(testCfg, 0)
	now := t0
	for delivery := int16(1); delivery <= testCfg.DeliveryLimit; delivery++ {
		got := p.Acquire("a", batches(0, 1), 100, now)
		if want := []AcquiredRange{{0, 1, delivery}}; !slices.Equal(got, want) {
			t.Fatalf("delivery %d: acquired %v, want %v", delivery, got, want)
		}
		if err := p.Acknowledge("a", []AckBatch{{0, 0, []int8{AckRelease}}, {1, 1, []int8{AckRelease}}}, now); err != nil {
			t.Fatalf("release: %v", err)
		}
		now = now.Add(time.Second)
	}
	// Released at the limit: archived, and the start offset moves past.
	if p.StartOffset() != 2 || p.Counts()[Available] != 0 {
		t.Fatalf("after %d deliveries SPSO %d counts %v, want 2 and nothing available", testCfg.DeliveryLimit, p.StartOffset(), p.Counts())
	}
	p.Acquire("a", batches(2, 4), 100, now)
	if err := p.Acknowledge("a", []AckBatch{{2, 4, []int8{AckReject, AckAccept, AckRelease}}}, now); err != nil {
		t.Fatalf("mixed ack: %v", err)
	}
	if p.StartOffset() != 4 {
		t.Fatalf("SPSO %d, want 4 (2 rejected, 3 accepted, 4 released)", p.StartOffset())
	}
	if got := p.Acquire("b", batches(4, 4), 100, now); !slices.Equal(got, []AcquiredRange{{4, 4, 2}}) {
		t.Fatalf("released record redelivered as %v", got)
	}
}

func TestStartOffsetWaitsForTheFirstRecord(t *testing.T) {
	p := NewPartition(testCfg, 10)
	p.Acquire("a", batches(10, 10), 100, t0)
	p.Acquire("b", batches(10, 14), 100, t0)
	if err := p.Acknowledge("b", ack(11, 14, AckAccept), t0); err != nil {
		t.Fatal(err)
	}
	if p.StartOffset() != 10 {
		t.Fatalf("SPSO %d moved past a held record", p.StartOffset())
	}
	if err := p.Acknowledge("a", ack(10, 10, AckAccept), t0); err != nil {
		t.Fatal(err)
	}
	if p.StartOffset() != 15 || p.EndOffset() != 15 {
		t.Fatalf("SPSO %d SPEO %d, want 15 and 15", p.StartOffset(), p.EndOffset())
	}
}

func TestGapsAndControlBatchesAreArchived(t *testing.T) {
	p := NewPartition(testCfg, 0)
	got := p.Acquire("a", []Batch{{0, 1, false}, {2, 2, true}, {5, 6, false}}, 100, t0)
	if want := []AcquiredRange{{0, 1, 1}, {5, 6, 1}}; !slices.Equal(got, want) {
		t.Fatalf("acquired %v, want %v (marker at 2 and missing 3-4 archived)", got, want)
	}
	if err := p.Acknowledge("a", ack(0, 1, AckAccept), t0); err != nil {
		t.Fatal(err)
	}
	if p.StartOffset() != 5 {
		t.Fatalf("SPSO %d, want 5", p.StartOffset())
	}
}

func TestAcknowledgeRefusals(t *testing.T) {
	p := NewPartition(testCfg, 0)
	p.Acquire("a", batches(0, 9), 100, t0)
	for _, c := range []struct {
		name  string
		batch []AckBatch
		want  error
	}{
		{"beyond the end", ack(5, 12, AckAccept), ErrInvalidRecordState},
		{"other member", nil, ErrInvalidRecordState},
		{"unknown type", ack(0, 0, 7), ErrInvalidAcknowledgement},
		{"types do not match the range", []AckBatch{{0, 2, []int8{1, 1}}}, ErrInvalidAcknowledgement},
		{"overlapping batches", []AckBatch{{0, 2, []int8{1}}, {2, 3, []int8{1}}}, ErrInvalidAcknowledgement},
	} {
		member := "a"
		if c.batch == nil {
			member, c.batch = "b", ack(0, 0, AckAccept)
		}
		if err := p.Acknowledge(member, c.batch, t0); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// The first batch of the overlapping pair was applied: 0-2 accepted.
	if p.StartOffset() != 3 {
		t.Fatalf("SPSO %d, want 3", p.StartOffset())
	}
}

func TestRenewExtendsTheLock(t *testing.T) {
	p := NewPartition(testCfg, 0)
	p.Acquire("a", batches(0, 0), 100, t0)
	if err := p.Acknowledge("a", ack(0, 0, AckRenew), t0.Add(20*time.Second)); err != nil {
		t.Fatal(err)
	}
	p.Expire(t0.Add(40 * time.Second))
	if err := p.Acknowledge("a", ack(0, 0, AckAccept), t0.Add(40*time.Second)); err != nil {
		t.Fatalf("accept after renewal: %v", err)
	}
}

func TestWindowIsBoundedByMaxRecordLocks(t *testing.T) {
	cfg := testCfg
	cfg.MaxRecordLocks = 5
	p := NewPartition(cfg, 0)
	got := p.Acquire("a", batches(0, 9), 100, t0)
	if want := []AcquiredRange{{0, 4, 1}}; !slices.Equal(got, want) {
		t.Fatalf("acquired %v, want %v", got, want)
	}
	if _, ok := p.NextFetchOffset(); ok {
		t.Fatal("window of 5 full, yet more may be fetched")
	}
	if err := p.Acknowledge("a", ack(0, 1, AckAccept), t0); err != nil {
		t.Fatal(err)
	}
	if got := p.Acquire("b", batches(0, 9), 100, t0); !slices.Equal(got, []AcquiredRange{{5, 6, 1}}) {
		t.Fatalf("after 2 acknowledged, acquired %v, want 5-6", got)
	}
	// A gap wider than the window waits for the records before it...
	if got := p.Acquire("b", batches(100, 101), 100, t0); got != nil || p.EndOffset() != 7 {
		t.Fatalf("gap beyond the window: acquired %v, SPEO %d", got, p.EndOffset())
	}
	// ...and is jumped over once they are done.
	if err := p.Acknowledge("a", ack(2, 4, AckAccept), t0); err != nil {
		t.Fatal(err)
	}
	if err := p.Acknowledge("b", ack(5, 6, AckAccept), t0); err != nil {
		t.Fatal(err)
	}
	if got := p.Acquire("b", batches(100, 101), 100, t0); !slices.Equal(got, []AcquiredRange{{100, 101, 1}}) || p.StartOffset() != 100 {
		t.Fatalf("gap after the window emptied: acquired %v, SPSO %d", got, p.StartOffset())
	}
}

func TestSnapshotRestoreKeepsCountsNotAcquisitions(t *testing.T) {
	p := NewPartition(testCfg, 0)
	p.Acquire("a", batches(0, 5), 100, t0)
	if err := p.Acknowledge("a", []AckBatch{{1, 1, []int8{AckAccept}}, {2, 2, []int8{AckReject}}, {3, 3, []int8{AckRelease}}}, t0); err != nil {
		t.Fatal(err)
	}
	start, bs := p.Snapshot()
	sb := func(first, last int64, state int8, count int16) metastore.ShareStateBatch {
		return metastore.ShareStateBatch{FirstOffset: first, LastOffset: last, State: state, DeliveryCount: count}
	}
	want := []metastore.ShareStateBatch{sb(0, 0, 0, 1), sb(1, 1, 2, 1), sb(2, 2, 4, 1), sb(3, 5, 0, 1)}
	if start != 0 || !slices.Equal(bs, want) {
		t.Fatalf("snapshot %d %v, want 0 %v", start, bs, want)
	}
	q := Restore(testCfg, metastore.ShareState{StartOffset: start, Batches: bs})
	// Every record a held (0, 4, 5) and the released one (3) is available
	// again with its count; the done ones are not offered.
	got := q.Acquire("b", batches(0, 6), 100, t0)
	if want := []AcquiredRange{{0, 0, 2}, {3, 5, 2}, {6, 6, 1}}; !slices.Equal(got, want) {
		t.Fatalf("after restore acquired %v, want %v", got, want)
	}
}
