package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/tiering"
	"github.com/strata-broker/strata/tiering/objstore"
)

// startTieredBroker runs a broker whose object store is a local directory,
// with the tiering task every 50 ms.
func startTieredBroker(t *testing.T) (*Broker, objstore.Store) {
	t.Helper()
	return startTieredBrokerOn(t, t.TempDir()+"/objects")
}

// startTieredBrokerOn is startTieredBroker with a given object store
// directory: a second, separate cluster can share the first one's bucket.
func startTieredBrokerOn(t *testing.T, objectsDir string) (*Broker, objstore.Store) {
	t.Helper()
	objects, err := objstore.Open(context.Background(), "file://"+objectsDir, objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := startBrokerWith(t, Config{ObjectStore: objects,
		Settings: smallSegments(map[string]string{"remote.log.manager.task.interval.ms": "50"})})
	return b, objects
}

func produceValues(t *testing.T, b *Broker, topic string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		bld := record.NewBuilder(time.Now().UnixMilli(), 0)
		bld.Append(&record.Record{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "value-%05d-%0100d", i, i)})
		batch, err := bld.Build(record.None)
		if err != nil {
			t.Fatal(err)
		}
		res, err := b.Produce(context.Background(), topic, AcksAll, []PartitionBatches{{Partition: 0, Batches: batch}})
		if err != nil || res[0].Err != nil {
			t.Fatalf("produce %d: %v %v", i, err, res[0].Err)
		}
	}
}

// readValues fetches every record from offset 0 and returns the values.
func readValues(t *testing.T, b *Broker, topic string, want int) []string {
	t.Helper()
	return readValuesFrom(t, b, topic, 0, want)
}

