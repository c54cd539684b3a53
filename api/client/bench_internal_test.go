package client

import (
	"context"
	"testing"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// BenchmarkProduce measures the producer's own cost per 1 KiB record: the
// send function encodes the request as gRPC would and frees it at once (no
// network).
func BenchmarkProduce(b *testing.B) {
	send := func(_ context.Context, w *produceWire) (*stratav1.ProduceResponse, error) {
		bufs := w.marshal()
		resp := &stratav1.ProduceResponse{}
		for _, p := range w.parts {
			resp.Partitions = append(resp.Partitions, &stratav1.ProducePartitionResult{Partition: p.partition})
		}
		bufs.Free()
		return resp, nil
	}
	p := newProducer(newTestCluster(fixedCount(1), send), ProducerOptions{})
	defer p.Close()
	value := make([]byte, 1024)
	r := Record{Partition: AnyPartition, Value: value}
	cb := func(Result, error) {}
	ctx := context.Background()
	b.SetBytes(int64(len(value)))
	b.ReportAllocs()
	for b.Loop() {
		p.Produce(ctx, "t", r, cb)
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}
