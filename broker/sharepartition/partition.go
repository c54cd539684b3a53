// Package sharepartition keeps share groups' partitions on the partition
// leaders (KIP-932): which records of a partition each share group has
// handed out, to which member, until when, how often, and which are done.
//
// A share partition covers the records from its start offset (SPSO) to its
// end offset (SPEO, the next record never fetched for the group). Records
// in between are available, acquired by a member until their acquisition
// lock expires, acknowledged, or archived (rejected, or delivered
// share.delivery.count.limit times). The start offset moves over
// acknowledged and archived records; the window between the two offsets is
// bounded by group.share.partition.max.record.locks.
//
// Partition is the state machine alone: no I/O, time passed in. Manager
// (manager.go) drives it from ShareFetch and ShareAcknowledge, reads the
// log through the broker core and persists the state in the metastore.
package sharepartition

import (
	"errors"
	"fmt"
	"time"

	"github.com/strata-broker/strata/metastore"
)

// RecordState is a record's state in a share partition, with Kafka's ids
// (they are what the persisted state holds).
type RecordState int8

const (
	Available    RecordState = 0
	Acquired     RecordState = 1
	Acknowledged RecordState = 2
	Archived     RecordState = 4
)

// Acknowledgement types of ShareFetch and ShareAcknowledge. Gap (0) is
// what a client sends for offsets it was given without a record (a
// transaction marker, a record removed by compaction).
const (
	AckGap     int8 = 0
	AckAccept  int8 = 1
	AckRelease int8 = 2
	AckReject  int8 = 3
	AckRenew   int8 = 4
)

var (
	// ErrInvalidRecordState: an acknowledgement of a record that is not
	// acquired by the member (Kafka's INVALID_RECORD_STATE).
	ErrInvalidRecordState = errors.New("invalid record state")
	// ErrInvalidAcknowledgement: an acknowledgement batch that is
	// malformed (Kafka's INVALID_REQUEST).
	ErrInvalidAcknowledgement = errors.New("invalid acknowledgement")
)

// Config is a share partition's group settings.
type Config struct {
	// LockDuration is share.record.lock.duration.ms.
	LockDuration time.Duration
	// DeliveryLimit is share.delivery.count.limit: a record delivered this
	// many times is archived instead of made available again.
	DeliveryLimit int16
	// MaxRecordLocks is group.share.partition.max.record.locks: the most
	// records between the start and end offsets.
	MaxRecordLocks int
}

type entry struct {
	state    RecordState
	count    int16 // deliveries
	member   string
	deadline time.Time // of the acquisition lock, when acquired
}

// Partition is one share group's state of one partition. It is not safe
// for concurrent use: Manager locks it.
type Partition struct {
	cfg   Config
	start int64   // SPSO
	recs  []entry // from start to the end offset (SPEO)
	// dirty is set by every change that is to be persisted (all but
	// acquisitions and renewals); version counts those changes, so that
	// a writer knows whether a write covered its own.
	dirty   bool
	version uint64
}

// NewPartition returns a share partition starting at start with nothing
// fetched yet.
func NewPartition(cfg Config, start int64) *Partition {
	return &Partition{cfg: cfg, start: start}
}

// Restore returns the share partition of a persisted state: its records
// are available or done, with their delivery counts, none acquired.
func Restore(cfg Config, st metastore.ShareState) *Partition {
	p := &Partition{cfg: cfg, start: st.StartOffset}
	for _, b := range st.Batches {
		for off := p.end(); off < b.FirstOffset; off++ {
			p.recs = append(p.recs, entry{state: Available})
		}
		for off := b.FirstOffset; off <= b.LastOffset; off++ {
			p.recs = append(p.recs, entry{state: RecordState(b.State), count: b.DeliveryCount})
		}
	}
	p.advance()
	return p
}

// StartOffset is the SPSO.
func (p *Partition) StartOffset() int64 { return p.start }

// EndOffset is the SPEO: the next offset never fetched for the group.
func (p *Partition) EndOffset() int64 { return p.end() }

func (p *Partition) end() int64 { return p.start + int64(len(p.recs)) }

// SetConfig changes the group settings; held locks keep their deadlines.
func (p *Partition) SetConfig(cfg Config) { p.cfg = cfg }

// Dirty reports whether the state changed since the last MarkClean.
func (p *Partition) Dirty() bool { return p.dirty }

// MarkClean records that the state as it is has been persisted.
func (p *Partition) MarkClean() { p.dirty = false }

// Version counts the changes to be persisted: a write of a snapshot taken
// at version v persists every change up to v.
func (p *Partition) Version() uint64 { return p.version }

// changed records a change to be persisted.
func (p *Partition) changed() {
	p.dirty = true
	p.version++
}

