package partlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/await"

	"github.com/strata-broker/strata/record"
)

// txnWriter appends transactional data batches and markers to a log.
type txnWriter struct {
	t testing.TB
	l *Log
}

// data appends n records of producer pid's transaction (pid -1: a plain
// batch) and returns the first offset.
func (w txnWriter) data(pid int64, n int) int64 {
	w.t.Helper()
	first := w.l.LogEndOffset()
	b := record.NewBuilder(tsBase+first, 64*n)
	if pid >= 0 {
		b.SetProducer(pid, 0, int32(first))
		b.SetTransactional(true)
	}
	for i := range n {
		off := first + int64(i)
		b.Append(&record.Record{Timestamp: tsBase + off, Key: key(off), Value: value(off, 20)})
	}
	out, err := b.Build(record.None)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.l.Append(bytes.Clone(out), 1); err != nil {
		w.t.Fatalf("Append: %v", err)
	}
	return first
}

// marker appends pid's commit or abort marker and returns its offset.
func (w txnWriter) marker(pid int64, commit bool) int64 {
	w.t.Helper()
	off := w.l.LogEndOffset()
	m := record.BuildEndTxnMarker(record.EndTxnMarker{ProducerID: pid, Commit: commit, CoordinatorEpoch: 1}, tsBase+off)
	if _, err := w.l.Append(m, 1); err != nil {
		w.t.Fatalf("Append marker: %v", err)
	}
	return off
}

// txnView is what a log tells of its transactions.
type txnView struct {
	fuo     int64
	open    []OpenTxn
	aborted []AbortedTxn
}

func viewTxns(l *Log) txnView {
	return txnView{fuo: l.FirstUnstableOffset(), open: l.OpenTransactions(), aborted: l.AbortedTransactions(0, l.LogEndOffset())}
}

func wantTxns(t *testing.T, l *Log, want txnView) {
	t.Helper()
	got := viewTxns(l)
	if got.fuo != want.fuo || !slices.Equal(got.open, want.open) || !slices.Equal(got.aborted, want.aborted) {
		t.Fatalf("transactions:\n got %+v\nwant %+v", got, want)
	}
}

func TestTransactionsInterleavedProducers(t *testing.T) {
	e := newEnv(t, Config{})
	l := e.open()
	w := txnWriter{t, l}

	if got := l.FirstUnstableOffset(); got != -1 {
		t.Fatalf("empty log: first unstable offset %d, want -1", got)
	}
	p1 := w.data(1, 3) // 0-2
	w.data(-1, 2)      // 3-4: not transactional
	wantTxns(t, l, txnView{fuo: p1, open: []OpenTxn{{1, 0}}})
	p2 := w.data(2, 1) // 5
	w.data(1, 1)       // 6: p1 continues
	wantTxns(t, l, txnView{fuo: 0, open: []OpenTxn{{1, 0}, {2, p2}}})

	if c := w.marker(1, true); c != 7 {
		t.Fatalf("commit at %d", c)
	}
	// Commits leave no index entry; the earliest open one is now p2's.
	wantTxns(t, l, txnView{fuo: p2, open: []OpenTxn{{2, 5}}})

	p3 := w.data(3, 1)       // 8
	a2 := w.marker(2, false) // 9: the LSO after it is p3's start
	wantTxns(t, l, txnView{fuo: p3, open: []OpenTxn{{3, 8}},
		aborted: []AbortedTxn{{ProducerID: 2, FirstOffset: 5, LastOffset: a2, LastStableOffset: p3}}})

	a3 := w.marker(3, false) // 10: nothing open after it
	// An abort of a producer that wrote nothing here (a partition the
	// transaction added but never wrote to) spans only its marker.
	a4 := w.marker(4, false) // 11
	all := []AbortedTxn{
		{ProducerID: 2, FirstOffset: 5, LastOffset: a2, LastStableOffset: 8},
		{ProducerID: 3, FirstOffset: 8, LastOffset: a3, LastStableOffset: a3 + 1},
		{ProducerID: 4, FirstOffset: a4, LastOffset: a4, LastStableOffset: a4 + 1},
	}
	wantTxns(t, l, txnView{fuo: -1, aborted: all})

	for _, tc := range []struct {
		from, upTo int64
		want       []AbortedTxn
	}{
		{0, 5, nil},       // before any aborted transaction began
		{0, 6, all[:1]},   // p2's first record is fetched
		{6, 9, all[:2]},   // inside p2's and p3's spans
		{10, 12, all[1:]}, // p2 ended before the fetch
		{12, 20, nil},     // after every marker
	} {
		if got := l.AbortedTransactions(tc.from, tc.upTo); !slices.Equal(got, tc.want) {
			t.Errorf("AbortedTransactions(%d, %d) = %+v, want %+v", tc.from, tc.upTo, got, tc.want)
		}
	}

	// A clean reopen reads the same back.
	l = e.reopen(l)
	wantTxns(t, l, txnView{fuo: -1, aborted: all})
}

