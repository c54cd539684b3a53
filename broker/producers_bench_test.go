package broker

import (
	"context"
	"testing"
	"time"

	"github.com/strata-broker/strata/record"
)

// BenchmarkIdempotentProduce measures the produce path of idempotent
// batches (10 records of 100 bytes, acks=1): the producer-id checks, the
// sequence checks and the state kept per producer. "one-producer" sends
// every batch from one producer in sequence; "many-producers" cycles
// through 100,000 producers, one batch each, so the partition's producer
// state is as large as it gets.
func BenchmarkIdempotentProduce(b *testing.B) {
	for _, bc := range []struct {
		name      string
		producers int64
	}{
		{"one-producer", 1},
		{"many-producers", 100_000},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			br, store := startBroker(b)
			first, err := store.AllocateProducerIDs(ctx, bc.producers)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := br.CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 1}); err != nil {
				b.Fatal(err)
			}
			value := make([]byte, 100)
			batches := make([][]byte, b.N)
			for i := range batches {
				pid := first + int64(i)%bc.producers
				seq := int32(int64(i) / bc.producers % (1 << 30))
				bld := record.NewBuilder(time.Now().UnixMilli(), 0)
				bld.SetProducer(pid, 0, seq*10)
				for range 10 {
					bld.Append(&record.Record{Value: value})
				}
				out, err := bld.Build(record.None)
				if err != nil {
					b.Fatal(err)
				}
				batches[i] = append([]byte(nil), out...)
			}
			b.SetBytes(int64(len(batches[0])))
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				res, err := br.Produce(ctx, "t", AcksLeader, []PartitionBatches{{Partition: 0, Batches: batches[i]}})
				if err != nil {
					b.Fatal(err)
				}
				if res[0].Err != nil {
					b.Fatal(res[0].Err)
				}
			}
		})
	}
}
