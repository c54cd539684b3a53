package kafkaapi_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/api/client"
	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/testenv"
)

// broker runs a whole broker in-process and returns its Kafka and gRPC
// addresses.
func startBroker(t testing.TB, settings map[string]string) (kafka, grpc string) {
	t.Helper()
	a := testenv.StartInProcessAddrs(t, settings)
	return a.Kafka.String(), a.GRPC.String()
}

func newClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// consumeAll reads n records of topic from the start of every partition.
func consumeAll(t *testing.T, addr, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := newClient(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx := ctxFor(t)
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", len(out), n, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s-%d: %v", topic, p, err) })
		out = append(out, fs.Records()...)
	}
	return out
}

func TestProduceConsumeWithFranzGo(t *testing.T) {
	addr, _ := startBroker(t, nil)
	ctx := ctxFor(t)
	adm := kadm.NewClient(newClient(t, addr))
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, "orders"); err != nil {
		t.Fatal(err)
	}
	// Default options: idempotent, batched, compressed (snappy et al).
	for _, codec := range []kgo.CompressionCodec{kgo.NoCompression(), kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()} {
		p := newClient(t, addr, kgo.ProducerBatchCompression(codec), kgo.DefaultProduceTopic("orders"))
		var recs []*kgo.Record
		for i := range 20 {
			recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i%5), Value: fmt.Appendf(nil, "v%d", i)})
		}
		if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		for _, r := range recs {
			if want := recs[slices.IndexFunc(recs, func(o *kgo.Record) bool { return string(o.Key) == string(r.Key) })].Partition; r.Partition != want {
				t.Fatalf("key %s went to partitions %d and %d", r.Key, r.Partition, want)
			}
		}
	}
	got := consumeAll(t, addr, "orders", 100)
	if len(got) != 100 {
		t.Fatalf("consumed %d records, want 100", len(got))
	}
	seen := map[string]int{}
	for _, r := range got {
		seen[string(r.Value)]++
	}
	for i := range 20 {
		if n := seen[fmt.Sprintf("v%d", i)]; n != 5 {
			t.Fatalf("value v%d consumed %d times, want 5 (once per codec)", i, n)
		}
	}

	ends, err := adm.ListEndOffsets(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	starts, err := adm.ListStartOffsets(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		total += o.Offset
	})
	starts.Each(func(o kadm.ListedOffset) {
		if o.Offset != 0 {
			t.Fatalf("partition %d starts at %d", o.Partition, o.Offset)
		}
	})
	if total != 100 {
		t.Fatalf("end offsets sum to %d, want 100", total)
	}
}

