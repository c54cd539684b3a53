package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-broker/strata/broker/server"
	"github.com/strata-broker/strata/internal/await"
)

// startTieredInProcess runs a broker inside the test process, as `strata
// dev` does, with a file:// object store and the tiering task every 100 ms.
// It returns the gRPC address.
func startTieredInProcess(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan server.Addrs, 1)
	done := make(chan error, 1)
	cfg := server.Config{
		NodeID:         1,
		DataDir:        filepath.Join(dir, "data"),
		GRPCAddr:       "127.0.0.1:0",
		HTTPAddr:       "127.0.0.1:0",
		KafkaAddr:      "127.0.0.1:0",
		EmbedEtcd:      true,
		EtcdClientAddr: "127.0.0.1:0",
		ObjectStoreURL: "file://" + filepath.Join(dir, "object-store"),
		Settings:       map[string]string{"remote.log.manager.task.interval.ms": "100", "log.segment.min.bytes": "1024"},
	}
	go func() { done <- server.Run(ctx, cfg, func(a server.Addrs) { ready <- a }) }()
	select {
	case a := <-ready:
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("broker: %v", err)
			}
		})
		return a.GRPC.String()
	case err := <-done:
		cancel()
		t.Fatalf("broker exited before it was ready: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		<-done
		t.Fatal("broker not ready after 60s")
	}
	return ""
}

// tieringRow returns the status table's row of a partition, split into its
// columns.
func tieringRow(t *testing.T, out, topic, partition string) []string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 11 && f[0] == topic && f[1] == partition {
			return f
		}
	}
	t.Fatalf("no row for %s-%s in:\n%s", topic, partition, out)
	return nil
}

func TestTieringStatusCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker with embedded etcd")
	}
	bs := "--bootstrap-server=" + startTieredInProcess(t)
	mustStrata(t, "", "topics", "create", "history", "--partitions", "2", bs,
		"--config", "remote.storage.enable=true", "--config", "segment.bytes=1024", "--config", "local.retention.bytes=2048")
	mustStrata(t, "", "topics", "create", "plain", bs)
	// Twice, so that each partition's first segment is past segment.bytes
	// when the second run's records come, and rolls.
	for run := range 2 {
		var lines strings.Builder
		for i := run * 100; i < run*100+100; i++ {
			fmt.Fprintf(&lines, "%03d:value-%05d-%080d\n", i, i, i)
		}
		mustStrata(t, lines.String(), "produce", "history", "--key-separator", ":", "--batch-bytes", "300", "--acks", "all", bs)
	}
	mustStrata(t, "a\nb\nc\n", "produce", "plain", bs)

	// The leader uploads in the background: wait until nothing sealed is
	// left to upload and local retention has trimmed the disk.
	var st []tieringJSON
	await.NoError(t, 30*time.Second, "uploads and local retention to settle", func() error {
		out := mustStrata(t, "", "tiering", "status", "history", "-o", "json", bs)
		st = nil
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if len(st) != 2 {
			t.Fatalf("status of a topic of two partitions:\n%s", out)
		}
		for _, p := range st {
			if p.Backlog != 0 || p.Segments <= 0 || p.LocalStart <= 0 {
				return fmt.Errorf("not settled:\n%s", out)
			}
		}
		return nil
	})
	total := int64(0)
	for i, p := range st {
		if p.Partition != int32(i) || p.Topic != "history" || p.Leader != 1 || !p.RemoteEnabled || p.RemoteStart != 0 ||
			p.RemoteEnd < p.LocalStart || p.HighWatermark != p.LocalEnd || p.LogStart != 0 || p.RemoteBytes <= 0 {
			t.Errorf("partition %d: %+v", i, p)
		}
		total += p.LocalEnd
	}
	if total != 200 {
		t.Errorf("%d records in the status, want 200: %+v", total, st)
	}

	out := mustStrata(t, "", "tiering", "status", bs)
	t.Logf("strata tiering status:\n%s", out)
	header, _, _ := strings.Cut(out, "\n")
	if strings.Join(strings.Fields(header), " ") != "TOPIC PARTITION LEADER LOCAL-START LOCAL-END LOCAL-BYTES REMOTE-START REMOTE-END REMOTE-BYTES SEGMENTS BACKLOG-BYTES" {
		t.Errorf("header:\n%s", out)
	}
	row := tieringRow(t, out, "history", "1")
	if want := []string{"history", "1", "1", fmt.Sprint(st[1].LocalStart)}; strings.Join(row[:4], " ") != strings.Join(want, " ") ||
		row[6] != "0" || row[10] != "0" {
		t.Errorf("history-1 row %q, want it to begin %q, remote start 0, backlog 0", row, want)
	}
	if row := tieringRow(t, out, "plain", "0"); strings.Join(row, " ") != "plain 0 1 0 3 "+row[5]+" - - - - -" {
		t.Errorf("row of a topic that is not tiered: %q", row)
	}
	if !strings.HasSuffix(out, "Note: topic plain is not tiered (remote.storage.enable is not true): it has no remote data.\n") ||
		strings.Count(out, "Note:") != 1 {
		t.Errorf("want one note, for plain:\n%s", out)
	}
	if human := mustStrata(t, "", "tiering", "status", "history", "--human", bs); !strings.Contains(human, " KiB") {
		t.Errorf("--human:\n%s", human)
	}

	if code, _, errOut := strata(t, "", "tiering", "status", "nope", bs); code != 1 || !strings.Contains(errOut, "NotFound") ||
		strings.Count(errOut, "\n") != 1 {
		t.Errorf("unknown topic: exit %d, %q", code, errOut)
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{-1: "-", 0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 40: "3.0 TiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
