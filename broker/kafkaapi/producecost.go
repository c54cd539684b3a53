// What a Produce request takes to decode and answer, found by walking its
// body before kmsg decodes it.
//
// A Produce frame may be as large as socket.request.max.bytes, and most of
// it is record batches, which kmsg leaves in the frame. Its other cost is
// per topic and per partition, and a frame can be made of nothing else: a
// topic count of a million with nothing behind it makes kmsg allocate a
// million 64-byte structs before it finds out. So the body is walked first,
// every count checked against what actually follows, and the request is
// charged for exactly the topics, partitions and tagged fields it has.

package kafkaapi

import (
	"encoding/binary"
	"errors"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker"
)

// What each element of a Produce request costs once decoded and answered:
// the request's struct and the response's, what the handler hands the core
// per partition, room for an error message, and the element's share of the
// encoded response (which grows by doubling).
// TestRequestMemoryBound checks these against what is allocated.
const (
	produceTopicCost = int64(unsafe.Sizeof(kmsg.ProduceRequestTopic{})+unsafe.Sizeof(kmsg.ProduceResponseTopic{})) +
		2*produceSliceOverhead + 2*produceEncodedBytes
	producePartitionCost = int64(unsafe.Sizeof(kmsg.ProduceRequestTopicPartition{})+
		unsafe.Sizeof(kmsg.ProduceResponseTopicPartition{})+
		unsafe.Sizeof(broker.PartitionBatches{})+unsafe.Sizeof(broker.ProduceResult{})+
		unsafe.Sizeof(int(0))) + produceErrorMessageBytes + 2*produceEncodedBytes
	// produceSliceOverhead is what allocating one slice costs beyond its
	// elements (rounding up to a size class).
	produceSliceOverhead = 64
	// produceErrorMessageBytes is room for the message of a partition's
	// error (v8+).
	produceErrorMessageBytes = 128
	// produceEncodedBytes is a partition's or a topic's encoding in the
	// response, its name aside.
	produceEncodedBytes = 64
	// unknownTagCost is a tagged field kmsg does not know, kept in a map:
	// the map's share of a table, and the map itself for the first one.
	unknownTagCost = 512
	// produceRequestCost is the request's and response's top-level structs.
	produceRequestCost = 1 << 10
	// goroutineBytes is the stack of a goroutine appending a topic.
	goroutineBytes = 8 << 10
)

// errProduceShape is a Produce body that does not hold what its counts say.
var errProduceShape = errors.New("not enough data")

// produceCost returns what decoding and answering a Produce body of the
// version takes beyond the frame, or an error where kmsg would fail to
// decode it. Counts are read as kmsg reads them (a negative count is an
// empty array), and each is checked against the bytes that follow.
func produceCost(version int16, body []byte) (int64, error) {
	r := wireReader{b: body, flexible: version >= 9}
	var cost int64 = produceRequestCost
	if version >= 3 {
		n := r.stringLen(true)
		cost += int64(max(n, 0))
	}
	r.skip(2 + 4) // acks, timeout
	topics := r.arrayLen()
	for range topics {
		name := r.stringLen(false)
		if name < 0 {
			return 0, errProduceShape
		}
		cost += produceTopicCost + 3*int64(name) // copied, and encoded
		parts := r.arrayLen()
		if parts > 0 {
			cost += produceSliceOverhead * 4
		}
		for range parts {
			r.skip(4) // partition
			r.bytesLen()
			cost += producePartitionCost + r.tags()*unknownTagCost
		}
		cost += r.tags() * unknownTagCost
	}
	cost += r.tags() * unknownTagCost
	cost += int64(min(topics, produceParallelTopics)) * goroutineBytes
	if r.err != nil {
		return 0, r.err
	}
	return cost, nil
}

// wireReader walks a request body without decoding it; the first error
// sticks, and counts read after it are zero.
type wireReader struct {
	b        []byte
	flexible bool
	err      error
}

func (r *wireReader) fail() {
	if r.err == nil {
		r.err = errProduceShape
	}
	r.b = nil
}

func (r *wireReader) skip(n int) {
	if r.err != nil || n < 0 || n > len(r.b) {
		r.fail()
		return
	}
	r.b = r.b[n:]
}

func (r *wireReader) int16() int16 {
	if len(r.b) < 2 {
		r.fail()
		return 0
	}
	v := int16(binary.BigEndian.Uint16(r.b))
	r.b = r.b[2:]
	return v
}

func (r *wireReader) int32() int32 {
	if len(r.b) < 4 {
		r.fail()
		return 0
	}
	v := int32(binary.BigEndian.Uint32(r.b))
	r.b = r.b[4:]
	return v
}

// uvarint reads an unsigned varint of at most 32 bits, as kmsg does.
func (r *wireReader) uvarint() uint32 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 || n > 5 || v > 1<<32-1 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return uint32(v)
}

// length reads a length: compact (plus one, zero meaning null) when
// flexible, otherwise 16 or 32 bits.
func (r *wireReader) length(wide bool) int {
	if r.flexible {
		return int(r.uvarint()) - 1
	}
	if wide {
		return int(r.int32())
	}
	return int(r.int16())
}

// stringLen skips a string and returns its length, -1 for null (an error
// unless nullable).
func (r *wireReader) stringLen(nullable bool) int {
	n := r.length(false)
	if n < 0 {
		if !nullable {
			r.fail()
		}
		return -1
	}
	r.skip(n)
	return n
}

// bytesLen skips nullable bytes (any negative length is null, as kmsg
// reads it).
func (r *wireReader) bytesLen() {
	if n := r.length(true); n > 0 {
		r.skip(n)
	}
}

// arrayLen reads an array's count; a negative one (a compact count read
// as 32 bits signed) is an empty array, as kmsg reads it. A count larger
// than the bytes left cannot be real: each element is at least a byte.
func (r *wireReader) arrayLen() int {
	var n int
	if r.flexible {
		n = int(int32(r.uvarint()) - 1)
	} else {
		n = int(r.int32())
	}
	if n > len(r.b) {
		r.fail()
		return 0
	}
	return max(n, 0)
}

// tags skips a tagged-field section (flexible versions only) and returns
// how many fields it has.
func (r *wireReader) tags() int64 {
	if !r.flexible || r.err != nil {
		return 0
	}
	n := r.uvarint()
	for i := uint32(0); i < n && r.err == nil; i++ {
		r.uvarint() // tag
		r.skip(int(r.uvarint()))
	}
	return int64(n)
}
