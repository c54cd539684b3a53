package grpcapi

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// replicaFetchShapes are responses covering every field of
// ReplicaFetchResponse and ReplicaFetchPartitionResult, zero and not.
func replicaFetchShapes() map[string]*stratav1.ReplicaFetchResponse {
	batches := bytes.Repeat([]byte{0xab, 0x01, 0x00}, 700)
	withUnknown := &stratav1.ReplicaFetchPartitionResult{Topic: "t", RecordBatches: []byte("xyz")}
	withUnknown.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 7))
	respUnknown := &stratav1.ReplicaFetchResponse{Partitions: []*stratav1.ReplicaFetchPartitionResult{{Partition: 1}}}
	respUnknown.ProtoReflect().SetUnknown(protowire.AppendBytes(protowire.AppendTag(nil, 12, protowire.BytesType), []byte("extra")))
	nestedUnknown := &stratav1.EpochEndOffset{Epoch: 3}
	nestedUnknown.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 40, protowire.VarintType), 1))
	return map[string]*stratav1.ReplicaFetchResponse{
		"empty":            {},
		"no partitions":    {Partitions: []*stratav1.ReplicaFetchPartitionResult{}},
		"zero partition":   {Partitions: []*stratav1.ReplicaFetchPartitionResult{{}}},
		"nil partition":    {Partitions: []*stratav1.ReplicaFetchPartitionResult{nil, {Partition: 2}}},
		"empty batches":    {Partitions: []*stratav1.ReplicaFetchPartitionResult{{Topic: "t", RecordBatches: []byte{}}}},
		"negative numbers": {Partitions: []*stratav1.ReplicaFetchPartitionResult{{Partition: -1, HighWatermark: -1, LogStartOffset: math.MinInt64}}},
		"batches": {Partitions: []*stratav1.ReplicaFetchPartitionResult{{
			Topic: "orders", Partition: 7, HighWatermark: 1 << 40, LogStartOffset: 12, RecordBatches: batches,
		}}},
		"diverging": {Partitions: []*stratav1.ReplicaFetchPartitionResult{{
			Topic: "orders", Partition: 1, HighWatermark: 10, DivergingEpoch: &stratav1.EpochEndOffset{Epoch: 4, EndOffset: 1234},
		}}},
		"undefined epoch": {Partitions: []*stratav1.ReplicaFetchPartitionResult{{DivergingEpoch: &stratav1.EpochEndOffset{Epoch: -1, EndOffset: 0}}}},
		"empty diverging": {Partitions: []*stratav1.ReplicaFetchPartitionResult{{DivergingEpoch: &stratav1.EpochEndOffset{}}}},
		"error": {Partitions: []*stratav1.ReplicaFetchPartitionResult{{
			Topic: "orders", Partition: 1, Error: &stratav1.PartitionError{Code: 14, Message: "not leader", Reason: "NOT_LEADER_OR_FOLLOWER"},
		}}},
		"empty error": {Partitions: []*stratav1.ReplicaFetchPartitionResult{{Error: &stratav1.PartitionError{}}}},
		"everything": {Partitions: []*stratav1.ReplicaFetchPartitionResult{{
			Topic: "a", Partition: 1, HighWatermark: 2, LogStartOffset: 3, RecordBatches: batches[:10],
			DivergingEpoch: nestedUnknown, Error: &stratav1.PartitionError{Code: 1, Message: "m"},
		}}},
		"many partitions": {Partitions: []*stratav1.ReplicaFetchPartitionResult{
			{Topic: "a", Partition: 0, RecordBatches: batches, HighWatermark: 10},
			{Topic: "a", Partition: 1, Error: &stratav1.PartitionError{Code: 14, Message: "unavailable"}},
			{Topic: "a", Partition: 2},
			{Topic: "b", Partition: 3, RecordBatches: batches[:1], HighWatermark: 1},
			{Topic: "b", Partition: 4, DivergingEpoch: &stratav1.EpochEndOffset{Epoch: 2, EndOffset: 9}},
			{Topic: "b", Partition: 5, RecordBatches: batches[1:]},
		}},
		"unknown fields":          {Partitions: []*stratav1.ReplicaFetchPartitionResult{withUnknown, {Topic: "u"}}},
		"unknown response fields": respUnknown,
	}
}

// receiveBoth decodes b with proto.Unmarshal and with the codec, into recv,
// and checks that they agree (decodeBoth).
func receiveBoth(t testing.TB, b []byte, recv *[]byte) (*stratav1.ReplicaFetchResponse, error) {
	t.Helper()
	got := &replicaFetchReceive{ReplicaFetchResponse: &stratav1.ReplicaFetchResponse{}, buf: recv}
	if err := decodeBoth(t, b, &stratav1.ReplicaFetchResponse{}, got.ReplicaFetchResponse, got); err != nil {
		return nil, err
	}
	return got.ReplicaFetchResponse, nil
}

