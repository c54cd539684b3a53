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
