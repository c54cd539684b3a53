package partlog

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/strata-broker/strata/record"
)

// flipCase damages one batch at byte pos+at(size).
type flipCase struct {
	name string
	at   func(size int) int64
	bit  uint
	// headerBroken: the batch's length cannot be trusted, so a reader
	// resumes at the next offset-index entry rather than the next batch.
	headerBroken bool
}

var flipCases = []flipCase{
	{"records", func(size int) int64 { return int64(size) - 3 }, 2, false},
	{"crc", func(int) int64 { return 19 }, 5, false},
	{"last offset delta", func(int) int64 { return 26 }, 0, false},
	{"base offset", func(int) int64 { return 7 }, 0, false},
	{"magic", func(int) int64 { return 16 }, 1, true},
	{"length low bit", func(int) int64 { return 11 }, 0, true},
	{"length +64KiB", func(int) int64 { return 9 }, 0, true},
	{"length sign bit", func(int) int64 { return 8 }, 7, true},
}

// TestBitFlipInSealedSegment damages one batch in the middle of a sealed
// segment and checks that reading it gives a *CorruptionError naming the
// damaged range, that reads before and after it succeed, and that a reader
// skipping to NextOffset gets everything else; also after a reopen.
func TestBitFlipInSealedSegment(t *testing.T) {
	for _, interval := range []int{1, 4096} {
		for _, tc := range flipCases {
			t.Run(fmt.Sprintf("interval=%d/%s", interval, tc.name), func(t *testing.T) {
				e := newEnv(t, Config{SegmentBytes: 4000, IndexIntervalBytes: interval})
				l := e.open()
				w := newWriter(t, l)
				w.appendMany(80, 3, 30)
				segs := l.Segments()
				if len(segs) < 3 {
					t.Fatalf("%d segments", len(segs))
				}
				path := e.segPath(0, logSuffix)
				pos := batchPositions(t, path)
				k := len(pos) / 2
				victim := w.batches[k]
				flipBit(t, path, pos[k]+tc.at(victim.size), tc.bit)

				wantNext := w.batches[k+1].first
				if tc.headerBroken && interval > 1 {
					// Resume at the next index entry after the damage, or the
					// next segment.
					var ok bool
					if wantNext, _, ok = l.segs[0].entryAfter(pos[k], segs[0].Size); !ok {
						wantNext = segs[1].BaseOffset
					}
					if wantNext <= victim.first {
						t.Fatalf("next index entry %d", wantNext)
					}
				}
				for reopened := range 2 {
					if reopened == 1 {
						l = e.reopen(l)
					}
					checkDamagedRange(t, l, pos[k], victim, wantNext)
					// Reads before stop before the damage.
					res, err := l.Read(w.batches[0].first, 1<<20, l.LogEndOffset())
					if err != nil || res.NextOffset != victim.first {
						t.Fatalf("read before the damage: NextOffset %d, %v; want %d", res.NextOffset, err, victim.first)
					}
					checkRecords(t, res.Data, 0)
					res, err = l.Read(w.batches[k-1].next-1, 1<<20, l.LogEndOffset())
					if err != nil || res.NextOffset != victim.first {
						t.Fatalf("read of the batch before the damage: NextOffset %d, %v", res.NextOffset, err)
					}
					// From NextOffset on, everything reads.
					readAll(t, l, wantNext, 1)
					readAll(t, l, wantNext, 5000)
					// A consumer skipping the damage gets all else.
					if missing := skipRead(t, l); missing != fmt.Sprintf("[%d,%d)", victim.first, wantNext) {
						t.Fatalf("skipping reader missed %s, want [%d,%d)", missing, victim.first, wantNext)
					}
				}
			})
		}
	}
}

