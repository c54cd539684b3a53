package tiering

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-broker/strata/partlog"
)

// DefaultChunkSize is the unit of remote reads and of the chunk cache.
const DefaultChunkSize = 4 << 20

// ReaderConfig configures a Reader.
type ReaderConfig struct {
	// CacheDir holds cached chunks; it is emptied at start.
	CacheDir string
	// CacheBytes bounds the chunk cache on disk (--tiering-cache-bytes).
	CacheBytes int64
	// MemoryBytes bounds the chunks kept in memory, most recent first;
	// zero means room for the read-ahead and the chunks being read.
	MemoryBytes int64
	// ChunkSize is the size of one ranged GET; zero means DefaultChunkSize.
	ChunkSize int64
	// ReadAhead is how many chunks after the one read are fetched ahead
	// for a sequential reader; Workers is how many GETs run at once for
	// that.
	ReadAhead, Workers int
	// IndexBytes bounds the decoded offset and transaction indexes kept
	// in memory, besides their count; zero means DefaultIndexBytes.
	IndexBytes int64
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Reader serves reads of remote segments through an on-disk chunk cache,
// fetching chunks ahead of a sequential reader. Run drives its read-ahead.
type Reader struct {
	st     Store
	cfg    ReaderConfig
	logger *slog.Logger
	cache  *chunkCache

	idxMu    sync.Mutex
	indexes  map[string][]partlog.IndexEntry
	idxOrder *list.List // of offset and transaction index keys, most recent first
	idxElems map[string]*list.Element
	// txnIndexes are decoded transaction indexes, in idxOrder with the
	// offset indexes.
	txnIndexes map[string]partlog.TxnIndex
	txnElems   map[string]*list.Element
	// idxSizes are the cached indexes' sizes in memory, idxBytes their sum.
	idxSizes map[string]int64
	idxBytes int64

	ahead chan chunkRef
	// resume lets a read that continues where another stopped skip the
	// offset index.
	resume resumePoints

	getSeconds *prometheus.HistogramVec
	cacheHits  prometheus.Counter
	cacheMiss  prometheus.Counter
	refetches  prometheus.Counter
	corrupt    prometheus.Counter
}

type chunkRef struct {
	key   string
	size  int64 // of the whole object
	chunk int64
}

// maxIndexes bounds the decoded offset and transaction indexes kept in
// memory; ReaderConfig.IndexBytes bounds their size.
const maxIndexes = 256

// DefaultIndexBytes is ReaderConfig.IndexBytes's default. One segment's
// transaction index can be large (an abort marker per 78 bytes of log), so
// a count alone would not bound the memory.
const DefaultIndexBytes = 64 << 20

// NewReader returns a reader of st's segments.
func NewReader(st Store, cfg ReaderConfig) (*Reader, error) {
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	if cfg.CacheBytes < 4*cfg.ChunkSize {
		cfg.CacheBytes = 4 * cfg.ChunkSize
	}
	if cfg.ReadAhead < 0 {
		cfg.ReadAhead = 0
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.IndexBytes <= 0 {
		cfg.IndexBytes = DefaultIndexBytes
	}
	if cfg.MemoryBytes <= 0 {
		cfg.MemoryBytes = int64(cfg.ReadAhead+cfg.Workers+2) * cfg.ChunkSize
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cache, err := newChunkCache(cfg.CacheDir, cfg.CacheBytes, cfg.MemoryBytes, cfg.ChunkSize)
	if err != nil {
		return nil, err
	}
	r := &Reader{
		st: st, cfg: cfg, logger: logger, cache: cache,
		indexes: map[string][]partlog.IndexEntry{}, idxOrder: list.New(), idxElems: map[string]*list.Element{},
		txnIndexes: map[string]partlog.TxnIndex{}, txnElems: map[string]*list.Element{}, idxSizes: map[string]int64{},
		ahead: make(chan chunkRef, 256),
		getSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "strata_tiering_remote_read_seconds",
			Help:    "Time to fetch one chunk or index from the object store for a read.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"kind"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_tiering_cache_hits_total", Help: "Remote-read chunks served from the chunk cache.",
		}),
		cacheMiss: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_tiering_cache_misses_total", Help: "Remote-read chunks fetched from the object store.",
		}),
		refetches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_tiering_cache_refetches_total",
			Help: "Chunks fetched from the object store again, having left the cache's memory (they are then kept on disk too).",
		}),
		corrupt: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_tiering_corrupt_reads_total", Help: "Remote reads refused because the data failed a check.",
		}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{r.getSeconds, r.cacheHits, r.cacheMiss, r.refetches, r.corrupt} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("tiering metrics: %w", err)
			}
		}
	}
	cache.refetches = r.refetches
	return r, nil
}

