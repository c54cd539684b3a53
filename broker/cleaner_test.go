package broker

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/internal/fakeclock"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/tiering"
	"github.com/strata-broker/strata/tiering/objstore"
)

// produceKeyed produces one batch of records key-<k> = v<round>-<k> for k
// in [0, keys), a nil value (tombstone) when tombstone says so.
func produceKeyed(t *testing.T, b *Broker, topic string, keys, round int, tombstone func(k int) bool) error {
	t.Helper()
	bld := record.NewBuilder(time.Now().UnixMilli(), 0)
	for k := range keys {
		r := record.Record{Key: fmt.Appendf(nil, "key-%d", k), Value: fmt.Appendf(nil, "v%d-%d", round, k)}
		if tombstone != nil && tombstone(k) {
			r.Value = nil
		}
		bld.Append(&r)
	}
	batch, err := bld.Build(record.LZ4)
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Produce(context.Background(), topic, AcksAll, []PartitionBatches{{Partition: 0, Batches: append([]byte(nil), batch...)}})
	if err != nil {
		return err
	}
	return res[0].Err
}

// fetchAll reads partition 0 from the log start to the high watermark.
func fetchAll(t *testing.T, b *Broker, topic string) []record.Record {
	t.Helper()
	p, err := b.hosted.partition(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []record.Record
	for offset := p.LogStartOffset(); offset < p.HighWatermark(); {
		res, err := b.Fetch(context.Background(), []FetchPartition{{Topic: topic, Partition: 0, Offset: offset, MaxBytes: 1 << 20}}, FetchOptions{MaxBytes: 1 << 20})
		if err != nil || res[0].Err != nil {
			t.Fatalf("fetch at %d: %v %v", offset, err, res[0].Err)
		}
		it := record.NewBatches(res[0].Data)
		for it.Next() {
			recs, err := record.Decode(it.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if r.Offset >= offset {
					out = append(out, r)
				}
			}
		}
		if res[0].NextOffset <= offset {
			t.Fatalf("fetch at %d made no progress", offset)
		}
		offset = res[0].NextOffset
	}
	return out
}

// A compacted topic fed the same keys over and over is compacted by the
// broker's cleaner down to about one record per key, the latest, at its
// original offset; tombstones go once delete.retention.ms has passed; a
// record without a key is refused, as Kafka does.
func TestCleanerCompactsTopic(t *testing.T) {
	clk := fakeclock.New(time.Now())
	reg := prometheus.NewPedanticRegistry()
	b, _ := startBrokerWith(t, Config{Now: clk.Now, Registerer: reg,
		Settings: smallSegments(map[string]string{"log.cleaner.backoff.ms": "20", "log.cleaner.dedupe.buffer.size": "1048576"})})
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "profiles", Partitions: 1, Configs: map[string]string{
		"cleanup.policy": "compact", "segment.bytes": "4096", "min.cleanable.dirty.ratio": "0.1",
	}}); err != nil {
		t.Fatal(err)
	}
	const keys, rounds = 50, 40
	for round := range rounds {
		// The last round deletes every fifth key.
		var tomb func(int) bool
		if round == rounds-1 {
			tomb = func(k int) bool { return k%5 == 0 }
		}
		if err := produceKeyed(t, b, "profiles", keys, round, tomb); err != nil {
			t.Fatal(err)
		}
	}
	// One more round in the active segment, which is never compacted:
	// everything before it becomes cleanable.
	p, _ := b.hosted.partition("profiles", 0)
	if err := p.log.Flush(); err != nil {
		t.Fatal(err)
	}
	end := p.HighWatermark()

	await.True(t, 10*time.Second, "the cleaner to compact the topic", func() bool {
		return p.log.CleanerOffset() >= p.log.Segments()[len(p.log.Segments())-1].BaseOffset
	})
	got := fetchAll(t, b, "profiles")
	latest := map[string]record.Record{}
	for _, r := range got {
		if _, dup := latest[string(r.Key)]; dup && r.Offset < p.log.CleanerOffset() {
			t.Fatalf("key %s twice below the cleaner offset", r.Key)
		}
		latest[string(r.Key)] = r
	}
	if len(latest) != keys {
		t.Fatalf("%d keys after compaction, want %d", len(latest), keys)
	}
	for k := range keys {
		r := latest[fmt.Sprintf("key-%d", k)]
		wantOffset := int64((rounds-1)*keys + k)
		if r.Offset != wantOffset {
			t.Fatalf("key-%d: latest at offset %d, want %d (offsets never change)", k, r.Offset, wantOffset)
		}
		if k%5 == 0 {
			if r.Value != nil {
				t.Fatalf("key-%d: value %q, want its tombstone", k, r.Value)
			}
		} else if want := fmt.Sprintf("v%d-%d", rounds-1, k); string(r.Value) != want {
			t.Fatalf("key-%d: value %q, want %q", k, r.Value, want)
		}
	}
	active := p.log.Segments()[len(p.log.Segments())-1].BaseOffset
	below := 0
	for _, r := range got {
		if r.Offset < active {
			below++
		}
	}
	if below > keys {
		t.Fatalf("%d records of %d left below the active segment (at %d), want at most one per key", below, end, active)
	}
	// The worker counts a pass just after its last swap.
	read := func() float64 { return metricValue(t, reg, "strata_log_cleaner_read_bytes_total") }
	await.True(t, 10*time.Second, "the cleaner's metrics to count the pass", func() bool { return read() > 0 })
	if written := metricValue(t, reg, "strata_log_cleaner_written_bytes_total"); written >= read() {
		t.Fatalf("cleaner read %v bytes and wrote %v", read(), written)
	}
	if n, err := testutil.GatherAndCount(reg, "strata_log_cleaner_dirty_ratio", "strata_log_cleaner_last_run_timestamp_seconds"); err != nil || n < 2 {
		t.Fatalf("cleaner series: %d, %v", n, err)
	}

	// A day later (delete.retention.ms), new writes make the log dirty
	// again and the next pass drops the tombstones.
	clk.Advance(25 * time.Hour)
	for round := rounds; round < rounds+30; round++ {
		if err := produceKeyed(t, b, "profiles", keys, round, func(k int) bool { return k%5 == 0 }); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.log.Flush(); err != nil {
		t.Fatal(err)
	}
	await.True(t, 10*time.Second, "the tombstones to go", func() bool {
		for _, r := range fetchAll(t, b, "profiles") {
			if r.Value == nil && r.Offset < int64(rounds*keys) {
				return false
			}
		}
		return true
	})

	// A record without a key is refused.
	bld := record.NewBuilder(time.Now().UnixMilli(), 0)
	bld.Append(&record.Record{Value: []byte("no key")})
	batch, _ := bld.Build(record.None)
	res, err := b.Produce(ctx, "profiles", AcksAll, []PartitionBatches{{Partition: 0, Batches: append([]byte(nil), batch...)}})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res[0].Err, ErrInvalidRecord) || Classify(res[0].Err) != KindInvalidRecord {
		t.Fatalf("keyless record to a compacted topic: %v, want an invalid record error", res[0].Err)
	}
}