func TestTransactionsFollowerAppendSameState(t *testing.T) {
	e := newEnv(t, Config{})
	leader := e.open()
	w := txnWriter{t, leader}
	w.data(1, 2)
	w.data(2, 1)
	w.marker(1, false)
	w.data(3, 2)
	w.marker(2, true)

	f := newEnv(t, Config{}).open()
	for off := int64(0); off < leader.LogEndOffset(); {
		res, err := leader.Read(off, 1<<20, leader.LogEndOffset())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.AppendReplicated(bytes.Clone(res.Data)); err != nil {
			t.Fatalf("AppendReplicated: %v", err)
		}
		off = res.NextOffset
	}
	want := viewTxns(leader)
	if want.fuo != 4 || len(want.aborted) != 1 {
		t.Fatalf("leader: %+v", want)
	}
	wantTxns(t, f, want)
}

// txnLog writes transactions over several small segments: p1 opens in the
// first segment and aborts three segments later, p2 commits in between,
// p3 stays open at the end.
func txnLog(t *testing.T, e *env) (*Log, txnWriter) {
	t.Helper()
	l := e.open()
	w := txnWriter{t, l}
	w.data(1, 2)
	for range 3 {
		w.data(2, 3)
		w.data(-1, 3)
	}
	w.marker(2, true)
	for range 3 {
		w.data(-1, 3)
	}
	w.marker(1, false)
	w.data(4, 1)
	w.marker(4, false)
	w.data(3, 2)
	w.data(-1, 3)
	if n := len(l.Segments()); n < 4 {
		t.Fatalf("%d segments, want at least 4", n)
	}
	return l, w
}

func txnSegmentConfig() Config { return Config{SegmentBytes: 600, IndexIntervalBytes: 100} }

func TestTransactionsAcrossSegmentsAndRecovery(t *testing.T) {
	e := newEnv(t, txnSegmentConfig())
	l, _ := txnLog(t, e)
	want := viewTxns(l)
	if len(want.open) != 1 || want.open[0].ProducerID != 3 || len(want.aborted) != 2 {
		t.Fatalf("unexpected state %+v", want)
	}
	// The aborts' entries sit with their markers' segments.
	for _, a := range want.aborted {
		segs := l.Segments()
		i := slices.IndexFunc(segs, func(s SegmentInfo) bool { return s.BaseOffset <= a.LastOffset && a.LastOffset < s.NextOffset })
		if got := l.AbortedTransactions(segs[i].BaseOffset, segs[i].NextOffset); !slices.Contains(got, a) {
			t.Errorf("entry %+v not found reading its marker's segment", a)
		}
	}

	t.Run("crash without transaction indexes", func(t *testing.T) {
		c := e.crash(l)
		removed := 0
		for _, s := range l.Segments() {
			if err := os.Remove(c.segPath(s.BaseOffset, txnIndexSuffix)); err == nil {
				removed++
			}
		}
		if removed == 0 {
			t.Fatal("no .txnindex file to remove: sealed segments should have one")
		}
		r := c.open()
		wantTxns(t, r, want)
		// The rebuilt indexes are written again.
		for _, s := range r.Segments()[:len(r.Segments())-1] {
			if _, err := os.Stat(c.segPath(s.BaseOffset, txnIndexSuffix)); err != nil {
				t.Errorf("segment %d: %v", s.BaseOffset, err)
			}
		}
	})
	t.Run("crash with a damaged transaction index", func(t *testing.T) {
		c := e.crash(l)
		segs := l.Segments()
		flipBit(t, c.segPath(segs[1].BaseOffset, txnIndexSuffix), 6, 2)
		r := c.open()
		wantLogged(t, c.logs, "rebuilding a damaged transaction index")
		wantTxns(t, r, want)
	})
	t.Run("stale transaction index", func(t *testing.T) {
		// An index claiming an abort that the segment does not hold, with
		// a wrong end: it does not describe the segment and is ignored.
		c := e.crash(l)
		segs := l.Segments()
		stale := encodeTxnIndex(txnIndex{next: segs[0].NextOffset + 1, aborted: []AbortedTxn{{9, 0, 1, 2}}})
		if err := os.WriteFile(c.segPath(segs[0].BaseOffset, txnIndexSuffix), stale, 0o644); err != nil {
			t.Fatal(err)
		}
		wantTxns(t, c.open(), want)
	})
	t.Run("clean reopen", func(t *testing.T) {
		wantTxns(t, e.reopen(l), want)
	})
}