// Run fetches read-ahead chunks until ctx ends.
func (r *Reader) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range r.cfg.Workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case ref := <-r.ahead:
					ch, err := r.chunk(ctx, ref)
					if err != nil && ctx.Err() == nil {
						r.logger.Debug("read-ahead failed", "key", ref.key, "chunk", ref.chunk, "err", err)
					}
					r.cache.release(ch)
				}
			}
		})
	}
	wg.Wait()
}

func (r *Reader) readAhead(ref chunkRef) {
	if r.cache.has(ref) {
		return
	}
	select {
	case r.ahead <- ref:
	default: // busy: the reader fetches it itself when it gets there
	}
}

// chunk returns one chunk of an object, from the cache or the store, held
// for the caller, who releases it once done with its bytes.
func (r *Reader) chunk(ctx context.Context, ref chunkRef) (*chunk, error) {
	return r.cache.get(ref, func(buf []byte) ([]byte, error) {
		off := ref.chunk * r.cfg.ChunkSize
		n := min(r.cfg.ChunkSize, ref.size-off)
		if n <= 0 {
			return nil, fmt.Errorf("chunk %d of %s is past its end (%d bytes)", ref.chunk, ref.key, ref.size)
		}
		start := time.Now()
		rc, err := r.st.GetRange(ctx, ref.key, off, n)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		buf = buf[:n]
		if _, err := io.ReadFull(rc, buf); err != nil {
			return nil, fmt.Errorf("read %s bytes %d-%d: %w", ref.key, off, off+n-1, err)
		}
		r.getSeconds.WithLabelValues("chunk").Observe(time.Since(start).Seconds())
		r.cacheMiss.Inc()
		return buf, nil
	}, r.cacheHits)
}

// chunks returns chunks first to last of an object, held for the caller.
// The ones not in the cache are fetched in parallel, up to Workers at once.
// Each is checked to be as long as the object says.
func (r *Reader) chunks(ctx context.Context, key string, size, first, last int64) ([]*chunk, error) {
	chunks := make([]*chunk, last-first+1)
	errs := make([]error, len(chunks))
	sem := make(chan struct{}, r.cfg.Workers)
	var wg sync.WaitGroup
	for i := range chunks {
		ref := chunkRef{key: key, size: size, chunk: first + int64(i)}
		if len(chunks) == 1 {
			chunks[i], errs[i] = r.chunk(ctx, ref)
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			chunks[i], errs[i] = r.chunk(ctx, ref)
		})
	}
	wg.Wait()
	for i, ch := range chunks {
		err := errs[i]
		if c := first + int64(i); err == nil && int64(len(ch.data)) != min(r.cfg.ChunkSize, size-c*r.cfg.ChunkSize) {
			err = fmt.Errorf("%w: %s: chunk %d is %d bytes, the object %d", ErrCorrupt, key, c, len(ch.data), size)
		}
		if err != nil {
			r.releaseAll(chunks)
			return nil, err
		}
	}
	return chunks, nil
}

func (r *Reader) releaseAll(chunks []*chunk) {
	for _, ch := range chunks {
		r.cache.release(ch)
	}
}