func TestRecordsCrossFrontends(t *testing.T) {
	kafkaAddr, grpcAddr := startBroker(t, nil)
	ctx := ctxFor(t)
	gc, err := client.Dial(ctx, grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	if _, err := kadm.NewClient(newClient(t, kafkaAddr)).CreateTopic(ctx, 1, 1, nil, "bridge"); err != nil {
		t.Fatal(err)
	}
	p := newClient(t, kafkaAddr, kgo.DefaultProduceTopic("bridge"))
	if err := p.ProduceSync(ctx, &kgo.Record{Key: []byte("from"), Value: []byte("kafka")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	pr, err := gc.API().Produce(ctx, &stratav1.ProduceRequest{Topic: "bridge", Acks: stratav1.Acks_ACKS_ALL,
		Partitions: []*stratav1.ProducePartition{{Records: []*stratav1.Record{{Key: []byte("from"), Value: []byte("grpc")}}}}})
	if err != nil || pr.Partitions[0].Error != nil {
		t.Fatalf("gRPC produce: %v %v", err, pr)
	}
	recs := consumeAll(t, kafkaAddr, "bridge", 2)
	if string(recs[0].Value) != "kafka" || string(recs[1].Value) != "grpc" || recs[1].Offset != 1 {
		t.Fatalf("records through Kafka: %q@%d, %q@%d", recs[0].Value, recs[0].Offset, recs[1].Value, recs[1].Offset)
	}
	res, err := gc.API().Fetch(ctx, &stratav1.FetchRequest{Decode: true, Partitions: []*stratav1.FetchPartition{{Topic: "bridge"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Partitions[0].Records; len(got) != 2 || string(got[0].Value) != "kafka" || string(got[1].Value) != "grpc" {
		t.Fatalf("records through gRPC: %+v", got)
	}
}

func TestAdminThroughKadm(t *testing.T) {
	addr, _ := startBroker(t, nil)
	ctx := ctxFor(t)
	cl := newClient(t, addr)
	adm := kadm.NewClient(cl)

	retention := "3600000"
	created, err := adm.CreateTopic(ctx, 2, 1, map[string]*string{"retention.ms": &retention}, "events")
	if err != nil || created.Err != nil {
		t.Fatalf("create: %v %v", err, created.Err)
	}
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "events"); !errors.Is(err, kerr.TopicAlreadyExists) {
		t.Fatalf("second create: %v, want TOPIC_ALREADY_EXISTS", err)
	}
	bad := "not-a-number"
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"retention.ms": &bad}, "bad-config"); !errors.Is(err, kerr.InvalidConfig) {
		t.Fatalf("create with a bad config: %v, want INVALID_CONFIG", err)
	}

	rc, err := adm.DescribeTopicConfigs(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := rc.On("events", nil)
	if err != nil {
		t.Fatal(err)
	}
	if v := configValue(cfg, "retention.ms"); v != "3600000" {
		t.Fatalf("retention.ms = %q", v)
	}

	compact := "compact"
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "cleanup.policy", Value: &compact}}, "events"); err != nil {
		t.Fatal(err)
	}
	del := "delete"
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: &del}}, "events"); err != nil {
		t.Fatal(err)
	}
	rc, _ = adm.DescribeTopicConfigs(ctx, "events")
	cfg, _ = rc.On("events", nil)
	if v := configValue(cfg, "cleanup.policy"); v != "compact,delete" {
		t.Fatalf("cleanup.policy after set and append = %q", v)
	}
	resps, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "no.such.key", Value: &del}}, "events")
	if err == nil {
		err = resps[0].Err
	}
	if !errors.Is(err, kerr.InvalidConfig) {
		t.Fatalf("unknown key: %v, want INVALID_CONFIG", err)
	}

	cp, err := adm.CreatePartitions(ctx, 4, "events")
	if err != nil || cp["events"].Err != nil {
		t.Fatalf("create partitions: %v %v", err, cp["events"].Err)
	}
	md, err := adm.Metadata(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(md.Topics["events"].Partitions); n != 6 {
		t.Fatalf("events has %d partitions after adding 4 to 2", n)
	}

	dc, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if dc.ErrorCode != 0 || dc.ControllerID != 1 || len(dc.Brokers) != 1 || dc.Brokers[0].Host != "127.0.0.1" || len(dc.ClusterID) != 22 {
		t.Fatalf("describe cluster: %+v", dc)
	}

	del2, err := adm.DeleteTopics(ctx, "events")
	if err != nil || del2["events"].Err != nil {
		t.Fatalf("delete: %v %v", err, del2["events"].Err)
	}
	// kadm caches metadata: ask the broker itself.
	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("events")
	mreq.Topics = append(mreq.Topics, mt)
	mresp, err := mreq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if code := mresp.Topics[0].ErrorCode; code != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("metadata of a deleted topic: error %d, want UNKNOWN_TOPIC_OR_PARTITION", code)
	}
}

func configValue(rc kadm.ResourceConfig, name string) string {
	for _, c := range rc.Configs {
		if c.Key == name && c.Value != nil {
			return *c.Value
		}
	}
	return ""
}

