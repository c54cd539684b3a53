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

func TestMarshalReplicaFetchResponseMatchesProto(t *testing.T) {
	for name, resp := range replicaFetchShapes() {
		t.Run(name, func(t *testing.T) {
			want, err := proto.Marshal(resp)
			if err != nil {
				t.Fatal(err)
			}
			data, err := codec{}.Marshal(resp)
			if err != nil {
				t.Fatal(err)
			}
			if got := data.Materialize(); !bytes.Equal(got, want) {
				t.Fatalf("codec: %x\nproto: %x", got, want)
			}
			for _, pr := range resp.GetPartitions() {
				if len(pr.GetRecordBatches()) > 0 && !sharesBuffer(data, pr.GetRecordBatches()) {
					t.Fatalf("record batches of partition %d were copied", pr.GetPartition())
				}
			}
			data.Free()
		})
	}
}

func TestMarshalReplicaFetchNilResponse(t *testing.T) {
	data, err := codec{}.Marshal((*stratav1.ReplicaFetchResponse)(nil))
	if err != nil || data.Len() != 0 {
		t.Fatalf("got %d bytes, %v; want none", data.Len(), err)
	}
}

func TestMarshalReplicaFetchInvalidUTF8(t *testing.T) {
	for name, resp := range map[string]*stratav1.ReplicaFetchResponse{
		"topic":  {Partitions: []*stratav1.ReplicaFetchPartitionResult{{Topic: "\xff"}}},
		"error":  {Partitions: []*stratav1.ReplicaFetchPartitionResult{{Error: &stratav1.PartitionError{Message: "\xff"}}}},
		"reason": {Partitions: []*stratav1.ReplicaFetchPartitionResult{{Error: &stratav1.PartitionError{Reason: "\xfe"}}}},
	} {
		if _, err := proto.Marshal(resp); err == nil {
			t.Fatalf("%s: proto accepts invalid UTF-8", name)
		}
		if _, err := (codec{}).Marshal(resp); err == nil {
			t.Errorf("%s: codec accepts invalid UTF-8, proto does not", name)
		}
	}
}

func TestMarshalReplicaFetchReplyHandsBuffersToGRPC(t *testing.T) {
	pool := &countingPool{}
	content := bytes.Repeat([]byte("batch"), 1000)
	bufs := make([]*[]byte, 3)
	for i := range bufs {
		bufs[i] = pool.Get(len(content) + 100)
		copy(*bufs[i], content)
	}
	resp := &stratav1.ReplicaFetchResponse{Partitions: []*stratav1.ReplicaFetchPartitionResult{
		{Topic: "t", Partition: 0, RecordBatches: (*bufs[0])[:len(content):len(content)], HighWatermark: 9},
		{Topic: "t", Partition: 1, Error: &stratav1.PartitionError{Code: 1, Message: "x"}},
		{Topic: "t", Partition: 2, RecordBatches: (*bufs[2])[:len(content)], HighWatermark: 9},
		{Topic: "t", Partition: 3, RecordBatches: (*bufs[1])[:len(content)]}, // not pooled: GC's
	}}
	want, err := proto.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	reply := &replicaFetchReply{ReplicaFetchResponse: resp, pool: pool, bufs: []*[]byte{bufs[0], nil, bufs[2], nil}}
	data, err := codec{}.Marshal(reply)
	if err != nil {
		t.Fatal(err)
	}
	if got := data.Materialize(); !bytes.Equal(got, want) {
		t.Fatalf("codec: %x\nproto: %x", got, want)
	}
	if resp.Partitions[0].RecordBatches != nil || resp.Partitions[2].RecordBatches != nil || reply.bufs != nil {
		t.Fatal("the reply still references buffers handed to gRPC")
	}
	if resp.Partitions[3].RecordBatches == nil {
		t.Fatal("an unpooled partition lost its batches")
	}
	data.Ref()
	data.Free()
	if _, puts := pool.counts(); puts != 0 {
		t.Fatalf("%d buffers given back while gRPC still holds them", puts)
	}
	data.Free()
	if _, puts := pool.counts(); puts != 2 || pool.puts[bufs[0]] != 1 || pool.puts[bufs[2]] != 1 {
		t.Fatalf("given back: %v, want bufs 0 and 2 once each", pool.puts)
	}
}