// index returns a segment's decoded offset index.
func (r *Reader) index(ctx context.Context, seg SegmentMeta) ([]partlog.IndexEntry, error) {
	r.idxMu.Lock()
	if e, ok := r.idxElems[seg.IndexKey]; ok {
		r.idxOrder.MoveToFront(e)
		idx := r.indexes[seg.IndexKey]
		r.idxMu.Unlock()
		return idx, nil
	}
	r.idxMu.Unlock()
	start := time.Now()
	raw, err := readAll(ctx, r.st, seg.IndexKey, 64<<20)
	if err != nil {
		return nil, fmt.Errorf("index of remote segment %d: %w", seg.BaseOffset, err)
	}
	r.getSeconds.WithLabelValues("index").Observe(time.Since(start).Seconds())
	idx, err := partlog.DecodeOffsetIndex(raw, seg.BaseOffset, seg.Size)
	if err != nil {
		r.corrupt.Inc()
		return nil, fmt.Errorf("%w: index %s: %v", ErrCorrupt, seg.IndexKey, err)
	}
	r.idxMu.Lock()
	defer r.idxMu.Unlock()
	if _, ok := r.idxElems[seg.IndexKey]; !ok {
		r.indexes[seg.IndexKey] = idx
		r.idxElems[seg.IndexKey] = r.idxOrder.PushFront(seg.IndexKey)
		r.addIndexBytesLocked(seg.IndexKey, int64(len(idx))*16) // two int64s an entry
	}
	return idx, nil
}

// addIndexBytesLocked counts the index just cached under key, of size
// bytes, and forgets the least recent indexes past maxIndexes or past
// IndexBytes (the new one too, if it alone is larger: its reader has it).
// idxMu must be held.
func (r *Reader) addIndexBytesLocked(key string, size int64) {
	r.idxSizes[key] = size
	r.idxBytes += size
	for r.idxOrder.Len() > maxIndexes || r.idxOrder.Len() > 0 && r.idxBytes > r.cfg.IndexBytes {
		old := r.idxOrder.Remove(r.idxOrder.Back()).(string)
		delete(r.indexes, old)
		delete(r.idxElems, old)
		delete(r.txnIndexes, old)
		delete(r.txnElems, old)
		r.idxBytes -= r.idxSizes[old]
		delete(r.idxSizes, old)
	}
}

func isCorrupt(err error) bool { return errors.Is(err, ErrCorrupt) }

// ReadResult is what a remote read returns.
type ReadResult struct {
	Data       []byte // whole batches
	NextOffset int64  // the offset after the last batch returned
	// InBuf: Data is a slice of the buf passed to Read.
	InBuf bool
}

// Read returns whole batches of segs[i] from the one holding offset, up to
// maxBytes (the first batch whole, whatever its size), gathered in one
// buffer: ReadPieces, joined. Every batch is checked (CRC, offsets inside
// the segment, increasing); a failed check is ErrCorrupt and nothing of it
// is returned. When the read reaches the segment's last chunk, the next
// segment's first chunk is fetched ahead.
//
// buf, when not nil, is where the batches are gathered: Data is then a
// slice of it if it has room (maxBytes is enough unless the first batch is
// larger), so that a caller can reuse pooled buffers instead of having
// fresh ones allocated and zeroed for every read.
func (r *Reader) Read(ctx context.Context, segs []SegmentMeta, i int, offset int64, maxBytes int, buf []byte) (ReadResult, error) {
	pc, err := r.ReadPieces(ctx, segs, i, offset, maxBytes)
	if err != nil {
		return ReadResult{}, err
	}
	defer pc.Release()
	res := ReadResult{NextOffset: pc.NextOffset}
	if pc.Len == 0 {
		return res, nil
	}
	out := buf[:0]
	if cap(buf) < pc.Len {
		out = make([]byte, 0, pc.Len)
	} else {
		res.InBuf = true
	}
	for _, p := range pc.Data {
		out = append(out, p...)
	}
	res.Data = out
	return res, nil
}

