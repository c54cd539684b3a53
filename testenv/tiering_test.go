package testenv_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
	"github.com/strata-broker/strata/tiering"
)

// A tiered topic whose local retention is far below what was produced keeps
// most of its history only in MinIO; a Kafka consumer reading from offset 0
// still receives every record in order, also after the leader changes.
func TestTieredTopicReadsBackFromMinIO(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-broker cluster with MinIO")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3, MinIO: true,
		BrokerSettings: map[string]string{"log.segment.min.bytes": "1024", "remote.log.manager.task.interval.ms": "200"}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl, adm, seeds := testenvtest.KafkaClient(t, c, kgo.DefaultProduceTopic("history"), kgo.ProducerBatchCompression(kgo.NoCompression()))
	testenvtest.CreateKafkaTopic(ctx, t, adm, "history", 3, map[string]string{
		"remote.storage.enable": "true", "segment.bytes": "16384", "local.retention.bytes": "32768",
	})
	const n = 3000
	for i := 0; i < n; i += 100 {
		var recs []*kgo.Record
		for j := i; j < i+100; j++ {
			recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", j), Value: fmt.Appendf(nil, "%06d-%0150d", j, j)})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	// The leader uploads and trims its disk in the background.
	leader := testenvtest.PartitionLeader(t, c, adm, "history", 0)
	var local []string
	await.True(t, 60*time.Second, "the leader's local log to shrink to its local retention", func() bool {
		local, _ = filepath.Glob(filepath.Join(leader.DataDir(), "history-0", "*.log"))
		return len(local) > 0 && len(local) <= 4
	})

	// What is in the bucket, read with minio-go, not through the broker.
	s3 := c.MinIO().S3()
	mc := s3Client(t, s3)
	segments := 0
	for obj := range mc.ListObjects(ctx, s3.Bucket, minio.ListObjectsOptions{Prefix: testenv.ObjectStorePrefix + "/topics/history/", Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		if strings.HasSuffix(obj.Key, ".log") {
			segments++
		}
	}
	if segments < 10 {
		t.Fatalf("%d segment objects in the bucket, want most of ~%d KiB of records there", segments, n*160/1024)
	}
	t.Logf("%d local segment files on the leader, %d segment objects in MinIO", len(local), segments)

	readAll := func(what string) {
		t.Helper()
		cons, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics("history"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		defer cons.Close()
		next := 0
		for next < n {
			fs := cons.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("%s: read %d of %d records", what, next, n)
			}
			fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("%s: fetch: %v", what, err) })
			fs.EachRecord(func(r *kgo.Record) {
				if want := fmt.Sprintf("%06d-%0150d", next, next); string(r.Value) != want || r.Offset != int64(next) {
					t.Fatalf("%s: record at offset %d is %.20q..., want offset %d", what, r.Offset, r.Value, next)
				}
				next++
			})
		}
	}
	readAll("from the first leader")

	// A new leader reads the manifest from the bucket and serves the same.
	leader.Kill()
	await.True(t, 30*time.Second, "a new leader", func() bool {
		md, err := adm.Metadata(ctx, "history")
		return err == nil && md.Topics["history"].Partitions[0].Leader != leader.ID() && md.Topics["history"].Partitions[0].Leader >= 0
	})
	readAll("from the new leader")
}

// metricValue scrapes one broker's /metrics for the sum of a metric's
// series, -1 when it has none.
func metricValue(t testing.TB, b *testenv.Broker, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + b.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	sum, found := 0.0, false
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum, found = sum+v, true
		}
	}
	if !found {
		return -1
	}
	return sum
}

