package server_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/broker/server"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/testenv"
)

// startServer runs a whole broker process in-process and returns a client.
func startServer(t *testing.T, settings map[string]string) stratav1.StrataClient {
	t.Helper()
	conn, err := grpc.NewClient(testenv.StartInProcess(t, settings), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return stratav1.NewStrataClient(conn)
}

func batchOf(t testing.TB, n int, prefix string) []byte {
	t.Helper()
	b := record.NewBuilder(time.Now().UnixMilli(), 0)
	for i := 0; i < n; i++ {
		b.Append(&record.Record{Key: []byte(fmt.Sprintf("%s-k%d", prefix, i)), Value: []byte(fmt.Sprintf("%s-v%d", prefix, i))})
	}
	out, err := b.Build(record.None)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), out...)
}

func wantCode(t *testing.T, err error, want codes.Code, contains string) {
	t.Helper()
	if status.Code(err) != want {
		t.Fatalf("got %v, want code %v", err, want)
	}
	if !strings.Contains(status.Convert(err).Message(), contains) {
		t.Fatalf("message %q does not mention %q", status.Convert(err).Message(), contains)
	}
}

func decodeAll(t *testing.T, data []byte, from int64) []record.Record {
	t.Helper()
	var out []record.Record
	it := record.NewBatches(data)
	for it.Next() {
		recs, err := record.Decode(it.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Offset >= from {
				out = append(out, r)
			}
		}
	}
	if it.Err() != nil {
		t.Fatal(it.Err())
	}
	return out
}