// checkDamagedRange checks that reading any offset in [victim.first,
// wantNext) reports the damage.
func checkDamagedRange(t *testing.T, l *Log, pos int64, victim batchInfo, wantNext int64) {
	t.Helper()
	for off := victim.first; off < wantNext; off++ {
		_, err := l.Read(off, 1<<20, l.LogEndOffset())
		var ce *CorruptionError
		if !errors.As(err, &ce) {
			t.Fatalf("Read(%d) in the damaged range: %v", off, err)
		}
		if ce.NextOffset != wantNext || ce.FirstOffset > off || ce.Segment != 0 || ce.Dir != l.Dir() {
			t.Fatalf("Read(%d): %+v, want NextOffset %d", off, ce, wantNext)
		}
		if off < victim.next && (ce.FirstOffset != victim.first || ce.Position != pos) {
			t.Fatalf("Read(%d): %+v, want FirstOffset %d at byte %d", off, ce, victim.first, pos)
		}
		if !record.IsCorrupt(err) && !errors.Is(err, record.ErrShortBuffer) {
			t.Fatalf("CorruptionError does not wrap the cause: %v", err)
		}
		if !strings.Contains(ce.Error(), segmentName(0, logSuffix)) {
			t.Fatalf("error does not name the segment: %v", ce)
		}
	}
}

// skipRead reads the whole log, skipping damaged ranges as a consumer
// would, checks what it gets and returns the ranges it had to skip.
func skipRead(t *testing.T, l *Log) string {
	t.Helper()
	var skipped []string
	end := l.LogEndOffset()
	for off := l.LogStartOffset(); off < end; {
		res, err := l.Read(off, 3000, end)
		var ce *CorruptionError
		if errors.As(err, &ce) {
			skipped = append(skipped, fmt.Sprintf("[%d,%d)", off, ce.NextOffset))
			off = ce.NextOffset
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		off = checkRecords(t, res.Data, res.FirstOffset)
	}
	return strings.Join(skipped, " ")
}

// TestBitFlipInLastBatchOfSegment: the reader resumes at the next segment.
func TestBitFlipInLastBatchOfSegment(t *testing.T) {
	for _, tc := range []flipCase{flipCases[0], flipCases[4], flipCases[7]} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{SegmentBytes: 2000})
			l := e.open()
			w := newWriter(t, l)
			w.appendMany(40, 3, 30)
			segs := l.Segments()
			path := e.segPath(0, logSuffix)
			pos := batchPositions(t, path)
			k := len(pos) - 1
			victim := w.batches[k]
			if victim.next != segs[1].BaseOffset {
				t.Fatal("victim is not the segment's last batch")
			}
			flipBit(t, path, pos[k]+tc.at(victim.size), tc.bit)
			for reopened := range 2 {
				if reopened == 1 {
					l = e.reopen(l)
				}
				checkDamagedRange(t, l, pos[k], victim, segs[1].BaseOffset)
				if missing := skipRead(t, l); missing != fmt.Sprintf("[%d,%d)", victim.first, victim.next) {
					t.Fatalf("skipping reader missed %s", missing)
				}
			}
		})
	}
}

// TestBitFlipFoundByOffsetForTimestamp: a damaged batch that may hold the
// answer is reported, not silently skipped.
func TestBitFlipFoundByOffsetForTimestamp(t *testing.T) {
	for _, interval := range []int{1, 4096} {
		t.Run(fmt.Sprint("interval=", interval), func(t *testing.T) {
			e := newEnv(t, Config{SegmentBytes: 4000, IndexIntervalBytes: interval})
			l := e.open()
			w := newWriter(t, l)
			w.appendMany(60, 3, 30)
			path := e.segPath(0, logSuffix)
			pos := batchPositions(t, path)
			victim := w.batches[5]
			flipBit(t, path, pos[5]+int64(victim.size)-2, 0)
			for _, off := range []int64{victim.first, victim.next - 1} {
				_, _, _, err := l.OffsetForTimestamp(tsBase + off)
				var ce *CorruptionError
				if !errors.As(err, &ce) || ce.FirstOffset != victim.first || ce.NextOffset != victim.next {
					t.Fatalf("OffsetForTimestamp(ts of %d) over a damaged batch: %v", off, err)
				}
			}
			// Before it, fine; after it, fine when the time index lets the
			// search start past it, else reported (it might hold the answer).
			for _, off := range []int64{w.batches[4].first, w.batches[6].first, w.batches[20].first} {
				got, _, found, err := l.OffsetForTimestamp(tsBase + off)
				if off < victim.first || interval == 1 {
					if err != nil || !found || got != off {
						t.Fatalf("OffsetForTimestamp(ts of %d) = %d, %v, %v", off, got, found, err)
					}
				} else if ce := (*CorruptionError)(nil); !errors.As(err, &ce) {
					t.Fatalf("OffsetForTimestamp(ts of %d) past damage with a sparse index: %d, %v, %v", off, got, found, err)
				}
			}
		})
	}
}
