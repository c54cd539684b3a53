package grpcapi

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// fetchShapes are responses covering every field of FetchResponse and
// FetchPartitionResult, zero and not.
func fetchShapes() map[string]*stratav1.FetchResponse {
	batches := bytes.Repeat([]byte{0xab, 0x01, 0x00}, 700)
	rec := &stratav1.Record{
		Key: []byte("k"), Value: []byte("value"), TimestampMs: 1700000000000, Offset: 42, Partition: 3,
		Headers: []*stratav1.Header{{Key: "h", Value: []byte("v")}, {}},
	}
	withUnknown := &stratav1.FetchPartitionResult{Topic: "t", RecordBatches: []byte("xyz")}
	withUnknown.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 7))
	respUnknown := &stratav1.FetchResponse{Partitions: []*stratav1.FetchPartitionResult{{Partition: 1}}}
	respUnknown.ProtoReflect().SetUnknown(protowire.AppendBytes(protowire.AppendTag(nil, 12, protowire.BytesType), []byte("extra")))
	return map[string]*stratav1.FetchResponse{
		"empty":            {},
		"no partitions":    {Partitions: []*stratav1.FetchPartitionResult{}},
		"zero partition":   {Partitions: []*stratav1.FetchPartitionResult{{}}},
		"nil partition":    {Partitions: []*stratav1.FetchPartitionResult{nil, {Partition: 2}}},
		"empty batches":    {Partitions: []*stratav1.FetchPartitionResult{{Topic: "t", RecordBatches: []byte{}}}},
		"negative numbers": {Partitions: []*stratav1.FetchPartitionResult{{Partition: -1, HighWatermark: -1, LogStartOffset: math.MinInt64, NextOffset: -5}}},
		"batches": {Partitions: []*stratav1.FetchPartitionResult{{
			Topic: "orders", Partition: 7, HighWatermark: 1 << 40, LogStartOffset: 12, RecordBatches: batches, NextOffset: 1<<40 - 1,
		}}},
		"error": {Partitions: []*stratav1.FetchPartitionResult{{
			Topic: "orders", Partition: 1, NextOffset: 5, Error: &stratav1.PartitionError{Code: 5, Message: "not found"},
		}}},
		"empty error": {Partitions: []*stratav1.FetchPartitionResult{{Error: &stratav1.PartitionError{}}}},
		"records": {Partitions: []*stratav1.FetchPartitionResult{{
			Topic: "orders", HighWatermark: 50, Records: []*stratav1.Record{rec, {}, {KeyNull: true, ValueNull: true}}, NextOffset: 50,
		}}},
		"nil record": {Partitions: []*stratav1.FetchPartitionResult{{Records: []*stratav1.Record{nil, rec}}}},
		"everything": {Partitions: []*stratav1.FetchPartitionResult{{
			Topic: "a", Partition: 1, HighWatermark: 2, LogStartOffset: 3, RecordBatches: batches[:10],
			Records: []*stratav1.Record{rec}, Error: &stratav1.PartitionError{Code: 1, Message: "m"}, NextOffset: 4,
		}}},
		"many partitions": {Partitions: []*stratav1.FetchPartitionResult{
			{Topic: "a", Partition: 0, RecordBatches: batches, NextOffset: 10},
			{Topic: "a", Partition: 1, Error: &stratav1.PartitionError{Code: 14, Message: "unavailable"}},
			{Topic: "a", Partition: 2},
			{Topic: "b", Partition: 3, RecordBatches: batches[:1], HighWatermark: 1},
			{Topic: "b", Partition: 4, RecordBatches: batches[1:], Records: []*stratav1.Record{rec}},
		}},
		"unknown fields":          {Partitions: []*stratav1.FetchPartitionResult{withUnknown, {Topic: "u"}}},
		"unknown response fields": respUnknown,
	}
}

func sharesBuffer(data mem.BufferSlice, b []byte) bool {
	for _, buf := range data {
		d := buf.ReadOnlyData()
		if len(d) == len(b) && &d[0] == &b[0] {
			return true
		}
	}
	return false
}