func TestTransactionsTruncation(t *testing.T) {
	e := newEnv(t, txnSegmentConfig())
	l, w := txnLog(t, e)
	full := viewTxns(l)
	p1Abort := full.aborted[0]
	if p1Abort.ProducerID != 1 {
		t.Fatalf("unexpected first abort %+v", p1Abort)
	}

	// Cut at p1's abort marker, in a later segment than p1's start: p1 is
	// open again, from where it began, and its entry is gone.
	if err := l.TruncateTo(p1Abort.LastOffset); err != nil {
		t.Fatal(err)
	}
	wantTxns(t, l, txnView{fuo: 0, open: []OpenTxn{{1, 0}}})
	if _, err := os.Stat(e.segPath(l.Segments()[len(l.Segments())-1].BaseOffset, txnIndexSuffix)); !os.IsNotExist(err) {
		t.Errorf("the truncated segment kept its .txnindex: %v", err)
	}
	// Writing goes on from there: p1 ends in an abort again.
	at := w.marker(1, false)
	wantTxns(t, l, txnView{fuo: -1, aborted: []AbortedTxn{{1, 0, at, at + 1}}})
	// And the state survives a reopen.
	wantTxns(t, e.reopen(l), txnView{fuo: -1, aborted: []AbortedTxn{{1, 0, at, at + 1}}})
}

func TestTransactionsTruncateBelowFirstOffset(t *testing.T) {
	e := newEnv(t, Config{})
	l := e.open()
	w := txnWriter{t, l}
	w.data(-1, 2)
	w.data(1, 2) // 2-3
	w.marker(1, false)
	if err := l.TruncateTo(2); err != nil {
		t.Fatal(err)
	}
	wantTxns(t, l, txnView{fuo: -1})
}

func TestTransactionsLogStartAndSegmentDeletion(t *testing.T) {
	e := newEnv(t, txnSegmentConfig())
	l, w := txnLog(t, e)
	full := viewTxns(l)
	p3 := full.open[0].FirstOffset

	// DeleteRecords past p3's first offset: the first unstable offset
	// never lies below the log start.
	w.data(-1, 1)
	if err := l.AdvanceLogStart(p3 + 1); err != nil {
		t.Fatal(err)
	}
	if got := l.FirstUnstableOffset(); got != p3+1 {
		t.Fatalf("first unstable offset %d, want the log start %d", got, p3+1)
	}
	// The segments below the log start are gone, with their entries and
	// their files: p1's abort went with them.
	first := l.Segments()[0].BaseOffset
	got := l.AbortedTransactions(0, l.LogEndOffset())
	for _, a := range got {
		if a.LastOffset < first {
			t.Errorf("entry %+v of a deleted segment (log starts at segment %d)", a, first)
		}
	}
	if len(got) >= len(full.aborted) {
		t.Fatalf("aborted entries %+v: none went with the deleted segments", got)
	}
	matches, err := filepath.Glob(filepath.Join(e.dir, "*"+txnIndexSuffix))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range matches {
		base, _, _ := parseSegmentName(filepath.Base(m))
		if base < l.Segments()[0].BaseOffset {
			t.Errorf("%s left behind", m)
		}
	}
	// p3's transaction is still open, and ends normally.
	w.marker(3, true)
	wantTxns(t, l, txnView{fuo: -1, aborted: got})
	// A reopen finds p3 closed, though its start is no longer in the log.
	wantTxns(t, e.reopen(l), txnView{fuo: -1, aborted: got})
}

