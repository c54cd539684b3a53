package client_test

import (
	"slices"
	"testing"
	"time"

	"github.com/strata-broker/strata/api/client"
	"github.com/strata-broker/strata/api/client/clienttest"
	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/internal/await"
)

func offsetsOf(recs []client.Record) []int64 {
	var out []int64
	for _, r := range recs {
		out = append(out, r.Offset)
	}
	return out
}

// A read_committed consumer reads to the last stable offset and no further:
// without Follow it ends there, OffsetLatest starts there, and with Follow it
// goes on once the transaction holding it back ends.
func TestReadCommittedConsumerStopsAtLastStableOffset(t *testing.T) {
	cluster := clienttest.NewCluster(t, 1)
	c := dial(t, cluster.Broker(1).Addr)
	const topic = "rc"
	createTopic(t, c, topic, 1)
	p := newProducer(t, c, client.ProducerOptions{})
	produceAll(t, p, topic, []client.Record{{Value: []byte("0")}, {Value: []byte("1")}, {Value: []byte("2")}})
	produceAll(t, p, topic, []client.Record{{Value: []byte("3")}, {Value: []byte("4")}})
	cluster.SetLastStableOffset(topic, 0, 3)

	got := consumeToEnd(t, newConsumer(t, c, client.ConsumerOptions{Topic: topic, ReadCommitted: true}))
	if !slices.Equal(offsetsOf(got), []int64{0, 1, 2}) {
		t.Fatalf("read_committed: offsets %v, want 0-2", offsetsOf(got))
	}
	got = consumeToEnd(t, newConsumer(t, c, client.ConsumerOptions{Topic: topic}))
	if !slices.Equal(offsetsOf(got), []int64{0, 1, 2, 3, 4}) {
		t.Fatalf("read_uncommitted: offsets %v, want 0-4", offsetsOf(got))
	}

	ctx := testCtx(t)
	following := newConsumer(t, c, client.ConsumerOptions{Topic: topic, ReadCommitted: true, Follow: true})
	var seen []client.Record
	for len(seen) < 3 {
		recs, err := following.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, recs...)
	}
	// A following consumer from the latest offset starts at the last stable
	// offset: its stream opens there.
	latest := newConsumer(t, c, client.ConsumerOptions{Topic: topic, ReadCommitted: true, Follow: true, Start: client.StartLatest})
	fromLatest := make(chan []client.Record, 1)
	go func() {
		var out []client.Record
		for len(out) < 2 {
			recs, err := latest.Poll(ctx)
			if err != nil {
				t.Error(err)
				break
			}
			out = append(out, recs...)
		}
		fromLatest <- out
	}()
	await.True(t, 30*time.Second, "a read_committed stream from offset 3", func() bool {
		for _, req := range cluster.Broker(1).FetchStreams() {
			if req.GetIsolationLevel() == stratav1.IsolationLevel_READ_COMMITTED && req.GetPartitions()[0].GetOffset() == 3 {
				return true
			}
		}
		return false
	})
	cluster.ClearLastStableOffset(topic, 0)
	for len(seen) < 5 {
		recs, err := following.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, recs...)
	}
	if !slices.Equal(offsetsOf(seen), []int64{0, 1, 2, 3, 4}) {
		t.Fatalf("following read_committed: offsets %v, want 0-4", offsetsOf(seen))
	}
	if got := <-fromLatest; !slices.Equal(offsetsOf(got), []int64{3, 4}) {
		t.Fatalf("read_committed from latest: offsets %v, want 3, 4", offsetsOf(got))
	}
}
