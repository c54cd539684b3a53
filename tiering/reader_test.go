package tiering

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/strata-broker/strata/tiering/objstore"
)

// The chunk cache returns exactly the object's bytes for any range, stays
// within its bound on disk, and a chunk read twice is fetched once.
func TestReadRangeThroughABoundedCache(t *testing.T) {
	ctx := context.Background()
	st, err := objstore.Open(ctx, "file://"+t.TempDir(), objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	obj := make([]byte, 1000)
	for i := range obj {
		obj[i] = byte(i * 7)
	}
	if err := st.Put(ctx, "seg.log", bytes.NewReader(obj), int64(len(obj))); err != nil {
		t.Fatal(err)
	}
	cacheDir := filepath.Join(t.TempDir(), "cache")
	// One chunk in memory: chunks are fetched again and so reach the disk.
	r, err := NewReader(st, ReaderConfig{CacheDir: cacheDir, CacheBytes: 256, MemoryBytes: 64, ChunkSize: 64, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ off, n int64 }{{0, 1000}, {5, 1}, {63, 2}, {100, 400}, {999, 1}, {640, 360}} {
		got, err := r.readRange(ctx, nil, "seg.log", int64(len(obj)), c.off, c.n)
		if err != nil {
			t.Fatalf("range %d+%d: %v", c.off, c.n, err)
		}
		if !bytes.Equal(got, obj[c.off:c.off+c.n]) {
			t.Fatalf("range %d+%d: wrong bytes", c.off, c.n)
		}
		var onDisk int64
		files, _ := os.ReadDir(cacheDir)
		for _, f := range files {
			info, _ := f.Info()
			onDisk += info.Size()
		}
		if onDisk > 256 {
			t.Fatalf("after range %d+%d the cache holds %d bytes on disk, bound 256", c.off, c.n, onDisk)
		}
	}
	if _, err := r.readRange(ctx, nil, "seg.log", int64(len(obj)), 960, 40); err != nil {
		t.Fatal(err)
	}
	misses := testutilCount(r.cacheMiss)
	if _, err := r.readRange(ctx, nil, "seg.log", int64(len(obj)), 970, 20); err != nil {
		t.Fatal(err)
	}
	if again := testutilCount(r.cacheMiss); again != misses {
		t.Fatalf("a chunk just read was fetched again (%v misses, then %v)", misses, again)
	}
	if _, err := r.readRange(ctx, nil, "missing.log", 100, 0, 10); err == nil {
		t.Fatal("reading a missing object succeeded")
	}
}

// A chunk fetched once stays in memory only; one fetched from the store a
// second time (it left memory and is wanted again) is kept on disk too.
func TestChunksGoToDiskWhenFetchedAgain(t *testing.T) {
	ctx := context.Background()
	st, err := objstore.Open(ctx, "file://"+t.TempDir(), objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	obj := bytes.Repeat([]byte("0123456789abcdef"), 64) // 1024 bytes, 16 chunks
	if err := st.Put(ctx, "seg.log", bytes.NewReader(obj), int64(len(obj))); err != nil {
		t.Fatal(err)
	}
	cacheDir := filepath.Join(t.TempDir(), "cache")
	r, err := NewReader(st, ReaderConfig{CacheDir: cacheDir, CacheBytes: 4096, MemoryBytes: 128, ChunkSize: 64, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	filesOnDisk := func() int {
		files, err := os.ReadDir(cacheDir)
		if err != nil {
			t.Fatal(err)
		}
		return len(files)
	}
	read := func(off, n int64) {
		t.Helper()
		got, err := r.readRange(ctx, nil, "seg.log", int64(len(obj)), off, n)
		if err != nil || !bytes.Equal(got, obj[off:off+n]) {
			t.Fatalf("range %d+%d: %v", off, n, err)
		}
	}
	for i := int64(0); i < 16; i++ {
		read(i*64, 64) // one chunk at a time: the last two stay in memory
	}
	if n := filesOnDisk(); n != 0 {
		t.Fatalf("%d chunks on disk after one sequential read, want none", n)
	}
	misses := testutilCount(r.cacheMiss)
	read(1000, 24) // the last chunk: still in memory
	if got := testutilCount(r.cacheMiss); got != misses {
		t.Fatalf("a chunk in memory was fetched again (%v misses, then %v)", misses, got)
	}
	read(0, 64) // left memory long ago: fetched again, and now kept on disk
	if n := filesOnDisk(); n != 1 {
		t.Fatalf("%d chunks on disk after chunk 0 was fetched a second time, want 1", n)
	}
	for i := int64(1); i < 16; i++ {
		read(i*64, 64) // push chunk 0 out of memory
	}
	misses = testutilCount(r.cacheMiss)
	read(0, 64)
	if got := testutilCount(r.cacheMiss); got != misses {
		t.Fatalf("chunk 0 was fetched a third time instead of read from disk (%v misses, then %v)", misses, got)
	}
}

// Chunk buffers are reused once neither memory nor a reader holds them,
// and a chunk a reader holds keeps its bytes while it leaves memory.
func TestChunkBuffersAreReusedOnlyWhenReleased(t *testing.T) {
	ctx := context.Background()
	st, err := objstore.Open(ctx, "file://"+t.TempDir(), objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	obj := make([]byte, 1024) // 16 chunks
	for i := range obj {
		obj[i] = byte(i*13 + i/64)
	}
	if err := st.Put(ctx, "seg.log", bytes.NewReader(obj), int64(len(obj))); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(st, ReaderConfig{CacheDir: filepath.Join(t.TempDir(), "cache"), CacheBytes: 4096,
		MemoryBytes: 128, ChunkSize: 64, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	held, err := r.chunk(ctx, chunkRef{key: "seg.log", size: int64(len(obj)), chunk: 0})
	if err != nil {
		t.Fatal(err)
	}
	for pass := 0; pass < 3; pass++ {
		for i := int64(1); i < 16; i++ {
			got, err := r.readRange(ctx, nil, "seg.log", int64(len(obj)), i*64, 64)
			if err != nil || !bytes.Equal(got, obj[i*64:i*64+64]) {
				t.Fatalf("chunk %d: %v", i, err)
			}
		}
	}
	if !bytes.Equal(held.data, obj[:64]) {
		t.Fatal("a held chunk's buffer was reused after it left memory")
	}
	r.cache.release(held)
	// 45 chunk reads: two chunks in memory, one held, one being fetched
	// need four buffers; a chunk disk-tier read may take one more.
	if n := r.cache.allocated; n > 6 {
		t.Fatalf("%d chunk buffers allocated for 45 chunk reads, want them reused", n)
	}
}

// Readers of overlapping ranges at once, while chunks leave memory and
// their buffers are reused, each get exactly the object's bytes.
func TestConcurrentReadersWhileBuffersAreReused(t *testing.T) {
	ctx := context.Background()
	st, err := objstore.Open(ctx, "file://"+t.TempDir(), objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	obj := make([]byte, 4096)
	for i := range obj {
		obj[i] = byte(i*31 + i/64)
	}
	if err := st.Put(ctx, "seg.log", bytes.NewReader(obj), int64(len(obj))); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(st, ReaderConfig{CacheDir: filepath.Join(t.TempDir(), "cache"), CacheBytes: 1024,
		MemoryBytes: 192, ChunkSize: 64, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for range 300 {
				off := rng.Int64N(int64(len(obj)))
				n := 1 + rng.Int64N(min(300, int64(len(obj))-off))
				got, err := r.readRange(ctx, nil, "seg.log", int64(len(obj)), off, n)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, obj[off:off+n]) {
					errs <- fmt.Errorf("range %d+%d: wrong bytes", off, n)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// readRange appends bytes [off, off+n) of an object to dst, through
// chunks: the chunk cache alone, without batches.
func (r *Reader) readRange(ctx context.Context, dst []byte, key string, size, off, n int64) ([]byte, error) {
	if n <= 0 {
		return dst, nil
	}
	firstChunk := off / r.cfg.ChunkSize
	chunks, err := r.chunks(ctx, key, size, firstChunk, (off+n-1)/r.cfg.ChunkSize)
	if err != nil {
		return nil, err
	}
	defer r.releaseAll(chunks)
	out := slices.Grow(dst, int(n))
	for i, ch := range chunks {
		c := firstChunk + int64(i)
		from := max(off-c*r.cfg.ChunkSize, 0)
		to := min(off+n-c*r.cfg.ChunkSize, int64(len(ch.data)))
		out = append(out, ch.data[from:to]...)
	}
	return out, nil
}
