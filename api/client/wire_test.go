package client

import (
	"testing"

	"google.golang.org/protobuf/proto"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/record"
)

func testBatch(t *testing.T, p *Producer, values ...string) *batch {
	t.Helper()
	bt := &batch{b: record.NewBuilder(1000, 0)}
	bt.pool = &batchPool{p: p, bt: bt}
	bt.refs.Store(1)
	for _, v := range values {
		bt.b.Append(&record.Record{Value: []byte(v)})
	}
	data, err := bt.b.Build(record.None)
	if err != nil {
		t.Fatal(err)
	}
	bt.data = data
	return bt
}

// The hand-written encoding must be exactly what protobuf decodes as the
// ProduceRequest it stands for.
func TestProduceWireDecodesAsProduceRequest(t *testing.T) {
	p := &Producer{maxFree: 10}
	cases := map[string]*produceWire{
		"one partition": {topic: "orders", acks: stratav1.Acks_ACKS_ALL, timeoutMs: 30000,
			parts: []wirePart{{partition: 3, batches: []*batch{testBatch(t, p, "a", "b")}}}},
		"several batches and partitions, partition 0, default acks": {topic: "t", acks: stratav1.Acks_ACKS_LEADER,
			parts: []wirePart{
				{partition: 0, batches: []*batch{testBatch(t, p, "a"), testBatch(t, p, "b", "c"), testBatch(t, p, "d")}},
				{partition: 1 << 20, batches: []*batch{testBatch(t, p, string(make([]byte, 5000)))}},
			}},
		"acks none": {topic: "x", acks: stratav1.Acks_ACKS_NONE, timeoutMs: 1,
			parts: []wirePart{{partition: 1, batches: []*batch{testBatch(t, p, "z")}}}},
	}
	for name, w := range cases {
		t.Run(name, func(t *testing.T) {
			bufs := w.marshal()
			got := &stratav1.ProduceRequest{}
			if err := proto.Unmarshal(bufs.Materialize(), got); err != nil {
				t.Fatal(err)
			}
			if want := w.proto(); !proto.Equal(got, want) {
				t.Fatalf("decoded %v\nwant    %v", got, want)
			}
			if size := proto.Size(w.proto()); bufs.Len() != size {
				t.Fatalf("encoded %d bytes, protobuf's encoding has %d", bufs.Len(), size)
			}
			bufs.Free()
		})
	}
}

// A batch goes back to the free list only when both the request is complete
// and gRPC has freed its buffer, in either order.
func TestBatchRecycledAfterBothReferencesDrop(t *testing.T) {
	p := &Producer{maxFree: 10}
	bt := testBatch(t, p, string(make([]byte, 4096)))
	w := &produceWire{topic: "t", parts: []wirePart{{partition: 0, batches: []*batch{bt}}}}
	bufs := w.marshal()
	p.release(bt) // the request completed
	if len(p.freeBatches) != 0 {
		t.Fatal("recycled while gRPC still holds the buffer")
	}
	bufs.Free()
	if len(p.freeBatches) != 1 || p.freeBatches[0] != bt {
		t.Fatalf("not recycled after gRPC freed the buffer: %d free", len(p.freeBatches))
	}
}

func TestFetchResponseDecodesLikeProtobuf(t *testing.T) {
	msg := &stratav1.FetchResponse{Partitions: []*stratav1.FetchPartitionResult{
		{Topic: "orders", Partition: 7, HighWatermark: 1 << 40, LogStartOffset: 12, RecordBatches: []byte("batches"), NextOffset: 99,
			LastStableOffset: proto.Int64(1 << 39),
			// Structured records are not read by the consumer: skipped.
			Records: []*stratav1.Record{{Key: []byte("k"), Offset: 3}}},
		{Topic: "orders", Partition: 0, HighWatermark: -1, NextOffset: -1,
			Error: &stratav1.PartitionError{Code: 11, Message: "offset out of range", Reason: "OFFSET_OUT_OF_RANGE"}},
		{LastStableOffset: proto.Int64(0)}, // sent, although 0
	}}
	b, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	var got fetchResponse
	if err := got.decode(b); err != nil {
		t.Fatal(err)
	}
	if len(got.partitions) != 3 {
		t.Fatalf("%d partitions", len(got.partitions))
	}
	for i, want := range msg.Partitions {
		g := got.partitions[i]
		if g.GetTopic() != want.GetTopic() || g.GetPartition() != want.GetPartition() || g.GetHighWatermark() != want.GetHighWatermark() ||
			g.GetLogStartOffset() != want.GetLogStartOffset() || string(g.GetRecordBatches()) != string(want.GetRecordBatches()) ||
			g.GetNextOffset() != want.GetNextOffset() || !proto.Equal(g.GetError(), want.GetError()) ||
			g.lastStableOffset != want.GetLastStableOffset() && want.LastStableOffset != nil || want.LastStableOffset == nil && g.lastStableOffset != -1 {
			t.Errorf("partition %d: decoded %+v, want %v", i, g, want)
		}
	}
}

func TestFetchResponseRejectsMalformedInput(t *testing.T) {
	good, _ := proto.Marshal(&stratav1.FetchResponse{Partitions: []*stratav1.FetchPartitionResult{{Topic: "t", RecordBatches: make([]byte, 100)}}})
	for _, b := range [][]byte{
		good[:len(good)-1], // truncated
		{0x0a, 0xff},       // length beyond the end
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, // bad tag varint
	} {
		var r fetchResponse
		if err := r.decode(b); err == nil {
			t.Errorf("decode(%x) succeeded", b)
		}
	}
}
