package testenv_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// countRecords decodes concatenated batches and counts their records by
// key; it returns the number of records.
func countRecords(t *testing.T, data []byte, keys map[string]int) int {
	t.Helper()
	n := 0
	it := record.NewBatches(data)
	for it.Next() {
		err := record.ForEach(it.Bytes(), func(r *record.Record) error {
			keys[string(r.Key)]++
			n++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// A compacted topic with remote storage, fed the same 1,000 keys a hundred
// times through a Kafka client on a three-broker cluster with MinIO, ends
// up holding about 1,000 records on the leader's disk and in the bucket
// (read with minio-go, not through the broker), and `strata consume
// --from-beginning` shows the latest value of every key.
func TestCompactedTopicLocallyAndInTheBucket(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-broker cluster with MinIO")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3, MinIO: true,
		BrokerSettings: map[string]string{"log.segment.min.bytes": "1024", "remote.log.manager.task.interval.ms": "300", "log.cleaner.backoff.ms": "300"}})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cl, adm, _ := testenvtest.KafkaClient(t, c, kgo.DefaultProduceTopic("stock"), kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	testenvtest.CreateKafkaTopic(ctx, t, adm, "stock", 3, map[string]string{
		"cleanup.policy": "compact", "remote.storage.enable": "true", "segment.bytes": "16384",
		"local.retention.bytes": "65536", "min.cleanable.dirty.ratio": "0.2",
		// The last round stays in the active segment, which is never
		// compacted, until the cleaner rolls it after this lag.
		"max.compaction.lag.ms": "3000",
	})
	const keys, rounds = 1000, 100
	for round := range rounds {
		recs := make([]*kgo.Record, 0, keys)
		for k := range keys {
			recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "item-%04d", k), Value: fmt.Appendf(nil, "round-%03d-item-%04d", round, k)})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// A keyless record is refused, as Kafka refuses it on a compacted topic.
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("no key")}).FirstErr(); err == nil {
		t.Fatal("a record without a key was accepted by a compacted topic")
	}
	leader := testenvtest.PartitionLeader(t, c, adm, "stock", 0)
	const total = keys * rounds

	// The leader's local log, read from its files.
	localRecords := func() (int, map[string]int) {
		files, err := filepath.Glob(filepath.Join(leader.DataDir(), "stock-0", "*.log"))
		if err != nil {
			t.Fatal(err)
		}
		perKey := map[string]int{}
		n := 0
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				continue // deleted meanwhile
			}
			n += countRecords(t, data, perKey)
		}
		return n, perKey
	}
	// The bucket, read with minio-go through the newest manifest.
	s3 := c.MinIO().S3()
	mc := s3Client(t, s3)
	bucketRecords := func() (int, map[string]int, error) {
		m, err := testenvtest.ReadBucketManifest(t, c, "stock", 0)
		if err != nil {
			return 0, nil, err
		}
		perKey := map[string]int{}
		n := 0
		for _, s := range m.Segments {
			obj, err := mc.GetObject(ctx, s3.Bucket, testenv.ObjectStorePrefix+"/"+s.Key, minio.GetObjectOptions{})
			if err != nil {
				return 0, nil, err
			}
			data, err := io.ReadAll(obj)
			obj.Close()
			if err != nil {
				return 0, nil, err
			}
			n += countRecords(t, data, perKey)
		}
		return n, perKey, nil
	}

	var local, remote int
	var remoteKeys map[string]int
	state, last := "", ""
	defer func() {
		if t.Failed() {
			t.Logf("last seen: %s", state)
		}
	}()
	await.True(t, 2*time.Minute, "the topic to be compacted on the leader's disk and in the bucket", func() bool {
		local, _ = localRecords()
		m, err := testenvtest.ReadBucketManifest(t, c, "stock", 0)
		if err == nil && m.EndOffset() >= total*9/10 {
			remote, remoteKeys, err = bucketRecords()
		}
		state = fmt.Sprintf("%d records on the leader's disk, %d in the bucket up to %d (compacted to %d), err %v",
			local, remote, m.EndOffset(), m.CompactedTo, err)
		if state != last {
			t.Log(state)
			last = state
		}
		return err == nil && m.EndOffset() >= total*9/10 && local <= keys*11/10 && remote <= keys*11/10
	})
	t.Logf("%d records produced; %d on the leader's disk, %d in the bucket", total, local, remote)
	if len(remoteKeys) < keys*9/10 {
		t.Fatalf("the bucket holds %d distinct keys, want most of the %d", len(remoteKeys), keys)
	}

	// `strata replay` reads the compacted view straight from the bucket.
	replay := exec.CommandContext(ctx, testenv.Binary(t), "replay", "--object-store", testenv.ObjectStoreURL(s3), "--topic", "stock")
	replay.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+s3.AccessKey, "AWS_SECRET_ACCESS_KEY="+s3.SecretKey, "AWS_REGION="+s3.Region)
	replay.Stderr = os.Stderr
	replayed, err := replay.Output()
	if err != nil {
		t.Fatalf("strata replay: %v", err)
	}
	replayLatest := map[string]string{}
	replayLines := strings.Split(strings.TrimSpace(string(replayed)), "\n")
	for _, line := range replayLines {
		var rec struct{ Key, Value string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("replay printed %q: %v", line, err)
		}
		replayLatest[rec.Key] = rec.Value
	}
	if len(replayLines) > keys*11/10 {
		t.Fatalf("replay printed %d records for %d keys", len(replayLines), keys)
	}
	for k := range keys {
		key := fmt.Sprintf("item-%04d", k)
		if want := fmt.Sprintf("round-%03d-item-%04d", rounds-1, k); replayLatest[key] != want {
			t.Fatalf("replay: %s = %q, want %q", key, replayLatest[key], want)
		}
	}

	// Every key's latest value, from the beginning, through the CLI.
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, testenv.Binary(t), "consume", "stock", "--from-beginning", "--exit-at-end",
		"--print-offset", "--print-key", "--bootstrap-server", leader.GRPCAddr())
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("strata consume: %v", err)
	}
	latest := map[string]string{}
	lines := 0
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 3 {
			t.Fatalf("consume printed %q", sc.Text())
		}
		latest[f[1]] = f[2]
		lines++
	}
	if lines > local+remote || lines < keys {
		t.Fatalf("consume printed %d records; the disk holds %d and the bucket %d", lines, local, remote)
	}
	for k := range keys {
		key := fmt.Sprintf("item-%04d", k)
		if want := fmt.Sprintf("round-%03d-item-%04d", rounds-1, k); latest[key] != want {
			t.Fatalf("%s: latest value %q, want %q", key, latest[key], want)
		}
	}
}
