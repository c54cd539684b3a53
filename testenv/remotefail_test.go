package testenv_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// While MinIO is down, a Kafka fetch below the local log start was
// answered UNKNOWN_SERVER_ERROR and nothing was logged. It must be answered
// KAFKA_STORAGE_ERROR, which clients retry, with a log line naming the
// partition, offset and cause and a metric counting the failures; also
// after a restart, when the broker could not read the partition's manifest
// (where it would otherwise say OFFSET_OUT_OF_RANGE and make a consumer
// reset past records the bucket holds). A consumer started during the
// outage reads every record from offset 0 once MinIO is back.
func TestRemoteReadFailuresAreRetriable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster with MinIO")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 1, MinIO: true,
		BrokerSettings: map[string]string{"log.segment.min.bytes": "1024", "remote.log.manager.task.interval.ms": "200"}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := c.Brokers()[0]
	cl, adm, seeds := testenvtest.KafkaClient(t, c, kgo.DefaultProduceTopic("cold"), kgo.ProducerBatchCompression(kgo.NoCompression()))
	testenvtest.CreateKafkaTopic(ctx, t, adm, "cold", 1, map[string]string{
		"remote.storage.enable": "true", "segment.bytes": "16384", "local.retention.bytes": "16384",
	})
	const n = 1000
	for i := 0; i < n; i += 20 {
		var recs []*kgo.Record
		for j := i; j < i+20; j++ {
			recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, "%06d-%0150d", j, j)})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	await.True(t, 60*time.Second, "the oldest records to be only in MinIO", func() bool {
		return metricValue(t, b, "strata_tiering_upload_backlog_bytes") == 0 && testenvtest.BucketEnd(t, c, "cold", 0) >= n/2 && localStart(t, b, "cold") > 0
	})

	if err := c.MinIO().Stop(); err != nil {
		t.Fatal(err)
	}
	if code := fetchCode(t, b.KafkaAddr(), "cold", 0); code != kerr.KafkaStorageError.Code {
		t.Fatalf("fetch at offset 0 with MinIO down: %v, want KAFKA_STORAGE_ERROR", kerr.ErrorForCode(code))
	}
	if got := metricValue(t, b, "strata_tiering_remote_read_errors_total"); got < 1 {
		t.Fatalf("strata_tiering_remote_read_errors_total is %v after a failed remote read", got)
	}
	if tail := b.LogTail(50); !strings.Contains(tail, "remote read failed") || !strings.Contains(tail, `"partition":0`) || !strings.Contains(tail, `"offset":0`) {
		t.Fatalf("no log line naming the failed remote read:\n%s", tail)
	}

	// Restarted, the broker cannot read the manifest.
	if err := b.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if code := fetchCode(t, b.KafkaAddr(), "cold", 0); code != kerr.KafkaStorageError.Code {
		t.Fatalf("fetch at offset 0 with MinIO down after a restart: %v, want KAFKA_STORAGE_ERROR", kerr.ErrorForCode(code))
	}

	// A consumer from the start, during the outage: it retries until MinIO
	// is back, then reads everything in order.
	cons, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics("cold"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	pollCtx, stopPoll := context.WithTimeout(ctx, 3*time.Second)
	if fs := cons.PollFetches(pollCtx); len(fs.Records()) > 0 {
		t.Fatalf("the consumer read %d records from offset %d with MinIO down", len(fs.Records()), fs.Records()[0].Offset)
	}
	stopPoll()
	if err := c.MinIO().Start(ctx); err != nil {
		t.Fatal(err)
	}
	next := int64(0)
	for next < n {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records after MinIO came back", next, n)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch error: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			if want := fmt.Sprintf("%06d-%0150d", next, next); r.Offset != next || string(r.Value) != want {
				t.Fatalf("record at offset %d is %.20q..., want offset %d", r.Offset, r.Value, next)
			}
			next++
		})
	}
}

// fetchCode sends one Fetch (v11) of topic's partition 0 at offset on its
// own connection and returns the partition's error code.
func fetchCode(t testing.TB, addr, topic string, offset int64) int16 {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := kmsg.NewPtrFetchRequest()
	req.Version = 11
	req.ReplicaID = -1
	req.MaxBytes = 1 << 20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.FetchOffset = offset
	rp.PartitionMaxBytes = 1 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	body, err := testenvtest.RoundTrip(conn, req, 1, time.Minute)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = req.Version
	if err := resp.ReadFrom(body); err != nil {
		t.Fatalf("decode fetch response: %v", err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch response %+v", resp)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// localStart is where the broker's local log of topic's partition 0
// starts: the base offset of its first segment file.
func localStart(t testing.TB, b *testenv.Broker, topic string) int64 {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(b.DataDir(), topic+"-0", "*.log"))
	if err != nil || len(files) == 0 {
		return -1
	}
	slices.Sort(files) // named by zero-padded base offset
	base, err := strconv.ParseInt(strings.TrimSuffix(filepath.Base(files[0]), ".log"), 10, 64)
	if err != nil {
		t.Fatalf("segment file %s: %v", files[0], err)
	}
	return base
}
