package tiering

import (
	"context"
	"testing"

	"github.com/strata-broker/strata/partlog"
)

// The densest transaction index a client can make, abort markers with no
// data (each an aborted entry of 34 bytes for 78 bytes of log), stays
// within the bound ReadTxnIndex derives from the segment's size, and that
// bound grows with the segment: a fixed one would make a large enough
// segment of them unreadable for good.
func TestTxnIndexBoundFollowsTheSegmentSize(t *testing.T) {
	b := newTestBucket(t, "dense", 1)
	l := newTxnLog(t)
	const markers = 3000
	for i := range markers {
		l.end(int64(100+i%7), false, "abort")
	}
	l.roll()
	metas := l.upload(b)
	x, err := ReadTxnIndex(context.Background(), b.st, metas[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(x.Aborted) != markers {
		t.Fatalf("%d aborted transactions in the index, want %d", len(x.Aborted), markers)
	}
	raw, err := readAll(context.Background(), b.st, metas[0].TxnIndexKey, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	empty := partlog.MaxTxnIndexSize(0)
	if perBatch := partlog.MaxTxnIndexSize(metas[0].Size) - empty; int64(len(raw)) > perBatch {
		t.Fatalf("index of %d bytes for a segment of %d, above the bound's %d for its batches", len(raw), metas[0].Size, perBatch)
	}
	// A segment of 1 GiB of such markers has an index of about 440 MiB.
	const gib = 1 << 30
	if need := int64(gib / 78 * 34); partlog.MaxTxnIndexSize(gib) < need {
		t.Fatalf("bound %d for a 1 GiB segment, below the %d its markers can need", partlog.MaxTxnIndexSize(gib), need)
	}
}

// Decoded indexes are kept within ReaderConfig.IndexBytes, not only within
// a count: a large transaction index pushes the least recent ones out.
func TestReaderIndexCacheIsBoundedByBytes(t *testing.T) {
	for _, c := range []struct {
		name    string
		bytes   int64
		evicted bool
	}{{"room for both", 0, false}, {"room for one", 1, true}} {
		t.Run(c.name, func(t *testing.T) {
			b, _, metas := txnBucket(t)
			ctx := context.Background()
			cfg := ReaderConfig{CacheDir: t.TempDir()}
			if c.bytes > 0 {
				x, err := ReadTxnIndex(ctx, b.st, metas[1])
				if err != nil {
					t.Fatal(err)
				}
				cfg.IndexBytes = x.MemorySize()
			}
			r, err := NewReader(b.st, cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, i := range []int{1, 2} {
				if _, err := r.txnIndex(ctx, metas[i]); err != nil {
					t.Fatal(err)
				}
			}
			// Gone from the store: only a cached copy can answer.
			if err := b.st.Delete(ctx, metas[1].TxnIndexKey); err != nil {
				t.Fatal(err)
			}
			_, err = r.txnIndex(ctx, metas[1])
			if evicted := err != nil; evicted != c.evicted {
				t.Fatalf("first index evicted: %v (%v), want %v", evicted, err, c.evicted)
			}
		})
	}
}
