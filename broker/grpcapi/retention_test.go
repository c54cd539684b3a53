package grpcapi

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

func earliestOffset(t *testing.T, c stratav1.StrataClient, topic string, p int32) int64 {
	t.Helper()
	resp, err := c.ListOffsets(context.Background(), &stratav1.ListOffsetsRequest{Topic: topic,
		Partitions: []*stratav1.ListOffsetsPartition{{Partition: p, Timestamp: -2}}})
	if err != nil {
		t.Fatal(err)
	}
	r := resp.GetPartitions()[0]
	if r.GetError() != nil {
		t.Fatal(r.GetError())
	}
	return r.GetOffset()
}

// DeleteRecords moves the log start of the partitions this broker leads, as
// Kafka's: -1 is the high watermark, beyond it is OFFSET_OUT_OF_RANGE, and
// a partition led elsewhere is NOT_LEADER_OR_FOLLOWER.
func TestDeleteRecords(t *testing.T) {
	// Broker 2 leads partition 1 (replicas are placed round-robin).
	_, c, _ := serveBroker(t, testBroker{peers: []int32{2}})
	ctx := context.Background()
	createTopic(t, c, "t", 2)
	produce(t, c, "t", 0, 0, 10)
	produce(t, c, "t", 0, 10, 10)

	del := func(offsets ...[2]int64) []*stratav1.DeleteRecordsPartitionResult {
		t.Helper()
		req := &stratav1.DeleteRecordsRequest{Topic: "t"}
		for _, o := range offsets {
			req.Partitions = append(req.Partitions, &stratav1.DeleteRecordsPartition{Partition: int32(o[0]), Offset: o[1]})
		}
		resp, err := c.DeleteRecords(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetPartitions()) != len(offsets) {
			t.Fatalf("%d results for %d partitions", len(resp.GetPartitions()), len(offsets))
		}
		return resp.GetPartitions()
	}

	res := del([2]int64{0, 5}, [2]int64{1, 0})
	if res[0].GetPartition() != 0 || res[0].GetError() != nil || res[0].GetLowWatermark() != 5 {
		t.Fatalf("partition 0: %v", res[0])
	}
	if e := res[1].GetError(); e.GetReason() != "NOT_LEADER_OR_FOLLOWER" || codes.Code(e.GetCode()) != codes.Unavailable || res[1].GetLowWatermark() != -1 {
		t.Fatalf("partition 1, led by broker 2: %v", res[1])
	}
	if got := earliestOffset(t, c, "t", 0); got != 5 {
		t.Fatalf("earliest offset %d after deleting below 5", got)
	}
	fetched, err := c.Fetch(ctx, &stratav1.FetchRequest{Partitions: []*stratav1.FetchPartition{{Topic: "t", Partition: 0, Offset: 2, MaxBytes: 1 << 20}}})
	if err != nil {
		t.Fatal(err)
	}
	if e := fetched.GetPartitions()[0].GetError(); e.GetReason() != "OFFSET_OUT_OF_RANGE" {
		t.Fatalf("fetch below the new log start: %v", e)
	}

	// Beyond the high watermark: nothing changes.
	res = del([2]int64{0, 21})
	if e := res[0].GetError(); e.GetReason() != "OFFSET_OUT_OF_RANGE" || codes.Code(e.GetCode()) != codes.OutOfRange {
		t.Fatalf("beyond the high watermark: %v", res[0])
	}
	// Below the log start: nothing changes either, and the answer says where
	// it is.
	if res = del([2]int64{0, 3}); res[0].GetError() != nil || res[0].GetLowWatermark() != 5 {
		t.Fatalf("below the log start: %v", res[0])
	}
	// -1: everything consumers can read.
	if res = del([2]int64{0, -1}); res[0].GetError() != nil || res[0].GetLowWatermark() != 20 {
		t.Fatalf("to the high watermark: %v", res[0])
	}
	if got := earliestOffset(t, c, "t", 0); got != 20 {
		t.Fatalf("earliest offset %d after deleting to the high watermark", got)
	}

	_, err = c.DeleteRecords(ctx, &stratav1.DeleteRecordsRequest{Topic: "nope", Partitions: []*stratav1.DeleteRecordsPartition{{Partition: 0, Offset: 1}}})
	if status.Code(err) != codes.NotFound {
		t.Errorf("unknown topic: %v", err)
	}
	if _, err := c.DeleteRecords(ctx, &stratav1.DeleteRecordsRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("no topic: %v", err)
	}
}

// PreviewRetention answers for the partitions this broker leads with what
// the proposed overrides would delete, and deletes nothing.
func TestPreviewRetention(t *testing.T) {
	_, c, _ := serveBroker(t, testBroker{peers: []int32{2}})
	ctx := context.Background()
	createTopic(t, c, "t", 2)
	produce(t, c, "t", 0, 0, 10)
	produce(t, c, "t", 0, 10, 10)

	resp, err := c.PreviewRetention(ctx, &stratav1.PreviewRetentionRequest{Topic: "t", Set: map[string]string{"retention.bytes": "0"}})
	if err != nil {
		t.Fatal(err)
	}
	// retention.bytes=0 takes everything below the high watermark: here the
	// one segment, the active one (the log would roll).
	if len(resp.GetPartitions()) != 1 {
		t.Fatalf("preview of %d partitions, want only partition 0, which this broker leads: %v", len(resp.GetPartitions()), resp)
	}
	p := resp.GetPartitions()[0]
	l := p.GetLocal()
	if p.GetPartition() != 0 || p.GetLeader() != 1 || p.GetTiered() || p.GetRemote() != nil || p.GetHighWatermark() != 20 ||
		l.GetSegments() != 1 || l.GetBytes() < 20*valueSize || l.GetStartOffset() != 0 || l.GetNewStartOffset() != 20 {
		t.Fatalf("preview: %v", p)
	}
	var got string
	for _, e := range resp.GetConfigs() {
		if e.GetName() == "retention.bytes" {
			got = e.GetValue() + " " + e.GetSource()
		}
	}
	if got != "0 topic" {
		t.Errorf("previewed retention.bytes: %q", got)
	}
	if off := earliestOffset(t, c, "t", 0); off != 0 {
		t.Fatalf("the preview deleted records: earliest offset %d", off)
	}

	_, err = c.PreviewRetention(ctx, &stratav1.PreviewRetentionRequest{Topic: "t", Set: map[string]string{"retention.ms": "abc"}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `invalid value "abc" for retention.ms`) {
		t.Errorf("ill-typed override: %v", err)
	}
	_, err = c.PreviewRetention(ctx, &stratav1.PreviewRetentionRequest{Topic: "nope"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("unknown topic: %v", err)
	}
}