// countingPool is a pool that records what is given back and poisons it, so
// that a reader of a buffer given back too early sees garbage.
type countingPool struct {
	mu   sync.Mutex
	gets int
	puts map[*[]byte]int
}

func (p *countingPool) Get(n int) *[]byte {
	p.mu.Lock()
	p.gets++
	p.mu.Unlock()
	b := bytes.Repeat([]byte{0xee}, n) // dirty, as a reused buffer is
	return &b
}

func (p *countingPool) Put(b *[]byte) {
	full := (*b)[:cap(*b)]
	for i := range full {
		full[i] = 0xdd
	}
	p.mu.Lock()
	if p.puts == nil {
		p.puts = make(map[*[]byte]int)
	}
	p.puts[b]++
	p.mu.Unlock()
}

func (p *countingPool) counts() (gets, puts int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range p.puts {
		puts += n
	}
	return p.gets, puts
}

// replyKind is a response the codec writes itself, for the tests that check
// each alike.
type replyKind struct {
	name string
	// shapes are responses covering every field, zero and not.
	shapes func() map[string]proto.Message
	// invalid are responses proto refuses to marshal.
	invalid func() map[string]proto.Message
	null    proto.Message // a nil response
	// response has a result for each of parts, of topic "t".
	response func(parts ...testResult) proto.Message
	// reply is resp with the pooled buffers bufs, as the server sends it.
	reply func(resp proto.Message, pool mem.BufferPool, bufs []*[]byte) proto.Message
	// batches are the record batches of each of resp's results.
	batches func(resp proto.Message) [][]byte
}

// testResult is what the tests vary in a partition result.
type testResult struct {
	partition int32
	batches   []byte
	err       *stratav1.PartitionError
}

var replyKinds = []replyKind{{
	name:   "FetchResponse",
	shapes: func() map[string]proto.Message { return messages(fetchShapes()) },
	invalid: func() map[string]proto.Message {
		return map[string]proto.Message{
			"topic":   &stratav1.FetchResponse{Partitions: []*stratav1.FetchPartitionResult{{Topic: "\xff"}}},
			"error":   &stratav1.FetchResponse{Partitions: []*stratav1.FetchPartitionResult{{Error: &stratav1.PartitionError{Message: "\xff"}}}},
			"headers": &stratav1.FetchResponse{Partitions: []*stratav1.FetchPartitionResult{{Records: []*stratav1.Record{{Headers: []*stratav1.Header{{Key: "\xfe"}}}}}}},
		}
	},
	null: (*stratav1.FetchResponse)(nil),
	response: func(parts ...testResult) proto.Message {
		resp := &stratav1.FetchResponse{}
		for _, p := range parts {
			resp.Partitions = append(resp.Partitions, &stratav1.FetchPartitionResult{
				Topic: "t", Partition: p.partition, HighWatermark: 9, RecordBatches: p.batches, Error: p.err, NextOffset: 9,
			})
		}
		return resp
	},
	reply: func(resp proto.Message, pool mem.BufferPool, bufs []*[]byte) proto.Message {
		return &fetchReply{FetchResponse: resp.(*stratav1.FetchResponse), pool: pool, bufs: bufs}
	},
	batches: func(resp proto.Message) (b [][]byte) {
		for _, pr := range resp.(*stratav1.FetchResponse).GetPartitions() {
			b = append(b, pr.GetRecordBatches())
		}
		return b
	},
}, {
	name:   "ReplicaFetchResponse",
	shapes: func() map[string]proto.Message { return messages(replicaFetchShapes()) },
	invalid: func() map[string]proto.Message {
		return map[string]proto.Message{
			"topic":  &stratav1.ReplicaFetchResponse{Partitions: []*stratav1.ReplicaFetchPartitionResult{{Topic: "\xff"}}},
			"error":  &stratav1.ReplicaFetchResponse{Partitions: []*stratav1.ReplicaFetchPartitionResult{{Error: &stratav1.PartitionError{Message: "\xff"}}}},
			"reason": &stratav1.ReplicaFetchResponse{Partitions: []*stratav1.ReplicaFetchPartitionResult{{Error: &stratav1.PartitionError{Reason: "\xfe"}}}},
		}
	},
	null: (*stratav1.ReplicaFetchResponse)(nil),
	response: func(parts ...testResult) proto.Message {
		resp := &stratav1.ReplicaFetchResponse{}
		for _, p := range parts {
			resp.Partitions = append(resp.Partitions, &stratav1.ReplicaFetchPartitionResult{
				Topic: "t", Partition: p.partition, HighWatermark: 9, RecordBatches: p.batches, Error: p.err,
			})
		}
		return resp
	},
	reply: func(resp proto.Message, pool mem.BufferPool, bufs []*[]byte) proto.Message {
		return &replicaFetchReply{ReplicaFetchResponse: resp.(*stratav1.ReplicaFetchResponse), pool: pool, bufs: bufs}
	},
	batches: func(resp proto.Message) (b [][]byte) {
		for _, pr := range resp.(*stratav1.ReplicaFetchResponse).GetPartitions() {
			b = append(b, pr.GetRecordBatches())
		}
		return b
	},
}}

