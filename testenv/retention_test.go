package testenv_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// listEarliest returns partition p's earliest offset (its log start).
func listEarliest(t testing.TB, c stratav1.StrataClient, topic string, p int32) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	resp, err := c.ListOffsets(ctx, &stratav1.ListOffsetsRequest{Topic: topic,
		Partitions: []*stratav1.ListOffsetsPartition{{Partition: p, Timestamp: -2}}})
	if err != nil {
		t.Fatal(err)
	}
	if e := resp.GetPartitions()[0].GetError(); e != nil {
		t.Fatal(e)
	}
	return resp.GetPartitions()[0].GetOffset()
}

// produceAged produces n records to partition 0, in batches of ten, with
// timestamps age in the past.
func produceAged(t *testing.T, api stratav1.StrataClient, topic string, n int, age time.Duration) {
	t.Helper()
	ts := time.Now().Add(-age).UnixMilli()
	for i := 0; i < n; i += 10 {
		var recs []*stratav1.Record
		for j := i; j < min(i+10, n); j++ {
			recs = append(recs, &stratav1.Record{Key: recordKey(j), Value: recordValue(j), TimestampMs: ts})
		}
		ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
		resp, err := api.Produce(ctx, &stratav1.ProduceRequest{Topic: topic, Acks: stratav1.Acks_ACKS_ALL,
			Partitions: []*stratav1.ProducePartition{{Partition: 0, Records: recs}}})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if e := resp.GetPartitions()[0].GetError(); e != nil {
			t.Fatal(e)
		}
	}
}

// An operator lowers retention.ms with `strata topics alter` on a running
// broker: its retention worker deletes the expired segments at its next
// check (log.retention.check.interval.ms), and the earliest offset moves.
func TestRetentionMsAlteredWithTheCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of processes")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 1,
		BrokerSettings: map[string]string{"log.segment.min.bytes": "1024", "log.retention.check.interval.ms": "200"}})
	b := c.Brokers()[0]
	api := testenvtest.Dial(t, b.GRPCAddr())
	createTopic(t, api, "expiring", 1, map[string]string{"segment.bytes": "1024"})
	// Records a day old by their timestamps, in batches of ten, so that
	// they fill several segments.
	produceAged(t, api, "expiring", 100, 24*time.Hour)
	segmentFiles := func() []string {
		files, err := filepath.Glob(filepath.Join(b.DataDir(), "expiring-0", "*.log"))
		if err != nil {
			t.Fatal(err)
		}
		return files
	}
	if n := len(segmentFiles()); n < 5 {
		t.Fatalf("%d segment files, want several", n)
	}

	// The default retention.ms (7 days) keeps them: a round of the worker
	// that started after the records were written has left them. Rounds
	// follow one another, so the one after the first to end after the
	// writes started after them.
	lastRun := func() float64 { return metricValue(t, b, "strata_log_retention_last_run_timestamp_seconds") }
	produced := float64(time.Now().UnixMilli()) / 1000
	var first float64
	await.True(t, 30*time.Second, "a retention round after the records were written", func() bool { first = lastRun(); return first > produced })
	await.True(t, 30*time.Second, "another retention round", func() bool { return lastRun() > first })
	if got := listEarliest(t, api, "expiring", 0); got != 0 {
		t.Fatalf("earliest offset %d under the default retention.ms, want 0", got)
	}

	bin := testenv.Binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "topics", "alter", "expiring", "--config", "retention.ms=3600000",
		"--bootstrap-server", b.GRPCAddr()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "retention.ms=3600000") {
		t.Fatalf("strata topics alter: %v\n%s", err, out)
	}
	await.True(t, 30*time.Second, "retention.ms=3600000 to delete the day-old records", func() bool { return listEarliest(t, api, "expiring", 0) == 100 })
	await.True(t, 30*time.Second, "the segment files to be deleted", func() bool { return len(segmentFiles()) == 1 })
	if files := segmentFiles(); filepath.Base(files[0]) != fmt.Sprintf("%020d.log", 100) {
		t.Fatalf("segment files left: %v", files)
	}
	// The worker counts the segments just after their files are gone.
	await.True(t, 10*time.Second, "strata_log_retention_deleted_segments_total to count every deleted segment", func() bool {
		return metricValue(t, b, "strata_log_retention_deleted_segments_total") >= 5
	})
}

// On a tiered topic, a retention.ms lowered with `strata topics alter` is
// applied by the tiering task to the bucket, and `strata tiering status`
// shows the remote start move.
func TestTieredRetentionMsAlteredWithTheCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster with MinIO")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 1, MinIO: true,
		BrokerSettings: map[string]string{"log.segment.min.bytes": "1024", "remote.log.manager.task.interval.ms": "300"}})
	b := c.Brokers()[0]
	api := testenvtest.Dial(t, b.GRPCAddr())
	createTopic(t, api, "ticks", 1, map[string]string{"segment.bytes": "1024", "remote.storage.enable": "true", "local.retention.bytes": "2048"})
	produceAged(t, api, "ticks", 200, 24*time.Hour)
	bin := testenv.Binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	status := func() (remoteStart, remoteEnd int64) {
		out, err := exec.CommandContext(ctx, bin, "tiering", "status", "ticks", "--output", "json", "--bootstrap-server", b.GRPCAddr()).Output()
		if err != nil {
			t.Fatalf("strata tiering status: %v", err)
		}
		var st []struct {
			RemoteStart int64 `json:"remote_start_offset"`
			RemoteEnd   int64 `json:"remote_end_offset"`
		}
		if err := json.Unmarshal(out, &st); err != nil || len(st) != 1 {
			t.Fatalf("strata tiering status printed %s: %v", out, err)
		}
		return st[0].RemoteStart, st[0].RemoteEnd
	}
	var end int64
	await.True(t, time.Minute, "most of the records to be uploaded", func() bool { _, end = status(); return end >= 150 })
	if start, _ := status(); start != 0 {
		t.Fatalf("remote start %d under the default retention.ms, want 0", start)
	}

	out, err := exec.CommandContext(ctx, bin, "topics", "alter", "ticks", "--config", "retention.ms=3600000",
		"--bootstrap-server", b.GRPCAddr()).CombinedOutput()
	if err != nil {
		t.Fatalf("strata topics alter: %v\n%s", err, out)
	}
	altered := time.Now()
	// Every record is a day old: the bucket empties (no remote range left,
	// which status prints as -1) or starts past what it held.
	await.True(t, time.Minute, "the day-old remote segments to be deleted", func() bool { start, _ := status(); return start >= end || start == -1 })
	t.Logf("retention.ms applied to the bucket %v after the alter", time.Since(altered).Round(time.Millisecond))
	if got := listEarliest(t, api, "ticks", 0); got < end {
		t.Fatalf("earliest offset %d after retention, want at least %d", got, end)
	}
}