func TestTransactionsOpenAcrossDeletedSegmentSurvivesReopen(t *testing.T) {
	e := newEnv(t, txnSegmentConfig())
	l := e.open()
	w := txnWriter{t, l}
	w.data(1, 2)
	for range 6 {
		w.data(-1, 3)
	}
	if err := l.AdvanceLogStart(l.LogEndOffset() - 1); err != nil {
		t.Fatal(err)
	}
	if l.Segments()[0].BaseOffset == 0 {
		t.Fatal("the segment holding p1's start was not deleted")
	}
	want := txnView{fuo: l.LogStartOffset(), open: []OpenTxn{{1, 0}}}
	wantTxns(t, l, want)
	// The only segment left is the active one: it keeps the state it
	// started with through a crash.
	if n := len(l.Segments()); n != 1 {
		t.Fatalf("%d segments, want only the active one", n)
	}
	wantTxns(t, e.crash(l).open(), want)
	// The first segment's .txnindex (or the rolled state) carries p1.
	w.data(-1, 3)
	w.data(-1, 3)
	want.fuo = l.LogStartOffset()
	wantTxns(t, e.reopen(l), want)
}

func TestTransactionsTruncateFully(t *testing.T) {
	e := newEnv(t, Config{})
	l := e.open()
	w := txnWriter{t, l}
	w.data(1, 2)
	w.marker(1, false)
	w.data(2, 1)
	if err := l.TruncateFullyAndStartAt(100); err != nil {
		t.Fatal(err)
	}
	wantTxns(t, l, txnView{fuo: -1})
}

func TestTxnIndexEncoding(t *testing.T) {
	x := txnIndex{
		next:    42,
		start:   []OpenTxn{{7, 3}},
		aborted: []AbortedTxn{{ProducerID: 0x0102030405060708, FirstOffset: 10, LastOffset: 20, LastStableOffset: 21}},
		end:     []OpenTxn{{7, 3}, {8, 30}},
	}
	raw := encodeTxnIndex(x)
	// The aborted entry is Kafka's TransactionIndex layout.
	var entry []byte
	entry = binary.BigEndian.AppendUint16(entry, 0)
	for _, v := range []uint64{0x0102030405060708, 10, 20, 21} {
		entry = binary.BigEndian.AppendUint64(entry, v)
	}
	if !bytes.Contains(raw, entry) {
		t.Fatalf("%x does not hold Kafka's entry %x", raw, entry)
	}
	got, err := decodeTxnIndex(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got.next != x.next || !slices.Equal(got.start, x.start) || !slices.Equal(got.end, x.end) || !slices.Equal(got.aborted, x.aborted) {
		t.Fatalf("decoded %+v, want %+v", got, x)
	}
	for i := range raw {
		bad := bytes.Clone(raw)
		bad[i] ^= 0x10
		if _, err := decodeTxnIndex(bad); err == nil {
			t.Fatalf("flipped byte %d: decoded without error", i)
		}
	}
	if _, err := decodeTxnIndex(raw[:len(raw)-1]); err == nil {
		t.Fatal("truncated file decoded")
	}
}

func TestTransactionsThroughCompactionSwap(t *testing.T) {
	e := newEnv(t, txnSegmentConfig())
	l, _ := txnLog(t, e)
	want := viewTxns(l)
	await.True(t, 10*time.Second, "sealed segments to be durable", func() bool { return l.nextToSeal() == nil })
	before := len(l.Segments())
	compactFirstSegments(t, l)
	if len(l.Segments()) != before-1 {
		t.Fatalf("%d segments after compaction, want %d", len(l.Segments()), before-1)
	}
	// The cleaned segment carries the replaced ones' entries and state.
	wantTxns(t, l, want)
	x, err := readTxnIndex(l.segs[0])
	if err != nil {
		t.Fatalf("cleaned segment's .txnindex: %v", err)
	}
	if x.next != l.Segments()[0].NextOffset {
		t.Fatalf(".txnindex describes up to %d, segment ends at %d", x.next, l.Segments()[0].NextOffset)
	}
	wantTxns(t, e.crash(l).open(), want)
	wantTxns(t, e.reopen(l), want)
}

func TestTxnIndexRefusesDisorderedOpenTransactions(t *testing.T) {
	for _, open := range [][]OpenTxn{{{1, 5}, {2, 3}}, {{1, 3}, {1, 5}}} {
		if _, err := decodeTxnIndex(encodeTxnIndex(txnIndex{next: 9, start: open})); err == nil {
			t.Errorf("start %+v decoded without error", open)
		}
		if _, err := decodeTxnIndex(encodeTxnIndex(txnIndex{next: 9, end: open})); err == nil {
			t.Errorf("end %+v decoded without error", open)
		}
	}
}

func TestTransactionsTornMarkerAfterCrash(t *testing.T) {
	e := newEnv(t, Config{})
	l := e.open()
	w := txnWriter{t, l}
	w.data(1, 2)
	w.data(2, 1)
	w.marker(1, false)
	wantTxns(t, l, txnView{fuo: 2, open: []OpenTxn{{2, 2}}, aborted: []AbortedTxn{{1, 0, 3, 2}}})

	// The marker's write was torn by the crash: recovery cuts it, and p1
	// is open again.
	c := e.crash(l)
	path := c.segPath(0, logSuffix)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, st.Size()-5); err != nil {
		t.Fatal(err)
	}
	r := c.open()
	if r.LogEndOffset() != 3 {
		t.Fatalf("log end %d after the torn marker, want 3", r.LogEndOffset())
	}
	wantTxns(t, r, txnView{fuo: 0, open: []OpenTxn{{1, 0}, {2, 2}}})
}

