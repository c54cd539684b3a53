package compaction

import (
	"time"

	"github.com/strata-broker/strata/topicconfig"
)

// This file is the retention policy: which of a partition's oldest segments
// time and size retention delete. It only decides: the broker applies the
// decision (RetentionWorker, broker/tiering.go) and `strata retention
// preview` shows it without applying it, so the two always agree.
//
// The rules are Kafka's (UnifiedLog.deleteOldSegments):
//   - size first: while the log is larger than retention.bytes, the oldest
//     segment goes if the log is still at least retention.bytes without it,
//     so a log never shrinks below retention.bytes;
//   - then time: the oldest segment goes if now minus its largest record
//     timestamp exceeds retention.ms; a segment without timestamps is never
//     deleted by time;
//   - each stops at the first segment it does not delete, and -1 means
//     unlimited;
//   - nothing at or above the high watermark is deleted, and neither is an
//     empty last segment (the active one, with nothing to reclaim);
//   - only when cleanup.policy includes delete.
//
// The active segment is a candidate like the others, as in Kafka (which
// rolls first): it is deleted when it lies wholly below the high watermark
// and the rules take it.

// Segment describes one segment of a partition's log, on local disk or in
// the object store: what the policy needs of partlog.SegmentInfo or
// tiering.SegmentMeta.
type Segment struct {
	BaseOffset   int64
	NextOffset   int64 // the offset after its last record
	Size         int64 // bytes of its .log file
	MaxTimestamp int64 // its largest record timestamp, ms since the epoch; -1 when it has none
}

// Limits is one decision's input besides the segments.
type Limits struct {
	// Ms and Bytes are the time and size limits (retention.ms and
	// retention.bytes, or their local.* counterparts); -1 is unlimited.
	Ms, Bytes int64
	// UpTo bounds what may go: only segments ending at or below it
	// (NextOffset <= UpTo). The high watermark, and for the local tier of a
	// tiered topic the end of what the object store holds too.
	UpTo int64
	// OtherBytes is counted against Bytes besides the segments': for the
	// remote tier, the local segments not uploaded yet, since
	// retention.bytes bounds the whole log.
	OtherBytes int64
}

// Deletion is what retention deletes from the start of a tier: its oldest
// Segments segments, Bytes in all, after which the tier starts at
// StartOffset.
type Deletion struct {
	Segments int
	Bytes    int64
	// StartOffset is the NextOffset of the last segment deleted; -1 when
	// nothing is.
	StartOffset int64
	// BySize and ByTime split Segments by the limit that took them.
	BySize, ByTime int
}

// None reports whether nothing is deleted.
func (d Deletion) None() bool { return d.Segments == 0 }

// NewStart is where a tier that starts at start starts after d.
func (d Deletion) NewStart(start int64) int64 { return max(start, d.StartOffset) }

// Deletable applies the rules to segs, oldest first, at now.
func Deletable(segs []Segment, lim Limits, now time.Time) Deletion {
	d := Deletion{StartOffset: -1}
	eligible := func(i int) bool {
		s := segs[i]
		if s.NextOffset > lim.UpTo {
			return false
		}
		// Kafka keeps an empty last segment: deleting it reclaims
		// nothing, and a log always has a segment to append to.
		return i < len(segs)-1 || s.Size > 0 || s.NextOffset > s.BaseOffset
	}
	take := func(i int) {
		d.Segments++
		d.Bytes += segs[i].Size
		d.StartOffset = segs[i].NextOffset
	}
	i := 0
	if lim.Bytes >= 0 {
		excess := lim.OtherBytes - lim.Bytes
		for _, s := range segs {
			excess += s.Size
		}
		for i < len(segs) && eligible(i) && excess-segs[i].Size >= 0 {
			excess -= segs[i].Size
			take(i)
			d.BySize++
			i++
		}
	}
	if lim.Ms >= 0 {
		nowMs := now.UnixMilli()
		for i < len(segs) && eligible(i) && segs[i].MaxTimestamp >= 0 && nowMs-segs[i].MaxTimestamp > lim.Ms {
			take(i)
			d.ByTime++
			i++
		}
	}
	return d
}

