package partlog

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/strata-broker/strata/record"
)

// snapScanBudget is the tail a fallback scan reads in these tests: a few
// segments of snapEnvConfig, far less than the log.
const snapScanBudget = 8 << 10

var snapEnvConfig = Config{SegmentBytes: 4096, IndexIntervalBytes: 512}

// recorder appends to a log and records the producers' batches in a
// ProducerStates, as the broker does.
type recorder struct {
	t   testing.TB
	l   *Log
	ps  *ProducerStates
	now time.Time
	seq map[int64]int32
}

func newRecorder(t testing.TB, l *Log, cfg ProducerStateConfig, now time.Time) *recorder {
	return &recorder{t: t, l: l, ps: NewProducerStates(cfg), now: now, seq: map[int64]int32{}}
}

// produce appends a batch of n records of producer id at epoch, its
// sequence continuing the producer's.
func (r *recorder) produce(id int64, epoch int16, n int) *record.Header {
	r.t.Helper()
	b := producerBatch(r.t, id, epoch, r.seq[id], n, 0)
	r.seq[id] += int32(n)
	return r.append(b)
}

// marker appends an end-transaction marker of producer id.
func (r *recorder) marker(id int64, epoch int16, commit bool, coordinatorEpoch int32) {
	r.t.Helper()
	m := record.EndTxnMarker{ProducerID: id, ProducerEpoch: epoch, Commit: commit, CoordinatorEpoch: coordinatorEpoch}
	b := record.BuildEndTxnMarker(m, tsBase)
	if _, err := r.l.Append(b, 1); err != nil {
		r.t.Fatal(err)
	}
	r.ps.RecordMarker(header(r.t, b), &m, r.now)
}

// filler appends count batches that no producer wrote.
func (r *recorder) filler(count int) {
	r.t.Helper()
	for range count {
		if _, err := r.l.Append(buildBatch(r.t, 0, 3, 200), 1); err != nil {
			r.t.Fatal(err)
		}
	}
}

func (r *recorder) append(b []byte) *record.Header {
	r.t.Helper()
	if _, err := r.l.Append(b, 1); err != nil {
		r.t.Fatal(err)
	}
	h := header(r.t, b) // the log stamped its offset
	r.ps.Record(h, r.now)
	return h
}

func (r *recorder) snapshot() int64 {
	r.t.Helper()
	off, err := r.l.WriteProducerSnapshot(r.ps, r.now)
	if err != nil {
		r.t.Fatal(err)
	}
	if off != r.l.LogEndOffset() {
		r.t.Fatalf("snapshot at %d, log end %d", off, r.l.LogEndOffset())
	}
	return off
}

// entryDump is everything a ProducerStates keeps of a producer.
type entryDump struct {
	ID               int64
	Epoch            int16
	Batches          []ProducerBatch
	CoordinatorEpoch int32
	Marker           ProducerMarker
	HasMarker        bool
	LastSeen         time.Time
}

// dump lists the producers, most recently used first.
func dump(ps *ProducerStates) []entryDump {
	var out []entryDump
	for e := ps.lru.next; e != &ps.lru; e = e.next {
		out = append(out, entryDump{e.id, e.Epoch, slices.Clone(e.Batches), e.CoordinatorEpoch, e.Marker, e.HasMarker, e.lastSeen})
	}
	return out
}

func loadState(t testing.TB, l *Log, cfg ProducerStateConfig, now time.Time) (*ProducerStates, ProducerLoad) {
	t.Helper()
	ps := NewProducerStates(cfg)
	info, err := ps.Load(l, snapScanBudget, now)
	if err != nil {
		t.Fatal(err)
	}
	return ps, info
}

func snapshotFiles(t testing.TB, dir string) []int64 {
	t.Helper()
	offs, err := producerSnapshots(dir)
	if err != nil {
		t.Fatal(err)
	}
	return offs
}