// Expire makes the records whose acquisition lock ended by now available
// again, or archives them once delivered DeliveryLimit times. It returns
// the earliest lock deadline still ahead (zero if none).
func (p *Partition) Expire(now time.Time) time.Time {
	var next time.Time
	for i := range p.recs {
		r := &p.recs[i]
		if r.state != Acquired {
			continue
		}
		if !now.Before(r.deadline) {
			p.releaseRecord(r)
			continue
		}
		if next.IsZero() || r.deadline.Before(next) {
			next = r.deadline
		}
	}
	p.advance()
	return next
}

// releaseRecord makes an acquired record available again, or archives it
// when it has been delivered DeliveryLimit times.
func (p *Partition) releaseRecord(r *entry) {
	r.state, r.member, r.deadline = Available, "", time.Time{}
	if r.count >= p.cfg.DeliveryLimit {
		r.state = Archived
	}
	p.changed()
}

// NextFetchOffset is where a read for the group starts: the first
// available record, or the end offset if there is room for more records
// (ok false: nothing to acquire until records are acknowledged or
// released). Call Expire first.
func (p *Partition) NextFetchOffset() (offset int64, ok bool) {
	for i := range p.recs {
		if p.recs[i].state == Available {
			return p.start + int64(i), true
		}
	}
	return p.end(), len(p.recs) < p.cfg.MaxRecordLocks
}

// Batch is what Acquire needs to know of a record batch read from the log.
type Batch struct {
	BaseOffset, LastOffset int64
	// Control batches (transaction markers) are never handed out: their
	// offsets are archived as they are passed.
	Control bool
}

// AcquiredRange is a run of records acquired together with one delivery
// count (ShareFetch's AcquiredRecords).
type AcquiredRange struct {
	FirstOffset, LastOffset int64
	DeliveryCount           int16
}

// Acquire hands member the available records of batches, which are read
// from the log in order (offsets missing between them are records that no
// longer exist and are archived), up to maxRecords of them and as long as
// the window has room. Their locks end at now+LockDuration.
func (p *Partition) Acquire(member string, batches []Batch, maxRecords int, now time.Time) []AcquiredRange {
	var out []AcquiredRange
	n := 0
	deadline := now.Add(p.cfg.LockDuration)
	take := func(off int64, r *entry) {
		r.state, r.member, r.deadline = Acquired, member, deadline
		r.count++
		n++
		if k := len(out) - 1; k >= 0 && out[k].LastOffset == off-1 && out[k].DeliveryCount == r.count {
			out[k].LastOffset = off
			return
		}
		out = append(out, AcquiredRange{FirstOffset: off, LastOffset: off, DeliveryCount: r.count})
	}
	for _, b := range batches {
		if b.LastOffset < p.start {
			continue
		}
		if b.BaseOffset > p.end() {
			// Records missing before the batch are archived as passed.
			// With nothing unfinished before them they would be passed
			// at once, so the start jumps over them: a gap wider than the
			// window must not stop the group.
			p.advance()
			if len(p.recs) == 0 {
				p.start = b.BaseOffset
				p.changed()
			} else if !p.grow(b.BaseOffset, Archived) {
				return out
			}
		}
		for off := max(b.BaseOffset, p.start); off <= b.LastOffset; off++ {
			if n >= maxRecords {
				return out
			}
			if off == p.end() {
				state := Available
				if b.Control {
					state = Archived
				}
				if !p.grow(off+1, state) {
					return out
				}
			}
			r := &p.recs[off-p.start]
			if r.state == Available && !b.Control {
				take(off, r)
			} else if r.state == Available && b.Control {
				r.state = Archived
				p.changed()
			}
		}
	}
	p.advance()
	return out
}

// grow extends the window up to (not including) end with records in
// state, if the window has room for them.
func (p *Partition) grow(end int64, state RecordState) bool {
	if int(end-p.start) > p.cfg.MaxRecordLocks {
		return false
	}
	for p.end() < end {
		p.recs = append(p.recs, entry{state: state})
	}
	if state != Available {
		p.changed()
	}
	return true
}

// AckBatch is one acknowledgement batch: Types holds one type for the whole
// range or one per offset.
type AckBatch struct {
	FirstOffset, LastOffset int64
	Types                   []int8
}

// Acknowledge applies member's acknowledgements. Every record must be
// acquired by member; a batch that does not hold is refused whole and
// the others are applied. It returns the first refusal.
func (p *Partition) Acknowledge(member string, batches []AckBatch, now time.Time) error {
	var first error
	prevLast := int64(-1)
	for _, b := range batches {
		if err := p.ackBatch(member, b, prevLast, now); err != nil && first == nil {
			first = err
		}
		prevLast = max(prevLast, b.LastOffset)
	}
	p.advance()
	return first
}