// LocalRetention decides for a topic whose log is on local disk only
// (remote.storage.enable=false): retention.ms and retention.bytes, below
// upTo, when cleanup.policy includes delete. The workers pass the last
// stable offset: Kafka's bound is the high watermark, which lets retention
// delete the first records of a transaction still open.
func LocalRetention(cfg topicconfig.Topic, segs []Segment, upTo int64, now time.Time) Deletion {
	if !cfg.DeleteEnabled() {
		return Deletion{StartOffset: -1}
	}
	return Deletable(segs, Limits{Ms: cfg.RetentionMs, Bytes: cfg.RetentionBytes, UpTo: upTo}, now)
}

// RemoteRetention decides which remote segments of a tiered topic go:
// retention.ms and retention.bytes bound the whole log, so the local
// segments the bucket does not hold yet (localOnlyBytes) count against
// retention.bytes too. Only when cleanup.policy includes delete.
func RemoteRetention(cfg topicconfig.Topic, remote []Segment, localOnlyBytes, hw int64, now time.Time) Deletion {
	if !cfg.DeleteEnabled() {
		return Deletion{StartOffset: -1}
	}
	return Deletable(remote, Limits{Ms: cfg.RetentionMs, Bytes: cfg.RetentionBytes, UpTo: hw, OtherBytes: localOnlyBytes}, now)
}

// TieredLocalRetention decides which local segments of a tiered topic go by
// local.retention.ms and local.retention.bytes (retention.* where they are
// -2): only segments the object store already holds, those ending at or
// below remoteEnd (the end of the latest manifest). It does not depend on
// cleanup.policy: a local copy of an uploaded segment is a cache, and
// dropping it loses nothing.
func TieredLocalRetention(cfg topicconfig.Topic, segs []Segment, hw, remoteEnd int64, now time.Time) Deletion {
	return Deletable(segs, Limits{
		Ms: cfg.EffectiveLocalRetentionMs(), Bytes: cfg.EffectiveLocalRetentionBytes(), UpTo: min(hw, remoteEnd),
	}, now)
}

// TieredLog is a tiered partition as its leader sees it.
type TieredLog struct {
	Local         []Segment // every local segment, oldest first; the last is the active one
	LocalStart    int64     // the local log start offset
	Remote        []Segment // the latest manifest's segments, oldest first
	RemoteEnd     int64     // the manifest's end offset
	HighWatermark int64
}

// Tiered decides both tiers of a tiered partition, as one round of the
// broker's tiering task applies them: remote segments first (the whole
// log's start moves, and the local segments wholly below it go too), then
// local retention on what is left locally. The local Deletion counts the
// segments of both steps; its StartOffset is where the local log starts
// afterwards, -1 when it does not move.
func Tiered(cfg topicconfig.Topic, l TieredLog, now time.Time) (local, remote Deletion) {
	remote = Deletion{StartOffset: -1}
	if len(l.Remote) > 0 {
		remote = RemoteRetention(cfg, l.Remote, LocalOnlyBytes(l.Local, l.RemoteEnd), l.HighWatermark, now)
	}
	local = Deletion{StartOffset: -1}
	rest := l.Local
	if !remote.None() && l.LocalStart < remote.StartOffset {
		// An empty active segment stays, as the log keeps it.
		for len(rest) > 0 && rest[0].NextOffset <= remote.StartOffset && (len(rest) > 1 || rest[0].Size > 0) {
			local.Segments++
			local.Bytes += rest[0].Size
			rest = rest[1:]
		}
		local.StartOffset = remote.StartOffset
	}
	more := TieredLocalRetention(cfg, rest, l.HighWatermark, l.RemoteEnd, now)
	local.Segments += more.Segments
	local.Bytes += more.Bytes
	local.BySize, local.ByTime = more.BySize, more.ByTime
	local.StartOffset = max(local.StartOffset, more.StartOffset)
	return local, remote
}

// LocalOnlyBytes is the size of the local segments the object store does
// not hold: those starting at or after remoteEnd, the end of the latest
// manifest.
func LocalOnlyBytes(local []Segment, remoteEnd int64) int64 {
	var n int64
	for _, s := range local {
		if s.BaseOffset >= remoteEnd {
			n += s.Size
		}
	}
	return n
}
