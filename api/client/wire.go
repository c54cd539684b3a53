package client

import (
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// The client bypasses protobuf's generated code for the two messages that
// carry record bytes, because the generic code copies them:
//
// The producer does not build a stratav1.ProduceRequest: marshalling one
// would copy every record batch into the message's buffer, after a first
// copy to concatenate the batches of a partition. Instead produceWire lists
// the batches, and produceCodec writes the request's protobuf encoding as a
// few small header buffers with the batches' own buffers between them, so
// record bytes go from the batch builder to the socket with no copy of ours.
// The encoding is ProduceRequest's exactly; the server decodes it with the
// ordinary protobuf codec.
//
// The consumer decodes FetchResponse with fetchResponse.decode, whose record
// batches alias the received bytes: protobuf's unmarshalling would copy them
// once more.

// Field numbers of ProduceRequest and ProducePartition in strata.proto.
const (
	fieldProduceTopic        = 1
	fieldProduceAcks         = 2
	fieldProduceTimeoutMs    = 3
	fieldProducePartitions   = 4
	fieldPartitionPartition  = 1
	fieldPartitionRecBatches = 3
)

// produceWire is a produce request whose record batches stay in the
// producer's buffers.
type produceWire struct {
	topic     string
	acks      stratav1.Acks
	timeoutMs int32
	parts     []wirePart
}

type wirePart struct {
	partition int32
	batches   []*batch
}

// proto returns the request as a protobuf message, with the batches of each
// partition copied together: the form for tests and for transports that do
// not use produceCodec.
func (w *produceWire) proto() *stratav1.ProduceRequest {
	req := &stratav1.ProduceRequest{Topic: w.topic, Acks: w.acks, TimeoutMs: w.timeoutMs}
	for _, p := range w.parts {
		var data []byte
		for _, bt := range p.batches {
			data = append(data, bt.data...)
		}
		req.Partitions = append(req.Partitions, &stratav1.ProducePartition{Partition: p.partition, RecordBatches: data})
	}
	return req
}

// marshal encodes the request. Each batch's buffer goes out as its own
// mem.Buffer, which gRPC frees once written; the batch is recycled only after
// that (see batch.release).
func (w *produceWire) marshal() mem.BufferSlice {
	var head []byte
	head = protowire.AppendTag(head, fieldProduceTopic, protowire.BytesType)
	head = protowire.AppendString(head, w.topic)
	if w.acks != 0 {
		head = protowire.AppendTag(head, fieldProduceAcks, protowire.VarintType)
		head = protowire.AppendVarint(head, uint64(w.acks))
	}
	if w.timeoutMs != 0 {
		head = protowire.AppendTag(head, fieldProduceTimeoutMs, protowire.VarintType)
		head = protowire.AppendVarint(head, uint64(int64(w.timeoutMs)))
	}
	out := make(mem.BufferSlice, 0, 1+2*len(w.parts))
	for _, p := range w.parts {
		data := 0
		for _, bt := range p.batches {
			data += len(bt.data)
		}
		// ProducePartition: partition, then record_batches.
		msg := 0
		if p.partition != 0 {
			msg += protowire.SizeTag(fieldPartitionPartition) + protowire.SizeVarint(uint64(int64(p.partition)))
		}
		msg += protowire.SizeTag(fieldPartitionRecBatches) + protowire.SizeBytes(data)
		head = protowire.AppendTag(head, fieldProducePartitions, protowire.BytesType)
		head = protowire.AppendVarint(head, uint64(msg))
		if p.partition != 0 {
			head = protowire.AppendTag(head, fieldPartitionPartition, protowire.VarintType)
			head = protowire.AppendVarint(head, uint64(int64(p.partition)))
		}
		head = protowire.AppendTag(head, fieldPartitionRecBatches, protowire.BytesType)
		head = protowire.AppendVarint(head, uint64(data))
		out = append(out, mem.SliceBuffer(head))
		head = nil
		for _, bt := range p.batches {
			bt.refs.Add(1) // gRPC's reference, dropped by batchPool.Put
			out = append(out, mem.NewBuffer(&bt.data, bt.pool))
		}
	}
	if len(head) > 0 { // no partitions
		out = append(out, mem.SliceBuffer(head))
	}
	return out
}

// wireCodec is the protobuf codec, except that it encodes a *produceWire and
// decodes a *fetchResponse itself. Its name is "proto", so requests carry the
// usual content type and the server needs nothing special.
type wireCodec struct{}

func (wireCodec) Name() string { return grpcproto.Name }

func (wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	if w, ok := v.(*produceWire); ok {
		return w.marshal(), nil
	}
	return protoCodec.Marshal(v)
}

func (wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*fetchResponse); ok {
		// One copy, into memory the consumer owns: gRPC reuses data's
		// buffers after this returns, and record batches (and the keys
		// and values of consumed records) alias buf.
		buf := r.pool.get(data.Len())
		data.CopyTo(buf)
		r.buf = buf
		return r.decode(buf)
	}
	return protoCodec.Unmarshal(data, v)
}

// codecOption makes a call use wireCodec.
var codecOption = grpc.ForceCodecV2(wireCodec{})

// protoCodec is gRPC's own protobuf codec, registered by importing its
// package.
var protoCodec = encoding.GetCodecV2(grpcproto.Name)

