package compaction

import (
	"testing"
	"time"

	"github.com/strata-broker/strata/topicconfig"
)

// now is the fixed clock of these tests.
var now = time.UnixMilli(1_750_000_000_000)

// topicConfig resolves overrides over the built-in defaults.
func topicConfig(t *testing.T, overrides map[string]string) topicconfig.Topic {
	t.Helper()
	cfg, _, err := topicconfig.Resolve(overrides, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// segs builds consecutive segments of 10 offsets from offset 0, with the
// given sizes and largest timestamps.
func segs(sizes []int64, maxTS []int64) []Segment {
	out := make([]Segment, len(sizes))
	for i := range sizes {
		out[i] = Segment{BaseOffset: int64(i) * 10, NextOffset: int64(i+1) * 10, Size: sizes[i], MaxTimestamp: maxTS[i]}
	}
	return out
}

// ago is a timestamp d before now.
func ago(d time.Duration) int64 { return now.Add(-d).UnixMilli() }

func checkDeletion(t *testing.T, got Deletion, segments int, bytes, start int64) {
	t.Helper()
	if got.Segments != segments || got.Bytes != bytes || got.StartOffset != start {
		t.Fatalf("deleted %d segments, %d bytes, start %d (%+v); want %d, %d, %d", got.Segments, got.Bytes, got.StartOffset, got, segments, bytes, start)
	}
}

func TestTimeRetention(t *testing.T) {
	const hour = time.Hour
	log := segs([]int64{100, 100, 100, 100}, []int64{ago(3 * hour), ago(2 * hour), ago(hour - time.Millisecond), ago(time.Minute)})
	lim := Limits{Ms: hour.Milliseconds(), Bytes: -1, UpTo: 40}
	d := Deletable(log, lim, now)
	checkDeletion(t, d, 2, 200, 20)
	if d.ByTime != 2 || d.BySize != 0 {
		t.Errorf("by time %d, by size %d", d.ByTime, d.BySize)
	}

	// Exactly retention.ms old is not past it: Kafka deletes when
	// now - largest timestamp > retention.ms.
	log[0].MaxTimestamp = ago(hour)
	checkDeletion(t, Deletable(log, lim, now), 0, 0, -1)

	// A segment without timestamps is never deleted by time, and nothing
	// after it either.
	log[0].MaxTimestamp = -1
	checkDeletion(t, Deletable(log, lim, now), 0, 0, -1)

	// Deletion stops at the first segment that is not expired, even when a
	// later one is (a producer that sent old timestamps).
	log[0].MaxTimestamp, log[1].MaxTimestamp, log[2].MaxTimestamp = ago(2*hour), ago(time.Minute), ago(5*hour)
	checkDeletion(t, Deletable(log, lim, now), 1, 100, 10)

	// -1 is unlimited.
	lim.Ms = -1
	log[1].MaxTimestamp = ago(100 * hour)
	checkDeletion(t, Deletable(log, lim, now), 0, 0, -1)
}

func TestSizeRetentionNeverGoesBelowTheLimit(t *testing.T) {
	ts := []int64{ago(time.Minute), ago(time.Minute), ago(time.Minute), ago(time.Minute)}
	log := segs([]int64{100, 100, 100, 100}, ts)
	for _, tc := range []struct {
		bytes    int64
		segments int
	}{
		{-1, 0},  // unlimited
		{400, 0}, // exactly at the limit
		{350, 0}, // above it, but deleting a segment would go below
		{300, 1}, // to exactly the limit
		{250, 1}, // Kafka stops at 300, above 250: never below the limit
		{100, 3},
		{0, 4}, // everything below the high watermark, the active segment too
	} {
		d := Deletable(log, Limits{Ms: -1, Bytes: tc.bytes, UpTo: 40}, now)
		if d.Segments != tc.segments || d.BySize != tc.segments || d.Bytes != int64(tc.segments)*100 {
			t.Errorf("retention.bytes %d: %+v, want %d segments", tc.bytes, d, tc.segments)
		}
	}
	// Other bytes of the log count too (the remote tier's local-only
	// segments).
	if d := Deletable(log, Limits{Ms: -1, Bytes: 300, UpTo: 40, OtherBytes: 150}, now); d.Segments != 2 {
		t.Errorf("with 150 other bytes: %+v, want 2 segments", d)
	}
}

// Size goes first, then time continues from where size stopped, as in
// Kafka.
func TestSizeThenTime(t *testing.T) {
	log := segs([]int64{100, 100, 100, 100}, []int64{ago(time.Minute), ago(3 * time.Hour), ago(2 * time.Hour), ago(time.Minute)})
	d := Deletable(log, Limits{Ms: time.Hour.Milliseconds(), Bytes: 300, UpTo: 40}, now)
	checkDeletion(t, d, 3, 300, 30)
	if d.BySize != 1 || d.ByTime != 2 {
		t.Errorf("by size %d, by time %d; want 1 and 2", d.BySize, d.ByTime)
	}
}

func TestNothingAtOrAboveTheHighWatermark(t *testing.T) {
	old := ago(48 * time.Hour)
	log := segs([]int64{100, 100, 100}, []int64{old, old, old})
	lim := Limits{Ms: time.Hour.Milliseconds(), Bytes: 0}
	for _, tc := range []struct {
		hw       int64
		segments int
	}{{0, 0}, {9, 0}, {10, 1}, {25, 2}, {30, 3}} {
		lim.UpTo = tc.hw
		if d := Deletable(log, lim, now); d.Segments != tc.segments {
			t.Errorf("high watermark %d: %+v, want %d segments", tc.hw, d, tc.segments)
		}
	}
}

// An expired active segment goes too once it is wholly below the high
// watermark (the log rolls first), but an empty one stays: there is
// nothing to reclaim and the log needs a segment to append to.
func TestActiveSegment(t *testing.T) {
	old := ago(48 * time.Hour)
	log := segs([]int64{100, 100}, []int64{old, old})
	lim := Limits{Ms: time.Hour.Milliseconds(), Bytes: -1, UpTo: 20}
	checkDeletion(t, Deletable(log, lim, now), 2, 200, 20)

	log = append(log, Segment{BaseOffset: 20, NextOffset: 20, Size: 0, MaxTimestamp: -1})
	lim = Limits{Ms: -1, Bytes: 0, UpTo: 20}
	checkDeletion(t, Deletable(log, lim, now), 2, 200, 20)
}

func TestCleanupPolicy(t *testing.T) {
	old := ago(48 * time.Hour)
	log := segs([]int64{100, 100, 100}, []int64{old, old, old})
	for policy, want := range map[string]int{"compact": 0, "delete": 3, "compact,delete": 3} {
		cfg := topicConfig(t, map[string]string{"cleanup.policy": policy, "retention.ms": "3600000", "retention.bytes": "0"})
		if d := LocalRetention(cfg, log, 30, now); d.Segments != want {
			t.Errorf("cleanup.policy=%s: %+v, want %d segments", policy, d, want)
		}
		if d := RemoteRetention(cfg, log, 0, 30, now); d.Segments != want {
			t.Errorf("cleanup.policy=%s, remote: %+v, want %d segments", policy, d, want)
		}
	}
	// The built-in defaults (7 days, unlimited bytes) keep two-day-old
	// segments.
	if d := LocalRetention(topicConfig(t, nil), log, 30, now); !d.None() {
		t.Errorf("defaults: %+v", d)
	}
}

// The local tier of a tiered topic deletes only what the object store
// holds, by local.retention.*, or retention.* where those are -2.
func TestTieredLocalRetention(t *testing.T) {
	old := ago(48 * time.Hour)
	log := segs([]int64{100, 100, 100, 100}, []int64{old, old, old, ago(time.Minute)})
	cfg := topicConfig(t, map[string]string{"remote.storage.enable": "true", "local.retention.ms": "3600000"})
	for _, tc := range []struct {
		remoteEnd int64
		segments  int
	}{{0, 0}, {15, 1}, {20, 2}, {40, 3}} {
		if d := TieredLocalRetention(cfg, log, 40, tc.remoteEnd, now); d.Segments != tc.segments {
			t.Errorf("remote end %d: %+v, want %d segments", tc.remoteEnd, d, tc.segments)
		}
	}
	// local.retention.bytes -2 is retention.bytes.
	cfg = topicConfig(t, map[string]string{"remote.storage.enable": "true", "retention.bytes": "200"})
	checkDeletion(t, TieredLocalRetention(cfg, log, 40, 40, now), 2, 200, 20)
	// A local copy of what the bucket holds is a cache: dropped whatever
	// cleanup.policy says.
	cfg = topicConfig(t, map[string]string{"remote.storage.enable": "true", "cleanup.policy": "compact", "local.retention.bytes": "200"})
	checkDeletion(t, TieredLocalRetention(cfg, log, 40, 40, now), 2, 200, 20)
}

func TestTieredBothTiers(t *testing.T) {
	old := ago(48 * time.Hour)
	// Remote: [0,10) [10,20) [20,30); local: [20,30) [30,40) [40,50) and an
	// active [50,55), the local start at 20.
	remote := segs([]int64{100, 100, 100}, []int64{old, old, ago(time.Hour)})
	local := segs([]int64{100, 100, 100, 100, 100, 50}, []int64{0, 0, old, old, ago(time.Minute), ago(time.Second)})[2:]
	local[3].NextOffset = 55
	l := TieredLog{Local: local, LocalStart: 20, Remote: remote, RemoteEnd: 30, HighWatermark: 55}

	// retention.ms of a day: the two old remote segments go; the local log
	// already starts above them. Locally, local.retention.ms takes [20,30)
	// but not [30,40), as old but not in the bucket yet.
	cfg := topicConfig(t, map[string]string{"remote.storage.enable": "true", "retention.ms": "86400000", "local.retention.ms": "7200000"})
	loc, rem := Tiered(cfg, l, now)
	checkDeletion(t, rem, 2, 200, 20)
	checkDeletion(t, loc, 1, 100, 30)

	// retention.ms of 30 minutes: every remote segment goes, and with them
	// the local segment they share.
	cfg = topicConfig(t, map[string]string{"remote.storage.enable": "true", "retention.ms": "1800000"})
	loc, rem = Tiered(cfg, l, now)
	checkDeletion(t, rem, 3, 300, 30)
	checkDeletion(t, loc, 1, 100, 30)

	// retention.bytes bounds the whole log: 300 remote bytes and 250 local
	// ones not in the bucket. Two remote segments go (350 left); a third
	// would leave 250, below 300. Locally 350 bytes: deleting [20,30) would
	// leave 250.
	cfg = topicConfig(t, map[string]string{"remote.storage.enable": "true", "retention.bytes": "300"})
	loc, rem = Tiered(cfg, l, now)
	checkDeletion(t, rem, 2, 200, 20)
	checkDeletion(t, loc, 0, 0, -1)

	// A compact topic keeps its remote segments.
	cfg = topicConfig(t, map[string]string{"remote.storage.enable": "true", "cleanup.policy": "compact", "retention.ms": "1800000"})
	if _, rem := Tiered(cfg, l, now); !rem.None() {
		t.Errorf("compact topic: remote %+v", rem)
	}
}