func TestUnmarshalReplicaFetchMatchesProto(t *testing.T) {
	for name, resp := range replicaFetchShapes() {
		t.Run(name, func(t *testing.T) {
			b, err := proto.Marshal(resp)
			if err != nil {
				t.Fatal(err)
			}
			var recv []byte
			got, err := receiveBoth(t, b, &recv)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, resp) {
				t.Fatalf("got %v, want %v", got, resp)
			}
			for _, pr := range got.GetPartitions() {
				if rb := pr.GetRecordBatches(); len(rb) > 0 && (!within(recv, rb) || cap(rb) != len(rb)) {
					t.Fatalf("partition %d: record batches do not alias the receive buffer, clipped", pr.GetPartition())
				}
			}
		})
	}
}

// TestReceiveReusesBuffer guards the point of Receive: a response that fits
// is received into the memory of the one before, without allocating.
func TestReceiveReusesBuffer(t *testing.T) {
	large, err := proto.Marshal(replicaFetchShapes()["many partitions"])
	if err != nil {
		t.Fatal(err)
	}
	small, err := proto.Marshal(replicaFetchShapes()["batches"])
	if err != nil {
		t.Fatal(err)
	}
	var recv []byte
	if _, err := receiveBoth(t, small, &recv); err != nil {
		t.Fatal(err)
	}
	if c := cap(recv); c < len(small) || c&(c-1) != 0 {
		t.Fatalf("receive buffer of capacity %d for %d bytes; want a power of two", c, len(small))
	}
	if _, err := receiveBoth(t, large, &recv); err != nil {
		t.Fatal(err)
	}
	grown := &recv[:1][0]
	got, err := receiveBoth(t, small, &recv)
	if err != nil {
		t.Fatal(err)
	}
	if &recv[:1][0] != grown || !within(recv, got.GetPartitions()[0].GetRecordBatches()) {
		t.Fatal("a smaller response was not received into the same buffer")
	}
	data := mem.BufferSlice{mem.SliceBuffer(small)}
	allocs := testing.AllocsPerRun(20, func() {
		r := &replicaFetchReceive{ReplicaFetchResponse: &stratav1.ReplicaFetchResponse{}, buf: &recv}
		if err := r.receive(data); err != nil {
			t.Fatal(err)
		}
	})
	// The receive and the messages, none of them the size of the batches.
	if allocs > 6 {
		t.Fatalf("%v allocations per receive", allocs)
	}
}