func TestMarshalReplicaFetchReplyRefusesForeignBuffer(t *testing.T) {
	pool := &countingPool{}
	buf := pool.Get(4096)
	other := make([]byte, 4096)
	resp := &stratav1.ReplicaFetchResponse{Partitions: []*stratav1.ReplicaFetchPartitionResult{{RecordBatches: other}}}
	data, err := codec{}.Marshal(&replicaFetchReply{ReplicaFetchResponse: resp, pool: pool, bufs: []*[]byte{buf}})
	if err != nil {
		t.Fatal(err)
	}
	data.Free()
	if _, puts := pool.counts(); puts != 0 {
		t.Fatal("a buffer that is not the batches' was given back")
	}
}

func TestMarshalReplicaFetchReplyErrorKeepsBuffers(t *testing.T) {
	pool := &countingPool{}
	buf := pool.Get(4096)
	resp := &stratav1.ReplicaFetchResponse{Partitions: []*stratav1.ReplicaFetchPartitionResult{
		{RecordBatches: *buf},
		{Error: &stratav1.PartitionError{Message: "\xff"}},
	}}
	if _, err := (codec{}).Marshal(&replicaFetchReply{ReplicaFetchResponse: resp, pool: pool, bufs: []*[]byte{buf, nil}}); err == nil {
		t.Fatal("invalid UTF-8 accepted")
	}
	if resp.Partitions[0].RecordBatches == nil {
		t.Fatal("a failed marshal took the batches away")
	}
	if _, puts := pool.counts(); puts != 0 {
		t.Fatal("a failed marshal gave a buffer back")
	}
}

// TestReplicaFetchReplyIsAMessage: a replicaFetchReply marshalled by another
// codec (or logged) is its ReplicaFetchResponse.
func TestReplicaFetchReplyIsAMessage(t *testing.T) {
	resp := replicaFetchShapes()["everything"]
	got, err := proto.Marshal(&replicaFetchReply{ReplicaFetchResponse: resp})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := proto.Marshal(resp)
	if !bytes.Equal(got, want) {
		t.Fatal("replicaFetchReply does not marshal as its ReplicaFetchResponse")
	}
}

// receiveBoth decodes b with proto.Unmarshal and with the codec (from a
// BufferSlice split into small buffers, as gRPC delivers it, into recv) and
// checks that they agree.
func receiveBoth(t testing.TB, b []byte, recv *[]byte) (*stratav1.ReplicaFetchResponse, error) {
	t.Helper()
	want := &stratav1.ReplicaFetchResponse{}
	wantErr := proto.Unmarshal(b, want)
	got := &replicaFetchReceive{ReplicaFetchResponse: &stratav1.ReplicaFetchResponse{}, buf: recv}
	var data mem.BufferSlice
	for rest := b; len(rest) > 0; {
		n := min(len(rest), 3+len(rest)/3)
		data = append(data, mem.SliceBuffer(append([]byte(nil), rest[:n]...)))
		rest = rest[n:]
	}
	gotErr := codec{}.Unmarshal(data, got)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("input %x: proto: %v; codec: %v", b, wantErr, gotErr)
	}
	if wantErr != nil {
		return nil, gotErr
	}
	if !proto.Equal(got.ReplicaFetchResponse, want) {
		t.Fatalf("input %x:\ncodec: %v\nproto: %v", b, got.ReplicaFetchResponse, want)
	}
	// Poison gRPC's buffers, as it reuses them: the response must not
	// change.
	for _, buf := range data {
		d := buf.ReadOnlyData()
		for i := range d {
			d[i] = 0xcc
		}
	}
	if !proto.Equal(got.ReplicaFetchResponse, want) {
		t.Fatalf("input %x: the response aliases gRPC's buffers", b)
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
