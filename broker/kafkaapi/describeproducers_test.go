package kafkaapi_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeProducers lists a partition's idempotent and transactional
// producers from its producer state, an open transaction with its first
// offset.
func TestDescribeProducers(t *testing.T) {
	addr, _ := startBroker(t, nil)
	ctx := ctxFor(t)
	admin := newClient(t, addr)
	if _, err := kadm.NewClient(admin).CreateTopic(ctx, 1, 1, nil, "p"); err != nil {
		t.Fatal(err)
	}
	idem := newClient(t, addr, kgo.DefaultProduceTopic("p"))
	for range 3 {
		if err := idem.ProduceSync(ctx, kgo.StringRecord("v")).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	txn := newClient(t, addr, kgo.DefaultProduceTopic("p"), kgo.TransactionalID("tx"))
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txn.ProduceSync(ctx, kgo.StringRecord("t")).FirstErr(); err != nil {
		t.Fatal(err)
	}

	describe := func(topic string) kmsg.DescribeProducersResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrDescribeProducersRequest()
		rt := kmsg.NewDescribeProducersRequestTopic()
		rt.Topic, rt.Partitions = topic, []int32{0, 0}
		req.Topics = append(req.Topics, rt)
		raw, err := admin.Broker(1).Request(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		resp := raw.(*kmsg.DescribeProducersResponse)
		if n := len(resp.Topics[0].Partitions); n != 1 {
			t.Fatalf("%d answers for a partition asked twice, want 1", n)
		}
		return resp.Topics[0].Partitions[0]
	}
	p := describe("p")
	if p.ErrorCode != 0 || len(p.ActiveProducers) != 2 {
		t.Fatalf("error %d, producers %+v; want the two producers", p.ErrorCode, p.ActiveProducers)
	}
	var sawIdem, sawTxn bool
	for _, ap := range p.ActiveProducers {
		switch ap.CurrentTxnStartOffset {
		case -1:
			sawIdem = ap.LastSequence == 2 && ap.ProducerEpoch == 0 && ap.LastTimestamp > 0
		case 3:
			sawTxn = ap.LastSequence == 0 && ap.ProducerID >= 0
		}
	}
	if !sawIdem || !sawTxn {
		t.Fatalf("producers %+v: want the idempotent one at sequence 2 and the transaction open at offset 3", p.ActiveProducers)
	}
	if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	for _, ap := range describe("p").ActiveProducers {
		if ap.CurrentTxnStartOffset != -1 {
			t.Fatalf("after commit: %+v still has an open transaction", ap)
		}
	}
	if got := describe("missing").ErrorCode; got != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("unknown topic: error %d", got)
	}
}