// scheduleAhead fetches the ReadAhead chunks after pos, continuing into the
// following segments.
func (r *Reader) scheduleAhead(segs []SegmentMeta, i int, pos int64) {
	left := r.cfg.ReadAhead
	for j := i; left > 0 && j < len(segs); j++ {
		seg := segs[j]
		c := int64(0)
		if j == i {
			c = pos / r.cfg.ChunkSize
		}
		for ; left > 0 && c*r.cfg.ChunkSize < seg.Size; c++ {
			// The window is the ReadAhead chunks after pos, whether
			// cached or not: counting only missing ones would run ever
			// further ahead and push chunks out of memory before the
			// reader gets to them.
			left--
			if ref := (chunkRef{key: seg.Key, size: seg.Size, chunk: c}); !r.cache.has(ref) {
				r.readAhead(ref)
			}
		}
	}
}

// chunkCache keeps chunks in two tiers. In memory, the most recent chunks,
// up to memMax bytes: a sequential reader reads each chunk over several
// fetches and the read-ahead lands there. On disk, up to max bytes, only
// chunks fetched from the store a second time (while still remembered as
// fetched before): a chunk a single sequential reader reads once is never
// written to disk and read back, which profiling showed to cost about a
// quarter of the broker's CPU on a cold read; data read again, by a second
// consumer or after it left memory, is kept. Concurrent misses of one
// chunk share one fetch.
//
// Chunk buffers are reused once neither the memory tier nor a reader holds
// them: a fresh 4 MiB buffer for every chunk had the kernel fault in and
// clear every page the socket read wrote to, about 225,000 page faults per
// GB read, a large part of the broker's CPU on a cold read.
type chunkCache struct {
	dir       string
	max       int64
	memMax    int64
	chunkSize int64

	mu       sync.Mutex
	size     int64
	lru      *list.List // of *cacheEntry, on disk, most recent first
	entries  map[chunkRef]*list.Element
	memSize  int64
	memLRU   *list.List // of *memEntry, most recent first
	mem      map[chunkRef]*list.Element
	ghosts   *fifoMap[chunkRef, struct{}] // fetched from the store before
	inflight map[chunkRef]*fetchCall
	// refetches counts chunks fetched from the store again.
	refetches prometheus.Counter

	freeMu sync.Mutex
	free   [][]byte // buffers of chunkSize capacity no chunk holds
	// allocated counts buffers made rather than reused.
	allocated int64
}

// chunk is a chunk's bytes and how many hold them: the memory tier and
// each reader between getting the chunk and releasing it. Its buffer is
// reused when the count falls to zero, so nobody may keep its bytes past
// release.
type chunk struct {
	data []byte
	refs atomic.Int32
}

type cacheEntry struct {
	ref  chunkRef
	file string
	n    int64
}

type memEntry struct {
	ref chunkRef
	ch  *chunk
}

type fetchCall struct {
	done chan struct{}
	ch   *chunk
	err  error
	// waiters are the gets waiting on this fetch, each owed a hold.
	waiters int32
}

// maxGhosts bounds how many fetched chunks the cache remembers for its
// admission rule (16 bytes of key hash and offset each, at most a few MiB).
const maxGhosts = 1 << 16

// maxFreeChunks bounds the unused chunk buffers kept for reuse; more are
// left to the garbage collector.
const maxFreeChunks = 16

func newChunkCache(dir string, max, memMax, chunkSize int64) (*chunkCache, error) {
	if dir == "" {
		return nil, errors.New("tiering: no cache directory")
	}
	// Chunks of an earlier run are not trusted to match their index: start
	// empty.
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("tiering cache: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("tiering cache: %w", err)
	}
	return &chunkCache{dir: dir, max: max, memMax: memMax, chunkSize: chunkSize, lru: list.New(),
		entries: map[chunkRef]*list.Element{}, memLRU: list.New(), mem: map[chunkRef]*list.Element{},
		ghosts: newFIFOMap[chunkRef, struct{}](maxGhosts), inflight: map[chunkRef]*fetchCall{}}, nil
}

