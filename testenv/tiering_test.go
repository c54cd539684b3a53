package testenv_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/testenv"
)

// A tiered topic whose local retention is far below what was produced keeps
// most of its history only in MinIO; a Kafka consumer reading from offset 0
// still receives every record in order, also after the leader changes.
func TestTieredTopicReadsBackFromMinIO(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-broker cluster with MinIO")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3, MinIO: true,
		BrokerSettings: map[string]string{"remote.log.manager.task.interval.ms": "200"}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var seeds []string
	for _, b := range c.Brokers() {
		seeds = append(seeds, b.KafkaAddr())
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic("history"),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	cfg := func(v string) *string { return &v }
	if _, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{
		"remote.storage.enable": cfg("true"), "segment.bytes": cfg("16384"), "local.retention.bytes": cfg("32768"),
	}, "history"); err != nil {
		t.Fatal(err)
	}
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
	md, err := adm.Metadata(ctx, "history")
	if err != nil {
		t.Fatal(err)
	}
	leader := c.Broker(md.Topics["history"].Partitions[0].Leader)
	var local []string
	waitFor(t, 60*time.Second, func() bool {
		local, _ = filepath.Glob(filepath.Join(leader.DataDir(), "history-0", "*.log"))
		return len(local) > 0 && len(local) <= 4
	}, "the leader's local log to shrink to its local retention")

	// What is in the bucket, read with minio-go, not through the broker.
	s3 := c.MinIO().S3()
	mc, err := minio.New(strings.TrimPrefix(s3.Endpoint, "http://"), &minio.Options{
		Creds: credentials.NewStaticV4(s3.AccessKey, s3.SecretKey, ""), Region: s3.Region})
	if err != nil {
		t.Fatal(err)
	}
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
	waitFor(t, 30*time.Second, func() bool {
		md, err := adm.Metadata(ctx, "history")
		return err == nil && md.Topics["history"].Partitions[0].Leader != leader.ID() && md.Topics["history"].Partitions[0].Leader >= 0
	}, "a new leader")
	readAll("from the new leader")
}
