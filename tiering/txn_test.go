package tiering

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
)

// txnLog is a real log whose batches a test writes one by one, each one
// record valued by the test, rolling where it says, and whose sealed
// segments it uploads as the copy task does.
type txnLog struct {
	t       *testing.T
	log     *partlog.Log
	offsets map[string]int64 // value → offset
	seq     map[int64]int32
}

func newTxnLog(t *testing.T) *txnLog {
	t.Helper()
	l, err := partlog.Open(partlog.Options{Dir: t.TempDir(), Config: partlog.Config{SegmentBytes: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return &txnLog{t: t, log: l, offsets: map[string]int64{}, seq: map[int64]int32{}}
}

// data appends one record valued value: by producer pid in its
// transaction, or outside any when pid is -1.
func (l *txnLog) data(pid int64, value string) {
	l.t.Helper()
	b := record.NewBuilder(tsOf(0), 0)
	if pid >= 0 {
		b.SetProducer(pid, 0, l.seq[pid])
		b.SetTransactional(true)
		l.seq[pid]++
	}
	b.Append(&record.Record{Value: []byte(value)})
	batch, err := b.Build(record.None)
	if err != nil {
		l.t.Fatal(err)
	}
	l.append(batch, value)
}

// end appends pid's commit or abort marker, known as name.
func (l *txnLog) end(pid int64, commit bool, name string) {
	l.t.Helper()
	l.append(record.BuildEndTxnMarker(record.EndTxnMarker{ProducerID: pid, Commit: commit, CoordinatorEpoch: 1}, tsOf(0)), name)
}

func (l *txnLog) append(batch []byte, name string) {
	l.t.Helper()
	res, err := l.log.Append(batch, 1)
	if err != nil {
		l.t.Fatal(err)
	}
	l.offsets[name] = res.FirstOffset
}

func (l *txnLog) roll() {
	l.t.Helper()
	if err := l.log.Roll(); err != nil {
		l.t.Fatal(err)
	}
}

// upload uploads the sealed segments and names them in a manifest of
// partition 0 of b's topic.
func (l *txnLog) upload(b *testBucket) []SegmentMeta {
	l.t.Helper()
	ctx := context.Background()
	if err := l.log.Flush(); err != nil {
		l.t.Fatal(err)
	}
	var metas []SegmentMeta
	for _, s := range l.log.Segments() {
		if !s.Sealed {
			continue
		}
		seg, err := l.log.OpenSealed(s.BaseOffset)
		if err != nil {
			l.t.Fatal(err)
		}
		meta, err := UploadSegment(ctx, b.st, b.l, 0, seg, 1, time.Now())
		seg.Close()
		if err != nil {
			l.t.Fatal(err)
		}
		metas = append(metas, meta)
	}
	b.manifest(0, 0, metas...)
	return metas
}

// txnBucket holds, in three uploaded segments, a transaction of producer
// 7 aborted in the segment after the one it started in, one of producer 8
// committed, interleaved with it, and one of producer 9 whose abort marker
// is in a fourth segment, not uploaded:
//
//	segment 1: p0 p1 a0(7) a1(7) c0(8)
//	segment 2: a2(7) c1(8) commit(8) abort(7) p2
//	segment 3: u0(9) p3
//	not uploaded: abort(9) p4
func txnBucket(t *testing.T) (*testBucket, *txnLog, []SegmentMeta) {
	b := newTestBucket(t, "txns", 1)
	l := newTxnLog(t)
	l.data(-1, "p0")
	l.data(-1, "p1")
	l.data(7, "a0")
	l.data(7, "a1")
	l.data(8, "c0")
	l.roll()
	l.data(7, "a2")
	l.data(8, "c1")
	l.end(8, true, "commit8")
	l.end(7, false, "abort7")
	l.data(-1, "p2")
	l.roll()
	l.data(9, "u0")
	l.data(-1, "p3")
	l.roll()
	l.end(9, false, "abort9")
	l.data(-1, "p4")
	return b, l, l.upload(b)
}

func replayedValues(t *testing.T, st Store, opts ReplayOptions) []string {
	t.Helper()
	rs, err := replayAll(t, st, "txns", opts)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, r.val)
	}
	return out
}

func TestUploadedSegmentsCarryTheirTransactionIndex(t *testing.T) {
	b, l, metas := txnBucket(t)
	if len(metas) != 3 {
		t.Fatalf("%d segments uploaded, want 3", len(metas))
	}
	for _, m := range metas {
		if m.TxnIndexKey == "" || !strings.HasSuffix(m.TxnIndexKey, ".txnindex") {
			t.Fatalf("segment %d: transaction index key %q", m.BaseOffset, m.TxnIndexKey)
		}
	}
	x, err := ReadTxnIndex(context.Background(), b.st, metas[1])
	if err != nil {
		t.Fatal(err)
	}
	want := []partlog.AbortedTxn{{ProducerID: 7, FirstOffset: l.offsets["a0"], LastOffset: l.offsets["abort7"], LastStableOffset: l.offsets["abort7"] + 1}}
	if !slices.Equal(x.Aborted, want) {
		t.Fatalf("segment 2's aborted transactions: %+v, want %+v", x.Aborted, want)
	}
	if got := len(x.Start); got != 2 {
		t.Fatalf("segment 2 starts with %d transactions open, want 2 (producers 7 and 8)", got)
	}

	// A segment whose index does not match it (stale, or another
	// segment's) is corrupt, not a segment without aborted transactions.
	wrong := metas[0]
	wrong.TxnIndexKey = metas[1].TxnIndexKey
	if _, err := ReadTxnIndex(context.Background(), b.st, wrong); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("another segment's index: %v, want ErrCorrupt", err)
	}
	// Garbage collection leaves the indexes a manifest names alone.
	m, _, _, err := LatestManifest(context.Background(), b.st, b.l, 0)
	if err != nil {
		t.Fatal(err)
	}
	garbage, err := Garbage(context.Background(), b.st, b.l, 0, &m, time.Now().Add(time.Hour), 0)
	if err != nil || len(garbage) != 0 {
		t.Fatalf("garbage %v, %v; want none", garbage, err)
	}
}

