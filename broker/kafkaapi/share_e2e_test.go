package kafkaapi_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/internal/await"
)

type acquired struct {
	FirstOffset, LastOffset int64
	DeliveryCount           int16
}

func acquiredOf(rp kmsg.ShareFetchResponseTopicPartition) []acquired {
	var out []acquired
	for _, a := range rp.AcquiredRecords {
		out = append(out, acquired{a.FirstOffset, a.LastOffset, a.DeliveryCount})
	}
	return out
}

// shareFetch sends a ShareFetch for partition 0 of topic id and returns
// the partition's answer (zero if none).
func shareFetch(t *testing.T, cl *kgo.Client, id [16]byte, member string, epoch, maxRecords int32, acks ...kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch) (*kmsg.ShareFetchResponse, kmsg.ShareFetchResponseTopicPartition) {
	t.Helper()
	req := kmsg.NewPtrShareFetchRequest()
	group := "sg"
	req.GroupID, req.MemberID, req.ShareSessionEpoch = &group, &member, epoch
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes, req.MaxRecords, req.BatchSize = 100, 1, 1<<20, maxRecords, maxRecords
	p := kmsg.NewShareFetchRequestTopicPartition()
	p.Partition, p.PartitionMaxBytes, p.AcknowledgementBatches = 0, 1<<20, acks
	req.Topics = []kmsg.ShareFetchRequestTopic{{TopicID: id, Partitions: []kmsg.ShareFetchRequestTopicPartition{p}}}
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatalf("share fetch: %v", err)
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rt.TopicID == id && rp.Partition == 0 {
				return resp, rp
			}
		}
	}
	return resp, kmsg.ShareFetchResponseTopicPartition{}
}

func ackBatch(first, last int64, typ int8) kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch {
	return kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch{FirstOffset: first, LastOffset: last, AcknowledgeTypes: []int8{typ}}
}

func describeSPSO(t *testing.T, cl *kgo.Client, topic string) int64 {
	t.Helper()
	req := kmsg.NewPtrDescribeShareGroupOffsetsRequest()
	req.Groups = []kmsg.DescribeShareGroupOffsetsRequestGroup{{GroupID: "sg", Topics: []kmsg.DescribeShareGroupOffsetsRequestGroupTopic{{Topic: topic, Partitions: []int32{0}}}}}
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil || len(resp.Groups) != 1 || len(resp.Groups[0].Topics) != 1 || len(resp.Groups[0].Topics[0].Partitions) != 1 {
		t.Fatalf("describe share group offsets: %+v, %v", resp, err)
	}
	return resp.Groups[0].Topics[0].Partitions[0].StartOffset
}

