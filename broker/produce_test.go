package broker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-broker/strata/record"
)

// A request over several partitions is answered per partition, and the
// produce counters, added once per request, count what was appended and
// the partitions that failed.
func TestProduceManyPartitionsCountsPerRequest(t *testing.T) {
	reg := prometheus.NewRegistry()
	b, _ := startBrokerWith(t, Config{Registerer: reg})
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	batch := func(values ...string) []byte {
		bld := record.NewBuilder(time.Now().UnixMilli(), 0)
		for _, v := range values {
			bld.Append(&record.Record{Value: []byte(v)})
		}
		out, err := bld.Build(record.None)
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte(nil), out...)
	}
	corrupt := batch("bad")
	corrupt[len(corrupt)-1] ^= 0xff // the CRC no longer matches
	parts := []PartitionBatches{
		{Partition: 0, Batches: batch("a")},
		{Partition: 1, Batches: corrupt},
		{Partition: 2, Batches: batch("b", "c")},
		{Partition: 9, Batches: batch("d")}, // not a partition of t
		{Partition: 3, Batches: batch("e", "f", "g")},
	}
	appendedBytes := len(parts[0].Batches) + len(parts[2].Batches) + len(parts[4].Batches)
	res, err := b.Produce(ctx, "t", AcksAll, parts)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		partition int32
		records   int
		err       error
	}{{0, 1, nil}, {1, 0, errCorruptBatch}, {2, 2, nil}, {9, 0, ErrUnknownTopicOrPartition}, {3, 3, nil}} {
		r := res[i]
		switch {
		case r.Partition != want.partition:
			t.Fatalf("result %d is for partition %d, want %d", i, r.Partition, want.partition)
		case want.err == errCorruptBatch && !record.IsCorrupt(r.Err):
			t.Fatalf("partition %d: %v, want a corrupt batch", r.Partition, r.Err)
		case want.err != nil && want.err != errCorruptBatch && !errors.Is(r.Err, want.err):
			t.Fatalf("partition %d: %v, want %v", r.Partition, r.Err, want.err)
		case want.err == nil && (r.Err != nil || r.BaseOffset != 0 || r.Records != want.records || r.LastOffset != int64(want.records-1)):
			t.Fatalf("partition %d: %+v, want %d records from offset 0", r.Partition, r, want.records)
		}
	}
	// The CRC is checked once, before the append: the corrupt batch was
	// not written.
	p, err := b.hosted.partition("t", 1)
	if err != nil {
		t.Fatal(err)
	}
	if end := p.LogEndOffset(); end != 0 {
		t.Fatalf("partition 1 after its corrupt batch: log end %d, want 0", end)
	}
	for name, want := range map[string]float64{
		"strata_produce_bytes_total":   float64(appendedBytes),
		"strata_produce_records_total": 6,
		"strata_produce_errors_total":  1,
	} {
		if got := gatheredValue(t, reg, name, "t"); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// errCorruptBatch stands for a *record.CorruptError in a table of wanted
// errors.
var errCorruptBatch = errors.New("corrupt batch")

// gatheredValue is the value of counter name for topic in reg.
func gatheredValue(t *testing.T, reg *prometheus.Registry, name, topic string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "topic" && l.GetValue() == topic {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s for topic %s", name, topic)
	return 0
}

// A request over enough partitions to be appended by several goroutines
// answers every partition, and a partition named twice gets its batches
// in the request's order: the second batch of each idempotent producer
// continues the first's sequence, and would be refused out of order.
func TestProduceManyPartitionsKeepsEachPartitionInOrder(t *testing.T) {
	b, store := startBroker(t)
	issueProducerIDs(t, store)
	ctx := context.Background()
	const partitions = 4 * producePartitionsPerWorker
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "t", Partitions: partitions}); err != nil {
		t.Fatal(err)
	}
	parts := make([]PartitionBatches, 0, 2*partitions)
	for i := range int32(partitions) {
		parts = append(parts, PartitionBatches{Partition: i, Batches: idemBatch(t, 7, 0, 0, 1)})
	}
	// The second mentions in reverse, so that no two mentions of a
	// partition are the same distance apart.
	for i := int32(partitions - 1); i >= 0; i-- {
		parts = append(parts, PartitionBatches{Partition: i, Batches: idemBatch(t, 7, 0, 1, 1)})
	}
	res, err := b.Produce(ctx, "t", AcksAll, parts)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		want := int64(i / partitions) // the first mention at 0, the second at 1
		if r.Err != nil || r.Partition != parts[i].Partition || r.BaseOffset != want {
			t.Fatalf("result %d: %+v, want partition %d at offset %d", i, r, parts[i].Partition, want)
		}
	}
	for i := range int32(partitions) {
		p, err := b.hosted.partition("t", i)
		if err != nil {
			t.Fatal(err)
		}
		if end := p.LogEndOffset(); end != 2 {
			t.Fatalf("partition %d: log end %d, want 2", i, end)
		}
	}
}
