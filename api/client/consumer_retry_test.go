package client_test

import (
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-broker/strata/api/client"
	"github.com/strata-broker/strata/api/client/clienttest"
)

// pollN polls a following consumer until it has n records.
func pollN(t *testing.T, cons *client.Consumer, n int) []client.Record {
	t.Helper()
	ctx := testCtx(t)
	var out []client.Record
	for len(out) < n {
		recs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatalf("poll after %d of %d records: %v", len(out), n, err)
		}
		out = append(out, recs...)
	}
	return out
}

func values(from, to int) []client.Record {
	var recs []client.Record
	for i := from; i < to; i++ {
		recs = append(recs, client.Record{Partition: 0, Value: fmt.Appendf(nil, "v%d", i)})
	}
	return recs
}

func TestFollowSurvivesUnavailableStream(t *testing.T) {
	srv := clienttest.NewServer(t)
	c := dial(t, srv.Addr)
	createTopic(t, c, "follow", 1)
	p := newProducer(t, c, client.ProducerOptions{})
	cons := newConsumer(t, c, client.ConsumerOptions{Topic: "follow", Follow: true})

	produceAll(t, p, "follow", values(0, 5))
	got := pollN(t, cons, 5)

	// The broker restarts: its open streams end with Unavailable.
	srv.EndFetchStreams(status.Error(codes.Unavailable, "broker is shutting down"))
	produceAll(t, p, "follow", values(5, 10))
	got = append(got, pollN(t, cons, 5)...)
	for i, r := range got {
		if want := fmt.Sprintf("v%d", i); string(r.Value) != want || r.Offset != int64(i) {
			t.Fatalf("record %d: offset %d value %q, want offset %d value %q", i, r.Offset, r.Value, i, want)
		}
	}
	streams := srv.FetchStreams()
	if len(streams) != 2 {
		t.Fatalf("%d FetchStream calls, want 2 (one reopened)", len(streams))
	}
	if off := streams[1].GetPartitions()[0].GetOffset(); off != 5 {
		t.Fatalf("stream reopened at offset %d, want 5 (the consumer's position)", off)
	}
}

func TestFollowReturnsOtherStreamErrors(t *testing.T) {
	srv := clienttest.NewServer(t)
	c := dial(t, srv.Addr)
	createTopic(t, c, "follow", 1)
	p := newProducer(t, c, client.ProducerOptions{})
	cons := newConsumer(t, c, client.ConsumerOptions{Topic: "follow", Follow: true})
	produceAll(t, p, "follow", values(0, 1))
	pollN(t, cons, 1)
	srv.EndFetchStreams(status.Error(codes.PermissionDenied, "no"))
	if _, err := cons.Poll(testCtx(t)); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("poll: %v, want PermissionDenied", err)
	}
}
