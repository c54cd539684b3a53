package grpcapi

import (
	"fmt"
	"unicode/utf8"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// fetchReply is a FetchResponse whose record batches may be in pooled read
// buffers: bufs[i], when not nil, is the buffer from pool whose prefix is
// Partitions[i].RecordBatches.
//
// Marshalling hands those buffers to gRPC, which gives them back to the pool
// once it has written them; from then on nothing else may reference them, so
// marshal also drops them from the message (gRPC may look at a reply after
// sending it, for logging). A reply that is never marshalled by codec leaves
// its buffers to the garbage collector. fetchReply embeds the message, so it
// is a proto.Message itself and any codec encodes it the same.
type fetchReply struct {
	*stratav1.FetchResponse
	pool mem.BufferPool
	bufs []*[]byte
}

// marshal encodes the response exactly as proto.Marshal does (fields in
// number order, zero values left out, unknown fields last), but with each
// partition's record batches as a buffer of their own instead of a copy.
func (r *fetchReply) marshal() (mem.BufferSlice, error) {
	if r == nil || r.FetchResponse == nil {
		return mem.BufferSlice{mem.SliceBuffer(nil)}, nil
	}
	resp := r.FetchResponse
	w := splitWriter{head: make([]byte, 0, 64*len(resp.Partitions)+16)}
	for i, pr := range resp.Partitions {
		size, err := resultSize(pr)
		if err != nil {
			return nil, err
		}
		w.head = protowire.AppendTag(w.head, fieldFetchPartitions, protowire.BytesType)
		w.head = protowire.AppendVarint(w.head, uint64(size))
		if pr == nil {
			continue
		}
		if pr.Topic != "" {
			w.head = protowire.AppendTag(w.head, fieldResultTopic, protowire.BytesType)
			w.head = protowire.AppendString(w.head, pr.Topic)
		}
		w.varint(fieldResultPartition, uint64(int64(pr.Partition)))
		w.varint(fieldResultHighWater, uint64(pr.HighWatermark))
		w.varint(fieldResultLogStart, uint64(pr.LogStartOffset))
		if len(pr.RecordBatches) > 0 {
			w.head = protowire.AppendTag(w.head, fieldResultBatches, protowire.BytesType)
			w.head = protowire.AppendVarint(w.head, uint64(len(pr.RecordBatches)))
			w.batches(&pr.RecordBatches, bufAt(r.bufs, i))
		}
		for _, rec := range pr.Records {
			if w.head, err = appendMessage(w.head, fieldResultRecords, rec); err != nil {
				return nil, err
			}
		}
		if pr.Error != nil {
			if w.head, err = appendMessage(w.head, fieldResultError, pr.Error); err != nil {
				return nil, err
			}
		}
		w.varint(fieldResultNextOffset, uint64(pr.NextOffset))
		w.head = append(w.head, pr.ProtoReflect().GetUnknown()...)
	}
	w.head = append(w.head, resp.ProtoReflect().GetUnknown()...)
	r.bufs = nil
	return w.finish(r.pool), nil
}

// bufAt is bufs[i], or nil beyond its end.
func bufAt(bufs []*[]byte, i int) *[]byte {
	if i < len(bufs) {
		return bufs[i]
	}
	return nil
}

// splitWriter builds a mem.BufferSlice of small encoded pieces, written to
// head, and large byte slices passed by reference.
type splitWriter struct {
	out    mem.BufferSlice
	head   []byte
	mark   int // head[:mark] is in out already
	pooled []pooledBatches
}

// pooledBatches is a message's record batches in a pooled read buffer, out
// of which the encoding is being written.
type pooledBatches struct {
	at    int     // index in out
	field *[]byte // the message's record_batches, a prefix of buf
	buf   *[]byte
}

// flush moves what head holds beyond mark to out. Later appends to head
// never touch what was flushed: they write past it, or into a new array.
func (w *splitWriter) flush() {
	if len(w.head) > w.mark {
		w.out = append(w.out, mem.SliceBuffer(w.head[w.mark:len(w.head):len(w.head)]))
		w.mark = len(w.head)
	}
}

// batches appends the record batches *field as a buffer of their own. buf,
// if not nil, is the pooled buffer they claim to be read into: finish hands
// it over.
func (w *splitWriter) batches(field *[]byte, buf *[]byte) {
	w.flush()
	if buf != nil {
		w.pooled = append(w.pooled, pooledBatches{at: len(w.out), field: field, buf: buf})
	}
	w.out = append(w.out, mem.SliceBuffer(*field))
}

// finish returns the encoding, once nothing can fail any more. Each pooled
// buffer goes to gRPC, which gives it back to pool once it has written it;
// from then on nothing else may reference it, so it also leaves the message
// (gRPC may look at a reply after sending it, for logging).
func (w *splitWriter) finish(pool mem.BufferPool) mem.BufferSlice {
	w.flush()
	if len(w.out) == 0 {
		w.out = append(w.out, mem.SliceBuffer(nil))
	}
	for _, p := range w.pooled {
		data := *p.field
		if cap(*p.buf) < len(data) || &(*p.buf)[:1][0] != &data[0] {
			continue // not the buffer it claims to be: leave it to the GC
		}
		*p.buf = (*p.buf)[:len(data)]
		w.out[p.at] = mem.NewBuffer(p.buf, pool)
		*p.field = nil
	}
	return w.out
}

// varint appends a varint field unless it is zero, as proto3 does.
func (w *splitWriter) varint(num protowire.Number, v uint64) {
	if v != 0 {
		w.head = protowire.AppendTag(w.head, num, protowire.VarintType)
		w.head = protowire.AppendVarint(w.head, v)
	}
}

// resultSize is the encoded size of pr as proto.Size computes it, including
// the sizes of nested messages, which appendMessage relies on.
func resultSize(pr *stratav1.FetchPartitionResult) (int, error) {
	if pr == nil {
		return 0, nil
	}
	n := 0
	if pr.Topic != "" {
		if !utf8.ValidString(pr.Topic) {
			return 0, fmt.Errorf("marshal FetchPartitionResult: topic %q is not valid UTF-8", pr.Topic)
		}
		n += protowire.SizeTag(fieldResultTopic) + protowire.SizeBytes(len(pr.Topic))
	}
	n += varintSize(fieldResultPartition, uint64(int64(pr.Partition)))
	n += varintSize(fieldResultHighWater, uint64(pr.HighWatermark))
	n += varintSize(fieldResultLogStart, uint64(pr.LogStartOffset))
	if len(pr.RecordBatches) > 0 {
		n += protowire.SizeTag(fieldResultBatches) + protowire.SizeBytes(len(pr.RecordBatches))
	}
	for _, rec := range pr.Records {
		n += protowire.SizeTag(fieldResultRecords) + protowire.SizeBytes(proto.Size(rec))
	}
	if pr.Error != nil {
		n += protowire.SizeTag(fieldResultError) + protowire.SizeBytes(proto.Size(pr.Error))
	}
	n += varintSize(fieldResultNextOffset, uint64(pr.NextOffset))
	n += len(pr.ProtoReflect().GetUnknown())
	return n, nil
}

func varintSize(num protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeVarint(v)
}

// appendMessage appends m as field num, the way gRPC's codec encodes a
// message: proto.Size caches the sizes of nested messages, which the
// encoding then reuses.
func appendMessage(b []byte, num protowire.Number, m proto.Message) ([]byte, error) {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(proto.Size(m)))
	return proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(b, m)
}