// TestShareFetchAndAcknowledge drives a share group through the Kafka API
// with kmsg requests: two members get distinct records, acknowledgements
// (piggybacked and standalone) move the start offset, released records
// come back with their delivery count, and the session epochs are held.
func TestShareFetchAndAcknowledge(t *testing.T) {
	addr, _ := startBroker(t, nil)
	ctx := ctxFor(t)
	cl := newClient(t, addr)
	adm := kadm.NewClient(cl)
	created, err := adm.CreateTopic(ctx, 1, 1, nil, "queue")
	if err != nil || created.Err != nil {
		t.Fatalf("create topic: %v %v", err, created.Err)
	}
	id := [16]byte(created.ID)
	p := newClient(t, addr, kgo.DefaultProduceTopic("queue"), kgo.MaxBufferedRecords(1))
	for i := range 10 {
		if err := p.ProduceSync(ctx, kgo.StringRecord(fmt.Sprint(i))).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	// A new group starts at the log end (share.auto.offset.reset=latest):
	// set it to 0 first, as an empty group allows.
	alter := kmsg.NewPtrAlterShareGroupOffsetsRequest()
	alter.GroupID = "sg"
	alter.Topics = []kmsg.AlterShareGroupOffsetsRequestTopic{{Topic: "queue", Partitions: []kmsg.AlterShareGroupOffsetsRequestTopicPartition{{Partition: 0, StartOffset: 0}}}}
	if resp, err := alter.RequestWith(ctx, cl); err != nil || resp.ErrorCode != 0 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("alter share group offsets: %+v, %v", resp, err)
	}
	if got := describeSPSO(t, cl, "queue"); got != 0 {
		t.Fatalf("SPSO %d after alter, want 0", got)
	}

	respA, a := shareFetch(t, cl, id, "a", 0, 4)
	_, b := shareFetch(t, cl, id, "b", 0, 4)
	if respA.AcquisitionLockTimeoutMillis != 30000 {
		t.Errorf("acquisition lock timeout %d, want the default 30000", respA.AcquisitionLockTimeoutMillis)
	}
	if !slices.Equal(acquiredOf(a), []acquired{{FirstOffset: 0, LastOffset: 3, DeliveryCount: 1}}) ||
		!slices.Equal(acquiredOf(b), []acquired{{FirstOffset: 4, LastOffset: 7, DeliveryCount: 1}}) {
		t.Fatalf("a acquired %+v, b %+v; want 0-3 and 4-7", acquiredOf(a), acquiredOf(b))
	}
	if len(a.Records) == 0 {
		t.Fatal("a got no record batches")
	}

	// a accepts 0-1 and releases 2-3 with a ShareAcknowledge.
	ack := kmsg.NewPtrShareAcknowledgeRequest()
	group, member := "sg", "a"
	ack.GroupID, ack.MemberID, ack.ShareSessionEpoch = &group, &member, 1
	ack.Topics = []kmsg.ShareAcknowledgeRequestTopic{{TopicID: id, Partitions: []kmsg.ShareAcknowledgeRequestTopicPartition{{Partition: 0,
		AcknowledgementBatches: []kmsg.ShareAcknowledgeRequestTopicPartitionAcknowledgementBatch{
			{FirstOffset: 0, LastOffset: 1, AcknowledgeTypes: []int8{1}}, {FirstOffset: 2, LastOffset: 3, AcknowledgeTypes: []int8{2}}}}}}}
	ackResp, err := ack.RequestWith(ctx, cl)
	if err != nil || ackResp.ErrorCode != 0 || ackResp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("share acknowledge: %+v, %v", ackResp, err)
	}
	// b rejects its records on its next fetch and gets the released ones
	// (second delivery) and the rest.
	_, b = shareFetch(t, cl, id, "b", 1, 10, ackBatch(4, 7, 3))
	if b.AcknowledgeErrorCode != 0 {
		t.Fatalf("piggybacked reject: %s", kerr.ErrorForCode(b.AcknowledgeErrorCode))
	}
	if want := []acquired{{FirstOffset: 2, LastOffset: 3, DeliveryCount: 2}, {FirstOffset: 8, LastOffset: 9, DeliveryCount: 1}}; !slices.Equal(acquiredOf(b), want) {
		t.Fatalf("b acquired %+v, want %+v", acquiredOf(b), want)
	}
	if got := describeSPSO(t, cl, "queue"); got != 2 {
		t.Fatalf("SPSO %d, want 2", got)
	}
	// a acknowledging what it no longer holds is refused per partition.
	_, a = shareFetch(t, cl, id, "a", 2, 10, ackBatch(2, 3, 1))
	if a.AcknowledgeErrorCode != kerr.InvalidRecordState.Code {
		t.Fatalf("ack of records held by another member: %s", kerr.ErrorForCode(a.AcknowledgeErrorCode))
	}

	// Session epochs: a wrong one and an unknown member are refused.
	if resp, _ := shareFetch(t, cl, id, "a", 9, 10); resp.ErrorCode != kerr.InvalidShareSessionEpoch.Code {
		t.Errorf("wrong epoch: %s", kerr.ErrorForCode(resp.ErrorCode))
	}
	if resp, _ := shareFetch(t, cl, id, "nobody", 1, 10); resp.ErrorCode != kerr.ShareSessionNotFound.Code {
		t.Errorf("unknown session: %s", kerr.ErrorForCode(resp.ErrorCode))
	}

	// b accepts all it holds and closes its session: every record is done.
	if resp, b := shareFetch(t, cl, id, "b", -1, 0, ackBatch(2, 3, 1), ackBatch(8, 9, 1)); resp.ErrorCode != 0 || b.AcknowledgeErrorCode != 0 {
		t.Fatalf("final fetch: %s / %s", kerr.ErrorForCode(resp.ErrorCode), kerr.ErrorForCode(b.AcknowledgeErrorCode))
	}
	if got := describeSPSO(t, cl, "queue"); got != 10 {
		t.Fatalf("SPSO %d after everything was acknowledged, want 10", got)
	}

	del := kmsg.NewPtrDeleteShareGroupOffsetsRequest()
	del.GroupID = "sg"
	del.Topics = []kmsg.DeleteShareGroupOffsetsRequestTopic{{Topic: "queue"}}
	if resp, err := del.RequestWith(ctx, cl); err != nil || resp.ErrorCode != 0 || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("delete share group offsets: %+v, %v", resp, err)
	}
	if got := describeSPSO(t, cl, "queue"); got != -1 {
		t.Fatalf("SPSO %d after delete, want -1", got)
	}
}