func TestDeleteRecordsMovesLogStart(t *testing.T) {
	addr, _ := startBroker(t, nil)
	ctx := ctxFor(t)
	adm := kadm.NewClient(newClient(t, addr))
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "trim"); err != nil {
		t.Fatal(err)
	}
	p := newClient(t, addr, kgo.DefaultProduceTopic("trim"))
	for i := range 10 {
		if err := p.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "trim", Partition: 0, At: 4})
	res, err := adm.DeleteRecords(ctx, offs)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := res.Lookup("trim", 0)
	if r.Err != nil || r.LowWatermark != 4 {
		t.Fatalf("delete records: low watermark %d, err %v", r.LowWatermark, r.Err)
	}
	starts, err := adm.ListStartOffsets(ctx, "trim")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := starts.Lookup("trim", 0); o.Offset != 4 {
		t.Fatalf("earliest offset after delete records = %d, want 4", o.Offset)
	}
	offs = kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "trim", Partition: 0, At: 99})
	res, _ = adm.DeleteRecords(ctx, offs)
	if r, _ := res.Lookup("trim", 0); !errors.Is(r.Err, kerr.OffsetOutOfRange) {
		t.Fatalf("delete records past the end: %v, want OFFSET_OUT_OF_RANGE", r.Err)
	}
}

// A retried batch of an idempotent producer is acknowledged with its
// first offsets and not written again.
func TestIdempotentRetryIsNotWrittenTwice(t *testing.T) {
	addr, _ := startBroker(t, nil)
	ctx := ctxFor(t)
	cl := newClient(t, addr)
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "once"); err != nil {
		t.Fatal(err)
	}
	init := kmsg.NewPtrInitProducerIDRequest()
	initResp, err := init.RequestWith(ctx, cl)
	if err != nil || initResp.ErrorCode != 0 {
		t.Fatalf("init producer id: %v %v", err, initResp)
	}
	batch := func(seq int32, values ...string) []byte {
		return encodeBatch(t, initResp.ProducerID, initResp.ProducerEpoch, seq, values...)
	}
	produce := func(records []byte) kmsg.ProduceResponseTopicPartition {
		req := kmsg.NewPtrProduceRequest()
		req.Acks = -1
		req.TimeoutMillis = 5000
		tp := kmsg.NewProduceRequestTopic()
		tp.Topic = "once"
		pp := kmsg.NewProduceRequestTopicPartition()
		pp.Records = records
		tp.Partitions = append(tp.Partitions, pp)
		req.Topics = append(req.Topics, tp)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0].Partitions[0]
	}
	first := produce(batch(0, "a", "b"))
	again := produce(batch(0, "a", "b"))
	next := produce(batch(2, "c"))
	gap := produce(batch(7, "d"))
	if first.ErrorCode != 0 || again.ErrorCode != 0 || again.BaseOffset != first.BaseOffset {
		t.Fatalf("retry: first %+v, again %+v: want the same base offset, no error", first, again)
	}
	if next.ErrorCode != 0 || next.BaseOffset != 2 {
		t.Fatalf("next batch: %+v, want base offset 2", next)
	}
	if gap.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Fatalf("sequence gap: error %d, want OUT_OF_ORDER_SEQUENCE_NUMBER", gap.ErrorCode)
	}
	madeUp := encodeBatch(t, initResp.ProducerID+1<<40, 0, 0, "e")
	if got := produce(madeUp); got.ErrorCode != kerr.UnknownProducerID.Code {
		t.Fatalf("producer id never issued: error %d, want UNKNOWN_PRODUCER_ID", got.ErrorCode)
	}
	recs := consumeAll(t, addr, "once", 3)
	var vals []string
	for _, r := range recs {
		vals = append(vals, string(r.Value))
	}
	if !slices.Equal(vals, []string{"a", "b", "c"}) {
		t.Fatalf("log holds %q, want [a b c]", vals)
	}
}

