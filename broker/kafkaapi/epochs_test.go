package kafkaapi_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// leaderEpochOf is the leader epoch Metadata gives topic's partition 0.
func leaderEpochOf(t *testing.T, cl *kgo.Client, topic string) int32 {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctxFor(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	p := resp.Topics[0].Partitions[0]
	if p.LeaderEpoch < 0 {
		t.Fatalf("metadata gives leader epoch %d", p.LeaderEpoch)
	}
	return p.LeaderEpoch
}

// OffsetForLeaderEpoch tells a client where an epoch ends on the leader and
// fences a client whose idea of the current epoch is wrong, as Kafka does.
func TestOffsetForLeaderEpoch(t *testing.T) {
	addr, _ := startBroker(t, nil)
	cl := newClient(t, addr, kgo.DefaultProduceTopic("e"))
	ctx := ctxFor(t)
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "e"); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := cl.ProduceSync(ctx, kgo.StringRecord("v")).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	epoch := leaderEpochOf(t, cl, "e")

	ask := func(v int16, topic string, current, leaderEpoch int32) kmsg.OffsetForLeaderEpochResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrOffsetForLeaderEpochRequest()
		req.Version = v
		req.ReplicaID = -1
		rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.CurrentLeaderEpoch, rp.LeaderEpoch = current, leaderEpoch
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		// Straight to the broker, at version v: a client shards the
		// request by leader and negotiates its own version.
		vers := kversion.Stable()
		vers.SetMaxKeyVersion(req.Key(), v)
		raw, err := newClient(t, addr, kgo.MaxVersions(vers)).Broker(1).Request(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return raw.(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0]
	}
	for v := int16(0); v <= 4; v++ {
		p := ask(v, "e", epoch, epoch)
		if p.ErrorCode != 0 || p.EndOffset != 5 || (v >= 1 && p.LeaderEpoch != epoch) {
			t.Errorf("v%d, current epoch: error %d, epoch %d ends at %d; want it to end at the log end, 5", v, p.ErrorCode, p.LeaderEpoch, p.EndOffset)
		}
	}
	// An epoch before every epoch of the log ends where the log's first
	// epoch starts.
	if p := ask(4, "e", -1, epoch-1); epoch > 0 && (p.ErrorCode != 0 || p.EndOffset != 0) {
		t.Errorf("older epoch: error %d, end %d", p.ErrorCode, p.EndOffset)
	}
	if p := ask(4, "e", epoch, epoch+1); p.ErrorCode != 0 || p.LeaderEpoch != -1 || p.EndOffset != -1 {
		t.Errorf("a newer epoch than any: error %d, %d/%d; want -1/-1", p.ErrorCode, p.LeaderEpoch, p.EndOffset)
	}
	if p := ask(4, "e", epoch+1, epoch); p.ErrorCode != kerr.UnknownLeaderEpoch.Code {
		t.Errorf("a current epoch ahead of the leader's: error %d, want UNKNOWN_LEADER_EPOCH", p.ErrorCode)
	}
	if epoch > 0 {
		if p := ask(4, "e", epoch-1, epoch); p.ErrorCode != kerr.FencedLeaderEpoch.Code {
			t.Errorf("a stale current epoch: error %d, want FENCED_LEADER_EPOCH", p.ErrorCode)
		}
	}
	// v0-v1 carry no current epoch: nothing to fence.
	if p := ask(1, "e", epoch+1, epoch); p.ErrorCode != 0 {
		t.Errorf("v1: error %d", p.ErrorCode)
	}
	if p := ask(4, "missing", -1, 0); p.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("unknown topic: error %d", p.ErrorCode)
	}
	if p := ask(4, "__consumer_offsets", 0, 0); p.ErrorCode != 0 || p.EndOffset != -1 {
		t.Errorf("internal topic: error %d, end %d", p.ErrorCode, p.EndOffset)
	}
}

// Fetch fences a consumer whose leader epoch differs from the leader's, as
// Kafka does: a newer one means this broker has not yet learned of a
// leader change the client has seen, so its log may be a deposed
// leader's; an older one means the client's metadata is stale. A fetch
// session keeps the epoch of each partition as it keeps the offset.
func TestFetchFencesByLeaderEpoch(t *testing.T) {
	addr, _ := startBroker(t, nil)
	cl := newClient(t, addr, kgo.DefaultProduceTopic("fe"))
	ctx := ctxFor(t)
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "fe"); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, kgo.StringRecord("v")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	epoch := leaderEpochOf(t, cl, "fe")
	fc := fetchClient(t, addr, 12)

	fetch := func(topic string, id, sessionEpoch int32, current *int32) (*kmsg.FetchResponse, int16) {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 10, 1, 1<<20
		req.SessionID, req.SessionEpoch = id, sessionEpoch
		if current != nil {
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = topic
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 1<<20, *current
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
		}
		resp, err := req.RequestWith(ctx, fc)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ErrorCode != 0 {
			t.Fatalf("fetch error %d", resp.ErrorCode)
		}
		if len(resp.Topics) == 0 {
			return resp, -1 // not answered
		}
		return resp, resp.Topics[0].Partitions[0].ErrorCode
	}
	ptr := func(e int32) *int32 { return &e }

	full, code := fetch("fe", 0, 0, ptr(epoch))
	if code != 0 || full.SessionID == 0 {
		t.Fatalf("fetch at the leader's epoch: error %d, session %d", code, full.SessionID)
	}
	if _, code := fetch("fe", full.SessionID, 1, ptr(epoch+1)); code != kerr.UnknownLeaderEpoch.Code {
		t.Errorf("an epoch ahead of the leader's: error %d, want UNKNOWN_LEADER_EPOCH", code)
	}
	// The session keeps the epoch: the partition is fenced again, unnamed.
	if _, code := fetch("fe", full.SessionID, 2, nil); code != kerr.UnknownLeaderEpoch.Code {
		t.Errorf("incremental fetch after an epoch ahead: error %d, want UNKNOWN_LEADER_EPOCH", code)
	}
	if _, code := fetch("fe", full.SessionID, 3, ptr(-1)); code != 0 {
		t.Errorf("no epoch: error %d", code)
	}
	if epoch > 0 {
		if _, code := fetch("fe", 0, -1, ptr(epoch-1)); code != kerr.FencedLeaderEpoch.Code {
			t.Errorf("a stale epoch: error %d, want FENCED_LEADER_EPOCH", code)
		}
	}
	if _, code := fetch("__consumer_offsets", 0, -1, ptr(1)); code != kerr.UnknownLeaderEpoch.Code {
		t.Errorf("internal topic, epoch 1: error %d, want UNKNOWN_LEADER_EPOCH", code)
	}
	if _, code := fetch("__consumer_offsets", 0, -1, ptr(0)); code != 0 {
		t.Errorf("internal topic, epoch 0: error %d", code)
	}
	t.Logf("leader epoch %d", epoch)
}