// A closed transaction stays unstable while its marker is at or above the
// high watermark (Kafka's rule): the last stable offset is its first offset
// until the high watermark passes the marker, however many transactions
// close meanwhile; a marker cut off reopens it.
func TestLastStableOffsetWaitsForTheMarkerToBeReplicated(t *testing.T) {
	e := newEnv(t, txnSegmentConfig())
	l := e.open()
	w := txnWriter{t, l}
	w.data(-1, 2)
	a := w.data(1, 2)
	b := w.data(2, 2)
	w.data(-1, 1)
	ma := w.marker(1, false)
	mb := w.marker(2, true)
	end := l.LogEndOffset()
	for _, c := range []struct{ hw, want int64 }{
		{a, a},           // nothing of a is committed: capped by the high watermark
		{ma, a},          // a's marker not replicated
		{ma + 1, b},      // a's is; b's not
		{mb, b},          // b's marker at the high watermark
		{end, end},       // both replicated
		{mb + 1, mb + 1}, // forgotten once passed: the high watermark does not go back
	} {
		if got := l.LastStableOffset(c.hw); got != c.want {
			t.Fatalf("LastStableOffset(%d) = %d, want %d", c.hw, got, c.want)
		}
	}
	if f := l.FirstUnstableOffset(); f != -1 {
		t.Fatalf("FirstUnstableOffset %d with no transaction open", f)
	}

	// A truncation that cuts a closed transaction off, marker and all,
	// takes it out of the unstable ones: what follows is stable once below
	// the high watermark, before it passes the old marker's offset.
	c := w.data(3, 2)
	mc := w.marker(3, false)
	if got := l.LastStableOffset(mc); got != c {
		t.Fatalf("LastStableOffset(%d) = %d, want %d", mc, got, c)
	}
	if err := l.TruncateTo(c); err != nil {
		t.Fatal(err)
	}
	w.data(-1, 5)
	if got := l.LastStableOffset(mc); got != mc {
		t.Fatalf("LastStableOffset(%d) = %d after the transaction was cut off, want the high watermark", mc, got)
	}

	// One whose marker alone is cut off is open again.
	d := w.data(4, 2)
	md := w.marker(4, true)
	if err := l.TruncateTo(md); err != nil {
		t.Fatal(err)
	}
	w.data(-1, 3)
	if got := l.LastStableOffset(l.LogEndOffset()); got != d || !l.HasOpenTransaction(4) {
		t.Fatalf("LastStableOffset %d after the marker was cut off (open %v), want %d", got, l.OpenTransactions(), d)
	}
	md = w.marker(4, false)
	if got := l.LastStableOffset(md); got != d {
		t.Fatalf("LastStableOffset(%d) = %d, want %d", md, got, d)
	}
	if got := l.LastStableOffset(md + 1); got != md+1 {
		t.Fatalf("LastStableOffset(%d) = %d, want %d", md+1, got, md+1)
	}
}

// Reopening a log keeps a closed transaction unstable while the high
// watermark has not passed its marker: the walk of the active segment
// finds the marker again.
func TestLastStableOffsetAfterReopenWaitsForTheMarker(t *testing.T) {
	e := newEnv(t, Config{})
	l := e.open()
	w := txnWriter{t, l}
	a := w.data(1, 2)
	m := w.marker(1, true)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = e.open()
	if got := l.LastStableOffset(m); got != a {
		t.Fatalf("LastStableOffset(%d) after reopening = %d, want %d", m, got, a)
	}
	if got := l.LastStableOffset(m + 1); got != m+1 {
		t.Fatalf("LastStableOffset(%d) after reopening = %d, want %d", m+1, got, m+1)
	}
}