// batchPool is the mem.BufferPool of one batch's buffer: gRPC "returns" the
// buffer to it when written, which releases gRPC's reference on the batch.
type batchPool struct {
	p  *Producer
	bt *batch
}

// Get is not used by gRPC for buffers it did not allocate; it is here to
// satisfy mem.BufferPool.
func (bp *batchPool) Get(n int) *[]byte {
	b := make([]byte, n)
	return &b
}

func (bp *batchPool) Put(b *[]byte) {
	if b == &bp.bt.data {
		bp.p.release(bp.bt)
	}
}

// Field numbers of FetchResponse, FetchPartitionResult and PartitionError.
const (
	fieldFetchPartitions    = 1
	fieldResultTopic        = 1
	fieldResultPartition    = 2
	fieldResultHighWater    = 3
	fieldResultLogStart     = 4
	fieldResultRecBatches   = 5
	fieldResultError        = 7
	fieldResultNextOffset   = 8
	fieldResultLastStable   = 9
	fieldPartitionErrCode   = 1
	fieldPartitionErrMsg    = 2
	fieldPartitionErrReason = 3
)

// fetchResponse is a FetchResponse as the consumer reads it: record batches
// alias the response buffer, and decoded (structured) records are skipped:
// the consumer never asks for them.
type fetchResponse struct {
	partitions []*fetchResult
	// pool, if not nil, provides the buffer the response is read into; buf
	// is that buffer.
	pool bufferPool
	buf  []byte
}

// bufferPool recycles response buffers whose contents nobody references any
// more. Allocating a fresh buffer of many MiB per response costs more than
// reading it (the memory must be zeroed, often faulted in anew).
type bufferPool chan []byte

// get returns a buffer of n bytes, not zeroed.
func (p bufferPool) get(n int) []byte {
	select {
	case b := <-p:
		if cap(b) >= n {
			return b[:n]
		}
	default:
	}
	return make([]byte, n)
}

// put offers b for reuse; a nil pool or a full one drops it.
func (p bufferPool) put(b []byte) {
	select {
	case p <- b:
	default:
	}
}

// fetchResult is one FetchPartitionResult. Its getters mirror the generated
// ones.
type fetchResult struct {
	topic          string
	partition      int32
	highWatermark  int64
	logStartOffset int64
	recordBatches  []byte
	err            *stratav1.PartitionError
	nextOffset     int64
	// lastStableOffset is -1 when the broker did not send it (an older
	// broker): the field is optional, so a 0 is sent too.
	lastStableOffset int64
}

func (r *fetchResponse) GetPartitions() []*fetchResult { return r.partitions }
func (r *fetchResult) GetTopic() string                { return r.topic }
func (r *fetchResult) GetPartition() int32             { return r.partition }
func (r *fetchResult) GetHighWatermark() int64         { return r.highWatermark }
func (r *fetchResult) GetLogStartOffset() int64        { return r.logStartOffset }
func (r *fetchResult) GetRecordBatches() []byte        { return r.recordBatches }
func (r *fetchResult) GetError() *stratav1.PartitionError {
	return r.err
}
func (r *fetchResult) GetNextOffset() int64 { return r.nextOffset }

var errMalformed = errors.New("malformed FetchResponse")

// decode parses a FetchResponse's protobuf encoding. As protobuf does, it
// skips unknown fields, keeps the last value of a repeated scalar and merges
// repeated occurrences of a message.
func (r *fetchResponse) decode(b []byte) error {
	return walkFields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != fieldFetchPartitions || typ != protowire.BytesType {
			return nil
		}
		res := &fetchResult{lastStableOffset: -1}
		if err := res.decode(v); err != nil {
			return err
		}
		r.partitions = append(r.partitions, res)
		return nil
	})
}

func (r *fetchResult) decode(b []byte) error {
	return walkFields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == fieldResultTopic && typ == protowire.BytesType:
			r.topic = string(v)
		case num == fieldResultPartition && typ == protowire.VarintType:
			r.partition = int32(x)
		case num == fieldResultHighWater && typ == protowire.VarintType:
			r.highWatermark = int64(x)
		case num == fieldResultLogStart && typ == protowire.VarintType:
			r.logStartOffset = int64(x)
		case num == fieldResultRecBatches && typ == protowire.BytesType:
			r.recordBatches = v // a repeated scalar field: the last wins
		case num == fieldResultError && typ == protowire.BytesType:
			if r.err == nil {
				r.err = &stratav1.PartitionError{}
			}
			return walkFields(v, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
				switch {
				case num == fieldPartitionErrCode && typ == protowire.VarintType:
					r.err.Code = int32(x)
				case num == fieldPartitionErrMsg && typ == protowire.BytesType:
					r.err.Message = string(v)
				case num == fieldPartitionErrReason && typ == protowire.BytesType:
					r.err.Reason = string(v)
				}
				return nil
			})
		case num == fieldResultNextOffset && typ == protowire.VarintType:
			r.nextOffset = int64(x)
		case num == fieldResultLastStable && typ == protowire.VarintType:
			r.lastStableOffset = int64(x)
		}
		return nil
	})
}

// walkFields calls fn for each field of a message: v is the value of a
// length-delimited field, x the value of a varint one.
func walkFields(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %v", errMalformed, protowire.ParseError(n))
		}
		b = b[n:]
		var (
			v []byte
			x uint64
		)
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("%w: field %d: %v", errMalformed, num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}
