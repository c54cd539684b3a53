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

// fetchClient is a client whose requests go at most at Fetch version v.
func fetchClient(t *testing.T, addr string, v int16) *kgo.Client {
	t.Helper()
	vs := kversion.Stable()
	vs.SetMaxKeyVersion(1, v)
	return newClient(t, addr, kgo.MaxVersions(vs))
}

func sessionFetch(t *testing.T, cl *kgo.Client, id, epoch int32, topic string, parts map[int32]int64, forget []int32) *kmsg.FetchResponse {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 10, 1, 1<<20
	req.SessionID, req.SessionEpoch = id, epoch
	if len(parts) > 0 {
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		for p, off := range parts {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, off, 1<<20
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	if len(forget) > 0 {
		ft := kmsg.NewFetchRequestForgottenTopic()
		ft.Topic, ft.Partitions = topic, forget
		req.ForgottenTopics = append(req.ForgottenTopics, ft)
	}
	resp, err := req.RequestWith(ctxFor(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// answered lists the partitions a fetch response carries.
func answered(resp *kmsg.FetchResponse) map[int32]kmsg.FetchResponseTopicPartition {
	out := map[int32]kmsg.FetchResponseTopicPartition{}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			out[rp.Partition] = rp
		}
	}
	return out
}

func produceTo(t *testing.T, cl *kgo.Client, topic string, p int32, n int) {
	t.Helper()
	for range n {
		r := &kgo.Record{Topic: topic, Partition: p, Value: []byte("v")}
		if err := cl.ProduceSync(ctxFor(t), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFetchSessionAnswersOnlyWhatChanged(t *testing.T) {
	addr, _ := startBroker(t, nil)
	ctx := ctxFor(t)
	prod := newClient(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if _, err := kadm.NewClient(prod).CreateTopic(ctx, 2, 1, nil, "s"); err != nil {
		t.Fatal(err)
	}
	produceTo(t, prod, "s", 0, 2)
	cl := fetchClient(t, addr, 12)

	full := sessionFetch(t, cl, 0, 0, "s", map[int32]int64{0: 0, 1: 0}, nil)
	if full.ErrorCode != 0 || full.SessionID == 0 || len(answered(full)) != 2 {
		t.Fatalf("full fetch: error %d, session %d, partitions %v", full.ErrorCode, full.SessionID, answered(full))
	}
	id := full.SessionID

	// Partition 0 at its end, nothing new anywhere: nothing answered, after
	// the long poll.
	start := time.Now()
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MinBytes, req.SessionID, req.SessionEpoch = 300, 1, id, 1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = "s"
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = 0, 2, 1<<20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	idle, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if idle.ErrorCode != 0 || idle.SessionID != id || len(answered(idle)) != 0 {
		t.Fatalf("idle incremental fetch: error %d, session %d, partitions %v", idle.ErrorCode, idle.SessionID, answered(idle))
	}
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Fatalf("incremental fetch with nothing new answered after %v, want the 300ms long poll", waited)
	}

	// New records on partition 1, which the request does not name: only it
	// is answered.
	produceTo(t, prod, "s", 1, 1)
	inc := sessionFetch(t, cl, id, 2, "s", nil, nil)
	got := answered(inc)
	if inc.ErrorCode != 0 || len(got) != 1 || len(got[1].RecordBatches) == 0 || got[1].HighWatermark != 1 {
		t.Fatalf("incremental fetch: error %d, partitions %v", inc.ErrorCode, got)
	}

	// Partition 1 forgotten: its new records are not fetched.
	produceTo(t, prod, "s", 1, 1)
	forgot := sessionFetch(t, cl, id, 3, "s", nil, []int32{1})
	if len(answered(forgot)) != 0 {
		t.Fatalf("after forgetting partition 1: partitions %v", answered(forgot))
	}

	for _, c := range []struct {
		name      string
		id, epoch int32
		want      int16
	}{
		{"old epoch", id, 3, kerr.InvalidFetchSessionEpoch.Code},
		{"future epoch", id, 9, kerr.InvalidFetchSessionEpoch.Code},
		{"unknown id", id + 1, 4, kerr.FetchSessionIDNotFound.Code},
	} {
		if r := sessionFetch(t, cl, c.id, c.epoch, "s", nil, nil); r.ErrorCode != c.want || r.SessionID != 0 || len(r.Topics) != 0 {
			t.Errorf("%s: error %d, session %d, want error %d", c.name, r.ErrorCode, r.SessionID, c.want)
		}
	}
	if r := sessionFetch(t, cl, id, 4, "s", nil, nil); r.ErrorCode != 0 {
		t.Fatalf("epoch 4 after refused fetches: error %d", r.ErrorCode)
	}

	// Another principal... is the same anonymous one here; another
	// connection of it keeps the session.
	other := fetchClient(t, addr, 12)
	if r := sessionFetch(t, other, id, 5, "s", nil, nil); r.ErrorCode != 0 || r.SessionID != id {
		t.Fatalf("the session from another connection: error %d, session %d", r.ErrorCode, r.SessionID)
	}

	// Epoch -1 closes it: a full fetch without a session.
	closed := sessionFetch(t, cl, id, -1, "s", map[int32]int64{0: 0}, nil)
	if closed.ErrorCode != 0 || closed.SessionID != 0 || len(answered(closed)) != 1 {
		t.Fatalf("closing fetch: error %d, session %d, partitions %v", closed.ErrorCode, closed.SessionID, answered(closed))
	}
	if r := sessionFetch(t, cl, id, 6, "s", nil, nil); r.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("closed session: error %d", r.ErrorCode)
	}
}

func TestFetchSessionEvictionAtTheCap(t *testing.T) {
	addr, _ := startBroker(t, map[string]string{"max.incremental.fetch.session.cache.slots": "1"})
	ctx := ctxFor(t)
	cl := fetchClient(t, addr, 12)
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, "e"); err != nil {
		t.Fatal(err)
	}
	a := sessionFetch(t, cl, 0, 0, "e", map[int32]int64{0: 0}, nil)
	if a.SessionID == 0 {
		t.Fatal("no session for the first fetch")
	}
	// As small as the one there and recent: no room, a fetch without one.
	if b := sessionFetch(t, cl, 0, 0, "e", map[int32]int64{1: 0}, nil); b.SessionID != 0 || b.ErrorCode != 0 {
		t.Fatalf("second session: id %d, error %d, want none", b.SessionID, b.ErrorCode)
	}
	if r := sessionFetch(t, cl, a.SessionID, 1, "e", nil, nil); r.ErrorCode != 0 {
		t.Fatalf("first session after a refused one: error %d", r.ErrorCode)
	}
	// Larger: it takes the slot.
	c := sessionFetch(t, cl, 0, 0, "e", map[int32]int64{0: 0, 1: 0}, nil)
	if c.SessionID == 0 || c.SessionID == a.SessionID {
		t.Fatalf("larger session: id %d", c.SessionID)
	}
	if r := sessionFetch(t, cl, a.SessionID, 2, "e", nil, nil); r.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("evicted session: error %d", r.ErrorCode)
	}
}

func fetchByID(t *testing.T, cl *kgo.Client, id [16]byte) kmsg.FetchResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MaxBytes, req.SessionEpoch = 10, 1<<20, -1
	rt := kmsg.NewFetchRequestTopic()
	rt.TopicID = id
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes = 1 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctxFor(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Version < 13 || len(resp.Topics) != 1 || resp.Topics[0].TopicID != id || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch v%d by id: %+v", resp.Version, resp.Topics)
	}
	return resp.Topics[0].Partitions[0]
}

func TestFetchByTopicID(t *testing.T) {
	addr, _ := startBroker(t, nil)
	ctx := ctxFor(t)
	cl := newClient(t, addr)
	adm := kadm.NewClient(cl)
	created, err := adm.CreateTopic(ctx, 1, 1, nil, "ids")
	if err != nil {
		t.Fatal(err)
	}
	produceTo(t, cl, "ids", 0, 3)
	if p := fetchByID(t, cl, created.ID); p.ErrorCode != 0 || p.HighWatermark != 3 || len(p.RecordBatches) == 0 {
		t.Fatalf("fetch by id: error %d, high watermark %d, %d bytes", p.ErrorCode, p.HighWatermark, len(p.RecordBatches))
	}
	if p := fetchByID(t, cl, [16]byte{1, 2, 3}); p.ErrorCode != kerr.UnknownTopicID.Code {
		t.Fatalf("unknown id: error %d", p.ErrorCode)
	}
	if _, err := adm.DeleteTopic(ctx, "ids"); err != nil {
		t.Fatal(err)
	}
	again, err := adm.CreateTopic(ctx, 1, 1, nil, "ids")
	if err != nil {
		t.Fatal(err)
	}
	if again.ID == created.ID {
		t.Fatal("the topic created again has its old id")
	}
	if p := fetchByID(t, cl, created.ID); p.ErrorCode != kerr.UnknownTopicID.Code {
		t.Fatalf("the deleted topic's id: error %d", p.ErrorCode)
	}
	if p := fetchByID(t, cl, again.ID); p.ErrorCode != 0 || p.HighWatermark != 0 {
		t.Fatalf("the new topic's id: error %d, high watermark %d", p.ErrorCode, p.HighWatermark)
	}
}