// A producer whose latest batches lie far behind the scan budget is still
// known after a clean restart, with everything the state kept (the
// marker's coordinator epoch too, which a scan cannot read) and in the same
// LRU order, and loading it reads no segment.
func TestProducerSnapshotCleanRestart(t *testing.T) {
	e := newEnv(t, snapEnvConfig)
	l := e.open()
	now := time.Unix(1_700_000_000, 0)
	cfg := ProducerStateConfig{MaxEntries: 4}
	r := newRecorder(t, l, cfg, now)
	for range 3 {
		r.produce(1, 0, 2)
	}
	r.produce(3, 0, 1)
	r.produce(4, 0, 1)
	r.marker(2, 3, false, 7)
	r.produce(1, 0, 1)
	r.produce(5, 0, 1) // evicts 3
	r.produce(6, 0, 1) // evicts 4
	old := r.produce(6, 0, 1)
	r.filler(60)
	if n := len(l.Segments()); n < 5 {
		t.Fatalf("%d segments, want a log much longer than the scan budget", n)
	}
	want := dump(r.ps)
	if len(want) != cfg.MaxEntries {
		t.Fatalf("%d producers recorded, want the bound %d", len(want), cfg.MaxEntries)
	}

	// Without a snapshot the scan of the tail finds none of them.
	l = e.reopen(l)
	if ps, info := loadState(t, l, cfg, now); ps.Len() != 0 || info.SnapshotOffset != -1 || info.Segments == 0 {
		t.Fatalf("scan without a snapshot: %d producers, %+v; want none found, segments read", ps.Len(), info)
	}

	r.l = l
	at := r.snapshot()
	l = e.reopen(l)
	ps, info := loadState(t, l, cfg, now)
	if info != (ProducerLoad{SnapshotOffset: at}) {
		t.Fatalf("load after a clean restart: %+v, want the snapshot at %d and no segment read", info, at)
	}
	if got := dump(ps); !reflect.DeepEqual(got, want) {
		t.Fatalf("state after restart:\n%+v\nwant\n%+v", got, want)
	}
	// A retry of producer 6's batch is recognised.
	if e := ps.Get(6, now); e == nil {
		t.Fatal("producer 6 unknown")
	} else if m, ok := e.Find(old.BaseSequence, LastSequence(old)); !ok || m.FirstOffset != old.BaseOffset {
		t.Fatalf("producer 6's batch at %d not found: %+v", old.BaseOffset, e.Batches)
	}
}

// After a snapshot the log goes on: loading replays only the batches after
// it, from the segments holding them, and ends in the state recorded.
func TestProducerSnapshotReplaysTail(t *testing.T) {
	e := newEnv(t, snapEnvConfig)
	l := e.open()
	now := time.Unix(1_700_000_000, 0)
	r := newRecorder(t, l, ProducerStateConfig{}, now)
	r.produce(1, 0, 3)
	r.filler(40)
	r.produce(2, 0, 1)
	at := r.snapshot()
	segsAt := len(l.Segments())
	r.produce(1, 0, 1)
	r.produce(3, 0, 2)
	r.filler(10)
	r.produce(2, 0, 1)
	r.produce(1, 1, 1) // a new epoch forgets epoch 0's batches
	want := dump(r.ps)

	l = e.reopen(l)
	ps, info := loadState(t, l, ProducerStateConfig{}, now)
	if info.SnapshotOffset != at || info.Segments == 0 || info.Segments > len(l.Segments())-segsAt+1 {
		t.Fatalf("load: %+v; want the snapshot at %d and the %d segments after it", info, at, len(l.Segments())-segsAt+1)
	}
	if got := dump(ps); !reflect.DeepEqual(got, want) {
		t.Fatalf("state:\n%+v\nwant\n%+v", got, want)
	}
}

// A damaged snapshot (checksum, version) is discarded: the next older one
// serves, or without one the tail is scanned as before.
func TestProducerSnapshotDamagedFallsBack(t *testing.T) {
	e := newEnv(t, snapEnvConfig)
	l := e.open()
	now := time.Unix(1_700_000_000, 0)
	r := newRecorder(t, l, ProducerStateConfig{}, now)
	r.produce(1, 0, 3)
	r.filler(30)
	first := r.snapshot()
	r.produce(2, 0, 1)
	r.filler(30)
	second := r.snapshot()
	want := dump(r.ps)
	l = e.reopen(l)

	flipBit(t, e.segPath(second, producerSnapshotSuffix), 30, 2)
	ps, info := loadState(t, l, ProducerStateConfig{}, now)
	if info.SnapshotOffset != first {
		t.Fatalf("newest damaged: loaded %+v, want the older snapshot at %d", info, first)
	}
	if got := dump(ps); !reflect.DeepEqual(got, want) {
		t.Fatalf("state:\n%+v\nwant\n%+v", got, want)
	}
	if got := snapshotFiles(t, e.dir); !slices.Equal(got, []int64{first}) {
		t.Fatalf("snapshots %v after a damaged one was met, want [%d]", got, first)
	}
	wantLogged(t, e.logs, "discarding producer snapshot")

	// A version this code does not know, with a valid checksum.
	path := e.segPath(first, producerSnapshotSuffix)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint16(raw[4:], producerSnapshotVersion+1)
	binary.BigEndian.PutUint32(raw[len(raw)-4:], crc32.Checksum(raw[:len(raw)-4], castagnoli))
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	ps, info = loadState(t, l, ProducerStateConfig{}, now)
	if info.SnapshotOffset != -1 || info.Segments == 0 {
		t.Fatalf("no usable snapshot: loaded %+v, want a scan", info)
	}
	if ps.Get(1, now) != nil {
		t.Fatal("scan: producer 1, behind the budget, known")
	}
	if got := snapshotFiles(t, e.dir); len(got) != 0 {
		t.Fatalf("snapshots %v left after both were found damaged", got)
	}
}

