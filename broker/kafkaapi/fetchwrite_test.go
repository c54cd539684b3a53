package kafkaapi

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The fetch response written with its record batches cut out, once the
// pieces are put back together, is byte for byte what kmsg encodes, for
// every version served and every shape of partition result.
func TestFetchResponseEncodingMatchesKmsg(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for v := int16(4); v <= 17; v++ {
		for round := 0; round < 50; round++ {
			r := randomFetchResponse(rng, v)
			want := r.AppendTo([]byte("head"))
			// Some partitions' batches in several slices, as reads from the
			// object store return them.
			var pieces [][][]byte
			place := 0
			for _, tp := range r.Topics {
				for _, p := range tp.Partitions {
					if n := len(p.RecordBatches); n > 2 && rng.IntN(2) == 0 {
						if pieces == nil {
							pieces = make([][][]byte, 64)
						}
						a := 1 + rng.IntN(n-1)
						b := a + rng.IntN(n-a)
						pieces[place] = [][]byte{p.RecordBatches[:a], p.RecordBatches[a:b], p.RecordBatches[b:]}
					}
					place++
				}
			}
			withPieces := *r
			withPieces.Topics = nil
			for _, tp := range r.Topics {
				tp.Partitions = append([]kmsg.FetchResponseTopicPartition(nil), tp.Partitions...)
				withPieces.Topics = append(withPieces.Topics, tp)
			}
			place = 0
			for _, tp := range withPieces.Topics {
				for j := range tp.Partitions {
					if place < len(pieces) && pieces[place] != nil {
						tp.Partitions[j].RecordBatches = []byte("not these")
					}
					place++
				}
			}
			encoded, cuts, ok := appendFetchResponse([]byte("head"), &withPieces, pieces, nil)
			if !ok {
				t.Fatalf("v%d: a response the broker builds was not encoded", v)
			}
			var got []byte
			for _, p := range fetchPieces(nil, encoded, cuts) {
				got = append(got, p...)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("v%d round %d: encoding differs from kmsg's\n got %x\nwant %x", v, round, got, want)
			}
			var batches int
			place = 0
			for _, tp := range r.Topics {
				for _, p := range tp.Partitions {
					switch {
					case place < len(pieces) && pieces[place] != nil:
						for _, pc := range pieces[place] {
							if len(pc) > 0 {
								batches++
							}
						}
					case len(p.RecordBatches) > 0:
						batches++
					}
					place++
				}
			}
			if len(cuts) != batches {
				t.Fatalf("v%d: %d record slices cut out, want all %d", v, len(cuts), batches)
			}
			// kmsg's encoder, for a response it would fall back to, gets the
			// pieces joined.
			joinPieces(&withPieces, pieces)
			if again := withPieces.AppendTo([]byte("head")); !bytes.Equal(again, want) {
				t.Fatalf("v%d: joined pieces encode differently", v)
			}
			// And a client reads it back.
			back := kmsg.NewPtrFetchResponse()
			back.Version = v
			if err := back.ReadFrom(got[len("head"):]); err != nil {
				t.Fatalf("v%d: decode: %v", v, err)
			}
		}
	}
}

// A field the broker never sets is not dropped: such a response is left to
// kmsg's encoder.
func TestFetchResponseWithTaggedFieldsIsLeftToKmsg(t *testing.T) {
	r := randomFetchResponse(rand.New(rand.NewPCG(3, 4)), 12)
	r.Topics[0].Partitions[0].CurrentLeader.LeaderID = 2
	if _, _, ok := appendFetchResponse(nil, r, nil, nil); ok {
		t.Fatal("a partition's CurrentLeader tag would have been lost")
	}
	r = randomFetchResponse(rand.New(rand.NewPCG(3, 4)), 16)
	r.Brokers = append(r.Brokers, kmsg.NewFetchResponseBroker())
	if _, _, ok := appendFetchResponse(nil, r, nil, nil); ok {
		t.Fatal("the NodeEndpoints tag would have been lost")
	}
	r = randomFetchResponse(rand.New(rand.NewPCG(3, 4)), 18)
	if _, _, ok := appendFetchResponse(nil, r, nil, nil); ok {
		t.Fatal("v18, which is not served, was encoded")
	}
}

func randomFetchResponse(rng *rand.Rand, v int16) *kmsg.FetchResponse {
	r := kmsg.NewPtrFetchResponse()
	r.Version = v
	r.ThrottleMillis = rng.Int32N(100)
	r.ErrorCode = int16(rng.IntN(3))
	r.SessionID = rng.Int32()
	for range 1 + rng.IntN(3) {
		tp := kmsg.NewFetchResponseTopic()
		tp.Topic = string(rune('a'+rng.IntN(26))) + "-topic"
		tp.TopicID[rng.IntN(16)] = byte(rng.IntN(256))
		for range 1 + rng.IntN(4) {
			p := kmsg.NewFetchResponseTopicPartition()
			p.Partition = rng.Int32N(64)
			p.ErrorCode = int16(rng.IntN(2))
			p.HighWatermark = rng.Int64N(1 << 40)
			p.LastStableOffset = p.HighWatermark
			p.LogStartOffset = rng.Int64N(1 << 20)
			p.PreferredReadReplica = -1
			if rng.IntN(3) == 0 {
				p.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{{ProducerID: 7, FirstOffset: 9}}
			}
			switch rng.IntN(3) {
			case 0:
				p.RecordBatches = nil
			case 1:
				p.RecordBatches = []byte{}
			default:
				p.RecordBatches = make([]byte, 1+rng.IntN(300))
				for i := range p.RecordBatches {
					p.RecordBatches[i] = byte(rng.Uint32())
				}
			}
			tp.Partitions = append(tp.Partitions, p)
		}
		r.Topics = append(r.Topics, tp)
	}
	return r
}
