package kafkaapi

import (
	"bytes"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// recordCut is where a partition's record batches go in an encoded fetch
// response: at byte at of the encoded rest.
type recordCut struct {
	at   int
	data []byte
}

// appendFetchResponse encodes r as r.AppendTo does, byte for byte, except
// that each partition's record batches are not copied in: the cuts say
// where in dst each belongs, so that the response is written with the
// batches sent from the buffers they were read into. Copying them into the
// response cost as much CPU as reading them from a socket. ok is false for
// a response with a field this broker never sets (a version outside the
// ones served, tagged fields); the caller then uses AppendTo.
//
// pieces, when not nil, holds by each partition's place in the response
// (topic by topic) the record batches of the partitions whose batches are
// in several slices, written in place of their RecordBatches.
func appendFetchResponse(dst []byte, r *kmsg.FetchResponse, pieces [][][]byte, cuts []recordCut) ([]byte, []recordCut, bool) {
	v := r.Version
	if v < 4 || v > 17 || r.UnknownTags.Len() > 0 || len(r.Brokers) > 0 {
		return dst, cuts, false
	}
	flexible := v >= 12
	arrayLen := func(dst []byte, n int) []byte {
		if flexible {
			return kbin.AppendCompactArrayLen(dst, n)
		}
		return kbin.AppendArrayLen(dst, n)
	}
	dst = kbin.AppendInt32(dst, r.ThrottleMillis)
	if v >= 7 {
		dst = kbin.AppendInt16(dst, r.ErrorCode)
		dst = kbin.AppendInt32(dst, r.SessionID)
	}
	dst = arrayLen(dst, len(r.Topics))
	place := 0
	for i := range r.Topics {
		t := &r.Topics[i]
		if t.UnknownTags.Len() > 0 {
			return dst, cuts, false
		}
		switch {
		case v >= 13:
			dst = kbin.AppendUuid(dst, t.TopicID)
		case flexible:
			dst = kbin.AppendCompactString(dst, t.Topic)
		default:
			dst = kbin.AppendString(dst, t.Topic)
		}
		dst = arrayLen(dst, len(t.Partitions))
		for j := range t.Partitions {
			p := &t.Partitions[j]
			records := [][]byte{p.RecordBatches}
			if place < len(pieces) && pieces[place] != nil {
				records = pieces[place]
			}
			place++
			size := 0
			for _, r := range records {
				size += len(r)
			}
			if hasPartitionTags(p) {
				return dst, cuts, false
			}
			dst = kbin.AppendInt32(dst, p.Partition)
			dst = kbin.AppendInt16(dst, p.ErrorCode)
			dst = kbin.AppendInt64(dst, p.HighWatermark)
			dst = kbin.AppendInt64(dst, p.LastStableOffset)
			if v >= 5 {
				dst = kbin.AppendInt64(dst, p.LogStartOffset)
			}
			if flexible {
				dst = kbin.AppendCompactNullableArrayLen(dst, len(p.AbortedTransactions), p.AbortedTransactions == nil)
			} else {
				dst = kbin.AppendNullableArrayLen(dst, len(p.AbortedTransactions), p.AbortedTransactions == nil)
			}
			for k := range p.AbortedTransactions {
				a := &p.AbortedTransactions[k]
				if a.UnknownTags.Len() > 0 {
					return dst, cuts, false
				}
				dst = kbin.AppendInt64(dst, a.ProducerID)
				dst = kbin.AppendInt64(dst, a.FirstOffset)
				if flexible {
					dst = append(dst, 0) // no tagged fields
				}
			}
			if v >= 11 {
				dst = kbin.AppendInt32(dst, p.PreferredReadReplica)
			}
			null := len(records) == 1 && records[0] == nil
			switch {
			case null && flexible:
				dst = kbin.AppendUvarint(dst, 0)
			case null:
				dst = kbin.AppendInt32(dst, -1)
			case flexible:
				dst = kbin.AppendUvarint(dst, uint32(size+1))
			default:
				dst = kbin.AppendInt32(dst, int32(size))
			}
			for _, r := range records {
				if len(r) > 0 {
					cuts = append(cuts, recordCut{at: len(dst), data: r})
				}
			}
			if flexible {
				dst = append(dst, 0) // no tagged fields
			}
		}
		if flexible {
			dst = append(dst, 0)
		}
	}
	if flexible {
		dst = append(dst, 0)
	}
	return dst, cuts, true
}

// hasPartitionTags reports whether p has a tagged field set, which
// AppendTo would encode (-1 is each field's "not set").
func hasPartitionTags(p *kmsg.FetchResponseTopicPartition) bool {
	d, l, s := &p.DivergingEpoch, &p.CurrentLeader, &p.SnapshotID
	return p.UnknownTags.Len() > 0 ||
		d.Epoch != -1 || d.EndOffset != -1 || d.UnknownTags.Len() > 0 ||
		l.LeaderID != -1 || l.LeaderEpoch != -1 || l.UnknownTags.Len() > 0 ||
		s.EndOffset != -1 || s.Epoch != -1 || s.UnknownTags.Len() > 0
}

// fetchPieces lays out an encoded response and its cuts for one vectored
// write.
func fetchPieces(pieces [][]byte, encoded []byte, cuts []recordCut) [][]byte {
	from := 0
	for _, c := range cuts {
		pieces = append(pieces, encoded[from:c.at], c.data)
		from = c.at
	}
	return append(pieces, encoded[from:])
}

// joinPieces sets the RecordBatches of the partitions whose batches are in
// pieces (see appendFetchResponse), for an encoder that needs them whole.
func joinPieces(r *kmsg.FetchResponse, pieces [][][]byte) {
	place := 0
	for i := range r.Topics {
		for j := range r.Topics[i].Partitions {
			if place < len(pieces) && pieces[place] != nil {
				r.Topics[i].Partitions[j].RecordBatches = bytes.Join(pieces[place], nil)
			}
			place++
		}
	}
}
