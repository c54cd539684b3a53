package kafkaapi_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Without transactions (no client can open one yet), a read_committed
// consumer reads every record, and the broker's last stable offset is its
// high watermark.
func TestReadCommittedConsumerWithoutTransactions(t *testing.T) {
	addr, _ := startBroker(t, nil)
	ctx := ctxFor(t)
	if _, err := kadm.NewClient(newClient(t, addr)).CreateTopic(ctx, 1, 1, nil, "rc"); err != nil {
		t.Fatal(err)
	}
	prod := newClient(t, addr, kgo.DefaultProduceTopic("rc"))
	for i := range 5 {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte{byte('a' + i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cons := newClient(t, addr, kgo.ConsumeTopics("rc"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	var got []byte
	for len(got) < 5 {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %q: %v", got, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s-%d: %v", topic, p, err) })
		for _, r := range fs.Records() {
			got = append(got, r.Value...)
		}
	}
	if string(got) != "abcde" {
		t.Fatalf("read_committed consumer read %q, want abcde", got)
	}

	// The raw response: last stable offset = high watermark, an empty
	// aborted list, and ListOffsets latest the same for both levels.
	req := kmsg.NewPtrFetchRequest()
	req.IsolationLevel = 1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = "rc"
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes = 1 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, fetchClient(t, addr, 12)) // names the topic
	if err != nil {
		t.Fatal(err)
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 || p.HighWatermark != 5 || p.LastStableOffset != 5 || len(p.AbortedTransactions) != 0 {
		t.Fatalf("read_committed fetch: error %d, high watermark %d, last stable offset %d, aborted %+v; want 0, 5, 5, none",
			p.ErrorCode, p.HighWatermark, p.LastStableOffset, p.AbortedTransactions)
	}
	for _, iso := range []int8{0, 1} {
		lo := kmsg.NewPtrListOffsetsRequest()
		lo.IsolationLevel = iso
		lt := kmsg.NewListOffsetsRequestTopic()
		lt.Topic = "rc"
		lp := kmsg.NewListOffsetsRequestTopicPartition()
		lp.Timestamp = -1
		lt.Partitions = append(lt.Partitions, lp)
		lo.Topics = append(lo.Topics, lt)
		lr, err := lo.RequestWith(ctx, prod)
		if err != nil {
			t.Fatal(err)
		}
		if got := lr.Topics[0].Partitions[0]; got.ErrorCode != 0 || got.Offset != 5 {
			t.Fatalf("ListOffsets latest, isolation %d: %d (error %d), want 5", iso, got.Offset, got.ErrorCode)
		}
	}
}