// messages is m with its values as proto.Message.
func messages[M proto.Message](m map[string]M) map[string]proto.Message {
	out := make(map[string]proto.Message, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// heldBuffers are the pooled buffers a reply still holds.
func heldBuffers(reply proto.Message) []*[]byte {
	switch r := reply.(type) {
	case *fetchReply:
		return r.bufs
	case *replicaFetchReply:
		return r.bufs
	}
	panic(fmt.Sprintf("%T is not a reply", reply))
}

func TestMarshalReplyMatchesProto(t *testing.T) {
	for _, kind := range replyKinds {
		for name, resp := range kind.shapes() {
			t.Run(kind.name+"/"+name, func(t *testing.T) {
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
				// The batches are passed by reference, not copied.
				for i, b := range kind.batches(resp) {
					if len(b) > 0 && !sharesBuffer(data, b) {
						t.Fatalf("record batches of result %d were copied", i)
					}
				}
				data.Free()
			})
		}
	}
}

func TestMarshalReplyNilResponse(t *testing.T) {
	for _, kind := range replyKinds {
		data, err := codec{}.Marshal(kind.null)
		if err != nil || data.Len() != 0 {
			t.Fatalf("%s: got %d bytes, %v; want none", kind.name, data.Len(), err)
		}
	}
}

func TestMarshalReplyInvalidUTF8(t *testing.T) {
	for _, kind := range replyKinds {
		for name, resp := range kind.invalid() {
			if _, err := proto.Marshal(resp); err == nil {
				t.Fatalf("%s %s: proto accepts invalid UTF-8", kind.name, name)
			}
			if _, err := (codec{}).Marshal(resp); err == nil {
				t.Errorf("%s %s: codec accepts invalid UTF-8, proto does not", kind.name, name)
			}
		}
	}
}

func TestMarshalReplyHandsBuffersToGRPC(t *testing.T) {
	for _, kind := range replyKinds {
		t.Run(kind.name, func(t *testing.T) {
			pool := &countingPool{}
			content := bytes.Repeat([]byte("batch"), 1000)
			bufs := make([]*[]byte, 3)
			for i := range bufs {
				bufs[i] = pool.Get(len(content) + 100)
				copy(*bufs[i], content)
			}
			resp := kind.response(
				testResult{partition: 0, batches: (*bufs[0])[:len(content):len(content)]},
				testResult{partition: 1, err: &stratav1.PartitionError{Code: 1, Message: "x"}},
				testResult{partition: 2, batches: (*bufs[2])[:len(content)]},
				testResult{partition: 3, batches: (*bufs[1])[:len(content)]}, // not pooled: GC's
			)
			want, err := proto.Marshal(resp)
			if err != nil {
				t.Fatal(err)
			}
			reply := kind.reply(resp, pool, []*[]byte{bufs[0], nil, bufs[2], nil})
			data, err := codec{}.Marshal(reply)
			if err != nil {
				t.Fatal(err)
			}
			if got := data.Materialize(); !bytes.Equal(got, want) {
				t.Fatalf("codec: %x\nproto: %x", got, want)
			}
			// The message no longer references the buffers handed to gRPC.
			batches := kind.batches(resp)
			if batches[0] != nil || batches[2] != nil || heldBuffers(reply) != nil {
				t.Fatal("the reply still references buffers handed to gRPC")
			}
			if batches[3] == nil {
				t.Fatal("an unpooled partition lost its batches")
			}
			// gRPC holds its own reference until the transport is done.
			data.Ref()
			data.Free()
			if _, puts := pool.counts(); puts != 0 {
				t.Fatalf("%d buffers given back while gRPC still holds them", puts)
			}
			data.Free()
			if _, puts := pool.counts(); puts != 2 || pool.puts[bufs[0]] != 1 || pool.puts[bufs[2]] != 1 {
				t.Fatalf("given back: %v, want bufs 0 and 2 once each", pool.puts)
			}
			if cap(*bufs[0]) != len(content)+100 {
				t.Fatal("a buffer came back without its capacity")
			}
		})
	}
}

func TestMarshalReplyRefusesForeignBuffer(t *testing.T) {
	for _, kind := range replyKinds {
		pool := &countingPool{}
		buf := pool.Get(4096)
		resp := kind.response(testResult{batches: make([]byte, 4096)})
		data, err := codec{}.Marshal(kind.reply(resp, pool, []*[]byte{buf}))
		if err != nil {
			t.Fatal(err)
		}
		data.Free()
		if _, puts := pool.counts(); puts != 0 {
			t.Fatalf("%s: a buffer that is not the batches' was given back", kind.name)
		}
	}
}

func TestMarshalReplyErrorKeepsBuffers(t *testing.T) {
	for _, kind := range replyKinds {
		pool := &countingPool{}
		buf := pool.Get(4096)
		resp := kind.response(testResult{batches: *buf}, testResult{err: &stratav1.PartitionError{Message: "\xff"}})
		if _, err := (codec{}).Marshal(kind.reply(resp, pool, []*[]byte{buf, nil})); err == nil {
			t.Fatalf("%s: invalid UTF-8 accepted", kind.name)
		}
		if kind.batches(resp)[0] == nil {
			t.Fatalf("%s: a failed marshal took the batches away", kind.name)
		}
		if _, puts := pool.counts(); puts != 0 {
			t.Fatalf("%s: a failed marshal gave a buffer back", kind.name)
		}
	}
}

// TestReplyIsAMessage: a reply marshalled by another codec (or logged) is
// its response.
func TestReplyIsAMessage(t *testing.T) {
	for _, kind := range replyKinds {
		resp := kind.shapes()["everything"]
		got, err := proto.Marshal(kind.reply(resp, nil, nil))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := proto.Marshal(resp)
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: the reply does not marshal as its response", kind.name)
		}
	}
}

// produceShapes are requests covering every field of ProduceRequest and
// ProducePartition.
func produceShapes() map[string]*stratav1.ProduceRequest {
	batches := bytes.Repeat([]byte{1, 2, 3, 4}, 5000)
	return map[string]*stratav1.ProduceRequest{
		"empty":       {},
		"topic only":  {Topic: "orders"},
		"acks":        {Topic: "t", Acks: stratav1.Acks_ACKS_ALL, TimeoutMs: 30000},
		"negative":    {Topic: "t", Acks: stratav1.Acks(-3), TimeoutMs: -1},
		"unset parts": {Topic: "t", Partitions: []*stratav1.ProducePartition{{}, {Partition: -1}}},
		"batches": {Topic: "t", Partitions: []*stratav1.ProducePartition{
			{Partition: 0, RecordBatches: batches},
			{Partition: 3, RecordBatches: batches[:7]},
		}},
		"records": {Topic: "t", Partitions: []*stratav1.ProducePartition{{
			Partition: -1,
			Records: []*stratav1.Record{
				{Key: []byte("k"), Value: []byte("v"), TimestampMs: 5, Headers: []*stratav1.Header{{Key: "a", Value: []byte("b")}}},
				{KeyNull: true, ValueNull: true},
				{},
			},
		}}},
		"both": {Topic: "t", Acks: stratav1.Acks_ACKS_NONE, Partitions: []*stratav1.ProducePartition{
			{Partition: 1, Records: []*stratav1.Record{{Value: []byte("x")}}, RecordBatches: batches[:100]},
		}},
	}
}

// unmarshalBoth decodes b with proto.Unmarshal and with the codec and checks
// that they agree (decodeBoth).
func unmarshalBoth(t testing.TB, b []byte) (*stratav1.ProduceRequest, error) {
	t.Helper()
	got := &stratav1.ProduceRequest{}
	if err := decodeBoth(t, b, &stratav1.ProduceRequest{}, got, got); err != nil {
		return nil, err
	}
	return got, nil
}

// decodeBoth decodes b with proto.Unmarshal into want and with the codec
// into v, whose message is got, from a BufferSlice split into small buffers
// as gRPC delivers it. It checks that they agree, before and after gRPC's
// buffers are reused, and returns the codec's error.
func decodeBoth(t testing.TB, b []byte, want, got proto.Message, v any) error {
	t.Helper()
	wantErr := proto.Unmarshal(b, want)
	var data mem.BufferSlice
	for rest := b; len(rest) > 0; {
		n := min(len(rest), 3+len(rest)/3)
		data = append(data, mem.SliceBuffer(append([]byte(nil), rest[:n]...)))
		rest = rest[n:]
	}
	gotErr := codec{}.Unmarshal(data, v)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("input %x: proto: %v; codec: %v", b, wantErr, gotErr)
	}
	if wantErr != nil {
		return gotErr
	}
	if !proto.Equal(got, want) {
		t.Fatalf("input %x:\ncodec: %v\nproto: %v", b, got, want)
	}
	// Poison gRPC's buffers, as it reuses them: the message must not
	// change.
	for _, buf := range data {
		d := buf.ReadOnlyData()
		for i := range d {
			d[i] = 0xcc
		}
	}
	if !proto.Equal(got, want) {
		t.Fatalf("input %x: the message aliases gRPC's buffers", b)
	}
	return nil
}

