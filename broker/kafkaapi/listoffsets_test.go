package kafkaapi_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// ListOffsets serves the specs of its newer versions: max timestamp (v7),
// earliest local (v8), latest tiered (v9), each with the leader epoch of
// the offset; a spec newer than the request's version, or no spec at all,
// is UNSUPPORTED_VERSION, and a wrong current leader epoch is fenced.
func TestListOffsetsNewerSpecs(t *testing.T) {
	addr, _ := startBroker(t, nil)
	ctx := ctxFor(t)
	cl := newClient(t, addr, kgo.DefaultProduceTopic("lo"))
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "lo"); err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Hour)
	for _, ms := range []int64{1000, 5000, 3000} {
		r := kgo.StringRecord("v")
		r.Timestamp = base.Add(time.Duration(ms) * time.Millisecond)
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	epoch := leaderEpochOf(t, cl, "lo")

	list := func(v int16, current int32, ts int64) kmsg.ListOffsetsResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrListOffsetsRequest()
		req.Version = v
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = "lo"
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.CurrentLeaderEpoch, rp.Timestamp = current, ts
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		vers := kversion.Stable()
		vers.SetMaxKeyVersion(req.Key(), v)
		raw, err := newClient(t, addr, kgo.MaxVersions(vers)).Broker(1).Request(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return raw.(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]
	}
	check := func(name string, p kmsg.ListOffsetsResponseTopicPartition, offset, ts int64) {
		t.Helper()
		if p.ErrorCode != 0 || p.Offset != offset || p.Timestamp != ts || p.LeaderEpoch != epoch {
			t.Errorf("%s: error %d offset %d timestamp %d epoch %d; want offset %d timestamp %d epoch %d",
				name, p.ErrorCode, p.Offset, p.Timestamp, p.LeaderEpoch, offset, ts, epoch)
		}
	}
	check("max timestamp", list(10, epoch, -3), 1, base.Add(5*time.Second).UnixMilli())
	check("earliest local", list(10, epoch, -4), 0, -1)
	check("latest", list(10, epoch, -1), 3, -1)
	check("earliest", list(10, epoch, -2), 0, -1)
	if p := list(10, epoch, -5); p.ErrorCode != 0 || p.Offset != -1 {
		t.Errorf("latest tiered of an untiered topic: error %d offset %d, want -1", p.ErrorCode, p.Offset)
	}
	for _, c := range []struct {
		v  int16
		ts int64
	}{{6, -3}, {7, -4}, {8, -5}, {10, -7}} {
		if p := list(c.v, -1, c.ts); p.ErrorCode != kerr.UnsupportedVersion.Code {
			t.Errorf("v%d, timestamp %d: error %d, want UNSUPPORTED_VERSION", c.v, c.ts, p.ErrorCode)
		}
	}
	if p := list(10, epoch+1, -1); p.ErrorCode != kerr.UnknownLeaderEpoch.Code {
		t.Errorf("a current epoch ahead: error %d, want UNKNOWN_LEADER_EPOCH", p.ErrorCode)
	}
}