// bucketManifest reads a partition's newest manifest from MinIO through the
// project's own object store client.
func bucketManifest(t *testing.T, c *testenv.Cluster, topic string, p int32) tiering.PartitionManifest {
	t.Helper()
	m, err := testenvtest.ReadBucketManifest(t, c, topic, p)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkContiguous fails unless the manifest's segments cover its range
// without a gap (overlaps are allowed: segment boundaries can change with
// the leader).
func checkContiguous(t *testing.T, m tiering.PartitionManifest) {
	t.Helper()
	next := m.LogStartOffset
	for i, s := range m.Segments {
		if s.BaseOffset > next {
			t.Fatalf("manifest has a gap: segment %d starts at %d, the ones before end at %d", i, s.BaseOffset, next)
		}
		if s.NextOffset <= next {
			t.Fatalf("manifest segment %d (%d-%d) adds nothing after %d", i, s.BaseOffset, s.NextOffset, next)
		}
		next = s.NextOffset
	}
}

// MinIO stopped under load: produce and hot reads go on, uploads wait (the
// backlog grows and nothing leaves the local disk), then resume.
func TestTieringRidesOutAMinIOOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster with MinIO")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 1, MinIO: true,
		BrokerSettings: map[string]string{"log.segment.min.bytes": "1024", "remote.log.manager.task.interval.ms": "200"}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := c.Brokers()[0]
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()), kgo.DefaultProduceTopic("steady"),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	v := func(s string) *string { return &s }
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{
		"remote.storage.enable": v("true"), "segment.bytes": v("16384"), "local.retention.bytes": v("16384"),
	}, "steady"); err != nil {
		t.Fatal(err)
	}
	produced := 0
	produce := func(n int) {
		t.Helper()
		// Small requests, so the log rolls its 16 KiB segments often (a
		// batch is never split across segments).
		for i := 0; i < n; i += 20 {
			var recs []*kgo.Record
			for range min(20, n-i) {
				recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, "%06d-%0150d", produced, produced)})
				produced++
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
		}
	}
	localSegments := func() int {
		files, _ := filepath.Glob(filepath.Join(b.DataDir(), "steady-0", "*.log"))
		return len(files)
	}
	produce(1000)
	await.True(t, 30*time.Second, "uploads to catch up before the outage", func() bool {
		return metricValue(t, b, "strata_tiering_upload_backlog_bytes") == 0 && testenvtest.BucketEnd(t, c, "steady", 0) >= 900
	})

	if err := c.MinIO().Stop(); err != nil {
		t.Fatal(err)
	}
	before := localSegments()
	for range 5 {
		produce(300) // acks=all through the outage
	}
	// Hot reads: the newest records come from the local log.
	ends, err := adm.ListEndOffsets(ctx, "steady")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := ends.Lookup("steady", 0); o.Offset != int64(produced) {
		t.Fatalf("end offset %d during the outage, want %d", o.Offset, produced)
	}
	await.True(t, 30*time.Second, "the upload backlog to grow while MinIO is down", func() bool { return metricValue(t, b, "strata_tiering_upload_backlog_bytes") > 100_000 })
	if after := localSegments(); after <= before {
		t.Fatalf("%d local segments during the outage, %d before: nothing may leave the disk unuploaded", after, before)
	}
	if errs := metricValue(t, b, "strata_tiering_errors_total"); errs <= 0 {
		t.Fatal("no tiering errors counted while MinIO was down")
	}

	if err := c.MinIO().Start(ctx); err != nil {
		t.Fatal(err)
	}
	await.True(t, 60*time.Second, "uploads to resume and local retention to apply after MinIO is back", func() bool {
		return metricValue(t, b, "strata_tiering_upload_backlog_bytes") == 0 && localSegments() <= 3 &&
			testenvtest.BucketEnd(t, c, "steady", 0) >= int64(produced)-200
	})
	m := bucketManifest(t, c, "steady", 0)
	checkContiguous(t, m)
	if m.LogStartOffset != 0 || m.EndOffset() < int64(produced)-200 {
		t.Fatalf("bucket holds %d-%d after the outage, produced %d", m.LogStartOffset, m.EndOffset(), produced)
	}
}

// The leader is killed while it uploads under load: the manifest the new
// leader continues has no gap, and every acknowledged record reads back.
func TestLeaderChangeDuringUploads(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-broker cluster with MinIO")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3, MinIO: true,
		BrokerSettings: map[string]string{"log.segment.min.bytes": "1024", "remote.log.manager.task.interval.ms": "100"}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl, adm, seeds := testenvtest.KafkaClient(t, c, kgo.DefaultProduceTopic("busy"),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RecordDeliveryTimeout(60*time.Second))
	testenvtest.CreateKafkaTopic(ctx, t, adm, "busy", 3, map[string]string{
		"remote.storage.enable": "true", "segment.bytes": "32768", "local.retention.bytes": "32768", "min.insync.replicas": "2",
	})
	produced := 0
	produceFor := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); {
			var recs []*kgo.Record
			for range 50 {
				recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, "%06d-%0100d", produced, produced)})
				produced++
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
		}
	}
	produceFor(time.Second)
	old := testenvtest.PartitionLeader(t, c, adm, "busy", 0)
	old.Kill()
	produceFor(2 * time.Second)
	if err := old.Start(ctx); err != nil {
		t.Fatal(err)
	}
	produceFor(time.Second)
	leader := testenvtest.PartitionLeader(t, c, adm, "busy", 0)
	await.True(t, 60*time.Second, "the new leader to upload its backlog", func() bool {
		return metricValue(t, leader, "strata_tiering_upload_backlog_bytes") == 0 && testenvtest.BucketEnd(t, c, "busy", 0) >= int64(produced)-600 // the active segment: up to 32 KiB of 115-byte records
	})
	m := bucketManifest(t, c, "busy", 0)
	checkContiguous(t, m)
	if m.LogStartOffset != 0 || m.EndOffset() < int64(produced)/2 {
		t.Fatalf("bucket holds %d-%d, produced %d", m.LogStartOffset, m.EndOffset(), produced)
	}
	epochs := map[int32]bool{}
	for _, s := range m.Segments {
		epochs[s.LeaderEpoch] = true
	}
	t.Logf("%d records; manifest of epoch %d seq %d: %d segments uploaded in %d leader epochs, %d-%d",
		produced, m.LeaderEpoch, m.Seq, len(m.Segments), len(epochs), m.LogStartOffset, m.EndOffset())

	cons, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics("busy"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	next := 0
	for next < produced {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", next, produced)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if want := fmt.Sprintf("%06d-%0100d", next, next); string(r.Value) != want {
				t.Fatalf("record at offset %d is %.10q..., want %.10q...", r.Offset, r.Value, want)
			}
			next++
		})
	}
}

