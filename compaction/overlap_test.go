package compaction

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
)

// memLog is an in-memory Log whose segments may overlap, as remote
// segments written by successive leaders do.
type memLog struct {
	segs      []memSeg
	start     int64
	cleanedTo int64
}

type memSeg struct {
	info partlog.SegmentInfo
	data []byte
}

type memOut struct {
	base, end int64
	data      []byte
}

func (o *memOut) Append(b []byte) error { o.data = append(o.data, b...); return nil }
func (o *memOut) Size() int64           { return int64(len(o.data)) }
func (o *memOut) Abort()                {}

func (m *memLog) Segments() []partlog.SegmentInfo {
	var out []partlog.SegmentInfo
	for _, s := range m.segs {
		out = append(out, s.info)
	}
	end := m.segs[len(m.segs)-1].info.NextOffset
	return append(out, partlog.SegmentInfo{BaseOffset: end, NextOffset: end})
}
func (m *memLog) LogStartOffset() int64 { return m.start }
func (m *memLog) CleanerOffset() int64  { return m.cleanedTo }

func (m *memLog) Read(offset int64, maxBytes int, maxOffset int64) (partlog.ReadResult, error) {
	for _, s := range m.segs {
		if s.info.NextOffset <= offset {
			continue
		}
		res := partlog.ReadResult{FirstOffset: offset, NextOffset: offset}
		it := record.NewBatches(s.data)
		for it.Next() {
			h := it.Header()
			if h.NextOffset() <= offset || h.BaseOffset >= maxOffset {
				continue
			}
			res.Data = append(res.Data, it.Bytes()...)
			res.NextOffset = h.NextOffset()
		}
		return res, nil
	}
	return partlog.ReadResult{FirstOffset: offset, NextOffset: offset}, nil
}

func (m *memLog) BeginClean(base, end int64) (Output, error) {
	return &memOut{base: base, end: end}, nil
}

func (m *memLog) CommitClean(out Output, cleanerOffset int64) error {
	o := out.(*memOut)
	i := slices.IndexFunc(m.segs, func(s memSeg) bool { return s.info.BaseOffset == o.base })
	j := slices.IndexFunc(m.segs, func(s memSeg) bool { return s.info.NextOffset == o.end })
	if i < 0 || j < i {
		return fmt.Errorf("no segments hold %d..%d", o.base, o.end)
	}
	m.segs = slices.Concat(m.segs[:i], []memSeg{{info: partlog.SegmentInfo{BaseOffset: o.base, NextOffset: o.end, Size: o.Size(), Sealed: true, Durable: true}, data: o.data}}, m.segs[j+1:])
	m.cleanedTo = max(m.cleanedTo, cleanerOffset)
	return nil
}

// batchOf builds a batch at base with one record per key, values v<base+i>.
func batchOf(t *testing.T, base int64, epoch int32, keys ...string) []byte {
	t.Helper()
	b := record.NewBuilder(1000, 0)
	for i, k := range keys {
		b.Append(&record.Record{Key: []byte(k), Value: fmt.Appendf(nil, "v%d", base+int64(i))})
	}
	out, err := b.Build(record.None)
	if err != nil {
		t.Fatal(err)
	}
	out = append([]byte(nil), out...)
	record.SetBaseOffset(out, base)
	record.SetPartitionLeaderEpoch(out, epoch)
	return out
}

// Segments that overlap (a batch of the second starts below the end of the
// first) are cleaned into one run of batches that covers every offset once,
// and the latest record of each key is the one kept.
func TestCleanOverlappingSegments(t *testing.T) {
	a := slices.Concat(batchOf(t, 0, 1, "a", "b", "c", "d"), batchOf(t, 4, 1, "a", "b"))
	// The second segment re-holds 2..5 inside one batch spanning 2..9.
	b := batchOf(t, 2, 1, "c", "d", "a", "b", "e", "f", "a", "e")
	m := &memLog{segs: []memSeg{
		{info: partlog.SegmentInfo{BaseOffset: 0, NextOffset: 6, Size: int64(len(a)), Sealed: true, Durable: true}, data: a},
		{info: partlog.SegmentInfo{BaseOffset: 2, NextOffset: 10, Size: int64(len(b)), Sealed: true, Durable: true}, data: b},
	}}
	p := Policy{SegmentBytes: 1 << 20, DeleteRetention: time.Hour}
	now := time.UnixMilli(2000)
	d := Inspect(m.Segments(), 0, 0, 10, p, now)
	c := &Cleaner{Map: NewOffsetMap(1 << 12), Now: func() time.Time { return now }}
	if _, err := c.Clean(context.Background(), m, d, p); err != nil {
		t.Fatal(err)
	}
	if len(m.segs) != 1 || m.segs[0].info.BaseOffset != 0 || m.segs[0].info.NextOffset != 10 {
		t.Fatalf("segments after the pass: %+v", m.Segments())
	}
	next := int64(0)
	got := map[string]string{}
	var offsets []int64
	it := record.NewBatches(m.segs[0].data)
	for it.Next() {
		h := it.Header()
		if h.BaseOffset != next {
			t.Fatalf("batch at %d, want %d: the cleaned segment must cover every offset once", h.BaseOffset, next)
		}
		next = h.NextOffset()
		recs, err := record.Decode(it.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			got[string(r.Key)] = string(r.Value)
			offsets = append(offsets, r.Offset)
		}
	}
	if next != 10 {
		t.Fatalf("batches end at %d, want 10", next)
	}
	// Offsets 0..5 from the first segment, 6..9 from the second: latest
	// a@8, b@5, c@2, d@3, e@9, f@7.
	want := map[string]string{"a": "v8", "b": "v5", "c": "v2", "d": "v3", "e": "v9", "f": "v7"}
	if fmt.Sprint(got) != fmt.Sprint(want) || !slices.Equal(offsets, []int64{2, 3, 5, 7, 8, 9}) {
		t.Fatalf("kept %v at %v, want %v at [2 3 5 7 8 9]", got, offsets, want)
	}
}
