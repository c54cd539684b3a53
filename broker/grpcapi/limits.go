package grpcapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"

	"github.com/klauspost/compress/gzip"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// What a client's message may cost the server is bounded before it is
// decoded. gRPC's message limit (MaxRecvMsgSize) is one number for the
// whole server, and Produce needs a large one; decoded by protobuf, a
// FetchRequest of 2-byte empty partition entries costs a 70-byte struct per
// entry, so a 32 MiB one took 2.4 GB. The server's codec therefore checks
// each message, whose type names its method, before it decodes it:
//
//   - its size against its method's limit: MaxMessageBytes for a
//     ProduceRequest, MaxRequestBytes for everything else;
//   - what decoding it would allocate, estimated by walking its wire form
//     with its descriptor (decodeCost), against 2 × its size + decodeSlack:
//     this bounds the element counts of every repeated field, at every
//     depth, by what they cost rather than by a number per field.
//
// gRPC reads a message whole, up to MaxRecvMsgSize, before any code of the
// server sees it, so a refused message has cost its wire size, never its
// decoded size. A refusal reaches the client as RESOURCE_EXHAUSTED, as
// gRPC's own limit does. The codec cannot choose that status: gRPC answers
// any codec error with INTERNAL, and writes it before the handler returns.
// So a refused message is handed on empty, carrying the refusal in a field
// strata.proto can never declare (refusalField), and every method's handler
// is wrapped to answer such a message (refusalsAsResourceExhausted).

const (
	// MaxRequestBytes bounds every message a client sends but a
	// ProduceRequest: gRPC's own default limit, far above what a request
	// naming thousands of partitions takes.
	MaxRequestBytes = 4 << 20
	// decodeSlack is what decoding may allocate beyond twice a message's
	// size: a request of many small elements costs more than 2 bytes per
	// wire byte (a Fetch naming a one-letter topic 8, a follower's
	// ReplicaFetch 5), and the slack lets one of 100,000 of them through.
	decodeSlack = 8 << 20
	// MaxConcurrentStreams bounds the calls in flight on one connection;
	// HTTP/2 asks for at least 100. A client opening more is refused the
	// rest (REFUSED_STREAM; gRPC's client queues them instead).
	MaxConcurrentStreams = 128
)

// refusalField carries a refusal in a message: the highest field number
// protobuf allows, which strata.proto will not reach.
const refusalField = protowire.MaxValidNumber

// refusal is the wire form of a message carrying only a refusal.
func refusal(format string, args ...any) []byte {
	b := protowire.AppendTag(nil, refusalField, protowire.BytesType)
	return protowire.AppendString(b, fmt.Sprintf(format, args...))
}

// refuse empties m and makes it carry a refusal.
func refuse(m proto.Message, format string, args ...any) {
	proto.Reset(m)
	m.ProtoReflect().SetUnknown(refusal(format, args...))
}

// refused is RESOURCE_EXHAUSTED with the refusal m carries, nil if it
// carries none.
func refused(m any) error {
	pm, ok := m.(proto.Message)
	if !ok {
		return nil
	}
	u := pm.ProtoReflect().GetUnknown()
	num, typ, n := protowire.ConsumeTag(u)
	if n < 0 || num != refusalField || typ != protowire.BytesType {
		return nil
	}
	text, k := protowire.ConsumeString(u[n:])
	if k < 0 || n+k != len(u) {
		return nil
	}
	return status.Error(codes.ResourceExhausted, text)
}

// serverCodec is the codec with the checks above on what it receives.
type serverCodec struct{ codec }

func (c serverCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return c.codec.Unmarshal(data, v)
	}
	md := m.ProtoReflect().Descriptor()
	size := data.Len()
	limit := MaxRequestBytes
	if md.FullName() == produceRequestName {
		limit = MaxMessageBytes
	}
	if size > limit {
		refuse(m, "%s of %d bytes is over its limit of %d", md.Name(), size, limit)
		return nil
	}
	var b []byte
	if md.FullName() == produceRequestName {
		// Its one copy, which the request keeps (see codec).
		b = data.Materialize()
	} else {
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		defer buf.Free()
		b = buf.ReadOnlyData()
	}
	cost, err := decodeCost(b, md, 0)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", errMalformed, md.Name(), err)
	}
	if allowed := 2*int64(size) + decodeSlack; cost > allowed {
		refuse(m, "%s of %d bytes would take about %d bytes to decode, over %d (2 × its size + %d)",
			md.Name(), size, cost, allowed, decodeSlack)
		return nil
	}
	if md.FullName() == produceRequestName {
		return unmarshalProduce(b, v.(*stratav1.ProduceRequest))
	}
	return proto.Unmarshal(b, m)
}

var produceRequestName = (&stratav1.ProduceRequest{}).ProtoReflect().Descriptor().FullName()

