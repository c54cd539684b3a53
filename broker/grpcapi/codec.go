package grpcapi

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// The server's codec is gRPC's protobuf codec, except for the messages that
// carry record batches, whose generic code copies every byte of them:
//
// A ProduceRequest arrives as a list of gRPC's buffers (one per HTTP/2
// frame). The protobuf codec copies them into one buffer, then
// proto.Unmarshal copies record_batches out of it into the message; gRPC
// reuses its buffers as soon as decoding returns. unmarshalProduce decodes
// from one copy that the request keeps, record_batches aliasing it.
//
// A FetchResponse's record batches are the buffers the log was read into.
// proto.Marshal copies them into one output buffer; fetchReply.marshal
// writes the same bytes as small header buffers with the read buffers
// between them, and hands pooled read buffers to gRPC, which gives them back
// to their pool once they are written.
//
// A ReplicaFetchResponse is written like a FetchResponse; the replica
// client uses this codec too, to decode it aliasing one copy of the received
// bytes (replicawire.go).
//
// All produce exactly what the protobuf codec would: the same message from
// the same bytes, the same bytes from the same message (codec_test.go and
// replicawire_test.go check against proto, fuzz_test.go with arbitrary
// input).

// Field numbers in strata.proto.
const (
	fieldProduceTopic       = 1
	fieldProduceAcks        = 2
	fieldProduceTimeoutMs   = 3
	fieldProducePartitions  = 4
	fieldPartitionPartition = 1
	fieldPartitionRecords   = 2
	fieldPartitionBatches   = 3

	// FetchResponse and ReplicaFetchResponse hold their partition results
	// as field 1, and FetchPartitionResult and ReplicaFetchPartitionResult
	// number alike the fields they share, which lets one encoder write both
	// (marshalResults).
	fieldPartitionResults = 1
	fieldResultTopic      = 1
	fieldResultPartition  = 2
	fieldResultHighWater  = 3
	fieldResultLogStart   = 4
	fieldResultBatches    = 5
	fieldResultError      = 7

	// FetchPartitionResult's own; ReplicaFetchPartitionResult's are in
	// replicawire.go.
	fieldFetchRecords          = 6
	fieldFetchNextOffset       = 8
	fieldFetchLastStableOffset = 9
)

// protoCodec is gRPC's protobuf codec, registered by its package.
var protoCodec = encoding.GetCodecV2(grpcproto.Name)

// codec is installed by ServerOptions, and on the replica client's
// connections. Its name is "proto": peers see the usual content type.
type codec struct{}

func (codec) Name() string { return grpcproto.Name }

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case *fetchReply:
		return m.marshal()
	case *stratav1.FetchResponse:
		return (&fetchReply{FetchResponse: m}).marshal()
	case *replicaFetchReply:
		return m.marshal()
	case *stratav1.ReplicaFetchResponse:
		return (&replicaFetchReply{ReplicaFetchResponse: m}).marshal()
	}
	return protoCodec.Marshal(v)
}

func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *stratav1.ProduceRequest:
		// The one copy, into memory the request owns: data's buffers go
		// back to gRPC when this returns.
		return unmarshalProduce(data.Materialize(), m)
	case *replicaFetchReceive:
		return m.receive(data)
	}
	return protoCodec.Unmarshal(data, v)
}

// errMalformed is the cause of every decoding error of unmarshalProduce and
// unmarshalReplicaFetch.
var errMalformed = errors.New("malformed message")

// malformed describes the protowire error code n, met in field num of msg.
func malformed(msg string, num protowire.Number, n int) error {
	return fmt.Errorf("%w: %s field %d: %v", errMalformed, msg, num, protowire.ParseError(n))
}

