package kafkaapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// benchRecordBytes is the value size of the benchmarks' records, the size
// `strata bench` uses by default.
const benchRecordBytes = 1024

// BenchmarkKafkaProduce measures a franz-go producer with its defaults
// (idempotent, acks=all, batching, no compression) against an in-process
// broker: b.N records of 1 KiB to one partition.
func BenchmarkKafkaProduce(b *testing.B) {
	addr, _ := startBroker(b, nil)
	benchProduce(b, addr, "bench-produce", b.N, true)
}

// BenchmarkKafkaFetch measures a franz-go consumer reading b.N records of
// 1 KiB from the start of one partition.
func BenchmarkKafkaFetch(b *testing.B) {
	addr, _ := startBroker(b, nil)
	benchProduce(b, addr, "bench-fetch", b.N, false)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("bench-fetch"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b.SetBytes(benchRecordBytes)
	b.ResetTimer()
	for n := 0; n < b.N; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			b.Fatal(ctx.Err())
		}
		n += fs.NumRecords()
	}
}

func benchProduce(b *testing.B, addr, topic string, n int, timed bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerLinger(time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		b.Fatal(err)
	}
	value := make([]byte, benchRecordBytes)
	if timed {
		b.SetBytes(benchRecordBytes)
		b.ResetTimer()
	}
	errs := make(chan error, 1)
	for range n {
		cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}
