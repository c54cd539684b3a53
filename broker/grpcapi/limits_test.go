package grpcapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/encoding/gzip" // the client's side of grpc-encoding gzip
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/record"
)

// rawMessage is an encoded message, sent as is by rawCodec.
type rawMessage []byte

type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(rawMessage)
	if !ok {
		return nil, fmt.Errorf("rawCodec: %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(m)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*rawMessage)
	if !ok {
		return errors.New("rawCodec: want a *rawMessage")
	}
	*m = data.Materialize()
	return nil
}

func rawClient(t *testing.T, addr string, opts ...grpc.CallOption) *grpc.ClientConn {
	t.Helper()
	opts = append(opts, grpc.ForceCodecV2(rawCodec{}), grpc.MaxCallSendMsgSize(MaxMessageBytes), grpc.MaxCallRecvMsgSize(MaxMessageBytes))
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(opts...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// emptyEntries is a FetchRequest (or any message whose field 1 is a
// repeated message) of n empty entries, 2 bytes each.
func emptyEntries(n int) rawMessage { return bytes.Repeat([]byte{0x0a, 0x00}, n) }

func TestRequestsAreRefusedBeforeDecoding(t *testing.T) {
	_, _, addr := serveBroker(t, testBroker{})
	conn := rawClient(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		msg  rawMessage
		why  string
	}{
		{"over its method's limit", emptyEntries(MaxRequestBytes/2 + 1), "over its limit"},
		{"amplifying under the limit", emptyEntries(MaxRequestBytes/2 - 1), "to decode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out rawMessage
			err := conn.Invoke(ctx, stratav1.Strata_Fetch_FullMethodName, tc.msg, &out)
			if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), tc.why) {
				t.Fatalf("unary Fetch: %v, want RESOURCE_EXHAUSTED (%s)", err, tc.why)
			}
			// A stream's message is checked the same way.
			stream, err := conn.NewStream(ctx, &grpc.StreamDesc{StreamName: "FetchStream", ServerStreams: true}, stratav1.Strata_FetchStream_FullMethodName)
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.SendMsg(tc.msg); err != nil {
				t.Fatal(err)
			}
			stream.CloseSend()
			if err := stream.RecvMsg(&out); status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("FetchStream: %v, want RESOURCE_EXHAUSTED", err)
			}
		})
	}
	// Replication's requests too: field 5, partitions.
	var out rawMessage
	err := conn.Invoke(ctx, stratav1.Replication_ReplicaFetch_FullMethodName, rawMessage(bytes.Repeat([]byte{0x2a, 0x00}, MaxRequestBytes/2-1)), &out)
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("ReplicaFetch of empty entries: %v, want RESOURCE_EXHAUSTED", err)
	}
}

