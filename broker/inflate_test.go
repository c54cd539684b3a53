package broker

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/membudget"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
)

// zerosBatch is a batch of one record whose value is n zero bytes, which
// every codec compresses far below n.
func zerosBatch(t *testing.T, codec record.Compression, n int) []byte {
	t.Helper()
	bld := record.NewBuilder(time.Now().UnixMilli(), n+64)
	bld.Append(&record.Record{Value: make([]byte, n)})
	batch, err := bld.Build(codec)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(batch)
}

// A produced batch may inflate to inflateLimit of its topic's
// max.message.bytes and no further; one that does is refused as too large
// (Kafka's MESSAGE_TOO_LARGE, on which Java's producer splits a batch), and
// nothing of its request is written.
func TestProduceRefusesBatchesThatInflatePastTheLimit(t *testing.T) {
	b, _ := startBroker(t)
	ctx := context.Background()
	const maxMessageBytes = 64 << 10
	limit := inflateLimit(maxMessageBytes)
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "z", Partitions: 1,
		Configs: map[string]string{"max.message.bytes": strconv.Itoa(maxMessageBytes)}}); err != nil {
		t.Fatal(err)
	}
	// The record's own framing takes a few bytes around its value.
	const framing = 16
	// Snappy compresses at most about 21 to 1, below inflationFactor:
	// max.message.bytes alone bounds what its batches inflate to.
	for _, codec := range []record.Compression{record.GZIP, record.LZ4, record.ZSTD} {
		t.Run(codec.String(), func(t *testing.T) {
			fits := zerosBatch(t, codec, limit-framing)
			over := zerosBatch(t, codec, limit+1)
			if len(fits) > maxMessageBytes || len(over) > maxMessageBytes {
				t.Fatalf("batches of %d and %d bytes do not fit max.message.bytes", len(fits), len(over))
			}
			end := b.mustEnd(t, "z")
			res, err := b.Produce(ctx, "z", AcksLeader, []PartitionBatches{{Partition: 0, Batches: append(bytes.Clone(fits), over...)}})
			if err != nil {
				t.Fatal(err)
			}
			var inflated *record.InflatedTooLargeError
			if !errors.As(res[0].Err, &inflated) || Classify(res[0].Err) != KindRecordTooLarge {
				t.Fatalf("a batch inflating past %d bytes: %v, want a record-too-large error", limit, res[0].Err)
			}
			if got := b.mustEnd(t, "z"); got != end {
				t.Fatalf("log end moved from %d to %d: part of a refused request was written", end, got)
			}
			res, err = b.Produce(ctx, "z", AcksLeader, []PartitionBatches{{Partition: 0, Batches: fits}})
			if err != nil || res[0].Err != nil {
				t.Fatalf("a batch inflating to %d bytes, under the limit of %d: %v %v", limit-framing, limit, err, res[0].Err)
			}
		})
	}
}

// A batch over max.message.bytes is refused before it is decompressed.
func TestProduceRefusesAnOversizedBatchBeforeDecompressing(t *testing.T) {
	b, _ := startBroker(t)
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "o", Partitions: 1,
		Configs: map[string]string{"max.message.bytes": "1024"}}); err != nil {
		t.Fatal(err)
	}
	batch := zerosBatch(t, record.None, 2048)
	// Corrupt records a decompressor would trip over: the size check must
	// come first.
	batch[record.HeaderSize] = 0xff
	batch = withCodec(batch, record.ZSTD)
	res, err := b.Produce(ctx, "o", AcksLeader, []PartitionBatches{{Partition: 0, Batches: batch}})
	if err != nil {
		t.Fatal(err)
	}
	var tooLarge *partlog.RecordTooLargeError
	if !errors.As(res[0].Err, &tooLarge) || tooLarge.Max != 1024 {
		t.Fatalf("a %d-byte batch over max.message.bytes 1024: %v, want a RecordTooLargeError", len(batch), res[0].Err)
	}
}

// withCodec sets a batch's codec bits and recomputes its CRC.
func withCodec(batch []byte, c record.Compression) []byte {
	batch[22] = batch[22]&^7 | byte(c)
	crc := record.Checksum(batch)
	batch[17], batch[18], batch[19], batch[20] = byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc)
	return batch
}

func (b *Broker) mustEnd(t *testing.T, topic string) int64 {
	t.Helper()
	p, err := b.hosted.partition(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p.LogEndOffset()
}

// Decompression's memory is taken from the request budget once, for as
// many slots as half the budget holds (at least one, at most half the
// budget), and given back when the broker closes.
func TestDecompressionMemoryIsReservedFromTheRequestBudget(t *testing.T) {
	for _, tc := range []struct {
		budget          int64
		minSlots, slots int
		reserved        int64
	}{
		// Two decoders' memory fit in half of it (as many as the cores).
		{budget: 4 * record.DecoderMemory, minSlots: 1, slots: 2, reserved: -1},
		// Not even one: one slot, half the budget counted.
		{budget: 4 << 20, minSlots: 1, slots: 1, reserved: 2 << 20},
	} {
		budget := membudget.New(tc.budget)
		store, dir := startMetastore(t)
		b, err := New(Config{NodeID: 1, DataDir: dir, RequestBudget: budget}, store)
		if err != nil {
			t.Fatal(err)
		}
		if b.inflate.n < tc.minSlots || b.inflate.n > tc.slots {
			t.Fatalf("budget %d: %d decompression slots, want %d to %d", tc.budget, b.inflate.n, tc.minSlots, tc.slots)
		}
		want := tc.reserved
		if want < 0 {
			want = int64(b.inflate.n) * record.DecoderMemory
		}
		if got := budget.Held(); got != want {
			t.Fatalf("budget %d holds %d bytes, want %d for %d slots", tc.budget, got, want, b.inflate.n)
		}
		if err := b.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if got := budget.Held(); got != 0 {
			t.Fatalf("budget %d holds %d bytes after Close, want 0", tc.budget, got)
		}
	}
}