// Costs of decodeCost, measured on proto.Unmarshal with some room: a
// nested message's pointer and its share of its repeated field's slice as
// the slice grows; a string's or bytes' share of its repeated field's
// slice; a map entry of Go's maps, beside its key and value.
const (
	slotCost     = 48
	headerCost   = 96
	mapEntryCost = 64
	// maxDepth is protobuf's own recursion limit for Unmarshal.
	maxDepth = 10000
)

// decodeCost estimates what proto.Unmarshal allocates to decode b as a
// message of md: its struct, its nested messages' structs with their slice
// slots, its strings and bytes, its repeated scalars (8 bytes each, counted
// twice for growth), its map entries, and its unknown fields as kept.
func decodeCost(b []byte, md protoreflect.MessageDescriptor, depth int) (int64, error) {
	if depth > maxDepth {
		return 0, errors.New("nested too deep")
	}
	cost := structSize(md)
	fields := md.Fields()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return 0, protowire.ParseError(m)
		}
		value := b[n : n+m]
		b = b[n+m:]
		fd := fields.ByNumber(num)
		if fd == nil {
			cost += int64(n + m) // kept among the unknown fields
			continue
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			cost += slotCost // the oneof's wrapper
		}
		switch {
		case fd.IsMap():
			cost += mapEntryCost + int64(m)
		case fd.Message() != nil:
			if typ != protowire.BytesType {
				cost += int64(m)
				continue
			}
			v, _ := protowire.ConsumeBytes(value)
			sub, err := decodeCost(v, fd.Message(), depth+1)
			if err != nil {
				return 0, err
			}
			cost += sub + slotCost
		case fd.Kind() == protoreflect.StringKind, fd.Kind() == protoreflect.BytesKind:
			cost += int64(m)
			if fd.IsList() {
				cost += headerCost
			}
		case fd.IsList() && typ == protowire.BytesType:
			// Packed scalars: at least one byte each.
			v, _ := protowire.ConsumeBytes(value)
			cost += int64(len(v)) * 2 * 8
		case fd.IsList():
			cost += 2 * 8
		}
	}
	return cost, nil
}

// structSizes are the Go structs' sizes of every message of strata.proto,
// computed once.
var structSizes = func() map[protoreflect.FullName]int64 {
	sizes := map[protoreflect.FullName]int64{}
	var walk func(protoreflect.MessageDescriptors)
	walk = func(mds protoreflect.MessageDescriptors) {
		for i := range mds.Len() {
			md := mds.Get(i)
			if mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName()); err == nil {
				sizes[md.FullName()] = int64(reflect.TypeOf(mt.Zero().Interface()).Elem().Size())
			}
			walk(md.Messages())
		}
	}
	walk(stratav1.File_strata_v1_strata_proto.Messages())
	return sizes
}()

// structSize is a message's struct size, or a generous guess for a message
// of another file.
func structSize(md protoreflect.MessageDescriptor) int64 {
	if n, ok := structSizes[md.FullName()]; ok {
		return n
	}
	return 128
}

// refusalsAsResourceExhausted makes every method of desc answer a message
// serverCodec refused with RESOURCE_EXHAUSTED.
func refusalsAsResourceExhausted(desc grpc.ServiceDesc) grpc.ServiceDesc {
	methods := make([]grpc.MethodDesc, len(desc.Methods))
	for i, md := range desc.Methods {
		h := md.Handler
		md.Handler = func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			return h(srv, ctx, func(m any) error {
				if err := dec(m); err != nil {
					return err
				}
				return refused(m)
			}, ic)
		}
		methods[i] = md
	}
	streams := make([]grpc.StreamDesc, len(desc.Streams))
	for i, sd := range desc.Streams {
		h := sd.Handler
		sd.Handler = func(srv any, ss grpc.ServerStream) error { return h(srv, refusingStream{ss}) }
		streams[i] = sd
	}
	desc.Methods, desc.Streams = methods, streams
	return desc
}

type refusingStream struct{ grpc.ServerStream }

func (s refusingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return refused(m)
}

// gzipDecompressor bounds what a gzip-compressed message (grpc-encoding)
// inflates to at MaxRequestBytes, for every method: gRPC's own decompresses
// up to MaxRecvMsgSize, 100 MiB, before any check of the server's, from a
// message of 100 KB. Produce's records are compressed in their batches; a
// client has no need to compress the message too.
type gzipDecompressor struct{}

func (gzipDecompressor) Type() string { return "gzip" }

func (gzipDecompressor) Do(r io.Reader) ([]byte, error) {
	z, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if _, err := io.Copy(&out, io.LimitReader(z, MaxRequestBytes+1)); err != nil {
		return nil, err
	}
	if out.Len() > MaxRequestBytes {
		// Handed to the codec, which decodes it as a refused message: an
		// error here would reach the client as INTERNAL.
		return refusal("a gzip-compressed message inflates past %d bytes", MaxRequestBytes), nil
	}
	return out.Bytes(), nil
}