// buffer returns a buffer of chunkSize capacity, reused if one is free.
func (c *chunkCache) buffer() []byte {
	c.freeMu.Lock()
	defer c.freeMu.Unlock()
	if n := len(c.free); n > 0 {
		b := c.free[n-1]
		c.free = c.free[:n-1]
		return b
	}
	c.allocated++
	return make([]byte, c.chunkSize)
}

func (c *chunkCache) putBuffer(b []byte) {
	if int64(cap(b)) != c.chunkSize {
		return
	}
	c.freeMu.Lock()
	defer c.freeMu.Unlock()
	if len(c.free) < maxFreeChunks {
		c.free = append(c.free, b[:cap(b)])
	}
}

// release drops one hold of ch (nil is ignored).
func (c *chunkCache) release(ch *chunk) {
	if ch == nil {
		return
	}
	switch n := ch.refs.Add(-1); {
	case n == 0:
		c.putBuffer(ch.data)
	case n < 0:
		panic("tiering: chunk released more often than held")
	}
}

func (c *chunkCache) has(ref chunkRef) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, inMem := c.mem[ref]
	_, onDisk := c.entries[ref]
	_, busy := c.inflight[ref]
	return inMem || onDisk || busy
}

func (c *chunkCache) fileFor(ref chunkRef) string {
	sum := sha256.Sum256([]byte(ref.key))
	return filepath.Join(c.dir, hex.EncodeToString(sum[:16])+"-"+strconv.FormatInt(ref.chunk, 10))
}

// get returns the chunk ref, held for the caller: from memory, from disk,
// or fetched into a buffer by fetch.
func (c *chunkCache) get(ref chunkRef, fetch func(buf []byte) ([]byte, error), hits prometheus.Counter) (*chunk, error) {
	c.mu.Lock()
	if e, ok := c.mem[ref]; ok {
		c.memLRU.MoveToFront(e)
		ch := e.Value.(*memEntry).ch
		ch.refs.Add(1)
		c.mu.Unlock()
		hits.Inc()
		return ch, nil
	}
	if e, ok := c.entries[ref]; ok {
		c.lru.MoveToFront(e)
		ent := e.Value.(*cacheEntry)
		c.mu.Unlock()
		if ch, err := c.readFile(ent); err == nil {
			hits.Inc()
			c.mu.Lock()
			ch = c.putMemLocked(ref, ch)
			c.mu.Unlock()
			return ch, nil
		}
		// Evicted meanwhile, or damaged: fetch again.
		c.mu.Lock()
		c.dropLocked(ref)
	}
	if call, ok := c.inflight[ref]; ok {
		call.waiters++
		c.mu.Unlock()
		<-call.done
		return call.ch, call.err
	}
	call := &fetchCall{done: make(chan struct{})}
	c.inflight[ref] = call
	c.mu.Unlock()

	buf := c.buffer()
	data, err := fetch(buf)
	if err != nil {
		c.putBuffer(buf)
	} else {
		call.ch = &chunk{data: data}
		call.ch.refs.Store(1)
	}
	call.err = err
	c.mu.Lock()
	delete(c.inflight, ref)
	again := false
	if call.err == nil {
		// No new waiter can find the call once it is out of inflight.
		call.ch.refs.Add(call.waiters)
		call.ch = c.putMemLocked(ref, call.ch)
		again = c.fetchedBeforeLocked(ref)
	}
	c.mu.Unlock()
	if again {
		c.refetches.Inc()
		c.put(ref, call.ch.data)
	}
	close(call.done)
	return call.ch, call.err
}

