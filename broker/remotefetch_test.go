package broker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/tiering"
	"github.com/strata-broker/strata/tiering/objstore"
)

// slowFirstSegments is an object store whose reads of each partition's
// first segment take a while, as GETs to a distant bucket do, and which
// records how many it served at once. (Only the first segments: read-ahead
// fetches the following ones, several at once for one partition.)
type slowFirstSegments struct {
	tiering.Store
	delay time.Duration

	mu             sync.Mutex
	inFlight, most int
}

func (s *slowFirstSegments) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if strings.Contains(key, "/segments/00000000000000000000-") && strings.HasSuffix(key, ".log") {
		s.mu.Lock()
		s.inFlight++
		s.most = max(s.most, s.inFlight)
		s.mu.Unlock()
		time.Sleep(s.delay)
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}
	return s.Store.GetRange(ctx, key, off, n)
}

// A fetch of several partitions whose records are only in the bucket reads
// them from the bucket at the same time, and each gets its own records.
func TestFetchReadsPartitionsFromTheBucketInParallel(t *testing.T) {
	objects, err := objstore.Open(context.Background(), "file://"+t.TempDir(), objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	slow := &slowFirstSegments{Store: objects, delay: 200 * time.Millisecond}
	b, _ := startBrokerWith(t, Config{ObjectStore: slow,
		Settings: smallSegments(map[string]string{"remote.log.manager.task.interval.ms": "50"})})
	ctx := context.Background()
	const parts = 4
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "wide", Partitions: parts, Configs: map[string]string{
		"remote.storage.enable": "true", "segment.bytes": "1024", "local.retention.bytes": "1024",
	}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 60; i++ {
		for p := int32(0); p < parts; p++ {
			bld := record.NewBuilder(time.Now().UnixMilli(), 0)
			bld.Append(&record.Record{Value: fmt.Appendf(nil, "p%d-%05d-%0100d", p, i, i)})
			batch, err := bld.Build(record.None)
			if err != nil {
				t.Fatal(err)
			}
			res, err := b.Produce(ctx, "wide", AcksAll, []PartitionBatches{{Partition: p, Batches: batch}})
			if err != nil || res[0].Err != nil {
				t.Fatalf("produce: %v %v", err, res)
			}
		}
	}
	for p := int32(0); p < parts; p++ {
		part, _ := b.hosted.partition("wide", p)
		await.True(t, 10*time.Second, "records to be only in the bucket", func() bool { return part.log.LogStartOffset() >= 20 })
	}
	var req []FetchPartition
	for p := int32(0); p < parts; p++ {
		req = append(req, FetchPartition{Topic: "wide", Partition: p, Offset: 0, MaxBytes: 1 << 20})
	}
	res, err := b.Fetch(ctx, req, FetchOptions{MaxBytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for p, r := range res {
		if r.Err != nil || len(r.Data) == 0 {
			t.Fatalf("partition %d: %v, %d bytes", p, r.Err, len(r.Data))
		}
		it := record.NewBatches(r.Data)
		next := int64(0)
		for it.Next() {
			err := record.ForEach(it.Bytes(), func(rec *record.Record) error {
				if want := fmt.Sprintf("p%d-%05d-%0100d", p, rec.Offset, rec.Offset); rec.Offset != next || string(rec.Value) != want {
					return fmt.Errorf("partition %d: record %d (want %d) is %.12q", p, rec.Offset, next, rec.Value)
				}
				next++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := it.Err(); err != nil || next == 0 || r.NextOffset != next {
			t.Fatalf("partition %d: %d records, next offset %d: %v", p, next, r.NextOffset, err)
		}
	}
	slow.mu.Lock()
	defer slow.mu.Unlock()
	if slow.most < 2 {
		t.Fatalf("at most %d partition's first segment read at once: the partitions were read from the bucket one after another", slow.most)
	}
}

// replacedUnderneath is an object store in which, the first time a
// segment is read, the partition's remote segments are replaced (copied
// to new keys, a new manifest installed, the old objects deleted), as
// compaction does between a reader taking the manifest and its GET.
type replacedUnderneath struct {
	tiering.Store
	replace func(ctx context.Context) error
	once    sync.Once
}

func (s *replacedUnderneath) hit(ctx context.Context, key string) error {
	var err error
	if strings.Contains(key, "/segments/") && !strings.Contains(key, "-copy") {
		s.once.Do(func() { err = s.replace(ctx) })
	}
	return err
}

func (s *replacedUnderneath) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := s.hit(ctx, key); err != nil {
		return nil, err
	}
	return s.Store.Get(ctx, key)
}

func (s *replacedUnderneath) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if err := s.hit(ctx, key); err != nil {
		return nil, err
	}
	return s.Store.GetRange(ctx, key, off, n)
}

// A read whose segment objects are deleted under it, because a new
// manifest replaced them, is served through the new manifest instead of
// failing the fetch.
func TestRemoteReadFollowsAReplacedManifest(t *testing.T) {
	objects, err := objstore.Open(context.Background(), "file://"+t.TempDir(), objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := &replacedUnderneath{Store: objects}
	b, _ := startBrokerWith(t, Config{ObjectStore: st,
		Settings: smallSegments(map[string]string{"remote.log.manager.task.interval.ms": "50"})})
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "moving", Partitions: 1, Configs: map[string]string{
		"remote.storage.enable": "true", "segment.bytes": "1024", "local.retention.bytes": "1024",
	}}); err != nil {
		t.Fatal(err)
	}
	produceValues(t, b, "moving", 0, 60)
	p, _ := b.hosted.partition("moving", 0)
	await.True(t, 10*time.Second, "records to be only in the bucket", func() bool { return p.log.LogStartOffset() >= 20 })
	replaced := false
	st.replace = func(ctx context.Context) error {
		unlock := p.remote.LockWrites() // no tiering round meanwhile
		defer unlock()
		m, epoch := p.remoteManifest()
		next := *m
		next.Segments = nil
		var old []string
		for _, s := range m.Segments {
			c := s
			for _, k := range []*string{&c.Key, &c.IndexKey, &c.TimeIndexKey} {
				rc, err := objects.Get(ctx, *k)
				if err != nil {
					return err
				}
				raw, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					return err
				}
				old = append(old, *k)
				*k += "-copy"
				if err := objects.Put(ctx, *k, bytes.NewReader(raw), int64(len(raw))); err != nil {
					return err
				}
			}
			next.Segments = append(next.Segments, c)
		}
		p.setRemoteManifest(&next, epoch)
		replaced = true
		if err := objects.Delete(ctx, old...); err != nil {
			return err
		}
		return fmt.Errorf("read during the swap: %w", objstore.ErrNotFound)
	}
	values := readValues(t, b, "moving", 20)
	if !replaced {
		t.Fatal("the segments were not replaced during the read")
	}
	for i, v := range values[:20] {
		if want := fmt.Sprintf("value-%05d-%0100d", i, i); v != want {
			t.Fatalf("record %d is %q, want %q", i, v, want)
		}
	}
}

// A fetch that takes its remote batches in pieces gets the same records as
// one that gathers them, and pieces it holds are unchanged by the reads
// after it, until it releases them.
func TestRemoteFetchInPieces(t *testing.T) {
	b, _ := startTieredBroker(t)
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "pieces", Partitions: 1, Configs: map[string]string{
		"remote.storage.enable": "true", "segment.bytes": "4096", "local.retention.bytes": "4096",
	}}); err != nil {
		t.Fatal(err)
	}
	produceValues(t, b, "pieces", 0, 300)
	p, _ := b.hosted.partition("pieces", 0)
	await.True(t, 10*time.Second, "records to be only in the bucket", func() bool { return p.log.LogStartOffset() >= 150 })
	fetch := func(offset int64, pieces bool) FetchResult {
		t.Helper()
		res, err := b.Fetch(ctx, []FetchPartition{{Topic: "pieces", Offset: offset, MaxBytes: 3000}}, FetchOptions{Pieces: pieces})
		if err != nil || res[0].Err != nil {
			t.Fatalf("fetch at %d: %v %v", offset, err, res[0].Err)
		}
		return res[0]
	}
	check := func(data []byte, from int64) int64 {
		t.Helper()
		it := record.NewBatches(data)
		next := from
		for it.Next() {
			err := record.ForEach(it.Bytes(), func(r *record.Record) error {
				if r.Offset >= from {
					if want := fmt.Sprintf("value-%05d-%0100d", r.Offset, r.Offset); string(r.Value) != want {
						return fmt.Errorf("record %d is %.20q", r.Offset, r.Value)
					}
					next = r.Offset + 1
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
		return next
	}
	held := fetch(0, true)
	if len(held.Pieces) == 0 || held.Data != nil {
		t.Fatalf("a remote read in pieces returned %d pieces and %d bytes of Data", len(held.Pieces), len(held.Data))
	}
	heldCopy := bytes.Join(held.Pieces, nil)
	for offset := int64(0); offset < 150; {
		whole, inPieces := fetch(offset, false), fetch(offset, true)
		if joined := bytes.Join(inPieces.Pieces, nil); !bytes.Equal(joined, whole.Data) || inPieces.NextOffset != whole.NextOffset {
			t.Fatalf("at %d: %d bytes in pieces to %d, %d gathered to %d", offset, len(joined), inPieces.NextOffset, len(whole.Data), whole.NextOffset)
		}
		next := check(whole.Data, offset)
		inPieces.Release()
		if next <= offset {
			t.Fatalf("no progress at %d", offset)
		}
		offset = whole.NextOffset
	}
	if !bytes.Equal(bytes.Join(held.Pieces, nil), heldCopy) {
		t.Fatal("held pieces changed while other reads went through the cache")
	}
	check(heldCopy, 0)
	held.Release()
	if held.Pieces != nil {
		t.Fatal("pieces still set after Release")
	}
}
