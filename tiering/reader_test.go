package tiering

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
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
	r, err := NewReader(st, ReaderConfig{CacheDir: cacheDir, CacheBytes: 256, ChunkSize: 64, Workers: 3})
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
	misses := testutilCount(r.cacheMiss)
	if _, err := r.readRange(ctx, nil, "seg.log", int64(len(obj)), 960, 40); err != nil {
		t.Fatal(err)
	}
	if again := testutilCount(r.cacheMiss); again != misses {
		t.Fatalf("a chunk just read was fetched again (%v misses, then %v)", misses, again)
	}
	if _, err := r.readRange(ctx, nil, "missing.log", 100, 0, 10); err == nil {
		t.Fatal("reading a missing object succeeded")
	}
}