// A compaction swap of the log's first segment, whose transactions open at
// its start are known only from segments deleted earlier, keeps them
// through a crash at any step once the swap is decided: the cleaned
// .txnindex is written before the swap marker and renamed with the other
// files.
func TestCompactionSwapCrashKeepsTheFirstSegmentsStartState(t *testing.T) {
	for _, step := range []string{"before-swap-marker", "after-swap-marker", "after-old-removed", "after-rename", "after-swap-marker-removed"} {
		t.Run(step, func(t *testing.T) {
			e := newEnv(t, txnSegmentConfig())
			e.crashAt = func(s string) bool { return s == step }
			l := e.open()
			w := txnWriter{t, l}
			w.data(-1, 3)
			w.data(1, 2)
			for range 12 {
				w.data(-1, 3)
			}
			// Deletes the segment holding p1's first batch.
			if err := l.AdvanceLogStart(l.Segments()[1].BaseOffset); err != nil {
				t.Fatal(err)
			}
			await.True(t, 10*time.Second, "sealed segments to be durable", func() bool { return l.nextToSeal() == nil })
			segs := l.Segments()
			if len(segs) < 4 || segs[0].BaseOffset <= 3 {
				t.Fatalf("segments %+v: want p1's start deleted and at least 4 left", segs)
			}
			want := txnView{fuo: l.LogStartOffset(), open: []OpenTxn{{1, 3}}}
			wantTxns(t, l, want)

			base, end := segs[0].BaseOffset, segs[1].NextOffset
			c, err := l.BeginClean(base, end)
			if err != nil {
				t.Fatal(err)
			}
			for off := base; off < end; {
				res, err := l.Read(off, 1<<20, end)
				if err != nil {
					t.Fatal(err)
				}
				if err := c.Append(res.Data); err != nil {
					t.Fatal(err)
				}
				off = res.NextOffset
			}
			if err := l.CommitClean(c, end); !errors.Is(err, errCrashed) {
				t.Fatalf("CommitClean = %v, want the simulated crash", err)
			}
			after := e.crash(l)
			after.crashAt = nil
			wantTxns(t, after.open(), want)
		})
	}
}

// A clean shutdown writes the active segment's .txnindex when the segment
// is large enough for a walk to cost, and the next open takes the active
// segment's transactions from it instead of reading the segment: the same
// state as the walk gives. After a crash (no clean shutdown marker) the
// file is not trusted: a forged one that names an abort the log does not
// hold changes nothing then, while after a clean shutdown it would be
// believed, which shows the walk was skipped.
func TestActiveSegmentTxnIndexAtCleanShutdown(t *testing.T) {
	e := newEnv(t, Config{})
	l := e.open()
	w := txnWriter{t, l}
	w.data(1, 2)
	w.data(2, 2)
	w.marker(1, false)
	for l.Segments()[len(l.Segments())-1].Size < activeTxnIndexMin {
		w.data(-1, 500)
	}
	w.data(3, 1)
	want := viewTxns(l)
	if len(want.aborted) != 1 || len(want.open) != 2 {
		t.Fatalf("before closing: %+v, want one aborted and two open transactions", want)
	}
	l = e.reopen(l)
	index := e.segPath(0, txnIndexSuffix)
	x, err := os.ReadFile(index)
	if err != nil {
		t.Fatalf("no transaction index of the active segment after a clean shutdown: %v", err)
	}
	if got, err := decodeTxnIndex(x); err != nil || got.next != l.LogEndOffset() {
		t.Fatalf("active segment's index: next %d, %v; want the log end %d", got.next, err, l.LogEndOffset())
	}
	wantTxns(t, l, want)

	// A forged index claiming one more aborted transaction.
	forged, err := decodeTxnIndex(x)
	if err != nil {
		t.Fatal(err)
	}
	forged.aborted = append(forged.aborted, AbortedTxn{ProducerID: 9, FirstOffset: 1, LastOffset: 2})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(index, encodeTxnIndex(forged), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(e.dir, cleanShutdownFile)); err != nil {
		t.Fatal(err)
	}
	l = e.open()
	wantTxns(t, l, want) // walked: the forgery is not believed
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// The crash's open walked the segment, so the clean close writes the
	// index again; forge it once more, clean shutdown kept this time.
	if err := os.WriteFile(index, encodeTxnIndex(forged), 0o644); err != nil {
		t.Fatal(err)
	}
	l = e.open()
	if got := viewTxns(l); len(got.aborted) != 2 {
		t.Fatalf("after a clean shutdown the active segment's index was not used: %+v", got)
	}
}
