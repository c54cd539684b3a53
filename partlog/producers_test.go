package partlog

import (
	"testing"

	"github.com/strata-broker/strata/record"
)

// WalkTailHeaders visits a suffix of the log's batches, in order and without
// gaps, that ends at the log end and fits within the byte budget.
func TestWalkTailHeadersVisitsBoundedSuffix(t *testing.T) {
	e := newEnv(t, Config{SegmentBytes: 4096, IndexIntervalBytes: 512})
	l := e.open()
	w := newWriter(t, l)
	w.appendMany(60, 4, 100)
	if n := len(l.Segments()); n < 3 {
		t.Fatalf("%d segments, want several", n)
	}

	walk := func(budget int64) []record.Header {
		t.Helper()
		var out []record.Header
		if err := l.WalkTailHeaders(budget, func(h *record.Header) { out = append(out, *h) }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	check := func(budget int64, got []record.Header) {
		t.Helper()
		if len(got) == 0 {
			t.Fatalf("budget %d: no batches", budget)
		}
		size := int64(0)
		for i, h := range got {
			size += int64(h.Size())
			if i > 0 && h.BaseOffset != got[i-1].NextOffset() {
				t.Fatalf("budget %d: batch %d at %d after one ending at %d", budget, i, h.BaseOffset, got[i-1].NextOffset())
			}
		}
		if last := got[len(got)-1]; last.NextOffset() != l.LogEndOffset() {
			t.Fatalf("budget %d: walk ends at %d, log end is %d", budget, last.NextOffset(), l.LogEndOffset())
		}
		if size > budget {
			t.Fatalf("budget %d: walked %d bytes", budget, size)
		}
	}

	all := walk(1 << 30)
	check(1<<30, all)
	if all[0].BaseOffset != 0 || len(all) != len(w.batches) {
		t.Fatalf("large budget: %d batches from %d, want all %d from 0", len(all), all[0].BaseOffset, len(w.batches))
	}
	for _, budget := range []int64{3000, 5000, 9000} {
		got := walk(budget)
		check(budget, got)
		if len(got) == len(all) {
			t.Fatalf("budget %d: walked the whole log", budget)
		}
	}

	// After a reopen (indexes loaded or rebuilt) the walk is the same.
	l = e.reopen(l)
	check(1<<30, walk(1<<30))
}
