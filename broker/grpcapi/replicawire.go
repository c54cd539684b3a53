package grpcapi

import (
	"fmt"
	"math/bits"
	"unicode/utf8"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// A ReplicaFetchResponse carries every replicated byte, so both of its ends
// bypass the generic code, as Fetch does (see codec.go):
//
// The leader writes it with replicaFetchReply.marshal: small header buffers
// around the batches as the log read them into pooled buffers, which go back
// to the pool once gRPC has written them.
//
// The follower receives it with the codec into a replicaFetchReceive: one
// copy out of gRPC's buffers into memory the fetcher owns and reuses from
// one fetch to the next, decoded by unmarshalReplicaFetch with
// record_batches aliasing it. proto.Unmarshal would copy them once more.

// Field numbers of ReplicaFetchPartitionResult in strata.proto, beyond
// those it shares with FetchPartitionResult (codec.go).
const (
	fieldReplicaDiverging = 6
	fieldReplicaReason    = 8
)

// replicaFetchReply is a ReplicaFetchResponse whose record batches may be in
// pooled read buffers, as fetchReply is for FetchResponse: bufs[i], when not
// nil, is the buffer from pool whose prefix is Partitions[i].RecordBatches,
// handed to gRPC by marshal.
type replicaFetchReply struct {
	*stratav1.ReplicaFetchResponse
	pool mem.BufferPool
	bufs []*[]byte
}

// marshal encodes the response as marshalResults does.
func (r *replicaFetchReply) marshal() (mem.BufferSlice, error) {
	if r == nil || r.ReplicaFetchResponse == nil {
		return mem.BufferSlice{mem.SliceBuffer(nil)}, nil
	}
	out, err := marshalResults(replicaResults, r.ReplicaFetchResponse, r.Partitions, r.pool, r.bufs)
	if err != nil {
		return nil, err
	}
	r.bufs = nil
	return out, nil
}

// replicaResults writes ReplicaFetchPartitionResult past the shared fields.
var replicaResults = &resultKind[*stratav1.ReplicaFetchPartitionResult]{
	name: "ReplicaFetchPartitionResult",
	shared: func(pr *stratav1.ReplicaFetchPartitionResult) sharedFields {
		return sharedFields{pr.Topic, pr.Partition, pr.HighWatermark, pr.LogStartOffset, &pr.RecordBatches}
	},
	restSize: func(pr *stratav1.ReplicaFetchPartitionResult) int {
		n := 0
		if pr.DivergingEpoch != nil {
			n += messageSize(fieldReplicaDiverging, pr.DivergingEpoch)
		}
		if pr.Error != nil {
			n += messageSize(fieldResultError, pr.Error)
		}
		return n + varintSize(fieldReplicaReason, uint64(int64(pr.ErrorReason)))
	},
	appendRest: func(b []byte, pr *stratav1.ReplicaFetchPartitionResult) ([]byte, error) {
		var err error
		if pr.DivergingEpoch != nil {
			if b, err = appendMessage(b, fieldReplicaDiverging, pr.DivergingEpoch); err != nil {
				return nil, err
			}
		}
		if pr.Error != nil {
			if b, err = appendMessage(b, fieldResultError, pr.Error); err != nil {
				return nil, err
			}
		}
		return appendVarintField(b, fieldReplicaReason, uint64(int64(pr.ErrorReason))), nil
	},
}

// replicaFetchReceive is what the replica client asks the codec to decode a
// ReplicaFetchResponse into: the message is copied into *buf (replaced by a
// larger buffer when too small; nil means a fresh buffer) and its
// record_batches alias that copy. It embeds the message, so any other codec
// decodes into it as usual.
type replicaFetchReceive struct {
	*stratav1.ReplicaFetchResponse
	buf *[]byte
}

// receive copies data into r's buffer and decodes it.
func (r *replicaFetchReceive) receive(data mem.BufferSlice) error {
	b := receiveBuffer(r.buf, data.Len())
	data.CopyTo(b)
	return unmarshalReplicaFetch(b, r.ReplicaFetchResponse)
}

// receiveBuffer returns n bytes of *buf, not zeroed, after replacing *buf
// with a buffer of n rounded up to a power of two if it is too small, so
// that responses growing a little at a time do not allocate each time.
func receiveBuffer(buf *[]byte, n int) []byte {
	if buf == nil {
		return make([]byte, n)
	}
	if cap(*buf) < n {
		*buf = make([]byte, n, 1<<bits.Len(uint(n-1)))
	}
	*buf = (*buf)[:n]
	return *buf
}

// unmarshalReplicaFetch sets resp to the ReplicaFetchResponse encoded in b,
// as proto.Unmarshal does (unknown fields kept, the last of repeated scalars
// winning, repeated nested messages merged, strings checked for UTF-8),
// except that record_batches alias b. The caller must keep b unchanged for
// as long as resp is used.
func unmarshalReplicaFetch(b []byte, resp *stratav1.ReplicaFetchResponse) error {
	proto.Reset(resp)
	var unknown []byte
	for len(b) > 0 {
		num, typ, n, err := consumeTag(b, "ReplicaFetchResponse")
		if err != nil {
			return err
		}
		b = b[n:]
		var m int
		if num == fieldPartitionResults && typ == protowire.BytesType {
			var v []byte
			if v, m = protowire.ConsumeBytes(b); m >= 0 {
				pr := &stratav1.ReplicaFetchPartitionResult{}
				if err := unmarshalReplicaResult(v, pr); err != nil {
					return err
				}
				resp.Partitions = append(resp.Partitions, pr)
			}
		} else if m = protowire.ConsumeFieldValue(num, typ, b); m >= 0 {
			unknown = appendUnknown(unknown, num, typ, b[:m])
		}
		if m < 0 {
			return malformed("ReplicaFetchResponse", num, m)
		}
		b = b[m:]
	}
	if len(unknown) > 0 {
		resp.ProtoReflect().SetUnknown(unknown)
	}
	return nil
}

// unmarshalReplicaResult decodes one ReplicaFetchPartitionResult as
// unmarshalReplicaFetch does; the small nested messages are left to
// protobuf.
func unmarshalReplicaResult(b []byte, pr *stratav1.ReplicaFetchPartitionResult) error {
	var unknown []byte
	for len(b) > 0 {
		num, typ, n, err := consumeTag(b, "ReplicaFetchPartitionResult")
		if err != nil {
			return err
		}
		b = b[n:]
		var m int
		switch {
		case num == fieldResultTopic && typ == protowire.BytesType:
			var v []byte
			if v, m = protowire.ConsumeBytes(b); m >= 0 {
				if !utf8.Valid(v) {
					return fmt.Errorf("%w: ReplicaFetchPartitionResult.topic is not valid UTF-8", errMalformed)
				}
				pr.Topic = string(v)
			}
		case num == fieldResultPartition && typ == protowire.VarintType:
			var x uint64
			x, m = protowire.ConsumeVarint(b)
			pr.Partition = int32(x)
		case num == fieldResultHighWater && typ == protowire.VarintType:
			var x uint64
			x, m = protowire.ConsumeVarint(b)
			pr.HighWatermark = int64(x)
		case num == fieldResultLogStart && typ == protowire.VarintType:
			var x uint64
			x, m = protowire.ConsumeVarint(b)
			pr.LogStartOffset = int64(x)
		case num == fieldResultBatches && typ == protowire.BytesType:
			var v []byte
			if v, m = protowire.ConsumeBytes(b); m >= 0 {
				// Capacity clipped: an append to one partition's batches
				// must not overwrite what follows them in b.
				pr.RecordBatches = v[:len(v):len(v)]
				if len(v) == 0 {
					pr.RecordBatches = nil // as proto.Unmarshal leaves it
				}
			}
		case num == fieldReplicaDiverging && typ == protowire.BytesType:
			var v []byte
			if v, m = protowire.ConsumeBytes(b); m >= 0 {
				if pr.DivergingEpoch == nil {
					pr.DivergingEpoch = &stratav1.EpochEndOffset{}
				}
				// A nested message met again merges into the first, as
				// protobuf decodes a singular message field.
				if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(v, pr.DivergingEpoch); err != nil {
					return fmt.Errorf("%w: ReplicaFetchPartitionResult.diverging_epoch: %v", errMalformed, err)
				}
			}
		case num == fieldResultError && typ == protowire.BytesType:
			var v []byte
			if v, m = protowire.ConsumeBytes(b); m >= 0 {
				if pr.Error == nil {
					pr.Error = &stratav1.PartitionError{}
				}
				if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(v, pr.Error); err != nil {
					return fmt.Errorf("%w: ReplicaFetchPartitionResult.error: %v", errMalformed, err)
				}
			}
		case num == fieldReplicaReason && typ == protowire.VarintType:
			var x uint64
			x, m = protowire.ConsumeVarint(b)
			pr.ErrorReason = stratav1.ErrorReason(int32(x))
		default:
			// Unknown, or a known number with another wire type: protobuf
			// keeps it among the unknown fields.
			if m = protowire.ConsumeFieldValue(num, typ, b); m >= 0 {
				unknown = appendUnknown(unknown, num, typ, b[:m])
			}
		}
		if m < 0 {
			return malformed("ReplicaFetchPartitionResult", num, m)
		}
		b = b[m:]
	}
	if len(unknown) > 0 {
		pr.ProtoReflect().SetUnknown(unknown)
	}
	return nil
}