// readFile reads a chunk of the disk tier into a buffer, held once.
func (c *chunkCache) readFile(ent *cacheEntry) (*chunk, error) {
	f, err := os.Open(ent.file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if ent.n > c.chunkSize {
		return nil, fmt.Errorf("cached chunk %s is larger than a chunk", ent.file)
	}
	buf := c.buffer()
	if _, err := io.ReadFull(f, buf[:ent.n]); err != nil {
		c.putBuffer(buf)
		return nil, err
	}
	ch := &chunk{data: buf[:ent.n]}
	ch.refs.Store(1)
	return ch, nil
}

// putMemLocked keeps ch in memory, with a hold of its own, evicting the
// least recent chunks past the bound, and returns the chunk to use: ch,
// or the one already there (ch is then released). mu must be held.
func (c *chunkCache) putMemLocked(ref chunkRef, ch *chunk) *chunk {
	if e, ok := c.mem[ref]; ok {
		c.memLRU.MoveToFront(e)
		have := e.Value.(*memEntry).ch
		if have != ch {
			// Read from disk by two readers at once: keep one copy, and
			// move ch's holds to it.
			have.refs.Add(ch.refs.Swap(0))
			c.putBuffer(ch.data)
		}
		return have
	}
	ch.refs.Add(1)
	c.mem[ref] = c.memLRU.PushFront(&memEntry{ref: ref, ch: ch})
	c.memSize += int64(len(ch.data))
	for c.memSize > c.memMax && c.memLRU.Len() > 1 {
		old := c.memLRU.Remove(c.memLRU.Back()).(*memEntry)
		delete(c.mem, old.ref)
		c.memSize -= int64(len(old.ch.data))
		c.release(old.ch)
	}
	return ch
}

// fetchedBeforeLocked reports whether ref was fetched from the store before
// (within the last maxGhosts fetches) and remembers that it now was. mu
// must be held.
func (c *chunkCache) fetchedBeforeLocked(ref chunkRef) bool {
	return c.ghosts.put(ref, struct{}{})
}

// put writes a chunk to the disk tier. The file is written aside and
// renamed, so that a reader never sees it half written.
func (c *chunkCache) put(ref chunkRef, data []byte) {
	file := c.fileFor(ref)
	c.mu.Lock()
	c.dropLocked(ref) // an older copy, before its file is replaced
	c.mu.Unlock()
	tmp, err := os.CreateTemp(c.dir, "writing-*")
	if err != nil {
		return // a cache that cannot write only costs refetches
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), file)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[ref]; ok {
		// Put concurrently (fetched again while its first put was still
		// writing): the same bytes, under the same file name.
		c.removeLocked(e)
	}
	c.entries[ref] = c.lru.PushFront(&cacheEntry{ref: ref, file: file, n: int64(len(data))})
	c.size += int64(len(data))
	for c.size > c.max && c.lru.Len() > 1 {
		e := c.lru.Back()
		c.removeLocked(e)
		os.Remove(e.Value.(*cacheEntry).file)
	}
}

func (c *chunkCache) dropLocked(ref chunkRef) {
	if e, ok := c.entries[ref]; ok {
		c.removeLocked(e)
		os.Remove(e.Value.(*cacheEntry).file)
	}
}

// removeLocked forgets a disk-tier entry; its file is the caller's.
func (c *chunkCache) removeLocked(e *list.Element) {
	ent := e.Value.(*cacheEntry)
	c.lru.Remove(e)
	if c.entries[ent.ref] == e {
		delete(c.entries, ent.ref)
	}
	c.size -= ent.n
}

// TimeIndexStart returns where to start looking for the first record of seg
// with a timestamp at or after ts: the offset of the last time index entry
// below ts (the index is sparse: records between entries are not in it),
// or the segment's base.
func (r *Reader) TimeIndexStart(ctx context.Context, seg SegmentMeta, ts int64) (int64, error) {
	raw, err := readAll(ctx, r.st, seg.TimeIndexKey, 64<<20)
	if err != nil {
		return 0, fmt.Errorf("time index of remote segment %d: %w", seg.BaseOffset, err)
	}
	entries, err := partlog.DecodeTimeIndex(raw, seg.BaseOffset, seg.NextOffset)
	if err != nil {
		r.corrupt.Inc()
		return 0, fmt.Errorf("%w: time index %s: %v", ErrCorrupt, seg.TimeIndexKey, err)
	}
	start := seg.BaseOffset
	for _, e := range entries {
		if e.Timestamp >= ts {
			break
		}
		start = e.Offset
	}
	return start, nil
}