func TestUnmarshalProduceMatchesProto(t *testing.T) {
	for name, req := range produceShapes() {
		t.Run(name, func(t *testing.T) {
			b, err := proto.Marshal(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := unmarshalBoth(t, b)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, req) {
				t.Fatalf("got %v, want %v", got, req)
			}
		})
	}
}

// TestUnmarshalProduceAliasesOneBuffer guards the point of the codec: the
// record batches of all partitions are slices of one buffer, not copies.
func TestUnmarshalProduceAliasesOneBuffer(t *testing.T) {
	req := produceShapes()["batches"]
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	got := &stratav1.ProduceRequest{}
	if err := unmarshalProduce(b, got); err != nil {
		t.Fatal(err)
	}
	for _, pp := range got.Partitions {
		rb := pp.RecordBatches
		if !within(b, rb) {
			t.Fatalf("partition %d: record batches were copied", pp.Partition)
		}
		if cap(rb) != len(rb) {
			t.Fatalf("partition %d: capacity %d beyond the batches (%d): an append would overwrite the next field", pp.Partition, cap(rb), len(rb))
		}
	}
}

// within reports whether sub is a slice of b's array, within b.
func within(b, sub []byte) bool {
	for i := range b {
		if &b[i] == &sub[0] {
			return len(b)-i >= len(sub)
		}
	}
	return false
}