// encodeBatch builds an uncompressed v2 batch of an idempotent producer.
func encodeBatch(t *testing.T, producerID int64, epoch int16, seq int32, values ...string) []byte {
	t.Helper()
	now := time.Now().UnixMilli()
	bld := record.NewBuilder(now, 0)
	bld.SetProducer(producerID, epoch, seq)
	for _, v := range values {
		bld.Append(&record.Record{Timestamp: now, Value: []byte(v)})
	}
	out, err := bld.Build(record.None)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Two franz-go members of one group split a topic's partitions, commit what
// they read, and a later member of the group resumes after the commits.
func TestConsumerGroupWithFranzGo(t *testing.T) {
	addr, _ := startBroker(t, map[string]string{"group.initial.rebalance.delay.ms": "0"})
	ctx := ctxFor(t)
	adm := kadm.NewClient(newClient(t, addr))
	if _, err := adm.CreateTopic(ctx, 4, 1, nil, "clicks"); err != nil {
		t.Fatal(err)
	}
	p := newClient(t, addr, kgo.DefaultProduceTopic("clicks"))
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			if err := p.ProduceSync(ctx, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "%d", i)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(0, 40)

	type assigned struct {
		sync.Mutex
		parts map[int]int32 // member → partitions held
	}
	held := &assigned{parts: map[int]int32{}}
	member := func(i int) *kgo.Client {
		return newClient(t, addr, kgo.ConsumerGroup("readers"), kgo.ConsumeTopics("clicks"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				held.Lock()
				held.parts[i] += int32(len(m["clicks"]))
				held.Unlock()
			}),
			kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				held.Lock()
				held.parts[i] -= int32(len(m["clicks"]))
				held.Unlock()
			}))
	}
	a, b := member(0), member(1)
	seen := map[string]bool{}
	var mu sync.Mutex
	poll := func(cl *kgo.Client) {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		fs := cl.PollFetches(pctx)
		mu.Lock()
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
		mu.Unlock()
		// A commit racing the second member's join may be refused with the
		// generation it was made in, as Kafka refuses it; the partition's
		// next owner reads on from the last commit and commits itself.
		err := cl.CommitUncommittedOffsets(ctx)
		if err != nil && !errors.Is(err, kerr.IllegalGeneration) && !errors.Is(err, kerr.RebalanceInProgress) && !errors.Is(err, kerr.UnknownMemberID) {
			t.Errorf("commit: %v", err)
		}
	}
	committed := func() int64 {
		offs, err := adm.FetchOffsets(ctx, "readers")
		if err != nil {
			t.Fatal(err)
		}
		total := int64(0)
		offs.Each(func(o kadm.OffsetResponse) { total += o.At })
		return total
	}
	await.NoError(t, 45*time.Second, "both members to read and commit all 40 records, two partitions each", func() error {
		poll(a)
		poll(b)
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		held.Lock()
		defer held.Unlock()
		if n != 40 || held.parts[0] != 2 || held.parts[1] != 2 {
			return fmt.Errorf("%d of 40 records read, partitions held %v", n, held.parts)
		}
		if c := committed(); c != 40 {
			return fmt.Errorf("committed offsets sum to %d", c)
		}
		return nil
	})
	a.Close()
	b.Close()

	// Committed offsets add up to everything read, with both members gone.
	if total := committed(); total != 40 {
		t.Fatalf("committed offsets sum to %d, want 40", total)
	}
	described, err := adm.DescribeGroups(ctx, "readers")
	if err != nil {
		t.Fatal(err)
	}
	if st := described["readers"].State; st != "Empty" {
		t.Fatalf("group state after both members left: %s, want Empty", st)
	}

	// A new member resumes after the commits: it sees only new records.
	produce(40, 45)
	c := member(2)
	got := map[string]bool{}
	for len(got) < 5 {
		fs := c.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("resumed member read %d of 5 new records", len(got))
		}
		fs.EachRecord(func(r *kgo.Record) { got[string(r.Value)] = true })
	}
	for v := range got {
		if n, _ := strconv.Atoi(v); n < 40 {
			t.Fatalf("resumed member read old record %s again", v)
		}
	}
}
