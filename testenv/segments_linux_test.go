package testenv_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// growthFDs counts the descriptors process pid holds.
func growthFDs(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// growthMemory is testenv.Memory, failing the test on error.
func growthMemory(t *testing.T, pid int) (rss, peak int64) {
	t.Helper()
	rss, peak, err := testenv.Memory(pid)
	if err != nil {
		t.Fatal(err)
	}
	return rss, peak
}

// Every segment used to keep its .log file open for the life of the
// partition, so a topic with tiny segments took one descriptor per
// segment: 3,000 produces with segment.bytes=1024 held 3,041 descriptors.
// Sealed segments are now opened through a cache of at most
// log.segment.open.files.max files, so the count stays bounded while the
// segments are written and while every one of them is read back.
func TestSealedSegmentFilesStayBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker; skipped with -short")
	}
	const (
		segments  = 1500
		openFiles = 40
		// slack covers what else the broker may open meanwhile: client
		// connections, index files written while sealing, etcd's files.
		slack = 40
	)
	dev := testenv.StartDev(t, testenv.DevOptions{ExtraArgs: []string{
		"--config", "log.segment.min.bytes=1024", // test-only: tiny segments
		"--config", "log.segment.open.files.max=" + strconv.Itoa(openFiles),
	}})
	pid := dev.Pid()
	api := testenvtest.Dial(t, dev.GRPCAddr)
	createTopic(t, api, "tiny-segments", 1, map[string]string{"segment.bytes": "1024"})
	baseline := growthFDs(t, pid)
	limit := baseline + openFiles + slack
	_, peakBefore := growthMemory(t, pid)

	// One record of 900 bytes per request: every batch fills a segment.
	value := make([]byte, 900)
	peak := baseline
	for i := range segments {
		ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
		resp, err := api.Produce(ctx, &stratav1.ProduceRequest{Topic: "tiny-segments", Acks: stratav1.Acks_ACKS_LEADER,
			Partitions: []*stratav1.ProducePartition{{Partition: 0, Records: []*stratav1.Record{{Key: recordKey(i), Value: value}}}}})
		cancel()
		if err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
		if e := resp.GetPartitions()[0].GetError(); e != nil {
			t.Fatalf("produce %d: %v", i, e)
		}
		if i%100 == 99 {
			peak = max(peak, growthFDs(t, pid))
		}
	}
	afterProduce := growthFDs(t, pid)
	peak = max(peak, afterProduce)

	// Read every segment back, from the first: each one's file is opened
	// again, and the cache must close others to make room.
	next, read := int64(0), 0
	for next < segments {
		ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
		resp, err := api.Fetch(ctx, &stratav1.FetchRequest{MaxBytes: 1 << 20, Decode: true,
			Partitions: []*stratav1.FetchPartition{{Topic: "tiny-segments", Partition: 0, Offset: next, MaxBytes: 1 << 20}}})
		cancel()
		if err != nil {
			t.Fatalf("fetch at %d: %v", next, err)
		}
		p := resp.GetPartitions()[0]
		if e := p.GetError(); e != nil {
			t.Fatalf("fetch at %d: %v", next, e)
		}
		for _, r := range p.GetRecords() {
			if i, ok := recordIndex(r.GetKey()); !ok || int64(i) != r.GetOffset() {
				t.Fatalf("offset %d holds key %q", r.GetOffset(), r.GetKey())
			}
			read++
		}
		if p.GetNextOffset() <= next {
			t.Fatalf("fetch at %d made no progress", next)
		}
		next = p.GetNextOffset()
		if next%100 == 0 {
			peak = max(peak, growthFDs(t, pid))
		}
	}
	if read != segments {
		t.Fatalf("read %d records back, produced %d", read, segments)
	}
	rss, peakAfter := growthMemory(t, pid)
	t.Logf("descriptors: %d before producing, %d after %d segments, peak %d (bound %d); RSS %d MiB, peak %d -> %d MiB",
		baseline, afterProduce, segments, peak, limit, rss>>20, peakBefore>>20, peakAfter>>20)
	if peak > limit {
		t.Fatalf("the broker held %d descriptors for %d segments; want at most %d (%d before, a cache of %d, slack %d)",
			peak, segments, limit, baseline, openFiles, slack)
	}
}

// growthKafka connects a franz-go client to addr, closed when the test ends.
func growthKafka(t *testing.T, addr string) (*kgo.Client, *kadm.Client) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl, kadm.NewClient(cl)
}

// growthTopics lists the topics whose names start with prefix.
func growthTopics(t *testing.T, api stratav1.StrataClient, prefix string) map[string]int32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	resp, err := api.ListTopics(ctx, &stratav1.ListTopicsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int32{}
	for _, tp := range resp.GetTopics() {
		if strings.HasPrefix(tp.GetName(), prefix) {
			out[tp.GetName()] = tp.GetPartitions()
		}
	}
	return out
}

// Any client could set segment.bytes as low as 1024 bytes, so one topic
// could make a broker hold a file per kilobyte written. A broker refuses
// segment.bytes below Kafka's 1 MiB with INVALID_CONFIG, at creation and
// when altered, on both APIs, and nothing is created. (log.segment.min.bytes
// lowers the minimum for tests; `strata dev` lowers it by default.)
func TestClientCannotSetTinySegments(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of processes")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 1})
	b := c.Brokers()[0]
	_, adm := growthKafka(t, b.KafkaAddr())
	api := testenvtest.Dial(t, b.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()

	tiny := "1024"
	resp, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"segment.bytes": &tiny}, "tiny-kafka")
	if err == nil {
		err = resp.Err
	}
	if !errors.Is(err, kerr.InvalidConfig) {
		t.Fatalf("CreateTopics with segment.bytes=1024: %v, want INVALID_CONFIG", err)
	}
	if !strings.Contains(resp.ErrMessage, "segment.bytes") {
		t.Errorf("error message %q does not name segment.bytes", resp.ErrMessage)
	}
	_, err = api.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "tiny-grpc", Partitions: 1, ReplicationFactor: 1,
		Configs: map[string]string{"segment.bytes": tiny}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("gRPC CreateTopic with segment.bytes=1024: %v, want InvalidArgument", err)
	}
	if got := growthTopics(t, api, "tiny-"); len(got) != 0 {
		t.Fatalf("refused topics were created: %v", got)
	}

	mib := "1048576"
	resp, err = adm.CreateTopic(ctx, 1, 1, map[string]*string{"segment.bytes": &mib}, "small")
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("CreateTopics with segment.bytes=1048576: %v", err)
	}
	alter, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "segment.bytes", Value: &tiny}}, "small")
	if err == nil {
		var r kadm.AlterConfigsResponse
		if r, err = alter.On("small", nil); err == nil {
			err = r.Err
		}
	}
	if !errors.Is(err, kerr.InvalidConfig) {
		t.Fatalf("IncrementalAlterConfigs segment.bytes=1024: %v, want INVALID_CONFIG", err)
	}
	configs, err := adm.DescribeTopicConfigs(ctx, "small")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := configs.On("small", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rc.Configs {
		if c.Key == "segment.bytes" && (c.Value == nil || *c.Value != mib) {
			t.Fatalf("segment.bytes is %v after a refused alter, want %s", c.MaybeValue(), mib)
		}
	}
}
