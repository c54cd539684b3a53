package kafkaapi

import (
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The walk of a Produce body must accept every request kmsg decodes (it
// would otherwise refuse a client's produce), and refuse any body cut short.
func TestProduceCostAcceptsWhatKmsgDecodes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for v := int16(0); v <= 12; v++ {
		for range 50 {
			req := kmsg.NewPtrProduceRequest()
			req.SetVersion(v)
			req.Acks = -1
			if v >= 3 && rng.IntN(2) == 0 {
				req.TransactionID = kmsg.StringPtr("txn")
			}
			for i := range rng.IntN(5) {
				rt := kmsg.NewProduceRequestTopic()
				rt.Topic = string(rune('a' + i))
				for range rng.IntN(5) {
					rp := kmsg.NewProduceRequestTopicPartition()
					switch rng.IntN(3) {
					case 0: // null records
					case 1:
						rp.Records = []byte{}
					default:
						rp.Records = make([]byte, rng.IntN(300))
					}
					if v >= 9 && rng.IntN(4) == 0 {
						rp.UnknownTags.Set(uint32(100+rng.IntN(1000)), make([]byte, rng.IntN(5)))
					}
					rt.Partitions = append(rt.Partitions, rp)
				}
				if v >= 9 && rng.IntN(4) == 0 {
					rt.UnknownTags.Set(200, []byte{1})
				}
				req.Topics = append(req.Topics, rt)
			}
			body := req.AppendTo(nil)
			decode := func(b []byte) error {
				dec := kmsg.NewPtrProduceRequest()
				dec.SetVersion(v)
				return dec.ReadFrom(b)
			}
			if err := decode(body); err != nil {
				t.Fatalf("v%d: kmsg cannot decode its own encoding: %v", v, err)
			}
			cost, err := produceCost(v, body)
			if err != nil {
				t.Fatalf("v%d: the walk refuses a request kmsg decodes: %v", v, err)
			}
			if cost < produceRequestCost {
				t.Fatalf("v%d: cost %d", v, cost)
			}
			if cut := body[:rng.IntN(len(body))]; len(req.Topics) > 0 {
				// A body cut inside its topics cannot hold what its counts say.
				if _, err := produceCost(v, cut); err == nil && decode(cut) != nil {
					t.Fatalf("v%d: the walk accepts a body cut to %d of %d bytes, which kmsg refuses", v, len(cut), len(body))
				}
			}
		}
	}
}
