package grpcapi

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// The isolation level reaches the broker, and the last stable offset comes
// back, through Fetch, FetchStream and ListOffsets. No transaction can be
// opened through the API yet, so the last stable offset is the high
// watermark here; the broker's own tests cover open and aborted ones.
func TestIsolationLevelThroughTheAPI(t *testing.T) {
	c, _ := startBroker(t)
	ctx := context.Background()
	createTopic(t, c, "iso", 1)
	produce(t, c, "iso", 0, 0, 3)

	req := &stratav1.FetchRequest{
		Partitions:     []*stratav1.FetchPartition{{Topic: "iso", Partition: 0}},
		IsolationLevel: stratav1.IsolationLevel_READ_COMMITTED,
	}
	resp, err := c.Fetch(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	pr := resp.GetPartitions()[0]
	if next, err := checkBatches(pr.GetRecordBatches(), 0); err != nil || next != 3 {
		t.Fatalf("read_committed fetch: records to %d, %v; want 3", next, err)
	}
	if pr.LastStableOffset == nil || pr.GetLastStableOffset() != 3 || pr.GetHighWatermark() != 3 {
		t.Fatalf("read_committed fetch: last stable offset %v (set %v), high watermark %d; want 3, 3",
			pr.GetLastStableOffset(), pr.LastStableOffset != nil, pr.GetHighWatermark())
	}

	// An empty partition's last stable offset, 0, is sent too.
	createTopic(t, c, "empty", 1)
	resp, err = c.Fetch(ctx, &stratav1.FetchRequest{Partitions: []*stratav1.FetchPartition{{Topic: "empty", Partition: 0}}})
	if err != nil {
		t.Fatal(err)
	}
	if pr := resp.GetPartitions()[0]; pr.LastStableOffset == nil || pr.GetLastStableOffset() != 0 {
		t.Fatalf("empty partition: last stable offset %v, set %v; want 0, set", pr.GetLastStableOffset(), pr.LastStableOffset != nil)
	}

	stream, err := c.FetchStream(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if pr := first.GetPartitions()[0]; pr.GetLastStableOffset() != 3 || pr.GetNextOffset() != 3 {
		t.Fatalf("read_committed stream: last stable offset %d, next %d; want 3, 3", pr.GetLastStableOffset(), pr.GetNextOffset())
	}

	bad := &stratav1.FetchRequest{Partitions: req.Partitions, IsolationLevel: 7}
	if _, err := c.Fetch(ctx, bad); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("isolation level 7: %v, want InvalidArgument", err)
	}

	for _, iso := range []stratav1.IsolationLevel{stratav1.IsolationLevel_READ_UNCOMMITTED, stratav1.IsolationLevel_READ_COMMITTED} {
		lo, err := c.ListOffsets(ctx, &stratav1.ListOffsetsRequest{Topic: "iso", IsolationLevel: iso,
			Partitions: []*stratav1.ListOffsetsPartition{{Partition: 0, Timestamp: -1}}})
		if err != nil {
			t.Fatal(err)
		}
		if got := lo.GetPartitions()[0]; got.GetError() != nil || got.GetOffset() != 3 {
			t.Fatalf("ListOffsets latest, %v: %d, %v; want 3", iso, got.GetOffset(), got.GetError())
		}
	}
	if _, err := c.ListOffsets(ctx, &stratav1.ListOffsetsRequest{Topic: "iso", IsolationLevel: 7,
		Partitions: []*stratav1.ListOffsetsPartition{{Partition: 0, Timestamp: -1}}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("ListOffsets, isolation level 7: %v, want InvalidArgument", err)
	}
}