// Hand-made encodings that proto.Marshal does not produce.
func replicaFetchEdgeCases() map[string][]byte {
	tag := func(b []byte, num protowire.Number, typ protowire.Type) []byte {
		return protowire.AppendTag(b, num, typ)
	}
	part := func(fields ...[]byte) []byte {
		return protowire.AppendBytes(tag(nil, fieldPartitionResults, protowire.BytesType), bytes.Join(fields, nil))
	}
	batches := func(s string) []byte {
		return protowire.AppendString(tag(nil, fieldResultBatches, protowire.BytesType), s)
	}
	varint := func(num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(tag(nil, num, protowire.VarintType), v)
	}
	nested := func(num protowire.Number, fields ...[]byte) []byte {
		return protowire.AppendBytes(tag(nil, num, protowire.BytesType), bytes.Join(fields, nil))
	}
	unknownVarint := varint(15, 300)
	group := append(tag(nil, 20, protowire.StartGroupType), unknownVarint...)
	group = tag(group, 20, protowire.EndGroupType)
	fixed := protowire.AppendFixed64(tag(nil, 21, protowire.Fixed64Type), 1)
	fixed32 := protowire.AppendFixed32(tag(nil, 22, protowire.Fixed32Type), 1)
	topic := protowire.AppendString(tag(nil, fieldResultTopic, protowire.BytesType), "t")
	return map[string][]byte{
		"repeated scalars, last wins": part(topic, protowire.AppendString(tag(nil, fieldResultTopic, protowire.BytesType), "u"),
			varint(fieldResultPartition, 1), varint(fieldResultPartition, 2), batches("first"), varint(fieldResultHighWater, 5),
			batches("second"), varint(fieldResultHighWater, 6)),
		"empty batches field after data": part(batches("data"), batches("")),
		"nested messages merge": part(
			nested(fieldReplicaDiverging, varint(1, 3)), nested(fieldReplicaDiverging, varint(2, 40)),
			nested(fieldResultError, varint(1, 14)), nested(fieldResultError, protowire.AppendString(tag(nil, 3, protowire.BytesType), "R")),
			nested(fieldReplicaDiverging, varint(1, 4))),
		"unknown fields kept": bytes.Join([][]byte{unknownVarint, group, fixed, part(unknownVarint, topic, fixed32, batches("x"), group)}, nil),
		"known number, wrong wire type": bytes.Join([][]byte{
			varint(fieldPartitionResults, 5),
			part(varint(fieldResultBatches, 1), varint(fieldResultTopic, 2),
				protowire.AppendString(tag(nil, fieldResultPartition, protowire.BytesType), "y"),
				protowire.AppendFixed32(tag(nil, fieldReplicaDiverging, protowire.Fixed32Type), 1),
				varint(fieldResultError, 3)),
		}, nil),
		"int32 overflow truncates": part(varint(fieldResultPartition, 1<<40+5), varint(fieldResultHighWater, math.MaxUint64)),
		"overlong varint":          part(append(tag(nil, fieldResultHighWater, protowire.VarintType), 0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00)),
		"truncated varint":         part(append(tag(nil, fieldResultHighWater, protowire.VarintType), 0x80)),
		"truncated length":         append(tag(nil, fieldPartitionResults, protowire.BytesType), 10, 'a'),
		"truncated batches":        part(append(tag(nil, fieldResultBatches, protowire.BytesType), 9, 1, 2)),
		"invalid UTF-8 topic":      part(protowire.AppendString(tag(nil, fieldResultTopic, protowire.BytesType), "\xff\xfe")),
		"invalid UTF-8 error":      part(nested(fieldResultError, protowire.AppendString(tag(nil, 2, protowire.BytesType), "\xff"))),
		"bad diverging":            part(nested(fieldReplicaDiverging, []byte{0x08})),
		"field number 0":           {0x00, 0x01},
		"field number 0 nested":    part([]byte{0x00, 0x01}),
		"field number too big":     protowire.AppendVarint(protowire.AppendVarint(nil, uint64(protowire.MaxValidNumber+1)<<3), 1),
		"end group alone":          part(tag(nil, 5, protowire.EndGroupType)),
		"unterminated group":       tag(nil, 5, protowire.StartGroupType),
		"mismatched group":         part(tag(tag(nil, 5, protowire.StartGroupType), 6, protowire.EndGroupType)),
		"wire type 6":              {0x0e},
		"wire type 7":              part([]byte{0x0f}),
	}
}

func TestUnmarshalReplicaFetchEdgeCases(t *testing.T) {
	for name, b := range replicaFetchEdgeCases() {
		t.Run(name, func(t *testing.T) {
			_, err := receiveBoth(t, b, nil)
			if err != nil && !errors.Is(err, errMalformed) {
				t.Fatalf("error %v is not errMalformed", err)
			}
		})
	}
}

// TestCodecDecodesReplicaFetchResponseAsProto: a plain ReplicaFetchResponse
// (not a replicaFetchReceive) is decoded by protobuf, as every message the
// codec does not know.
func TestCodecDecodesReplicaFetchResponseAsProto(t *testing.T) {
	want := replicaFetchShapes()["many partitions"]
	data, err := codec{}.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got := &stratav1.ReplicaFetchResponse{}
	if err := (codec{}).Unmarshal(data, got); err != nil || !proto.Equal(got, want) {
		t.Fatalf("got %v, %v", got, err)
	}
	req := &stratav1.ReplicaFetchRequest{ReplicaId: 2, MaxWaitMs: 500, Partitions: []*stratav1.ReplicaFetchPartition{{Topic: "t", FetchOffset: 9, LastFetchedEpoch: -1}}}
	data, err = codec{}.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := proto.Marshal(req); !bytes.Equal(data.Materialize(), b) {
		t.Fatal("ReplicaFetchRequest encodings differ")
	}
}

// BenchmarkReplicaFetchReplyMarshal encodes a replica fetch of 100
// partitions of 1 MiB of batches each, read into pooled buffers, as the
// leader does.
func BenchmarkReplicaFetchReplyMarshal(b *testing.B) {
	bufs := benchBuffers(100, 1<<20)
	resp := &stratav1.ReplicaFetchResponse{}
	for i := range bufs {
		resp.Partitions = append(resp.Partitions, &stratav1.ReplicaFetchPartitionResult{
			Topic: "orders", Partition: int32(i), HighWatermark: 1 << 30, LogStartOffset: 1 << 20,
		})
	}
	reply := &replicaFetchReply{ReplicaFetchResponse: resp, pool: keepPool{}}
	b.ReportAllocs()
	for b.Loop() {
		for i, pr := range resp.Partitions {
			pr.RecordBatches = *bufs[i]
		}
		reply.bufs = bufs
		data, err := reply.marshal()
		if err != nil {
			b.Fatal(err)
		}
		data.Free()
	}
}
