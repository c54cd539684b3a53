//go:build unix

package broker

import (
	"context"
	"encoding/binary"
	"syscall"
	"testing"
	"time"

	"github.com/strata-broker/strata/record"
)

// BenchmarkProduceSpread measures one produce request as a client
// spreading records round-robin over many partitions sends it: 500
// partitions, one idempotent one-record batch (1 KiB) each, acks=all on a
// single replica. Per-partition and per-batch costs are all there is to
// it; the 4,000-partition figures in BENCHMARKS.md come from the same
// shape of request.
func BenchmarkProduceSpread(b *testing.B) {
	const partitions = 500
	ctx := context.Background()
	br, store := startBroker(b)
	pid, err := store.AllocateProducerIDs(ctx, 1)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := br.CreateTopic(ctx, TopicSpec{Name: "t", Partitions: partitions}); err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 1024)
	parts := make([]PartitionBatches, partitions)
	for i := range parts {
		bld := record.NewBuilder(time.Now().UnixMilli(), 0)
		bld.SetProducer(pid, 0, 0)
		bld.Append(&record.Record{Value: value})
		out, err := bld.Build(record.None)
		if err != nil {
			b.Fatal(err)
		}
		parts[i] = PartitionBatches{Partition: int32(i), Batches: append([]byte(nil), out...)}
	}
	// Each request carries every partition's next sequence number; the
	// batch is the same otherwise, so only its CRC is computed again.
	next := func(seq int32) {
		for _, pb := range parts {
			binary.BigEndian.PutUint32(pb.Batches[batchBaseSequenceAt:], uint32(seq))
			binary.BigEndian.PutUint32(pb.Batches[batchCRCAt:], record.Checksum(pb.Batches))
		}
	}
	b.SetBytes(int64(partitions * len(value)))
	b.ReportAllocs()
	cpu0 := processCPU(b)
	b.ResetTimer()
	for i := range b.N {
		next(int32(i))
		res, err := br.ProduceWithTimeout(ctx, "t", AcksAll, 10*time.Second, parts)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
	b.StopTimer()
	// On a shared machine the CPU time the process spent is steadier than
	// the wall time.
	b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// Where a v2 batch header keeps its CRC and its base sequence.
const (
	batchCRCAt          = 17
	batchBaseSequenceAt = 53
)

// processCPU is the CPU time (user and system) the process has used.
func processCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
