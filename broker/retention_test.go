package broker

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/strata-broker/strata/compaction"
	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/internal/fakeclock"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/topicconfig"
)

// startRetentionBroker runs a broker on clk whose retention worker runs
// every 20 ms, with its metrics in reg.
func startRetentionBroker(t *testing.T, clk *fakeclock.Clock, reg prometheus.Registerer) *Broker {
	t.Helper()
	b, _ := startBrokerWith(t, Config{Now: clk.Now, Registerer: reg,
		Settings: smallSegments(map[string]string{"log.retention.check.interval.ms": "20"})})
	return b
}

func earliest(t *testing.T, b *Broker, topic string) int64 {
	t.Helper()
	off, _, _, err := b.ListOffset(topic, 0, EarliestTimestamp, ReadUncommitted)
	if err != nil {
		t.Fatal(err)
	}
	return off
}

func segmentFiles(t *testing.T, b *Broker, topic string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(b.hosted.partitionDir(topic, 0), "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range files {
		files[i] = filepath.Base(f)
	}
	return files
}

// metricValue is the sum of the samples of the counters or gauges called
// name in g whose labels include labels (name, value pairs).
func metricValue(tb testing.TB, g prometheus.Gatherer, name string, labels ...string) float64 {
	tb.Helper()
	families, err := g.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool {
					return l.GetName() == labels[i] && l.GetValue() == labels[i+1]
				}) {
					continue metrics
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// A topic's retention.ms, lowered while the broker runs, deletes every
// segment whose records are all older, the active one too (the log rolls),
// and nothing before they are.
func TestRetentionMsDeletesExpiredSegments(t *testing.T) {
	clk := fakeclock.New(time.Now())
	reg := prometheus.NewPedanticRegistry()
	b := startRetentionBroker(t, clk, reg)
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "events", Partitions: 1, Configs: map[string]string{"segment.bytes": "1024"}}); err != nil {
		t.Fatal(err)
	}
	produceValues(t, b, "events", 0, 100)
	segments := len(segmentFiles(t, b, "events"))
	if segments < 5 {
		t.Fatalf("%d segments, want several", segments)
	}

	// Two hours later, within the default retention.ms (7 days), and then
	// within a retention.ms of three hours: nothing goes.
	clk.Advance(2 * time.Hour)
	b.retention.Round(ctx)
	if _, err := b.AlterTopicConfigs(ctx, "events", map[string]string{"retention.ms": "10800000"}, nil, false); err != nil {
		t.Fatal(err)
	}
	b.retention.Round(ctx)
	if got := earliest(t, b, "events"); got != 0 {
		t.Fatalf("earliest offset %d before the records expired, want 0", got)
	}
	if got := len(segmentFiles(t, b, "events")); got != segments {
		t.Fatalf("%d segment files before the records expired, want %d", got, segments)
	}

	// retention.ms of one hour: every record is past it. The worker's own
	// loop deletes them.
	if _, err := b.AlterTopicConfigs(ctx, "events", map[string]string{"retention.ms": "3600000"}, nil, false); err != nil {
		t.Fatal(err)
	}
	// The worker counts the segments once their files are gone.
	deleted := func() float64 {
		return metricValue(t, reg, "strata_log_retention_deleted_segments_total", "topic", "events", "tier", compaction.TierLocal)
	}
	await.True(t, 10*time.Second, "retention to delete the segments", func() bool { return deleted() > 0 })
	if got := deleted(); got != float64(segments) {
		t.Errorf("deleted segments metric %v, want %d", got, segments)
	}
	if got := earliest(t, b, "events"); got != 100 {
		t.Fatalf("earliest offset %d after retention, want 100", got)
	}
	if files := segmentFiles(t, b, "events"); len(files) != 1 || files[0] != fmt.Sprintf("%020d.log", 100) {
		t.Fatalf("segment files after retention: %v, want only an empty one at 100", files)
	}
	p, _ := b.hosted.partition("events", 0)
	if p.log.LogStartOffset() != 100 || p.log.Size() != 0 {
		t.Fatalf("log start %d, size %d; want 100 and 0", p.log.LogStartOffset(), p.log.Size())
	}
	if got := metricValue(t, reg, "strata_log_retention_deleted_bytes_total", "topic", "events", "tier", compaction.TierLocal); got < 100*100 {
		t.Errorf("deleted bytes metric %v, want at least the records' 10 KB", got)
	}
	if n, err := testutil.GatherAndCount(reg, "strata_log_retention_deleted_bytes_total", "strata_log_retention_last_run_timestamp_seconds"); err != nil || n < 2 {
		t.Errorf("registered retention series: %d, %v", n, err)
	}

	// The log goes on where it was.
	if off := produceOne(t, b, "events"); off != 100 {
		t.Fatalf("next record at offset %d, want 100", off)
	}
}