// Hand-made encodings that proto.Marshal does not produce.
func produceEdgeCases() map[string][]byte {
	tag := func(b []byte, num protowire.Number, typ protowire.Type) []byte {
		return protowire.AppendTag(b, num, typ)
	}
	part := func(fields ...[]byte) []byte {
		return protowire.AppendBytes(tag(nil, fieldProducePartitions, protowire.BytesType), bytes.Join(fields, nil))
	}
	batches := func(s string) []byte {
		return protowire.AppendString(tag(nil, fieldPartitionBatches, protowire.BytesType), s)
	}
	partition := func(p uint64) []byte {
		return protowire.AppendVarint(tag(nil, fieldPartitionPartition, protowire.VarintType), p)
	}
	unknownVarint := protowire.AppendVarint(tag(nil, 15, protowire.VarintType), 300)
	group := append(tag(nil, 20, protowire.StartGroupType), unknownVarint...)
	group = tag(group, 20, protowire.EndGroupType)
	fixed := protowire.AppendFixed64(tag(nil, 21, protowire.Fixed64Type), 1)
	fixed32 := protowire.AppendFixed32(tag(nil, 22, protowire.Fixed32Type), 1)
	topic := protowire.AppendString(tag(nil, fieldProduceTopic, protowire.BytesType), "t")
	return map[string][]byte{
		"repeated scalars, last wins": bytes.Join([][]byte{
			topic, protowire.AppendString(tag(nil, fieldProduceTopic, protowire.BytesType), "u"),
			protowire.AppendVarint(tag(nil, fieldProduceAcks, protowire.VarintType), 1),
			protowire.AppendVarint(tag(nil, fieldProduceAcks, protowire.VarintType), 2),
			part(partition(1), batches("first"), partition(2), batches("second")),
		}, nil),
		"empty batches field after data": part(batches("data"), batches("")),
		"unknown fields kept":            bytes.Join([][]byte{unknownVarint, topic, group, fixed, fixed32, part(unknownVarint, batches("x"), group)}, nil),
		"known number, wrong wire type": bytes.Join([][]byte{
			protowire.AppendVarint(tag(nil, fieldProduceTopic, protowire.VarintType), 5),
			protowire.AppendString(tag(nil, fieldProduceAcks, protowire.BytesType), "x"),
			part(protowire.AppendVarint(tag(nil, fieldPartitionBatches, protowire.VarintType), 1),
				protowire.AppendString(tag(nil, fieldPartitionPartition, protowire.BytesType), "y"),
				protowire.AppendFixed32(tag(nil, fieldPartitionRecords, protowire.Fixed32Type), 1)),
		}, nil),
		"int32 overflow truncates": bytes.Join([][]byte{
			protowire.AppendVarint(tag(nil, fieldProduceTimeoutMs, protowire.VarintType), 1<<40+5),
			part(partition(math.MaxUint64)),
		}, nil),
		"overlong varint":      append(tag(nil, fieldProduceAcks, protowire.VarintType), 0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00),
		"truncated varint":     append(tag(nil, fieldProduceAcks, protowire.VarintType), 0x80),
		"truncated length":     append(tag(nil, fieldProduceTopic, protowire.BytesType), 10, 'a'),
		"truncated partition":  append(tag(nil, fieldProducePartitions, protowire.BytesType), 5, 0x1a, 0x10, 1, 2),
		"invalid UTF-8 topic":  protowire.AppendString(tag(nil, fieldProduceTopic, protowire.BytesType), "\xff\xfe"),
		"invalid UTF-8 header": part(protowire.AppendBytes(tag(nil, fieldPartitionRecords, protowire.BytesType), protowire.AppendBytes(tag(nil, 5, protowire.BytesType), protowire.AppendString(tag(nil, 1, protowire.BytesType), "\xff")))),
		"bad record":           part(protowire.AppendBytes(tag(nil, fieldPartitionRecords, protowire.BytesType), []byte{0x0a, 0x05})),
		"field number 0":       {0x00, 0x01},
		"field number too big": protowire.AppendVarint(protowire.AppendVarint(nil, uint64(protowire.MaxValidNumber+1)<<3), 1),
		"end group alone":      tag(nil, 5, protowire.EndGroupType),
		"unterminated group":   tag(nil, 5, protowire.StartGroupType),
		"mismatched group":     tag(tag(nil, 5, protowire.StartGroupType), 6, protowire.EndGroupType),
		"wire type 6":          {0x0e},
		"wire type 7":          {0x0f},
	}
}