// TestShareRecordsReleasedWhenConnectionCloses guards Kafka's rule that a
// share session belongs to its connection: a consumer whose connection
// closes gives up its records at once, so another member gets them long
// before their acquisition lock (30 s) would end.
func TestShareRecordsReleasedWhenConnectionCloses(t *testing.T) {
	addr, _ := startBroker(t, nil)
	ctx := ctxFor(t)
	cl := newClient(t, addr)
	created, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "dropped")
	if err != nil || created.Err != nil {
		t.Fatalf("create topic: %v %v", err, created.Err)
	}
	id := [16]byte(created.ID)
	p := newClient(t, addr, kgo.DefaultProduceTopic("dropped"))
	if err := p.ProduceSync(ctx, kgo.StringRecord("0"), kgo.StringRecord("1"), kgo.StringRecord("2")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	alter := kmsg.NewPtrAlterShareGroupOffsetsRequest()
	alter.GroupID = "sg"
	alter.Topics = []kmsg.AlterShareGroupOffsetsRequestTopic{{Topic: "dropped", Partitions: []kmsg.AlterShareGroupOffsetsRequestTopicPartition{{Partition: 0, StartOffset: 0}}}}
	if resp, err := alter.RequestWith(ctx, cl); err != nil || resp.ErrorCode != 0 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("alter share group offsets: %+v, %v", resp, err)
	}

	gone, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	if _, a := shareFetch(t, gone, id, "a", 0, 10); !slices.Equal(acquiredOf(a), []acquired{{0, 2, 1}}) {
		gone.Close()
		t.Fatalf("a acquired %+v, want 0-2", acquiredOf(a))
	}
	if _, b := shareFetch(t, cl, id, "b", 0, 10); len(b.AcquiredRecords) != 0 {
		t.Fatalf("b acquired %+v while a holds every record", acquiredOf(b))
	}
	gone.Close()

	epoch := int32(1)
	await.NoError(t, 10*time.Second, "a's records offered to b after a's connection closed", func() error {
		resp, b := shareFetch(t, cl, id, "b", epoch, 10)
		if resp.ErrorCode != 0 {
			return kerr.ErrorForCode(resp.ErrorCode)
		}
		epoch++
		if got := acquiredOf(b); !slices.Equal(got, []acquired{{0, 2, 2}}) {
			return fmt.Errorf("b acquired %+v, want 0-2 (second delivery)", got)
		}
		return nil
	})
}

// TestShareFetchRenewAcquiresNothing: a ShareFetch that renews locks
// (IsRenewAck, KIP-1222) hands out no records. Records acquired by it
// would go to a client that does not take them, held for a lock
// duration and counted as delivered.
func TestShareFetchRenewAcquiresNothing(t *testing.T) {
	addr, _ := startBroker(t, nil)
	ctx := ctxFor(t)
	cl := newClient(t, addr)
	created, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "renewed")
	if err != nil || created.Err != nil {
		t.Fatalf("create topic: %v %v", err, created.Err)
	}
	id := [16]byte(created.ID)
	p := newClient(t, addr, kgo.DefaultProduceTopic("renewed"))
	if err := p.ProduceSync(ctx, kgo.StringRecord("0"), kgo.StringRecord("1"), kgo.StringRecord("2"), kgo.StringRecord("3")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	alter := kmsg.NewPtrAlterShareGroupOffsetsRequest()
	alter.GroupID = "sg"
	alter.Topics = []kmsg.AlterShareGroupOffsetsRequestTopic{{Topic: "renewed", Partitions: []kmsg.AlterShareGroupOffsetsRequestTopicPartition{{Partition: 0, StartOffset: 0}}}}
	if resp, err := alter.RequestWith(ctx, cl); err != nil || resp.ErrorCode != 0 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("alter share group offsets: %+v, %v", resp, err)
	}
	if _, a := shareFetch(t, cl, id, "a", 0, 2); !slices.Equal(acquiredOf(a), []acquired{{0, 1, 1}}) {
		t.Fatalf("a acquired %+v, want 0-1", acquiredOf(a))
	}

	renew := kmsg.NewPtrShareFetchRequest()
	group, member := "sg", "a"
	renew.GroupID, renew.MemberID, renew.ShareSessionEpoch, renew.IsRenewAck = &group, &member, 1, true
	part := kmsg.NewShareFetchRequestTopicPartition()
	part.AcknowledgementBatches = []kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch{ackBatch(0, 1, 4)}
	renew.Topics = []kmsg.ShareFetchRequestTopic{{TopicID: id, Partitions: []kmsg.ShareFetchRequestTopicPartition{part}}}
	resp, err := renew.RequestWith(ctx, cl)
	if err != nil || resp.ErrorCode != 0 {
		t.Fatalf("renewing share fetch: %+v, %v", resp, err)
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rp.AcknowledgeErrorCode != 0 || len(rp.AcquiredRecords) != 0 {
				t.Fatalf("renewing share fetch answered %v and acquired %+v; want the renewal and nothing acquired", kerr.ErrorForCode(rp.AcknowledgeErrorCode), acquiredOf(rp))
			}
		}
	}
	if _, b := shareFetch(t, cl, id, "b", 0, 10); !slices.Equal(acquiredOf(b), []acquired{{2, 3, 1}}) {
		t.Fatalf("b acquired %+v, want 2-3 (not taken by a's renewal)", acquiredOf(b))
	}
}