// The cluster that wrote a tiered topic is stopped and wiped (data
// directories and its metadata in etcd): `strata replay` reads the records
// from MinIO with no broker running, and `strata topics restore` brings the
// topic back into the new, empty cluster, readable from offset 0.
func TestReplayAndRestoreAfterTheClusterIsWiped(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster with MinIO")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 1, MinIO: true,
		BrokerSettings: map[string]string{"log.segment.min.bytes": "1024", "remote.log.manager.task.interval.ms": "100"}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := c.Brokers()[0]
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()), kgo.DefaultProduceTopic("archive"),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	v := func(s string) *string { return &s }
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, map[string]*string{
		"remote.storage.enable": v("true"), "segment.bytes": v("4096"), "local.retention.bytes": v("4096"), "retention.ms": v("86400000"),
	}, "archive"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 600; i += 10 {
		var recs []*kgo.Record
		for j := i; j < i+10; j++ {
			recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", j), Value: fmt.Appendf(nil, "v%04d", j)})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var end int64
	await.True(t, 30*time.Second, "the bucket to hold most records", func() bool { end = testenvtest.BucketEnd(t, c, "archive", 0); return end >= 500 })

	// Wipe the cluster: stop the broker, delete its disk and the cluster's
	// keys in etcd.
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(b.DataDir()); err != nil {
		t.Fatal(err)
	}
	etcd, err := clientv3.New(clientv3.Config{Endpoints: []string{c.Etcd().Endpoint()}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := etcd.Delete(ctx, c.EtcdPrefix()+"/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	etcd.Close()

	// Replay with no broker at all.
	s3 := c.MinIO().S3()
	bin := testenv.Binary(t)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+s3.AccessKey, "AWS_SECRET_ACCESS_KEY="+s3.SecretKey, "AWS_REGION="+s3.Region)
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("strata %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		return string(out)
	}
	lines := strings.Split(strings.TrimSpace(run("replay", "--object-store", testenv.ObjectStoreURL(s3), "--topic", "archive")), "\n")
	if int64(len(lines)) != end {
		t.Fatalf("replay printed %d records, the bucket holds %d", len(lines), end)
	}
	for i, line := range lines {
		var rec struct {
			Offset int64  `json:"offset"`
			Key    string `json:"key"`
			Value  string `json:"value"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("replay line %d: %v: %s", i, err, line)
		}
		if rec.Offset != int64(i) || rec.Value != fmt.Sprintf("v%04d", i) || rec.Key != fmt.Sprintf("k%d", i) {
			t.Fatalf("replay line %d: %s", i, line)
		}
	}

	// A new, empty cluster restores the topic and serves it from offset 0.
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	out := run("topics", "restore", "--object-store", testenv.ObjectStoreURL(s3), "--topic", "archive", "--bootstrap-server", b.GRPCAddr())
	t.Log(strings.TrimSpace(out))
	cons, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()), kgo.ConsumeTopics("archive"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	next := int64(0)
	for next < end {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d restored records", next, end)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset != next || string(r.Value) != fmt.Sprintf("v%04d", next) {
				t.Fatalf("restored record at offset %d is %q, want offset %d", r.Offset, r.Value, next)
			}
			next++
		})
	}
	// New records continue after the bucket's end.
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, "archive")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := ends.Lookup("archive", 0); o.Offset != end+1 {
		t.Fatalf("end offset after one new record: %d, want %d", o.Offset, end+1)
	}
}
