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

// marshal encodes the response as marshalResults does.
func (r *fetchReply) marshal() (mem.BufferSlice, error) {
	if r == nil || r.FetchResponse == nil {
		return mem.BufferSlice{mem.SliceBuffer(nil)}, nil
	}
	out, err := marshalResults(fetchResults, r.FetchResponse, r.Partitions, r.pool, r.bufs)
	if err != nil {
		return nil, err
	}
	r.bufs = nil
	return out, nil
}

// fetchResults writes FetchPartitionResult past the shared fields.
var fetchResults = &resultKind[*stratav1.FetchPartitionResult]{
	name: "FetchPartitionResult",
	shared: func(pr *stratav1.FetchPartitionResult) sharedFields {
		return sharedFields{pr.Topic, pr.Partition, pr.HighWatermark, pr.LogStartOffset, &pr.RecordBatches}
	},
	restSize: func(pr *stratav1.FetchPartitionResult) int {
		n := 0
		for _, rec := range pr.Records {
			n += messageSize(fieldFetchRecords, rec)
		}
		if pr.Error != nil {
			n += messageSize(fieldResultError, pr.Error)
		}
		n += varintSize(fieldFetchNextOffset, uint64(pr.NextOffset))
		if pr.LastStableOffset != nil {
			n += protowire.SizeTag(fieldFetchLastStableOffset) + protowire.SizeVarint(uint64(*pr.LastStableOffset))
		}
		return n
	},
	appendRest: func(b []byte, pr *stratav1.FetchPartitionResult) ([]byte, error) {
		var err error
		for _, rec := range pr.Records {
			if b, err = appendMessage(b, fieldFetchRecords, rec); err != nil {
				return nil, err
			}
		}
		if pr.Error != nil {
			if b, err = appendMessage(b, fieldResultError, pr.Error); err != nil {
				return nil, err
			}
		}
		b = appendVarintField(b, fieldFetchNextOffset, uint64(pr.NextOffset))
		if pr.LastStableOffset != nil {
			// An optional field: written when set, 0 included.
			b = protowire.AppendTag(b, fieldFetchLastStableOffset, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(*pr.LastStableOffset))
		}
		return b, nil
	},
}

// partitionResult is a FetchPartitionResult or a ReplicaFetchPartitionResult.
// The two number their first five fields alike, topic to record_batches
// (sharedFields), and differ after them.
type partitionResult interface {
	*stratav1.FetchPartitionResult | *stratav1.ReplicaFetchPartitionResult
	proto.Message
}

// resultKind is what marshalResults needs to know of one kind of partition
// result. Functions, not methods: the generated types cannot take methods,
// and generic code cannot reach their fields.
type resultKind[R partitionResult] struct {
	name   string // the message, for errors
	shared func(R) sharedFields
	// restSize is the encoded size of the fields after record_batches,
	// unknown ones left out, including the sizes of nested messages, which
	// appendRest relies on (see appendMessage).
	restSize   func(R) int
	appendRest func(b []byte, r R) ([]byte, error)
}

// sharedFields are a partition result's fields 1 to 5.
type sharedFields struct {
	topic     string
	partition int32
	highWater int64
	logStart  int64
	// batches points into the message, so that finish can drop the batches
	// it hands to gRPC.
	batches *[]byte
}

// marshalResults encodes resp, whose one field is the partition results
// (number fieldPartitionResults), exactly as proto.Marshal does (fields in
// number order, zero values left out, unknown fields last), but with each
// partition's record batches as a buffer of their own instead of a copy.
// bufs[i], when not nil, is the buffer from pool whose prefix is the record
// batches of results[i]: finish hands it to gRPC.
func marshalResults[R partitionResult](kind *resultKind[R], resp proto.Message, results []R, pool mem.BufferPool, bufs []*[]byte) (mem.BufferSlice, error) {
	w := splitWriter{head: make([]byte, 0, 64*len(results)+16)}
	for i, pr := range results {
		w.head = protowire.AppendTag(w.head, fieldPartitionResults, protowire.BytesType)
		if pr == nil {
			w.head = protowire.AppendVarint(w.head, 0) // proto writes a nil element as an empty one
			continue
		}
		f := kind.shared(pr)
		size, err := f.size(kind.name)
		if err != nil {
			return nil, err
		}
		unknown := pr.ProtoReflect().GetUnknown()
		w.head = protowire.AppendVarint(w.head, uint64(size+kind.restSize(pr)+len(unknown)))
		w.shared(f, bufAt(bufs, i))
		if w.head, err = kind.appendRest(w.head, pr); err != nil {
			return nil, err
		}
		w.head = append(w.head, unknown...)
	}
	w.head = append(w.head, resp.ProtoReflect().GetUnknown()...)
	return w.finish(pool), nil
}

// size is the encoded size of f. The topic is checked here, before anything
// is written, as proto.Marshal refuses a string that is not UTF-8.
func (f *sharedFields) size(msg string) (int, error) {
	n := 0
	if f.topic != "" {
		if !utf8.ValidString(f.topic) {
			return 0, fmt.Errorf("marshal %s: topic %q is not valid UTF-8", msg, f.topic)
		}
		n += protowire.SizeTag(fieldResultTopic) + protowire.SizeBytes(len(f.topic))
	}
	n += varintSize(fieldResultPartition, uint64(int64(f.partition)))
	n += varintSize(fieldResultHighWater, uint64(f.highWater))
	n += varintSize(fieldResultLogStart, uint64(f.logStart))
	if len(*f.batches) > 0 {
		n += protowire.SizeTag(fieldResultBatches) + protowire.SizeBytes(len(*f.batches))
	}
	return n, nil
}

// shared writes f, with its record batches as a buffer of their own: buf,
// if not nil, is the pooled buffer they are in.
func (w *splitWriter) shared(f sharedFields, buf *[]byte) {
	if f.topic != "" {
		w.head = protowire.AppendTag(w.head, fieldResultTopic, protowire.BytesType)
		w.head = protowire.AppendString(w.head, f.topic)
	}
	w.head = appendVarintField(w.head, fieldResultPartition, uint64(int64(f.partition)))
	w.head = appendVarintField(w.head, fieldResultHighWater, uint64(f.highWater))
	w.head = appendVarintField(w.head, fieldResultLogStart, uint64(f.logStart))
	if len(*f.batches) > 0 {
		w.head = protowire.AppendTag(w.head, fieldResultBatches, protowire.BytesType)
		w.head = protowire.AppendVarint(w.head, uint64(len(*f.batches)))
		w.batches(f.batches, buf)
	}
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

// appendVarintField appends a varint field unless it is zero, as proto3
// does.
func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func varintSize(num protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeVarint(v)
}

// messageSize is the encoded size of m as field num. proto.Size caches the
// sizes of m's nested messages, for appendMessage.
func messageSize(num protowire.Number, m proto.Message) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(proto.Size(m))
}

// appendMessage appends m as field num, the way gRPC's codec encodes a
// message: proto.Size caches the sizes of nested messages, which the
// encoding then reuses.
func appendMessage(b []byte, num protowire.Number, m proto.Message) ([]byte, error) {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(proto.Size(m)))
	return proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(b, m)
}