// A compacted topic with remote storage is compacted in the bucket too:
// the segments the manifest names hold about one record per key, the
// latest, and a consumer reading from offset 0, mostly from the bucket,
// sees every key's latest value at its original offset.
func TestRemoteCompaction(t *testing.T) {
	objects, err := objstore.Open(context.Background(), "file://"+t.TempDir()+"/objects", objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := startBrokerWith(t, Config{ObjectStore: objects, Settings: smallSegments(map[string]string{
		"remote.log.manager.task.interval.ms": "50", "log.cleaner.backoff.ms": "50",
		"log.cleaner.dedupe.buffer.size": "1048576"})})
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "stock", Partitions: 1, Configs: map[string]string{
		"cleanup.policy": "compact", "remote.storage.enable": "true", "segment.bytes": "4096",
		"local.retention.bytes": "0", "min.cleanable.dirty.ratio": "0.2",
	}}); err != nil {
		t.Fatal(err)
	}
	const keys, rounds = 40, 60
	for round := range rounds {
		if err := produceKeyed(t, b, "stock", keys, round, nil); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := b.hosted.partition("stock", 0)
	if err := p.log.Flush(); err != nil {
		t.Fatal(err)
	}
	// Until the bucket holds everything below the active segment's base,
	// compacted: at most one record per key below CompactedTo.
	var m *tiering.PartitionManifest
	await.True(t, 10*time.Second, "the remote segments to be compacted", func() bool {
		m, _ = p.remoteManifest()
		return m != nil && m.CompactedTo > 0 && m.CompactedTo >= m.EndOffset() && m.EndOffset() >= int64((rounds-10)*keys) &&
			p.log.LogStartOffset() > m.LogStartOffset // and local retention dropped what the bucket holds
	})
	remote := map[string]int64{}
	n := 0
	for _, s := range m.Segments {
		raw, err := tiering.ReadSegment(ctx, objects, s)
		if err != nil {
			t.Fatal(err)
		}
		it := record.NewBatches(raw)
		for it.Next() {
			err := record.ForEach(it.Bytes(), func(r *record.Record) error {
				if r.Offset < m.LogStartOffset {
					return nil
				}
				if prev, dup := remote[string(r.Key)]; dup {
					return fmt.Errorf("key %s at %d and %d in the bucket", r.Key, prev, r.Offset)
				}
				remote[string(r.Key)] = r.Offset
				n++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if n > keys {
		t.Fatalf("%d records in the bucket for %d keys", n, keys)
	}
	// Offset 0 onwards: the bucket, then the local log.
	latest := map[string]record.Record{}
	for _, r := range fetchAll(t, b, "stock") {
		latest[string(r.Key)] = r
	}
	for k := range keys {
		r := latest[fmt.Sprintf("key-%d", k)]
		if want := fmt.Sprintf("v%d-%d", rounds-1, k); string(r.Value) != want || r.Offset != int64((rounds-1)*keys+k) {
			t.Fatalf("key-%d: %q at %d, want %q at %d", k, r.Value, r.Offset, want, (rounds-1)*keys+k)
		}
	}
}