// readValuesFrom fetches records from offset from on and returns the values
// of at least want of them.
func readValuesFrom(t *testing.T, b *Broker, topic string, from int64, want int) []string {
	t.Helper()
	var out []string
	offset := from
	for len(out) < want {
		res, err := b.Fetch(context.Background(), []FetchPartition{{Topic: topic, Offset: offset, MaxBytes: 700}}, FetchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Err != nil {
			t.Fatalf("fetch at %d: %v", offset, res[0].Err)
		}
		if len(res[0].Data) == 0 {
			t.Fatalf("fetch at %d returned nothing; have %d of %d", offset, len(out), want)
		}
		it := record.NewBatches(res[0].Data)
		for it.Next() {
			err := record.ForEach(it.Bytes(), func(r *record.Record) error {
				if r.Offset >= offset {
					out = append(out, string(r.Value))
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		offset = res[0].NextOffset
	}
	return out
}

func TestTieredTopicIsReadBackFromTheBucket(t *testing.T) {
	b, objects := startTieredBroker(t)
	ctx := context.Background()
	_, err := b.CreateTopic(ctx, TopicSpec{Name: "history", Partitions: 1, Configs: map[string]string{
		"remote.storage.enable": "true", "segment.bytes": "1024", "local.retention.bytes": "2048",
	}})
	if err != nil {
		t.Fatal(err)
	}
	produceValues(t, b, "history", 0, 200)
	p, _ := b.hosted.partition("history", 0)

	// Uploads and local retention run in the background.
	await.NoError(t, 20*time.Second, "the local log start at 100", func() error {
		if start := p.log.LogStartOffset(); start < 100 {
			m, _ := p.remoteManifest()
			return fmt.Errorf("local log start %d (manifest %+v)", start, m)
		}
		return nil
	})
	if got := p.LogStartOffset(); got != 0 {
		t.Fatalf("log start offset %d, want 0: the bucket holds the start", got)
	}
	if off, _, _, err := b.ListOffset("history", 0, EarliestTimestamp, ReadUncommitted); err != nil || off != 0 {
		t.Fatalf("earliest offset %d, %v", off, err)
	}
	m, _, found, err := tiering.LatestManifest(ctx, objects, tiering.Layout{Topic: "history", TopicID: p.topicID}, 0)
	if err != nil || !found || len(m.Segments) == 0 || m.Segments[0].BaseOffset != 0 {
		t.Fatalf("manifest in the bucket: %+v, found %v, %v", m, found, err)
	}
	for _, s := range m.Segments {
		if _, ok, err := objects.Exists(ctx, s.Key); err != nil || !ok {
			t.Fatalf("segment object %s: exists %v, %v", s.Key, ok, err)
		}
	}

	values := readValues(t, b, "history", 200)
	for i, v := range values[:200] {
		if want := fmt.Sprintf("value-%05d-%0100d", i, i); v != want {
			t.Fatalf("record %d is %q, want %q", i, v, want)
		}
	}

	// Offsets by time reach into the bucket: for a timestamp of a record
	// that is only there, the first offset with a timestamp at least as
	// late.
	times := recordTimes(t, b, "history", 200)
	for _, at := range []int{0, 17, 42, 99} {
		if at >= int(p.log.LogStartOffset()) {
			t.Fatalf("record %d is local; the test wants remote ones", at)
		}
		want := 0
		for times[want] < times[at] {
			want++
		}
		off, got, found, err := b.ListOffset("history", 0, times[at], ReadUncommitted)
		if err != nil || !found || off != int64(want) || got != times[want] {
			t.Fatalf("offset for the time of record %d: %d (ts %d, found %v, %v), want %d", at, off, got, found, err, want)
		}
	}
}

// recordTimes returns the timestamps of a partition's first n records.
func recordTimes(t *testing.T, b *Broker, topic string, n int) []int64 {
	t.Helper()
	var out []int64
	for offset := int64(0); len(out) < n; {
		res, err := b.Fetch(context.Background(), []FetchPartition{{Topic: topic, Offset: offset, MaxBytes: 4096}}, FetchOptions{})
		if err != nil || res[0].Err != nil || len(res[0].Data) == 0 {
			t.Fatalf("fetch at %d: %v %v", offset, err, res[0].Err)
		}
		it := record.NewBatches(res[0].Data)
		for it.Next() {
			record.ForEach(it.Bytes(), func(r *record.Record) error {
				if r.Offset == int64(len(out)) {
					out = append(out, r.Timestamp)
				}
				return nil
			})
		}
		offset = res[0].NextOffset
	}
	return out
}

// A remote object whose bytes changed fails its batch checksum: the fetch
// gets an error, never the damaged data.
func TestCorruptRemoteSegmentIsAnError(t *testing.T) {
	b, objects := startTieredBroker(t)
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "fragile", Partitions: 1, Configs: map[string]string{
		"remote.storage.enable": "true", "segment.bytes": "1024", "local.retention.bytes": "1024",
	}}); err != nil {
		t.Fatal(err)
	}
	produceValues(t, b, "fragile", 0, 60)
	p, _ := b.hosted.partition("fragile", 0)
	await.True(t, 20*time.Second, "a segment to leave the local disk", func() bool { return p.log.LogStartOffset() > 0 })
	m, _ := p.remoteManifest()
	seg := m.Segments[0]
	rc, err := objects.Get(ctx, seg.Key)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-3] ^= 0xff // inside the first segment's last record
	if err := objects.Put(ctx, seg.Key, bytes.NewReader(raw), int64(len(raw))); err != nil {
		t.Fatal(err)
	}
	res, err := b.Fetch(ctx, []FetchPartition{{Topic: "fragile", Offset: seg.NextOffset - 1, MaxBytes: 1 << 20}}, FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err == nil || Classify(res[0].Err) != KindCorruptStorage || len(res[0].Data) != 0 {
		t.Fatalf("fetch of a damaged remote batch: %d bytes, err %v (kind %v)", len(res[0].Data), res[0].Err, Classify(res[0].Err))
	}
}

// A topic restored into a new cluster from the bucket alone keeps its id,
// serves its history from the bucket from offset 0, and continues its
// offsets where the bucket's copy ends.
func TestRestoreTopicIntoANewCluster(t *testing.T) {
	bucket := t.TempDir()
	first, _ := startTieredBrokerOn(t, bucket)
	ctx := context.Background()
	desc, err := first.CreateTopic(ctx, TopicSpec{Name: "ledger", Partitions: 1, Configs: map[string]string{
		"remote.storage.enable": "true", "segment.bytes": "1024", "local.retention.bytes": "1024", "retention.ms": "604800000",
	}})
	if err != nil {
		t.Fatal(err)
	}
	produceValues(t, first, "ledger", 0, 100)
	p, _ := first.hosted.partition("ledger", 0)
	await.True(t, 20*time.Second, "uploads to reach offset 80", func() bool {
		m, _ := p.remoteManifest()
		return m != nil && m.EndOffset() >= 80
	})
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	// Uploads go on until Close: the bucket's copy ends where the last
	// manifest written says.
	m, _ := p.remoteManifest()
	uploaded := m.EndOffset()

	second, _ := startTieredBrokerOn(t, bucket) // new etcd, new disk
	restored, err := second.RestoreTopic(ctx, "ledger")
	if err != nil {
		t.Fatal(err)
	}
	if restored.ID != desc.ID || len(restored.Partitions) != 1 {
		t.Fatalf("restored %+v, want id %s", restored, desc.ID)
	}
	if v := configEntry(restored, "retention.ms"); v != "604800000" {
		t.Fatalf("restored retention.ms = %q", v)
	}
	if restored.Partitions[0].LeaderEpoch < 1 {
		t.Fatalf("restored leader epoch %d, want above the uploader's 0", restored.Partitions[0].LeaderEpoch)
	}
	q, _ := second.hosted.partition("ledger", 0)
	if q.LogEndOffset() != uploaded {
		t.Fatalf("restored log ends at %d, want %d where the bucket's copy ends", q.LogEndOffset(), uploaded)
	}
	values := readValues(t, second, "ledger", int(uploaded))
	for i, v := range values[:uploaded] {
		if want := fmt.Sprintf("value-%05d-%0100d", i, i); v != want {
			t.Fatalf("restored record %d is %q", i, v)
		}
	}
	produceValues(t, second, "ledger", 1000, 1001)
	if q.LogEndOffset() != uploaded+1 {
		t.Fatalf("a new record went to offset %d, want %d", q.LogEndOffset()-1, uploaded)
	}
	if _, err := second.RestoreTopic(ctx, "nonesuch"); Classify(err) != KindUnknownTopicOrPartition {
		t.Fatalf("restoring a topic the bucket does not have: %v", err)
	}
}

func configEntry(d TopicDescription, name string) string {
	for _, e := range d.Configs {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// DeleteRecords on a tiered topic deletes records that are only in the
// bucket too: the manifest's log start moves, the segment objects wholly
// below it go, and fetches below it are out of range, also after the
// broker forgot the manifest and read it back.
func TestDeleteRecordsReachesTheBucket(t *testing.T) {
	b, objects := startTieredBroker(t)
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "ledger", Partitions: 1, Configs: map[string]string{
		"remote.storage.enable": "true", "segment.bytes": "1024", "local.retention.bytes": "2048",
	}}); err != nil {
		t.Fatal(err)
	}
	produceValues(t, b, "ledger", 0, 200)
	p, _ := b.hosted.partition("ledger", 0)
	await.True(t, 10*time.Second, "most records to be only in the bucket", func() bool { return p.log.LogStartOffset() >= 100 })
	before, _ := p.remoteManifest()

	const cut = 50 // in the bucket only
	low, err := b.DeleteRecords(ctx, "ledger", 0, cut)
	if err != nil {
		t.Fatal(err)
	}
	if low != cut {
		t.Fatalf("low watermark %d, want %d", low, cut)
	}
	l := tiering.Layout{Topic: "ledger", TopicID: p.topicID}
	m, _, _, err := tiering.LatestManifest(ctx, objects, l, 0)
	if err != nil {
		t.Fatal(err)
	}
	if m.LogStartOffset != cut || len(m.Segments) == 0 || m.Segments[0].NextOffset <= cut || m.Segments[0].BaseOffset > cut {
		t.Fatalf("manifest after DeleteRecords: start %d, first segment %+v", m.LogStartOffset, m.Segments[0])
	}
	for _, s := range before.Segments {
		ok, err := existsObject(ctx, objects, s.Key)
		if err != nil {
			t.Fatal(err)
		}
		if below := s.NextOffset <= cut; ok == below {
			t.Fatalf("segment %d-%d: object exists %v after deleting below %d", s.BaseOffset, s.NextOffset, ok, cut)
		}
	}
	check := func(when string) {
		t.Helper()
		if off, _, _, err := b.ListOffset("ledger", 0, EarliestTimestamp, ReadUncommitted); err != nil || off != cut {
			t.Fatalf("%s: earliest offset %d, %v; want %d", when, off, err, cut)
		}
		res, err := b.Fetch(ctx, []FetchPartition{{Topic: "ledger", Offset: cut - 1, MaxBytes: 4096}}, FetchOptions{})
		var oor *partlog.OffsetOutOfRangeError
		if err != nil || !errors.As(res[0].Err, &oor) {
			t.Fatalf("%s: fetch below the new start: %v, %v; want offset out of range", when, err, res[0].Err)
		}
		values := readValuesFrom(t, b, "ledger", cut, 10)
		if want := fmt.Sprintf("value-%05d-%0100d", cut, cut); values[0] != want {
			t.Fatalf("%s: first record %q, want %q", when, values[0], want)
		}
	}
	check("at once")
	p.setRemoteManifest(nil, 0) // as a new leader: read back from the bucket
	check("with the manifest read back")
}

func existsObject(ctx context.Context, st objstore.Store, key string) (bool, error) {
	_, ok, err := st.Exists(ctx, key)
	return ok, err
}

// dirtyPool hands out buffers full of garbage and scribbles over those given
// back, as a reused buffer would be: data read into one must be exactly the
// records, and one given back must no longer be in use.
type dirtyPool struct {
	gets, puts atomic.Int64
}

func (p *dirtyPool) Get(n int) *[]byte {
	p.gets.Add(1)
	b := bytes.Repeat([]byte{0xee}, n)
	return &b
}

func (p *dirtyPool) Put(b *[]byte) {
	p.puts.Add(1)
	full := (*b)[:cap(*b)]
	for i := range full {
		full[i] = 0xdd
	}
}

// Reads from the bucket gather their bytes in the fetch's pooled buffers:
// the records come back intact from dirty buffers, and each buffer is
// either the response's (given back by the caller) or given back at once.
func TestRemoteReadsUsePooledBuffers(t *testing.T) {
	b, _ := startTieredBroker(t)
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "pooled", Partitions: 1, Configs: map[string]string{
		"remote.storage.enable": "true", "segment.bytes": "1024", "local.retention.bytes": "1024",
	}}); err != nil {
		t.Fatal(err)
	}
	produceValues(t, b, "pooled", 0, 100)
	p, _ := b.hosted.partition("pooled", 0)
	await.True(t, 10*time.Second, "records to be only in the bucket", func() bool { return p.log.LogStartOffset() >= 50 })
	pool := &dirtyPool{}
	kept := 0
	for offset := int64(0); offset < 50; {
		res, err := b.Fetch(ctx, []FetchPartition{{Topic: "pooled", Offset: offset, MaxBytes: 700}}, FetchOptions{Buffers: pool})
		if err != nil || res[0].Err != nil || len(res[0].Data) == 0 {
			t.Fatalf("fetch at %d: %v %v", offset, err, res[0].Err)
		}
		it := record.NewBatches(res[0].Data)
		for it.Next() {
			err := record.ForEach(it.Bytes(), func(r *record.Record) error {
				if r.Offset >= offset {
					if want := fmt.Sprintf("value-%05d-%0100d", r.Offset, r.Offset); string(r.Value) != want {
						return fmt.Errorf("record %d is %.20q", r.Offset, r.Value)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		if res[0].Buffer != nil {
			kept++
			pool.Put(res[0].Buffer) // as the frontend does once the response is sent
		}
		offset = res[0].NextOffset
	}
	if kept == 0 {
		t.Fatal("no remote read returned its data in a pooled buffer")
	}
	if g, p := pool.gets.Load(), pool.puts.Load(); g != p {
		t.Fatalf("%d buffers taken, %d given back", g, p)
	}
}
