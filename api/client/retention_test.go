package client_test

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-broker/strata/api/client"
)

// DeleteRecords reaches each partition's leader and reports every
// partition's outcome on its own; PreviewRetention gathers every
// partition's preview and deletes nothing.
func TestDeleteRecordsAndPreviewRetention(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker with embedded etcd")
	}
	c := dial(t, startBroker(t))
	ctx := testCtx(t)
	createTopic(t, c, "trimmed", 3)
	var recs []client.Record
	for p := range int32(3) {
		for i := range 10 {
			recs = append(recs, client.Record{Partition: p, Value: fmt.Appendf(nil, "v%d", i)})
		}
	}
	produceAll(t, newProducer(t, c, client.ProducerOptions{}), "trimmed", recs)

	pv, err := c.PreviewRetention(ctx, "trimmed", map[string]string{"retention.bytes": "0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(pv.Partitions) != 3 {
		t.Fatalf("preview of %d partitions, want 3", len(pv.Partitions))
	}
	for i, p := range pv.Partitions {
		if p.GetPartition() != int32(i) || p.GetLocal().GetNewStartOffset() != 10 || p.GetLocal().GetSegments() != 1 {
			t.Errorf("preview of partition %d: %v", i, p)
		}
	}
	_, err = c.PreviewRetention(ctx, "trimmed", map[string]string{"retention.mss": "1"}, nil)
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("unknown key: %v, want InvalidArgument", err)
	}

	res, err := c.DeleteRecords(ctx, "trimmed", map[int32]int64{0: 4, 1: client.OffsetLatest, 2: 11, 7: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 4 {
		t.Fatalf("%d results, want 4: %+v", len(res), res)
	}
	if res[0] != (client.DeleteRecordsResult{Partition: 0, LowWatermark: 4}) || res[1] != (client.DeleteRecordsResult{Partition: 1, LowWatermark: 10}) {
		t.Errorf("results: %+v", res)
	}
	var perr *client.PartitionError
	if res[2].Partition != 2 || !errors.As(res[2].Err, &perr) || perr.Reason != "OFFSET_OUT_OF_RANGE" || res[2].LowWatermark != -1 {
		t.Errorf("beyond the high watermark: %+v", res[2])
	}
	if res[3].Partition != 7 || status.Code(res[3].Err) != codes.NotFound {
		t.Errorf("no such partition: %+v", res[3])
	}
	starts, err := c.ListOffsets(ctx, "trimmed", []int32{0, 1, 2}, client.OffsetEarliest)
	if err != nil {
		t.Fatal(err)
	}
	if starts[0] != 4 || starts[1] != 10 || starts[2] != 0 {
		t.Errorf("earliest offsets after deleting: %v", starts)
	}
	if _, err := c.DeleteRecords(ctx, "nope", map[int32]int64{0: 1}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown topic: %v", err)
	}
}
