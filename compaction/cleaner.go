package compaction

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"golang.org/x/time/rate"

	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
)

// Log is what the cleaner needs of a partition log: the local log (see
// Local) or its segments in the object store.
type Log interface {
	Segments() []partlog.SegmentInfo
	LogStartOffset() int64
	// CleanerOffset is where the dirty section starts.
	CleanerOffset() int64
	Read(offset int64, maxBytes int, maxOffset int64) (partlog.ReadResult, error)
	// BeginClean starts the replacement of the segments holding exactly
	// [base, end).
	BeginClean(base, end int64) (Output, error)
	// CommitClean swaps the replacement in; a cleanerOffset above the
	// current one becomes the new start of the dirty section.
	CommitClean(out Output, cleanerOffset int64) error
}

// Output receives the batches of a cleaned segment.
type Output interface {
	Append(batches []byte) error
	Size() int64
	// Abort discards the output; it does nothing once committed.
	Abort()
}

// Local is the cleaner's view of a local partition log.
func Local(l *partlog.Log) Log { return localLog{l} }

type localLog struct{ *partlog.Log }

func (l localLog) BeginClean(base, end int64) (Output, error) {
	c, err := l.Log.BeginClean(base, end)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AbortedTransactions and TransactionsOpenAt never fail: the local log
// knows its transactions in memory.
func (l localLog) AbortedTransactions(from, upTo int64) ([]partlog.AbortedTxn, error) {
	return l.Log.AbortedTransactions(from, upTo), nil
}

func (l localLog) TransactionsOpenAt(base int64) ([]partlog.OpenTxn, bool, error) {
	open, ok := l.Log.TransactionsOpenAt(base)
	return open, ok, nil
}

func (l localLog) CommitClean(out Output, cleanerOffset int64) error {
	c, ok := out.(*partlog.Cleaned)
	if !ok {
		return fmt.Errorf("compaction: commit of a %T to a local log", out)
	}
	return l.Log.CommitClean(c, cleanerOffset)
}

// Policy is a compacted topic's cleaning configuration.
type Policy struct {
	MinCleanableDirtyRatio float64       // min.cleanable.dirty.ratio
	MinCompactionLag       time.Duration // min.compaction.lag.ms
	MaxCompactionLag       time.Duration // max.compaction.lag.ms; <= 0: none
	DeleteRetention        time.Duration // delete.retention.ms
	SegmentBytes           int64         // segment.bytes: cleaned segments are at most this big
}

// Dirt describes a log's dirty section, the part the cleaner has not
// deduplicated yet: [FirstDirty, FirstUncleanable).
type Dirt struct {
	FirstDirty       int64
	FirstUncleanable int64 // where cleanable segments end
	CleanBytes       int64 // bytes of segments below FirstDirty
	DirtyBytes       int64 // bytes of cleanable segments at or above FirstDirty
	// Overdue: the oldest dirty segment is older than max.compaction.lag.ms.
	Overdue bool
	// Mergeable is how many segments of the clean section a pass would
	// save by merging neighbours that fit one segment together.
	Mergeable int
}

// mergeWorthIt is how many segments merging must save for a pass to run
// on a log without dirty bytes: a first pass over full segments leaves a
// small segment for each, which only a later pass merges (as Kafka's
// cleaner does), and a topic no longer written to would otherwise keep
// them, each with its files and open descriptor, for ever.
const mergeWorthIt = 8

// Ratio is the share of dirty bytes, Kafka's dirty ratio.
func (d Dirt) Ratio() float64 {
	if d.CleanBytes+d.DirtyBytes == 0 {
		return 0
	}
	return float64(d.DirtyBytes) / float64(d.CleanBytes+d.DirtyBytes)
}

// Due reports whether a pass should run now.
func (d Dirt) Due(p Policy) bool {
	return d.DirtyBytes > 0 && (d.Ratio() >= p.MinCleanableDirtyRatio || d.Overdue) || d.Mergeable >= mergeWorthIt
}

// Inspect measures the dirty section of segs. Only durable sealed segments
// wholly below upper and older than min.compaction.lag.ms can be cleaned;
// the active segment never is. upper is the last stable offset (the high
// watermark capped by the first offset of the earliest open transaction):
// as in Kafka, the cleaner never touches an undecided transaction.
func Inspect(segs []partlog.SegmentInfo, logStart, cleanerOffset, upper int64, p Policy, now time.Time) Dirt {
	d := Dirt{FirstDirty: max(cleanerOffset, logStart), FirstUncleanable: logStart}
	nowMs := now.UnixMilli()
	for i, s := range segs {
		if i == len(segs)-1 || !s.Durable || s.NextOffset > upper {
			break
		}
		if p.MinCompactionLag > 0 && s.MaxTimestamp > nowMs-p.MinCompactionLag.Milliseconds() {
			break
		}
		if s.NextOffset <= logStart {
			continue
		}
		d.FirstUncleanable = s.NextOffset
		if s.NextOffset <= d.FirstDirty {
			d.CleanBytes += s.Size
			continue
		}
		if d.DirtyBytes == 0 && p.MaxCompactionLag > 0 && s.MaxTimestamp >= 0 && nowMs-s.MaxTimestamp > p.MaxCompactionLag.Milliseconds() {
			d.Overdue = true
		}
		d.DirtyBytes += s.Size
	}
	d.FirstDirty = min(d.FirstDirty, d.FirstUncleanable)
	if n := countBelow(segs, logStart, d.FirstDirty); n > 1 {
		d.Mergeable = n - len(groupSegments(segs, logStart, d.FirstDirty, p.SegmentBytes))
	}
	return d
}

// countBelow is how many segments hold offsets in [logStart, end).
func countBelow(segs []partlog.SegmentInfo, logStart, end int64) int {
	n := 0
	for _, s := range segs {
		if s.BaseOffset >= end {
			break
		}
		if s.NextOffset > logStart {
			n++
		}
	}
	return n
}

// ShouldRoll reports whether the active segment (the last of segs) should
// be rolled so that it can be cleaned: it holds records, all of them
// replicated (below upper) and older than max.compaction.lag.ms. Kafka
// rolls by that lag only when a record is appended; a topic that is no
// longer written to would keep its last segment uncompacted for ever.
func ShouldRoll(segs []partlog.SegmentInfo, upper int64, p Policy, now time.Time) bool {
	if len(segs) == 0 || p.MaxCompactionLag <= 0 || p.MaxCompactionLag == math.MaxInt64 {
		return false
	}
	a := segs[len(segs)-1]
	return a.Size > 0 && a.NextOffset <= upper && a.MaxTimestamp >= 0 &&
		now.UnixMilli()-a.MaxTimestamp > p.MaxCompactionLag.Milliseconds()
}

// Cleaner runs compaction passes. It is not safe for concurrent use: its
// offset map is reused from pass to pass.
type Cleaner struct {
	Map *OffsetMap
	// Limiter bounds the bytes read and written per second
	// (log.cleaner.io.max.bytes.per.second); nil is unlimited.
	Limiter *rate.Limiter
	Now     func() time.Time

	// scratch holds the buffers records are decompressed and re-encoded
	// in, reused from batch to batch.
	scratch record.Scratch
}

// Stats describe one pass.
type Stats struct {
	FirstDirty, CleanedTo int64 // the dirty section deduplicated: [FirstDirty, CleanedTo)
	Segments              int   // segments replaced
	BytesRead             int64 // bytes of the replaced segments
	BytesWritten          int64 // bytes of their replacements
	RecordsRead           int64
	RecordsKept           int64
	TombstonesDropped     int64
	AbortedDropped        int64 // records of aborted transactions
	MarkersDropped        int64 // commit and abort markers
}

// ErrMapTooSmall means the offset map cannot hold a single key.
var ErrMapTooSmall = errors.New("compaction: the dedupe buffer holds no key")

// readChunk is how much one read of the log asks for.
const readChunk = 1 << 20

// Clean runs one pass over l up to d.FirstUncleanable (from Inspect): it
// records the latest offset of every key of the dirty section in the
// offset map, then rewrites every cleanable segment from the log start
// keeping, for each key, only its latest record, and tombstones until
// delete.retention.ms after their segment's newest record. Aborted
// transactions' records go, and markers as txn.go says.
func (c *Cleaner) Clean(ctx context.Context, l Log, d Dirt, p Policy) (Stats, error) {
	st := Stats{FirstDirty: d.FirstDirty}
	dirty := d.DirtyBytes > 0 && d.FirstDirty < d.FirstUncleanable
	if !dirty && d.Mergeable < mergeWorthIt {
		return st, nil
	}
	// Without dirty bytes the pass only merges the clean section (and
	// drops tombstones past delete.retention.ms there): an empty map
	// keeps every other record.
	mapEnd := d.FirstDirty
	if dirty {
		var err error
		if mapEnd, err = c.buildMap(ctx, l, d); err != nil {
			return st, err
		}
	} else {
		c.Map.Reset()
	}
	st.CleanedTo = mapEnd
	groups := groupSegments(l.Segments(), l.LogStartOffset(), mapEnd, p.SegmentBytes)
	horizon := c.Now().Add(-p.DeleteRetention).UnixMilli()
	for i, g := range groups {
		if !dirty && len(g.segs) == 1 {
			continue // nothing to merge it with
		}
		cleanerOffset := int64(0)
		if dirty && i == len(groups)-1 {
			cleanerOffset = mapEnd // only once every segment below it is clean
		}
		if err := c.cleanGroup(ctx, l, g, mapEnd, horizon, cleanerOffset, &st); err != nil {
			return st, err
		}
	}
	return st, nil
}

// buildMap loads the dirty section's keys into the map and returns where it
// stopped: d.FirstUncleanable, or the first record that did not fit.
func (c *Cleaner) buildMap(ctx context.Context, l Log, d Dirt) (int64, error) {
	c.Map.Reset()
	offset := d.FirstDirty
	txns, err := newTxnFilter(l, d.FirstDirty, d.FirstUncleanable) // for its aborted transactions only
	if err != nil {
		return 0, err
	}
	for offset < d.FirstUncleanable {
		res, err := l.Read(offset, readChunk, d.FirstUncleanable)
		if err != nil {
			return 0, fmt.Errorf("compaction: read at %d: %w", offset, err)
		}
		if len(res.Data) == 0 {
			break // the dirty section ended early (a gap at a segment end)
		}
		if err := c.wait(ctx, len(res.Data)); err != nil {
			return 0, err
		}
		full := int64(-1)
		it := record.NewBatches(res.Data)
		for full < 0 && it.Next() {
			if h := it.Header(); h.Control() || txns.aborted(&h) {
				continue
			}
			err := c.scratch.ForEach(it.Bytes(), func(r *record.Record) error {
				if r.Offset < d.FirstDirty || r.Key == nil {
					return nil
				}
				if !c.Map.Put(r.Key, r.Offset) {
					full = r.Offset
					return errMapFull
				}
				return nil
			})
			if err != nil && !errors.Is(err, errMapFull) {
				return 0, fmt.Errorf("compaction: batch at %d: %w", it.Header().BaseOffset, err)
			}
		}
		if full >= 0 {
			if full <= d.FirstDirty {
				return 0, ErrMapTooSmall
			}
			return full, nil
		}
		offset = res.NextOffset
	}
	return min(offset, d.FirstUncleanable), nil
}

var errMapFull = errors.New("offset map full")

func (c *Cleaner) wait(ctx context.Context, n int) error {
	if c.Limiter == nil {
		return nil
	}
	for n > 0 {
		step := min(n, c.Limiter.Burst())
		if err := c.Limiter.WaitN(ctx, step); err != nil {
			return fmt.Errorf("compaction: %w", err)
		}
		n -= step
	}
	return nil
}

// group is a run of segments cleaned into one.
type group struct {
	base, end int64
	segs      []partlog.SegmentInfo
}

// groupSegments splits the segments holding offsets below mapEnd (from the
// one holding the log start) into runs whose total size fits one segment.
func groupSegments(segs []partlog.SegmentInfo, logStart, mapEnd, segmentBytes int64) []group {
	var out []group
	var cur *group
	var size int64
	for _, s := range segs {
		if s.BaseOffset >= mapEnd {
			break
		}
		if s.NextOffset <= logStart {
			continue
		}
		if cur == nil || size+s.Size > segmentBytes || s.NextOffset-cur.base > math.MaxInt32 {
			out = append(out, group{base: s.BaseOffset})
			cur, size = &out[len(out)-1], 0
		}
		cur.segs = append(cur.segs, s)
		cur.end = s.NextOffset
		size += s.Size
	}
	return out
}

// cleanGroup writes the kept records of g's segments into one cleaned
// segment and swaps it in.
func (c *Cleaner) cleanGroup(ctx context.Context, l Log, g group, mapEnd, horizon, cleanerOffset int64, st *Stats) error {
	cl, err := l.BeginClean(g.base, g.end)
	if err != nil {
		return fmt.Errorf("compaction: %w", err)
	}
	defer cl.Abort() // a no-op once committed
	t := tiler{cl: cl, cursor: g.base, rs: &c.scratch}
	offset := max(g.base, l.LogStartOffset())
	txns, err := newTxnFilter(l, g.base, g.end)
	if err != nil {
		return err
	}
	dropAll := func(count *int64) func(*record.Record) bool {
		return func(*record.Record) bool {
			st.RecordsRead++
			*count++
			return false
		}
	}
	keepAll := func(*record.Record) bool {
		st.RecordsRead++
		return true
	}
	for _, s := range g.segs {
		tombstoneExpired := s.MaxTimestamp >= 0 && s.MaxTimestamp < horizon
		keep := func(r *record.Record) bool {
			st.RecordsRead++
			if r.Offset >= mapEnd {
				return true // beyond what the map knows
			}
			if r.Key == nil {
				return false // Kafka's cleaner drops keyless records too
			}
			if latest, ok := c.Map.Get(r.Key); ok && latest > r.Offset {
				return false
			}
			if r.Value == nil && tombstoneExpired {
				st.TombstonesDropped++
				return false
			}
			return true
		}
		for offset < s.NextOffset {
			res, err := l.Read(offset, readChunk, s.NextOffset)
			if err != nil {
				return fmt.Errorf("compaction: read at %d: %w", offset, err)
			}
			if len(res.Data) == 0 {
				break
			}
			if err := c.wait(ctx, len(res.Data)); err != nil {
				return err
			}
			it := record.NewBatches(res.Data)
			for it.Next() {
				h := it.Header()
				k := keep
				switch {
				case h.Control():
					k = keepAll
					if txns.markerDone(&h, it.Bytes()) && tombstoneExpired {
						k = dropAll(&st.MarkersDropped)
					}
				case txns.aborted(&h):
					k = dropAll(&st.AbortedDropped)
				}
				if err := t.add(it.Bytes(), k); err != nil {
					return err
				}
			}
			if err := it.Err(); err != nil {
				return fmt.Errorf("compaction: batches at %d: %w", offset, err)
			}
			if err := t.flush(false); err != nil {
				return err
			}
			offset = res.NextOffset
		}
		offset = max(offset, s.NextOffset)
		st.BytesRead += s.Size
	}
	if err := t.finish(g.end); err != nil {
		return err
	}
	if err := c.wait(ctx, int(cl.Size())); err != nil {
		return err
	}
	if err := l.CommitClean(cl, cleanerOffset); err != nil {
		return fmt.Errorf("compaction: %w", err)
	}
	st.Segments += len(g.segs)
	st.BytesWritten += cl.Size()
	st.RecordsKept += t.kept
	return nil
}

// tiler writes the kept records of a run of batches so that the output
// still covers every offset: a kept batch absorbs the offsets of dropped
// batches before it (the last kept one also those after it), as long as
// they were written in the same leader epoch, so that the leader epoch of
// every offset stays what it was; offsets no kept batch can absorb get an
// empty batch.
//
// out and pending cover the offsets from the group's base up to the start
// of gaps, and gaps up to cursor.
type tiler struct {
	cl      Output
	cursor  int64 // the offset the next batch starts at
	gaps    []gap // dropped runs, by leader epoch
	out     []byte
	pending []byte // the last kept batch: it may still absorb a gap after it
	scratch []byte
	rs      *record.Scratch
	kept    int64
}

type gap struct {
	start, end    int64 // offsets [start, end)
	epoch         int32
	baseTS, maxTS int64
}

func (t *tiler) addGap(g gap) {
	if n := len(t.gaps); n > 0 && t.gaps[n-1].epoch == g.epoch && t.gaps[n-1].end == g.start {
		t.gaps[n-1].end = g.end
		t.gaps[n-1].maxTS = max(t.gaps[n-1].maxTS, g.maxTS)
		return
	}
	t.gaps = append(t.gaps, g)
}

func (t *tiler) add(batch []byte, keep func(*record.Record) bool) error {
	h, err := record.ParseHeader(batch)
	if err != nil {
		return fmt.Errorf("compaction: %w", err)
	}
	if h.NextOffset() <= t.cursor {
		return nil
	}
	if h.BaseOffset > t.cursor {
		// Below the log start: offsets the log no longer serves.
		t.addGap(gap{start: t.cursor, end: h.BaseOffset, epoch: h.PartitionLeaderEpoch, baseTS: h.BaseTimestamp, maxTS: h.BaseTimestamp})
	}
	// A batch can start below the cursor where remote segments overlap (a
	// new leader's segment boundaries need not match its predecessor's):
	// its records below the cursor were taken from the segment before.
	from := max(h.BaseOffset, t.cursor)
	if from > h.BaseOffset {
		inner := keep
		keep = func(r *record.Record) bool { return r.Offset >= from && inner(r) }
	}
	base := from
	absorb := false
	// A control batch keeps its offsets: re-spanned, it would lose the
	// producer id that makes it its producer's marker.
	if n := len(t.gaps); n > 0 && t.gaps[n-1].epoch == h.PartitionLeaderEpoch && !h.Control() {
		base, absorb = t.gaps[n-1].start, true
	}
	var n int
	t.scratch, n, err = t.rs.Retain(t.scratch[:0], batch, base, h.LastOffset(), keep)
	if err != nil {
		return fmt.Errorf("compaction: batch at %d: %w", h.BaseOffset, err)
	}
	t.cursor = h.NextOffset()
	if n == 0 {
		t.addGap(gap{start: from, end: h.NextOffset(), epoch: h.PartitionLeaderEpoch, baseTS: h.BaseTimestamp, maxTS: h.MaxTimestamp})
		return nil
	}
	if absorb {
		t.gaps = t.gaps[:len(t.gaps)-1]
	}
	if err := t.emit(); err != nil {
		return err
	}
	t.pending = append(t.pending[:0], t.scratch...)
	t.kept += int64(n)
	return nil
}

// emit moves the pending batch (stretched over the first gap if it can
// absorb it) and empty batches for the gaps to out.
func (t *tiler) emit() error {
	if len(t.pending) > 0 {
		if len(t.gaps) > 0 {
			if h, _ := record.ParseHeader(t.pending); h.PartitionLeaderEpoch == t.gaps[0].epoch && !h.Control() {
				record.Respan(t.pending, t.gaps[0].end-1)
				t.gaps = t.gaps[1:]
			}
		}
		t.out = append(t.out, t.pending...)
		t.pending = t.pending[:0]
	}
	for _, g := range t.gaps {
		var err error
		if t.out, err = record.EmptyBatch(t.out, g.start, g.end-1, g.epoch, g.baseTS, g.maxTS); err != nil {
			return fmt.Errorf("compaction: %w", err)
		}
	}
	t.gaps = t.gaps[:0]
	return nil
}

// flush writes out to the cleaned segment once it is large (or always).
func (t *tiler) flush(always bool) error {
	if len(t.out) == 0 || (!always && len(t.out) < readChunk) {
		return nil
	}
	if err := t.cl.Append(t.out); err != nil {
		return fmt.Errorf("compaction: %w", err)
	}
	t.out = t.out[:0]
	return nil
}

// finish covers the offsets up to end and writes everything out.
func (t *tiler) finish(end int64) error {
	if t.cursor < end {
		// The segment's last batches are gone (below the log start).
		epoch := int32(-1)
		if n := len(t.gaps); n > 0 {
			epoch = t.gaps[n-1].epoch
		} else if h, err := record.ParseHeader(t.pending); err == nil {
			epoch = h.PartitionLeaderEpoch
		}
		t.addGap(gap{start: t.cursor, end: end, epoch: epoch, baseTS: -1, maxTS: -1})
		t.cursor = end
	}
	if err := t.emit(); err != nil {
		return err
	}
	return t.flush(true)
}