func TestTopicAdminAndErrors(t *testing.T) {
	c := startServer(t, nil)
	ctx := context.Background()

	resp, err := c.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "orders", Partitions: 3, ReplicationFactor: 1,
		Configs: map[string]string{"retention.ms": "3600000"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(resp.GetTopic().GetPartitions()); got != 3 {
		t.Fatalf("created topic has %d partitions", got)
	}
	for _, p := range resp.GetTopic().GetPartitions() {
		if p.GetLeader() != 1 || len(p.GetIsr()) != 1 {
			t.Fatalf("partition %v", p)
		}
	}
	_, err = c.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "orders", Partitions: 1})
	wantCode(t, err, codes.AlreadyExists, "orders")
	_, err = c.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "bad/name", Partitions: 1})
	wantCode(t, err, codes.InvalidArgument, "bad/name")
	_, err = c.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "x", Partitions: 1, Configs: map[string]string{"retention.ms": "soon"}})
	wantCode(t, err, codes.InvalidArgument, "retention.ms")
	_, err = c.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "x", Partitions: 1, ReplicationFactor: 3})
	wantCode(t, err, codes.InvalidArgument, "replication factor 3")

	d, err := c.DescribeTopic(ctx, &stratav1.DescribeTopicRequest{Name: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string]string{}
	for _, e := range d.GetTopic().GetConfigs() {
		sources[e.GetName()] = e.GetSource() + "=" + e.GetValue()
	}
	if sources["retention.ms"] != "topic=3600000" || sources["segment.bytes"] != "default=1073741824" {
		t.Fatalf("config sources: retention.ms %q segment.bytes %q", sources["retention.ms"], sources["segment.bytes"])
	}

	_, err = c.AlterTopicConfigs(ctx, &stratav1.AlterTopicConfigsRequest{Name: "orders", Set: map[string]string{"max.message.bytes": "2048"}, Delete: []string{"retention.ms"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.AlterTopicConfigs(ctx, &stratav1.AlterTopicConfigsRequest{Name: "orders", Set: map[string]string{"retention.msx": "1"}})
	wantCode(t, err, codes.InvalidArgument, "retention.msx")

	// The altered max.message.bytes applies at once.
	_, err = c.Produce(ctx, &stratav1.ProduceRequest{Topic: "orders", Partitions: []*stratav1.ProducePartition{
		{Partition: 0, Records: []*stratav1.Record{{Value: bytes.Repeat([]byte("x"), 4096)}}}}})
	if err != nil {
		t.Fatal(err)
	}
	pr, err := c.Produce(ctx, &stratav1.ProduceRequest{Topic: "orders", Partitions: []*stratav1.ProducePartition{
		{Partition: 0, Records: []*stratav1.Record{{Value: bytes.Repeat([]byte("x"), 4096)}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if pe := pr.GetPartitions()[0].GetError(); codes.Code(pe.GetCode()) != codes.ResourceExhausted || !strings.Contains(pe.GetMessage(), "max.message.bytes") {
		t.Fatalf("oversized record: got %v", pe)
	}

	_, err = c.Produce(ctx, &stratav1.ProduceRequest{Topic: "nope", Partitions: []*stratav1.ProducePartition{{Partition: 0, Records: []*stratav1.Record{{Value: []byte("v")}}}}})
	wantCode(t, err, codes.NotFound, "nope")
	pr, err = c.Produce(ctx, &stratav1.ProduceRequest{Topic: "orders", Partitions: []*stratav1.ProducePartition{{Partition: 7, Records: []*stratav1.Record{{Value: []byte("v")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if codes.Code(pr.GetPartitions()[0].GetError().GetCode()) != codes.NotFound {
		t.Fatalf("unknown partition: %v", pr.GetPartitions()[0])
	}
	corrupt := batchOf(t, 3, "c")
	corrupt[len(corrupt)-1] ^= 0xff
	pr, err = c.Produce(ctx, &stratav1.ProduceRequest{Topic: "orders", Partitions: []*stratav1.ProducePartition{{Partition: 1, RecordBatches: corrupt}}})
	if err != nil {
		t.Fatal(err)
	}
	if pe := pr.GetPartitions()[0].GetError(); codes.Code(pe.GetCode()) != codes.InvalidArgument || !strings.Contains(pe.GetMessage(), "crc") {
		t.Fatalf("corrupt batch: got %v", pe)
	}
	_, err = c.Fetch(ctx, &stratav1.FetchRequest{Partitions: []*stratav1.FetchPartition{{Topic: "orders", Partition: 1, Offset: 5}}})
	if err != nil {
		t.Fatal(err)
	}

	lt, err := c.ListTopics(ctx, &stratav1.ListTopicsRequest{})
	if err != nil || len(lt.GetTopics()) != 1 || lt.GetTopics()[0].GetName() != "orders" {
		t.Fatalf("list: %v %v", lt, err)
	}
	if _, err := c.DeleteTopic(ctx, &stratav1.DeleteTopicRequest{Name: "orders"}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeTopic(ctx, &stratav1.DescribeTopicRequest{Name: "orders"})
	wantCode(t, err, codes.NotFound, "orders")
	_, err = c.DeleteTopic(ctx, &stratav1.DeleteTopicRequest{Name: "orders"})
	wantCode(t, err, codes.NotFound, "orders")
}

func TestProduceFetchListOffsets(t *testing.T) {
	c := startServer(t, nil)
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "events", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	// Raw batches: offsets are stamped densely by the broker.
	for i := 0; i < 3; i++ {
		pr, err := c.Produce(ctx, &stratav1.ProduceRequest{Topic: "events", Acks: stratav1.Acks_ACKS_ALL,
			Partitions: []*stratav1.ProducePartition{{Partition: 0, RecordBatches: batchOf(t, 10, fmt.Sprint("b", i))}}})
		if err != nil {
			t.Fatal(err)
		}
		if got := pr.GetPartitions()[0]; got.GetError() != nil || got.GetBaseOffset() != int64(i*10) || got.GetRecordCount() != 10 {
			t.Fatalf("produce %d: %v", i, got)
		}
	}
	// Structured keyed records land where Kafka's partitioner puts them.
	key := []byte("customer-42")
	pr, err := c.Produce(ctx, &stratav1.ProduceRequest{Topic: "events", Partitions: []*stratav1.ProducePartition{
		{Partition: -1, Records: []*stratav1.Record{{Key: key, Value: []byte("hello"), Headers: []*stratav1.Header{{Key: "h", Value: []byte("1")}}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	wantP := record.KeyPartition(key, 2)
	if got := pr.GetPartitions()[0].GetPartition(); got != wantP {
		t.Fatalf("keyed record went to partition %d, Kafka's partitioner picks %d", got, wantP)
	}

	f, err := c.Fetch(ctx, &stratav1.FetchRequest{Partitions: []*stratav1.FetchPartition{{Topic: "events", Partition: 0, Offset: 15}}})
	if err != nil {
		t.Fatal(err)
	}
	res := f.GetPartitions()[0]
	wantHW := int64(30)
	if wantP == 0 {
		wantHW = 31
	}
	if res.GetHighWatermark() != wantHW {
		t.Fatalf("high watermark %d, want %d", res.GetHighWatermark(), wantHW)
	}
	recs := decodeAll(t, res.GetRecordBatches(), 15)
	if int64(len(recs)) != wantHW-15 || recs[0].Offset != 15 || string(recs[0].Value) != "b1-v5" {
		t.Fatalf("fetched %d records from 15, first %+v", len(recs), recs[0])
	}
	if res.GetNextOffset() != wantHW {
		t.Fatalf("next offset %d", res.GetNextOffset())
	}

	// Decoded form.
	f, err = c.Fetch(ctx, &stratav1.FetchRequest{Decode: true, Partitions: []*stratav1.FetchPartition{{Topic: "events", Partition: wantP, Offset: 0}}})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, r := range f.GetPartitions()[0].GetRecords() {
		if string(r.GetKey()) == "customer-42" && string(r.GetValue()) == "hello" && len(r.GetHeaders()) == 1 {
			found = true
		}
	}
	if !found {
		t.Fatalf("structured record not found in decoded fetch: %v", f.GetPartitions()[0].GetRecords())
	}

	// Out of range.
	f, err = c.Fetch(ctx, &stratav1.FetchRequest{Partitions: []*stratav1.FetchPartition{{Topic: "events", Partition: 0, Offset: 999}}})
	if err != nil {
		t.Fatal(err)
	}
	if codes.Code(f.GetPartitions()[0].GetError().GetCode()) != codes.OutOfRange {
		t.Fatalf("offset 999: %v", f.GetPartitions()[0])
	}

	lo, err := c.ListOffsets(ctx, &stratav1.ListOffsetsRequest{Topic: "events", Partitions: []*stratav1.ListOffsetsPartition{
		{Partition: 0, Timestamp: -2}, {Partition: 0, Timestamp: -1}, {Partition: 0, Timestamp: time.Now().Add(time.Hour).UnixMilli()}, {Partition: 0, Timestamp: 0}}})
	if err != nil {
		t.Fatal(err)
	}
	got := []int64{}
	for _, p := range lo.GetPartitions() {
		got = append(got, p.GetOffset())
	}
	if fmt.Sprint(got) != fmt.Sprint([]int64{0, wantHW, -1, 0}) {
		t.Fatalf("list offsets %v", got)
	}
}

func TestLongPollAndFollow(t *testing.T) {
	c := startServer(t, nil)
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "tail", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	produce := func(prefix string) {
		if _, err := c.Produce(ctx, &stratav1.ProduceRequest{Topic: "tail", Partitions: []*stratav1.ProducePartition{{Partition: 0, RecordBatches: batchOf(t, 2, prefix)}}}); err != nil {
			t.Error(err)
		}
	}
	// A long poll returns as soon as data arrives, long before max_wait.
	fetched := make(chan *stratav1.FetchResponse, 1)
	go func() {
		f, err := c.Fetch(ctx, &stratav1.FetchRequest{MaxWaitMs: 60_000, MinBytes: 1, Partitions: []*stratav1.FetchPartition{{Topic: "tail", Partition: 0, Offset: 0}}})
		if err != nil {
			t.Error(err)
		}
		fetched <- f
	}()
	time.Sleep(100 * time.Millisecond) // let the fetch park; it must not return empty meanwhile
	select {
	case f := <-fetched:
		t.Fatalf("long poll returned before any data: %v", f)
	default:
	}
	produce("a")
	select {
	case f := <-fetched:
		if n := len(decodeAll(t, f.GetPartitions()[0].GetRecordBatches(), 0)); n != 2 {
			t.Fatalf("long poll got %d records", n)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("long poll did not wake on produce")
	}

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.FetchStream(sctx, &stratav1.FetchRequest{Partitions: []*stratav1.FetchPartition{{Topic: "tail", Partition: 0, Offset: 0}}})
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	produce("b")
	produce("c")
	for len(seen) < 6 {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range decodeAll(t, resp.GetPartitions()[0].GetRecordBatches(), int64(len(seen))) {
			seen = append(seen, string(r.Value))
		}
	}
	if fmt.Sprint(seen) != "[a-v0 a-v1 b-v0 b-v1 c-v0 c-v1]" {
		t.Fatalf("followed %v", seen)
	}
}

// Kafka refuses producer batches whose offsets do not match their records,
// and control batches from clients: accepting them would break dense offsets.
func TestProduceRejectsBatchesKafkaRejects(t *testing.T) {
	c := startServer(t, nil)
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "strict", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	gap := batchOf(t, 1, "gap")
	binary.BigEndian.PutUint32(gap[23:], 1<<30) // lastOffsetDelta: claims 2^30 offsets for one record
	binary.BigEndian.PutUint32(gap[17:], record.Checksum(gap))
	control := batchOf(t, 1, "ctl")
	binary.BigEndian.PutUint16(control[21:], 0x20) // control bit
	binary.BigEndian.PutUint32(control[17:], record.Checksum(control))
	for name, batch := range map[string][]byte{"offset gap": gap, "control batch": control} {
		pr, err := c.Produce(ctx, &stratav1.ProduceRequest{Topic: "strict", Partitions: []*stratav1.ProducePartition{{Partition: 0, RecordBatches: batch}}})
		if err != nil {
			t.Fatal(err)
		}
		if pe := pr.GetPartitions()[0].GetError(); codes.Code(pe.GetCode()) != codes.InvalidArgument {
			t.Errorf("%s: got %v, want INVALID_ARGUMENT", name, pe)
		}
	}
	lo, err := c.ListOffsets(ctx, &stratav1.ListOffsetsRequest{Topic: "strict", Partitions: []*stratav1.ListOffsetsPartition{{Partition: 0, Timestamp: -1}}})
	if err != nil {
		t.Fatal(err)
	}
	if end := lo.GetPartitions()[0].GetOffset(); end != 0 {
		t.Fatalf("log end offset %d after rejected batches, want 0", end)
	}
}

func TestCreateTopicLimits(t *testing.T) {
	c := startServer(t, nil)
	ctx := context.Background()
	_, err := c.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "huge", Partitions: 1<<31 - 1, ValidateOnly: true})
	wantCode(t, err, codes.InvalidArgument, "at most")
	if _, err := c.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "page.views", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "page_views", Partitions: 1})
	wantCode(t, err, codes.InvalidArgument, "collides")
}

// A follow-mode stream must not hold a broker's shutdown: it is ended with
// UNAVAILABLE so the client reconnects.
func TestShutdownEndsFollowStreams(t *testing.T) {
	addr, cancel, done := runUntilCancelled(t)
	conn, err := grpc.NewClient(addr.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := stratav1.NewStrataClient(conn)
	if _, err := c.CreateTopic(context.Background(), &stratav1.CreateTopicRequest{Name: "quiet", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	stream, err := c.FetchStream(context.Background(), &stratav1.FetchRequest{Partitions: []*stratav1.FetchPartition{{Topic: "quiet"}}})
	if err != nil {
		t.Fatal(err)
	}
	// The stream is established once the server has it; a Produce after it
	// proves the server is up and the stream parked in its wait.
	if _, err := c.Produce(context.Background(), &stratav1.ProduceRequest{Topic: "quiet", Partitions: []*stratav1.ProducePartition{{Partition: 0, Records: []*stratav1.Record{{Value: []byte("x")}}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err = stream.Recv()
	wantCode(t, err, codes.Unavailable, "shutting down")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// OAUTHBEARER offered without a way to validate tokens fails the start,
// naming the settings that would give one, rather than refusing every
// client later.
func TestOAuthBearerWithoutValidationFailsTheStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := server.Run(ctx, server.Config{NodeID: 1, DataDir: t.TempDir(), GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		KafkaAddr: "SASL_PLAINTEXT://127.0.0.1:0", EmbedEtcd: true, EtcdClientAddr: "127.0.0.1:0",
		Settings: map[string]string{"sasl.enabled.mechanisms": "OAUTHBEARER"}}, func(server.Addrs) { t.Error("the broker started") })
	if err == nil || !strings.Contains(err.Error(), "sasl.oauthbearer.jwks.endpoint.url") {
		t.Fatalf("Run: %v, want an error naming the validation settings", err)
	}
}

// An advertised address no other host could dial fails the start, naming
// the flag or setting that published it.
func TestUnusableAdvertisedAddressFailsTheStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  server.Config
		want string
	}{
		{name: "gRPC", cfg: server.Config{AdvertisedGRPCAddr: "0.0.0.0:9093"}, want: "--advertised-grpc-addr"},
		{name: "Kafka", cfg: server.Config{KafkaAddr: "127.0.0.1:0", AdvertisedKafkaAddr: "[::]:9092"}, want: "--kafka-advertised-addr"},
		{name: "Kafka listeners", cfg: server.Config{Settings: map[string]string{
			"listeners":                      "INTERNAL://127.0.0.1:0",
			"advertised.listeners":           "INTERNAL://0.0.0.0:9092",
			"listener.security.protocol.map": "INTERNAL:PLAINTEXT",
		}}, want: "advertised.listeners"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cfg := tc.cfg
			cfg.NodeID, cfg.DataDir, cfg.GRPCAddr, cfg.HTTPAddr = 1, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0"
			cfg.EmbedEtcd, cfg.EtcdClientAddr = true, "127.0.0.1:0"
			err := server.Run(ctx, cfg, func(server.Addrs) { t.Error("the broker started") })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

// runUntilCancelled starts a broker (embedded etcd, loopback ports, an
// hour to shut down: a test that sees Run return knows its streams ended)
// and returns its gRPC address, the cancel that shuts it down, and Run's
// result.
func runUntilCancelled(t *testing.T) (net.Addr, context.CancelFunc, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Config{NodeID: 1, DataDir: t.TempDir(), GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
			EmbedEtcd: true, EtcdClientAddr: "127.0.0.1:0", ShutdownTimeout: time.Hour}, func(a server.Addrs) { ready <- a.GRPC })
	}()
	select {
	case addr := <-ready:
		return addr, cancel, done
	case err := <-done:
		cancel()
		t.Fatal(err)
		return nil, nil, nil
	}
}
