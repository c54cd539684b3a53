package tiering

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/tiering/objstore"
)

// replayBase is the timestamp of offset 0 in these tests; offset o has
// replayBase + o seconds.
var replayBase = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func tsOf(offset int64) int64 { return replayBase.Add(time.Duration(offset) * time.Second).UnixMilli() }

// testBucket is a local store holding one topic incarnation, written as
// the broker writes it.
type testBucket struct {
	t   *testing.T
	st  objstore.Store
	dir string
	l   Layout
}

func newTestBucket(t *testing.T, topic string, partitions int32) *testBucket {
	t.Helper()
	dir := t.TempDir()
	st, err := objstore.Open(context.Background(), "file://"+dir, objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := &testBucket{t: t, st: st, dir: dir, l: Layout{Topic: topic, TopicID: "id-1"}}
	if err := WriteTopicManifest(context.Background(), st, TopicManifest{Name: topic, ID: "id-1", Partitions: partitions, ReplicationFactor: 1}, time.Now()); err != nil {
		t.Fatal(err)
	}
	return b
}

// segment stores a segment of batches, each given as its consecutive
// offsets, and returns its manifest entry.
func (b *testBucket) segment(p int32, codec record.Compression, batches ...[]int64) SegmentMeta {
	b.t.Helper()
	var raw []byte
	var maxTS int64
	for _, offs := range batches {
		bld := record.NewBuilder(tsOf(offs[0]), 0)
		// The builder numbers records 0..n-1; the base offset is stamped
		// after, as the broker does.
		for _, o := range offs {
			bld.Append(&record.Record{Timestamp: tsOf(o), Key: fmt.Appendf(nil, "k%d", o), Value: fmt.Appendf(nil, "v%d", o),
				Headers: []record.RecordHeader{{Key: "h", Value: fmt.Appendf(nil, "%d", o)}}})
			maxTS = max(maxTS, tsOf(o))
		}
		batch, err := bld.Build(codec)
		if err != nil {
			b.t.Fatal(err)
		}
		record.SetBaseOffset(batch, offs[0])
		raw = append(raw, batch...)
	}
	first, last := batches[0][0], batches[len(batches)-1][len(batches[len(batches)-1])-1]
	logKey, idxKey, timeKey := b.l.SegmentKeys(p, first, 1)
	if err := b.st.Put(context.Background(), logKey, bytes.NewReader(raw), int64(len(raw))); err != nil {
		b.t.Fatal(err)
	}
	return SegmentMeta{BaseOffset: first, NextOffset: last + 1, Size: int64(len(raw)), MaxTimestamp: maxTS, LeaderEpoch: 1,
		Key: logKey, IndexKey: idxKey, TimeIndexKey: timeKey, CRC32C: crc32.Checksum(raw, castagnoli)}
}

func (b *testBucket) manifest(p int32, logStart int64, segs ...SegmentMeta) {
	b.t.Helper()
	m := PartitionManifest{Topic: b.l.Topic, TopicID: b.l.TopicID, Partition: p, LeaderEpoch: 1, Seq: 1, LogStartOffset: logStart, Segments: segs}
	if _, err := WriteManifest(context.Background(), b.st, b.l, &m, time.Now()); err != nil {
		b.t.Fatal(err)
	}
}

func span(from, to int64) []int64 {
	var out []int64
	for o := from; o < to; o++ {
		out = append(out, o)
	}
	return out
}

type replayed struct {
	partition int32
	offset    int64
	ts        int64
	key, val  string
	header    string
}

func replayAll(t *testing.T, st Store, topic string, opts ReplayOptions) ([]replayed, error) {
	t.Helper()
	var out []replayed
	err := Replay(context.Background(), st, topic, opts, func(p int32, r *record.Record) error {
		got := replayed{partition: p, offset: r.Offset, ts: r.Timestamp, key: string(r.Key), val: string(r.Value)}
		if len(r.Headers) == 1 {
			got.header = r.Headers[0].Key + "=" + string(r.Headers[0].Value)
		}
		out = append(out, got)
		return nil
	})
	return out, err
}

func offsetsOf(rs []replayed) []int64 {
	var out []int64
	for _, r := range rs {
		out = append(out, r.offset)
	}
	return out
}

// overlappingBucket: partition 0 has a segment 0-9, a new leader's segment
// 5-14 with other batch boundaries (zstd), and after a compacted gap a
// segment 20-24; partition 1 has one segment 0-5 whose log starts at 3.
func overlappingBucket(t *testing.T) *testBucket {
	b := newTestBucket(t, "events", 2)
	a := b.segment(0, record.None, span(0, 3), span(3, 6), span(6, 9), span(9, 10))
	bb := b.segment(0, record.ZSTD, span(5, 8), span(8, 12), span(12, 15))
	c := b.segment(0, record.None, span(20, 25))
	b.manifest(0, 0, a, bb, c)
	b.manifest(1, 3, b.segment(1, record.Snappy, span(0, 6)))
	return b
}

func TestReplayYieldsEachOffsetOnceAcrossOverlappingSegments(t *testing.T) {
	b := overlappingBucket(t)
	got, err := replayAll(t, b.st, "events", ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := append(append(span(0, 15), span(20, 25)...), span(3, 6)...)
	if !slices.Equal(offsetsOf(got), want) {
		t.Fatalf("offsets %v, want %v", offsetsOf(got), want)
	}
	for i, r := range got {
		wantP := int32(0)
		if i >= 20 {
			wantP = 1
		}
		if r.partition != wantP || r.ts != tsOf(r.offset) || r.key != fmt.Sprint("k", r.offset) || r.val != fmt.Sprint("v", r.offset) || r.header != fmt.Sprint("h=", r.offset) {
			t.Errorf("record %d: %+v", i, r)
		}
	}
}

func TestReplayOffsetRangeAndPartition(t *testing.T) {
	b := overlappingBucket(t)
	for _, c := range []struct {
		opts ReplayOptions
		want []int64
	}{
		{ReplayOptions{Partitions: []int32{0}, From: 7, To: 22}, append(span(7, 15), 20, 21)},
		{ReplayOptions{Partitions: []int32{0}, From: 16, To: 21}, []int64{20}},
		{ReplayOptions{Partitions: []int32{0}, From: 25}, nil},
		{ReplayOptions{Partitions: []int32{1}}, span(3, 6)},
		{ReplayOptions{Partitions: []int32{1, 0}, From: 4, To: 6}, []int64{4, 5, 4, 5}},
	} {
		got, err := replayAll(t, b.st, "events", c.opts)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(offsetsOf(got), c.want) {
			t.Errorf("%+v: offsets %v, want %v", c.opts, offsetsOf(got), c.want)
		}
	}
	if _, err := replayAll(t, b.st, "events", ReplayOptions{Partitions: []int32{2}}); err == nil || !strings.Contains(err.Error(), "no partition 2") {
		t.Errorf("partition 2 of 2: %v", err)
	}
}

func TestReplayFromTimeStartsAtTheFirstRecordAtOrAfterIt(t *testing.T) {
	b := overlappingBucket(t)
	plan, err := PlanReplay(context.Background(), b.st, "events", ReplayOptions{Partitions: []int32{0}, FromTime: time.UnixMilli(tsOf(12) - 500)})
	if err != nil {
		t.Fatal(err)
	}
	// The first segment ends before the time: not read.
	if segs := plan.Partitions[0].Segments; len(segs) != 2 || segs[0].BaseOffset != 5 {
		t.Fatalf("planned segments %+v", segs)
	}
	var got []int64
	if err := plan.Run(context.Background(), b.st, func(_ int32, r *record.Record) error {
		got = append(got, r.Offset)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := append(span(12, 15), span(20, 25)...); !slices.Equal(got, want) {
		t.Fatalf("offsets %v, want %v", got, want)
	}
	if plan.Bytes() <= 0 || plan.Offsets() != 20 {
		t.Errorf("plan: %d bytes, %d offsets", plan.Bytes(), plan.Offsets())
	}
}

// A damaged segment object is an error naming its key, and none of its
// records come out.
func TestReplayOfACorruptSegmentFailsNamingItsKey(t *testing.T) {
	b := overlappingBucket(t)
	m, _, _, err := LatestManifest(context.Background(), b.st, b.l, 0)
	if err != nil {
		t.Fatal(err)
	}
	key := m.Segments[1].Key
	file := filepath.Join(b.dir, filepath.FromSlash(key))
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-2] ^= 0x40
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := replayAll(t, b.st, "events", ReplayOptions{})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), key) {
		t.Fatalf("error %v: want ErrCorrupt naming %s", err, key)
	}
	if want := span(0, 10); !slices.Equal(offsetsOf(got), want) {
		t.Fatalf("offsets before the failure %v, want %v (the first segment only)", offsetsOf(got), want)
	}
}

func TestReplayUnknownTopic(t *testing.T) {
	b := overlappingBucket(t)
	if _, err := replayAll(t, b.st, "event", ReplayOptions{}); !errors.Is(err, ErrNoTopic) {
		t.Fatalf("error %v, want ErrNoTopic", err)
	}
}

// An error from the callback stops the replay and comes back as it was.
func TestReplayStopsAtTheCallbacksError(t *testing.T) {
	b := overlappingBucket(t)
	stop := errors.New("enough")
	n := 0
	err := Replay(context.Background(), b.st, "events", ReplayOptions{}, func(int32, *record.Record) error {
		if n++; n == 4 {
			return stop
		}
		return nil
	})
	if err != stop || n != 4 {
		t.Fatalf("error %v after %d records", err, n)
	}
}

// LastOffset is where the bucket's copy of a partition ends, whatever
// range the replay reads; a partition with nothing uploaded has none.
func TestReplayPlanLastOffsetInTheBucket(t *testing.T) {
	b := newTestBucket(t, "events", 2)
	b.manifest(0, 0, b.segment(0, record.None, span(0, 10)), b.segment(0, record.None, span(10, 25)))
	plan, err := PlanReplay(context.Background(), b.st, "events", ReplayOptions{To: 5})
	if err != nil {
		t.Fatal(err)
	}
	if last, ok := plan.Partitions[0].LastOffset(); !ok || last != 24 {
		t.Errorf("partition 0: LastOffset %d, %v; want 24, true", last, ok)
	}
	if last, ok := plan.Partitions[1].LastOffset(); ok {
		t.Errorf("partition 1, nothing uploaded: LastOffset %d, %v; want none", last, ok)
	}
}