func (p *Partition) ackBatch(member string, b AckBatch, prevLast int64, now time.Time) error {
	span := b.LastOffset - b.FirstOffset + 1
	switch {
	case b.FirstOffset < 0 || span <= 0 || b.FirstOffset <= prevLast:
		return fmt.Errorf("%w: batch %d-%d is empty or not after the one before", ErrInvalidAcknowledgement, b.FirstOffset, b.LastOffset)
	case len(b.Types) != 1 && int64(len(b.Types)) != span:
		return fmt.Errorf("%w: batch %d-%d has %d types", ErrInvalidAcknowledgement, b.FirstOffset, b.LastOffset, len(b.Types))
	}
	for _, t := range b.Types {
		if t < AckGap || t > AckRenew {
			return fmt.Errorf("%w: acknowledge type %d", ErrInvalidAcknowledgement, t)
		}
	}
	if b.FirstOffset < p.start || b.LastOffset >= p.end() {
		return fmt.Errorf("%w: %d-%d is outside %d-%d", ErrInvalidRecordState, b.FirstOffset, b.LastOffset, p.start, p.end()-1)
	}
	for off := b.FirstOffset; off <= b.LastOffset; off++ {
		r := &p.recs[off-p.start]
		if r.state != Acquired || r.member != member {
			return fmt.Errorf("%w: offset %d is not acquired by the member", ErrInvalidRecordState, off)
		}
	}
	for off := b.FirstOffset; off <= b.LastOffset; off++ {
		t := b.Types[0]
		if len(b.Types) > 1 {
			t = b.Types[off-b.FirstOffset]
		}
		r := &p.recs[off-p.start]
		switch t {
		case AckGap, AckAccept:
			*r = entry{state: Acknowledged, count: r.count}
			p.changed()
		case AckReject:
			*r = entry{state: Archived, count: r.count}
			p.changed()
		case AckRelease:
			p.releaseRecord(r)
		case AckRenew:
			r.deadline = now.Add(p.cfg.LockDuration)
		}
	}
	return nil
}

// ReleaseMember makes every record member holds available again (its
// share session ended or it left the group); it reports whether any was.
func (p *Partition) ReleaseMember(member string) bool {
	released := false
	for i := range p.recs {
		if r := &p.recs[i]; r.state == Acquired && r.member == member {
			p.releaseRecord(r)
			released = true
		}
	}
	p.advance()
	return released
}

// MoveStart moves the start offset forward to offset, dropping the state
// of the records before it (the log start moved past them). Held records
// below it are lost to their members, as the records are.
func (p *Partition) MoveStart(offset int64) {
	if offset <= p.start {
		return
	}
	if offset >= p.end() {
		p.recs = p.recs[:0]
	} else {
		p.recs = append(p.recs[:0], p.recs[offset-p.start:]...)
	}
	p.start = offset
	p.changed()
}

// advance moves the start offset over acknowledged and archived records.
func (p *Partition) advance() {
	i := 0
	for i < len(p.recs) && (p.recs[i].state == Acknowledged || p.recs[i].state == Archived) {
		i++
	}
	if i == 0 {
		return
	}
	p.recs = append(p.recs[:0], p.recs[i:]...)
	p.start += int64(i)
	p.changed()
}

// Snapshot is the state to persist: acquired records as available with
// their delivery counts, trailing never-delivered available records left
// out (the end offset is not persisted: they are read again).
func (p *Partition) Snapshot() (start int64, batches []metastore.ShareStateBatch) {
	last := len(p.recs) - 1
	for last >= 0 && p.recs[last].state == Available && p.recs[last].count == 0 {
		last--
	}
	for i := 0; i <= last; i++ {
		r := p.recs[i]
		state := r.state
		if state == Acquired {
			state = Available
		}
		off := p.start + int64(i)
		if k := len(batches) - 1; k >= 0 && batches[k].LastOffset == off-1 &&
			batches[k].State == int8(state) && batches[k].DeliveryCount == r.count {
			batches[k].LastOffset = off
			continue
		}
		batches = append(batches, metastore.ShareStateBatch{FirstOffset: off, LastOffset: off, State: int8(state), DeliveryCount: r.count})
	}
	return p.start, batches
}

// Held reports whether any record is acquired.
func (p *Partition) Held() bool {
	for i := range p.recs {
		if p.recs[i].state == Acquired {
			return true
		}
	}
	return false
}

// Counts returns how many records are in each state, for describing.
func (p *Partition) Counts() map[RecordState]int {
	c := map[RecordState]int{}
	for _, r := range p.recs {
		c[r.state]++
	}
	return c
}