// A truncation removes the snapshots beyond its cut, and the state is
// rebuilt from the one before. A snapshot beyond the log end found at Open
// (a crash lost the tail it described) is removed too.
func TestProducerSnapshotTruncation(t *testing.T) {
	e := newEnv(t, snapEnvConfig)
	l := e.open()
	now := time.Unix(1_700_000_000, 0)
	r := newRecorder(t, l, ProducerStateConfig{}, now)
	r.produce(1, 0, 3)
	r.filler(30)
	first := r.snapshot()
	want := dump(r.ps)
	r.produce(1, 0, 1)
	cut := l.LogEndOffset()
	r.produce(2, 0, 1)
	r.filler(5)
	second := r.snapshot()
	raw, err := os.ReadFile(e.segPath(second, producerSnapshotSuffix))
	if err != nil {
		t.Fatal(err)
	}

	if err := l.TruncateTo(cut); err != nil {
		t.Fatal(err)
	}
	if got := snapshotFiles(t, e.dir); !slices.Equal(got, []int64{first}) {
		t.Fatalf("snapshots %v after truncating to %d, want [%d]", got, cut, first)
	}
	ps, info := loadState(t, l, ProducerStateConfig{}, now)
	if info.SnapshotOffset != first || ps.Get(2, now) != nil {
		t.Fatalf("after truncation: %+v, producer 2 known %v; want the snapshot at %d, producer 2 gone", info, ps.Get(2, now) != nil, first)
	}
	wantEntry := want[0]
	wantEntry.Batches = append(wantEntry.Batches, ProducerBatch{FirstSeq: 3, LastSeq: 3, FirstOffset: cut - 1, LastOffset: cut - 1})
	if got := dump(ps); !reflect.DeepEqual(got, []entryDump{wantEntry}) {
		t.Fatalf("state:\n%+v\nwant\n%+v", got, []entryDump{wantEntry})
	}

	// As if the removal had not reached the disk before a crash.
	if err := os.WriteFile(e.segPath(second, producerSnapshotSuffix), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	l = e.reopen(l)
	if got := snapshotFiles(t, e.dir); !slices.Equal(got, []int64{first}) {
		t.Fatalf("snapshots %v after Open, want [%d]: %d is beyond the log end %d", got, first, second, l.LogEndOffset())
	}
	if _, info := loadState(t, l, ProducerStateConfig{}, now); info.SnapshotOffset != first {
		t.Fatalf("after reopen: %+v, want the snapshot at %d", info, first)
	}

	if err := l.TruncateFullyAndStartAt(l.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
	if got := snapshotFiles(t, e.dir); len(got) != 0 {
		t.Fatalf("snapshots %v after emptying the log", got)
	}
}

// Only the two newest snapshots are kept, and retention removes those
// below the new log start.
func TestProducerSnapshotKeepsNewestTwo(t *testing.T) {
	e := newEnv(t, snapEnvConfig)
	l := e.open()
	now := time.Unix(1_700_000_000, 0)
	r := newRecorder(t, l, ProducerStateConfig{}, now)
	var offs []int64
	for i := range 4 {
		r.produce(int64(i), 0, 1)
		r.filler(10)
		offs = append(offs, r.snapshot())
	}
	if got := snapshotFiles(t, e.dir); !slices.Equal(got, offs[2:]) {
		t.Fatalf("snapshots %v, want the newest two %v", got, offs[2:])
	}
	if _, err := l.DeleteSegmentsBelow(offs[2] + 1); err != nil {
		t.Fatal(err)
	}
	if got := snapshotFiles(t, e.dir); !slices.Equal(got, offs[3:]) {
		t.Fatalf("snapshots %v after the log start moved past %d, want %v", got, offs[2], offs[3:])
	}
}

// Producers expired when the snapshot is written are left out; the others
// keep when they were last seen, so they expire on time after a restart.
func TestProducerSnapshotKeepsLastSeen(t *testing.T) {
	e := newEnv(t, snapEnvConfig)
	l := e.open()
	t0 := time.Unix(1_700_000_000, 0)
	cfg := ProducerStateConfig{Expiry: time.Hour}
	r := newRecorder(t, l, cfg, t0)
	r.produce(1, 0, 1)
	r.now = t0.Add(40 * time.Minute)
	r.produce(2, 0, 1)
	r.now = t0.Add(70 * time.Minute)
	r.snapshot()
	l = e.reopen(l)

	ps, _ := loadState(t, l, cfg, t0.Add(80*time.Minute))
	if ps.Len() != 1 || ps.Get(2, t0.Add(80*time.Minute)) == nil {
		t.Fatalf("%d producers restored, want producer 2 only", ps.Len())
	}
	if ps.Get(2, t0.Add(101*time.Minute)) != nil {
		t.Fatal("producer 2 last seen at 40 minutes still known at 101")
	}
}