// A gzip-compressed message may not inflate past MaxRequestBytes: gRPC
// would otherwise inflate it up to MaxMessageBytes before any check.
func TestCompressedRequestsAreBoundedWhileInflating(t *testing.T) {
	_, _, addr := serveBroker(t, testBroker{})
	conn := rawClient(t, addr, grpc.UseCompressor("gzip"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Produce may be large, but not inflated from a gzip-compressed one.
	big := make(rawMessage, MaxRequestBytes+1)
	var out rawMessage
	err := conn.Invoke(ctx, stratav1.Strata_Produce_FullMethodName, big, &out)
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a gzip-compressed Produce inflating past %d bytes: %v, want RESOURCE_EXHAUSTED", MaxRequestBytes, err)
	}
	// A small compressed request is served.
	md, err := proto.Marshal(&stratav1.MetadataRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Invoke(ctx, stratav1.Strata_Metadata_FullMethodName, rawMessage(md), &out); err != nil {
		t.Fatalf("a gzip-compressed Metadata: %v", err)
	}
}

// Requests as large as real clients send are well within the bounds: a
// Fetch of 4,000 partitions of a one-letter topic (the most entries per
// byte a real request has), and a follower's ReplicaFetch of 20,000.
func TestRealisticRequestsAreWithinTheDecodeBound(t *testing.T) {
	fetch := realisticFetch()
	replica := &stratav1.ReplicaFetchRequest{}
	for p := range 20000 {
		replica.Partitions = append(replica.Partitions, &stratav1.ReplicaFetchPartition{
			Topic: fmt.Sprintf("topic-%d", p%7), Partition: int32(p), CurrentLeaderEpoch: 7, FetchOffset: 1 << 40, LastFetchedEpoch: 7,
		})
	}
	for _, m := range []proto.Message{fetch, replica} {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := (serverCodec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, m.ProtoReflect().New().Interface()); err != nil {
			t.Errorf("%T of %d bytes: %v", m, len(b), err)
		}
	}
}

// decodeCost is an estimate of what proto.Unmarshal allocates; it must not
// fall far below it, or the bound means nothing.
func TestDecodeCostCoversWhatUnmarshalAllocates(t *testing.T) {
	headers := &stratav1.Record{Key: []byte("k"), Value: []byte("v")}
	for range 100 {
		headers.Headers = append(headers.Headers, &stratav1.Header{Key: "h", Value: []byte("x")})
	}
	groupJoin := &stratav1.ConsumeGroupRequest{Group: "g", ClientId: "c"}
	for i := range 1000 {
		groupJoin.Topics = append(groupJoin.Topics, fmt.Sprintf("topic-%d", i))
	}
	for _, tc := range []struct {
		name string
		msg  proto.Message
		wire []byte
	}{
		{"Fetch of empty entries", &stratav1.FetchRequest{}, emptyEntries(100_000)},
		{"Fetch of 4,000 partitions", &stratav1.FetchRequest{}, mustMarshal(t, realisticFetch())},
		{"ConsumeGroupRequest of empty topics", &stratav1.ConsumeGroupRequest{}, bytes.Repeat([]byte{0x12, 0x00}, 100_000)},
		{"Record of empty headers", &stratav1.Record{}, bytes.Repeat([]byte{0x2a, 0x00}, 100_000)},
		{"Record of small headers", &stratav1.Record{}, mustMarshal(t, headers)},
		{"ConsumeGroupRequest", groupJoin, mustMarshal(t, groupJoin)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cost, err := decodeCost(tc.wire, tc.msg.ProtoReflect().Descriptor(), 0)
			if err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			if err := proto.Unmarshal(tc.wire, tc.msg); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			alloc := int64(after.TotalAlloc - before.TotalAlloc)
			t.Logf("%d wire bytes: estimated %d, allocated %d", len(tc.wire), cost, alloc)
			if cost < alloc/2 {
				t.Fatalf("estimated %d bytes, under half of the %d proto.Unmarshal allocated", cost, alloc)
			}
		})
	}
}

func realisticFetch() *stratav1.FetchRequest {
	fetch := &stratav1.FetchRequest{MaxBytes: 50 << 20, MaxWaitMs: 500}
	for p := range 4000 {
		fetch.Partitions = append(fetch.Partitions, &stratav1.FetchPartition{Topic: "t", Partition: int32(p), Offset: 1 << 40, MaxBytes: 1 << 20})
	}
	return fetch
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Decoded records are bounded by the request's byte bound as batches are:
// batches inflating 100 times would otherwise make a response 100 times
// the bound. Decoding stops before the batch that would pass it, the
// partition's next offset is where it stopped, and reading on from there
// returns every record once.
func TestDecodedFetchIsBoundedByMaxBytes(t *testing.T) {
	_, c, _ := serveBroker(t, testBroker{})
	createTopic(t, c, "d", 1)
	ctx := context.Background()
	const batches, value = 8, 256 << 10
	for range batches {
		bld := record.NewBuilder(time.Now().UnixMilli(), value+64)
		bld.Append(&record.Record{Value: make([]byte, value)})
		batch, err := bld.Build(record.ZSTD)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Produce(ctx, &stratav1.ProduceRequest{Topic: "d", Acks: stratav1.Acks_ACKS_LEADER,
			Partitions: []*stratav1.ProducePartition{{Partition: 0, RecordBatches: bytes.Clone(batch)}}})
		if err != nil || resp.GetPartitions()[0].GetError() != nil {
			t.Fatalf("produce: %v %v", err, resp)
		}
	}
	const maxBytes = 3 * value / 2
	var offsets []int64
	for from := int64(0); from < batches; {
		resp, err := c.Fetch(ctx, &stratav1.FetchRequest{Decode: true, MaxBytes: maxBytes,
			Partitions: []*stratav1.FetchPartition{{Topic: "d", Partition: 0, Offset: from}}})
		if err != nil {
			t.Fatal(err)
		}
		pr := resp.GetPartitions()[0]
		if pr.GetError() != nil {
			t.Fatal(pr.GetError())
		}
		size := 0
		for _, r := range pr.GetRecords() {
			size += len(r.GetValue())
			offsets = append(offsets, r.GetOffset())
		}
		if len(pr.GetRecords()) == 0 || size > maxBytes+value {
			t.Fatalf("from %d: %d records of %d bytes, want at least one and at most a batch past %d bytes", from, len(pr.GetRecords()), size, maxBytes)
		}
		if pr.GetNextOffset() <= from {
			t.Fatalf("from %d: next offset %d", from, pr.GetNextOffset())
		}
		from = pr.GetNextOffset()
	}
	for i, off := range offsets {
		if off != int64(i) {
			t.Fatalf("offsets read %v, want 0..%d once each", offsets, batches-1)
		}
	}
}