// unmarshalProduce sets req to the ProduceRequest encoded in b, as
// proto.Unmarshal does (unknown fields kept, the last of repeated scalars
// winning, strings checked for UTF-8), except that record_batches alias b.
// b becomes the request's: the broker stamps offsets into the batches.
func unmarshalProduce(b []byte, req *stratav1.ProduceRequest) error {
	proto.Reset(req)
	var unknown []byte
	for len(b) > 0 {
		num, typ, n, err := consumeTag(b, "ProduceRequest")
		if err != nil {
			return err
		}
		b = b[n:]
		var m int
		switch {
		case num == fieldProduceTopic && typ == protowire.BytesType:
			var v []byte
			if v, m = protowire.ConsumeBytes(b); m >= 0 {
				if !utf8.Valid(v) {
					return fmt.Errorf("%w: ProduceRequest.topic is not valid UTF-8", errMalformed)
				}
				req.Topic = string(v)
			}
		case num == fieldProduceAcks && typ == protowire.VarintType:
			var x uint64
			x, m = protowire.ConsumeVarint(b)
			req.Acks = stratav1.Acks(int32(x))
		case num == fieldProduceTimeoutMs && typ == protowire.VarintType:
			var x uint64
			x, m = protowire.ConsumeVarint(b)
			req.TimeoutMs = int32(x)
		case num == fieldProducePartitions && typ == protowire.BytesType:
			var v []byte
			if v, m = protowire.ConsumeBytes(b); m >= 0 {
				pp := &stratav1.ProducePartition{}
				if err := unmarshalProducePartition(v, pp); err != nil {
					return err
				}
				req.Partitions = append(req.Partitions, pp)
			}
		default:
			// Unknown, or a known number with another wire type: protobuf
			// keeps it among the unknown fields.
			if m = protowire.ConsumeFieldValue(num, typ, b); m >= 0 {
				unknown = appendUnknown(unknown, num, typ, b[:m])
			}
		}
		if m < 0 {
			return malformed("ProduceRequest", num, m)
		}
		b = b[m:]
	}
	if len(unknown) > 0 {
		req.ProtoReflect().SetUnknown(unknown)
	}
	return nil
}

// unmarshalProducePartition decodes one ProducePartition as
// unmarshalProduce does; nested Records are left to proto.Unmarshal.
func unmarshalProducePartition(b []byte, pp *stratav1.ProducePartition) error {
	var unknown []byte
	for len(b) > 0 {
		num, typ, n, err := consumeTag(b, "ProducePartition")
		if err != nil {
			return err
		}
		b = b[n:]
		var m int
		switch {
		case num == fieldPartitionPartition && typ == protowire.VarintType:
			var x uint64
			x, m = protowire.ConsumeVarint(b)
			pp.Partition = int32(x)
		case num == fieldPartitionRecords && typ == protowire.BytesType:
			var v []byte
			if v, m = protowire.ConsumeBytes(b); m >= 0 {
				r := &stratav1.Record{}
				if err := proto.Unmarshal(v, r); err != nil {
					return fmt.Errorf("%w: ProducePartition.records: %v", errMalformed, err)
				}
				pp.Records = append(pp.Records, r)
			}
		case num == fieldPartitionBatches && typ == protowire.BytesType:
			var v []byte
			if v, m = protowire.ConsumeBytes(b); m >= 0 {
				// Capacity clipped, so an append to one partition's
				// batches cannot overwrite what follows them.
				pp.RecordBatches = v[:len(v):len(v)]
				if len(v) == 0 {
					pp.RecordBatches = nil // as proto.Unmarshal leaves it
				}
			}
		default:
			if m = protowire.ConsumeFieldValue(num, typ, b); m >= 0 {
				unknown = appendUnknown(unknown, num, typ, b[:m])
			}
		}
		if m < 0 {
			return malformed("ProducePartition", num, m)
		}
		b = b[m:]
	}
	if len(unknown) > 0 {
		pp.ProtoReflect().SetUnknown(unknown)
	}
	return nil
}

// appendUnknown keeps a field among the unknown ones as proto.Unmarshal
// does: the tag re-encoded in its shortest form, then the value as received.
func appendUnknown(unknown []byte, num protowire.Number, typ protowire.Type, value []byte) []byte {
	return append(protowire.AppendTag(unknown, num, typ), value...)
}

// consumeTag is protowire.ConsumeTag with protobuf's bound on field numbers,
// which ConsumeTag leaves to its caller.
func consumeTag(b []byte, msg string) (protowire.Number, protowire.Type, int, error) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, 0, fmt.Errorf("%w: %s: %v", errMalformed, msg, protowire.ParseError(n))
	}
	if num > protowire.MaxValidNumber {
		return 0, 0, 0, fmt.Errorf("%w: %s: field number %d out of range", errMalformed, msg, num)
	}
	return num, typ, n, nil
}