func TestUnmarshalProduceEdgeCases(t *testing.T) {
	for name, b := range produceEdgeCases() {
		t.Run(name, func(t *testing.T) {
			_, err := unmarshalBoth(t, b)
			if err != nil && !errors.Is(err, errMalformed) {
				t.Fatalf("error %v is not errMalformed", err)
			}
		})
	}
}

// TestCodecDelegatesOtherMessages checks that the codec is the protobuf
// codec for every other message.
func TestCodecDelegatesOtherMessages(t *testing.T) {
	msgs := []proto.Message{
		&stratav1.ProduceResponse{Partitions: []*stratav1.ProducePartitionResult{{Partition: 1, BaseOffset: 5}}},
		&stratav1.FetchRequest{Partitions: []*stratav1.FetchPartition{{Topic: "t", Offset: 3}}, MaxWaitMs: 10},
		&stratav1.CreateTopicRequest{Name: "t", Partitions: 3, Configs: map[string]string{"a": "b"}}, // one entry: map order varies,
		produceShapes()["batches"], // marshalled by proto: the server never sends one
	}
	for _, m := range msgs {
		data, err := codec{}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		want, err := protoCodec.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data.Materialize(), want.Materialize()) {
			t.Fatalf("%T: encodings differ", m)
		}
		got := m.ProtoReflect().New().Interface()
		if err := (codec{}).Unmarshal(data, got); err != nil || !proto.Equal(got, m) {
			t.Fatalf("%T: got %v, %v", m, got, err)
		}
	}
	// FetchResponse is decoded by proto (clients, tests).
	want := fetchShapes()["many partitions"]
	data, err := codec{}.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got := &stratav1.FetchResponse{}
	if err := (codec{}).Unmarshal(data, got); err != nil || !proto.Equal(got, want) {
		t.Fatalf("FetchResponse: got %v, %v", got, err)
	}
	if _, err := (codec{}).Marshal("not a message"); err == nil || !strings.Contains(err.Error(), "proto") {
		t.Fatalf("non-message: %v", err)
	}
	if (codec{}).Name() != "proto" {
		t.Fatal("codec must keep the proto content type")
	}
}

// keepPool is a pool that keeps nothing: the benchmarks hand the same read
// buffers to gRPC on every iteration.
type keepPool struct{}

func (keepPool) Get(n int) *[]byte { b := make([]byte, n); return &b }
func (keepPool) Put(*[]byte)       {}

// benchBuffers are n pooled read buffers of size bytes of record batches.
func benchBuffers(n, size int) []*[]byte {
	bufs := make([]*[]byte, n)
	for i := range bufs {
		bufs[i] = keepPool{}.Get(size)
	}
	return bufs
}

// BenchmarkFetchReplyMarshal encodes a fetch of 100 partitions of 1 MiB of
// batches each, read into pooled buffers, as the server does.
func BenchmarkFetchReplyMarshal(b *testing.B) {
	bufs := benchBuffers(100, 1<<20)
	resp := &stratav1.FetchResponse{}
	for i := range bufs {
		resp.Partitions = append(resp.Partitions, &stratav1.FetchPartitionResult{
			Topic: "orders", Partition: int32(i), HighWatermark: 1 << 30, LogStartOffset: 1 << 20, NextOffset: 1<<30 - 1,
		})
	}
	reply := &fetchReply{FetchResponse: resp, pool: keepPool{}}
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