func TestReplayGivesCommittedRecordsOnly(t *testing.T) {
	b, l, _ := txnBucket(t)
	// Producer 9's transaction is open at the end of the bucket (its
	// marker was not uploaded): its outcome is not known there, so a
	// committed replay stops before it, p3 included.
	if got, want := replayedValues(t, b.st, ReplayOptions{}), []string{"p0", "p1", "c0", "c1", "p2"}; !slices.Equal(got, want) {
		t.Fatalf("read_committed replay: %q, want %q", got, want)
	}
	plan, err := PlanReplay(context.Background(), b.st, "txns", ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pr := plan.Partitions[0]; pr.To != l.offsets["u0"] || len(pr.Aborted) != 1 || pr.Aborted[0].ProducerID != 7 {
		t.Fatalf("plan: to %d (want %d), aborted %+v (want producer 7's)", pr.To, l.offsets["u0"], pr.Aborted)
	}

	if got, want := replayedValues(t, b.st, ReplayOptions{ReadUncommitted: true}),
		[]string{"p0", "p1", "a0", "a1", "c0", "a2", "c1", "p2", "u0", "p3"}; !slices.Equal(got, want) {
		t.Fatalf("read_uncommitted replay (markers never yielded): %q, want %q", got, want)
	}
}

// The abort of a transaction is found in a later segment than the range
// replayed: the search goes on while a transaction that started in the
// range is open at a segment's end.
func TestReplayFindsAnAbortPastItsRange(t *testing.T) {
	b, l, metas := txnBucket(t)
	opts := ReplayOptions{To: metas[0].NextOffset}
	if got, want := replayedValues(t, b.st, opts), []string{"p0", "p1", "c0"}; !slices.Equal(got, want) {
		t.Fatalf("replay of the first segment: %q, want %q", got, want)
	}
	opts = ReplayOptions{From: l.offsets["a2"]}
	if got, want := replayedValues(t, b.st, opts), []string{"c1", "p2"}; !slices.Equal(got, want) {
		t.Fatalf("replay from a2: %q, want %q", got, want)
	}
}

// Segments uploaded before transactions existed have no transaction
// index: they are read as holding no aborted transaction, which is what
// they hold.
func TestSegmentsWithoutATransactionIndexHaveNoAbortedTransactions(t *testing.T) {
	b, _, metas := txnBucket(t)
	for i := range metas {
		metas[i].TxnIndexKey = ""
	}
	b.manifest(0, 0, metas...) // same key: replaces the manifest
	if got, want := replayedValues(t, b.st, ReplayOptions{}),
		[]string{"p0", "p1", "a0", "a1", "c0", "a2", "c1", "p2", "u0", "p3"}; !slices.Equal(got, want) {
		t.Fatalf("replay: %q, want %q", got, want)
	}
}
