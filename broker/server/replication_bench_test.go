package server_test

import (
	"context"
	"slices"
	"testing"
	"time"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/internal/await"
)

// BenchmarkReplicatedProduce measures one acks=all produce of a 64 KiB batch
// at a time to a partition replicated on three brokers in this process (no
// proxies, no client batching): the cost of a replication round trip.
func BenchmarkReplicatedProduce(b *testing.B) {
	c := startCluster(b, 3)
	ctx := context.Background()
	admin := c.client(1)
	if _, err := admin.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "bench", Partitions: 1, ReplicationFactor: 3}); err != nil {
		b.Fatal(err)
	}
	await.True(b, 30*time.Second, "a whole ISR", func() bool { return len(c.metadata(1, "bench").GetIsr()) == 3 })
	batch := batchOf(b, 64*1024/40, "bench-record-with-some-padding")
	leader := c.client(c.metadata(1, "bench").GetLeader())
	lat := make([]time.Duration, 0, b.N)
	b.SetBytes(int64(len(batch)))
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		resp, err := leader.Produce(ctx, &stratav1.ProduceRequest{Topic: "bench", Acks: stratav1.Acks_ACKS_ALL,
			Partitions: []*stratav1.ProducePartition{{Partition: 0, RecordBatches: slices.Clone(batch)}}})
		if err != nil || resp.GetPartitions()[0].GetError() != nil {
			b.Fatal(err, resp)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