// Only the leader of the epoch retention decided in deletes.
func TestRetainBelowNeedsTheLeadership(t *testing.T) {
	p := testPartition(t, 1)
	p.applyState(metastore.PartitionState{Topic: "t", Leader: 1, LeaderEpoch: 3, Replicas: []int32{1}, ISR: []int32{1}, Revision: 1}, time.Now(), 0)
	for range 3 {
		if _, _, err := p.leaderAppend(oneBatch(t, 2), AcksAll, 1, func() bool { return true }, 0); err != nil {
			t.Fatal(err)
		}
	}
	yes, no := func() bool { return true }, func() bool { return false }
	if err := p.retainBelow(2, 2, yes, 0); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("another epoch: %v, want ErrNotLeader", err)
	}
	if err := p.retainBelow(2, 3, no, 0); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("lease not renewed: %v, want ErrNotLeader", err)
	}
	if err := p.retainBelow(7, 3, yes, 0); err == nil || !strings.Contains(err.Error(), "high watermark") {
		t.Fatalf("beyond the high watermark: %v", err)
	}
	if p.log.LogStartOffset() != 0 {
		t.Fatalf("log start %d after refused deletions", p.log.LogStartOffset())
	}
	if err := p.retainBelow(2, 3, yes, 0); err != nil {
		t.Fatal(err)
	}
	if p.log.LogStartOffset() != 2 {
		t.Fatalf("log start %d, want 2", p.log.LogStartOffset())
	}
	p.applyState(metastore.PartitionState{Topic: "t", Leader: 2, LeaderEpoch: 4, Replicas: []int32{1, 2}, ISR: []int32{2}, Revision: 2}, time.Now(), 0)
	if err := p.retainBelow(4, 3, yes, 0); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("as a follower: %v, want ErrNotLeader", err)
	}
}

// A preview reports what the proposed overrides would delete, per tier,
// and deletes nothing; bad overrides are refused as AlterTopicConfigs
// refuses them.
func TestPreviewRetention(t *testing.T) {
	clk := fakeclock.New(time.Now())
	b := startRetentionBroker(t, clk, nil)
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "events", Partitions: 1, Configs: map[string]string{"segment.bytes": "1024"}}); err != nil {
		t.Fatal(err)
	}
	produceValues(t, b, "events", 0, 50)
	p, _ := b.hosted.partition("events", 0)
	segs := p.log.Segments()
	clk.Advance(2 * time.Hour)

	parts, entries, err := b.PreviewRetention(ctx, "events", map[string]string{"retention.ms": "3600000"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, s := range segs {
		total += s.Size
	}
	want := TierRetention{Segments: int64(len(segs)), Bytes: total, StartOffset: 0, NewStartOffset: 50}
	if len(parts) != 1 || parts[0].Local != want || parts[0].Tiered || parts[0].HighWatermark != 50 {
		t.Fatalf("preview %+v, want local %+v", parts, want)
	}
	if v := entryValue(entries, "retention.ms"); v != "3600000" {
		t.Errorf("previewed retention.ms %q", v)
	}

	// retention.bytes: the first segments, as long as 1500 bytes are left.
	parts, _, err = b.PreviewRetention(ctx, "events", map[string]string{"retention.bytes": "1500"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, left := 0, total
	for left-segs[n].Size >= 1500 {
		left -= segs[n].Size
		n++
	}
	if l := parts[0].Local; l.Segments != int64(n) || l.Bytes != total-left || l.NewStartOffset != segs[n].BaseOffset {
		t.Fatalf("retention.bytes preview %+v, want %d segments, %d bytes, new start %d", l, n, total-left, segs[n].BaseOffset)
	}

	// Deleting the override previews the default: nothing.
	parts, _, err = b.PreviewRetention(ctx, "events", nil, []string{"retention.ms"})
	if err != nil || parts[0].Local.Segments != 0 || parts[0].Local.NewStartOffset != 0 {
		t.Fatalf("preview of the defaults: %+v, %v", parts, err)
	}
	if got := earliest(t, b, "events"); got != 0 || len(segmentFiles(t, b, "events")) != len(segs) {
		t.Fatalf("a preview deleted records: earliest offset %d", got)
	}

	for _, tc := range []struct {
		set  map[string]string
		del  []string
		want string
	}{
		{map[string]string{"retention.ms": "abc"}, nil, `invalid value "abc" for retention.ms: must be an integer`},
		{map[string]string{"retention.msx": "1"}, nil, `unknown topic config "retention.msx" (did you mean retention.ms?)`},
		{nil, []string{"retention.minutes"}, `cannot delete unknown topic config "retention.minutes"`},
	} {
		_, _, err := b.PreviewRetention(ctx, "events", tc.set, tc.del)
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("preview with %v %v: %v, want ErrInvalidConfig saying %s", tc.set, tc.del, err, tc.want)
		}
	}
	if _, _, err := b.PreviewRetention(ctx, "nope", nil, nil); !errors.Is(err, ErrUnknownTopicOrPartition) {
		t.Errorf("unknown topic: %v", err)
	}
}

func entryValue(entries []topicconfig.Entry, name string) string {
	for _, e := range entries {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}
