package broker

import (
	"math/bits"
	"sync"
)

// Size classes of readBuffers: powers of two from 4 KiB to 64 MiB. A fetch
// reads min(available, max_bytes) bytes, up to the 50 MiB default bound;
// larger reads get a buffer of their own.
const (
	minBufferShift = 12
	maxBufferShift = 26
)

// ReadBuffers is the pool of the buffers that fetches read partitions into
// (FetchOptions.Buffers), shared by the gRPC and Kafka frontends, which
// give each back once the response is written. It also serves gRPC's
// mem.BufferPool.
//
// Buffers are not zeroed, unlike those of gRPC's pools: the log overwrites
// every byte it returns, and clearing (or faulting in) megabytes for every
// fetch costs as much as reading them. One sync.Pool per size class, so a
// buffer serves any read up to its size; buffers of a size that is not a
// class (not from Get) are dropped by Put.
type ReadBuffers struct {
	classes [maxBufferShift - minBufferShift + 1]sync.Pool
}

var _ BufferPool = (*ReadBuffers)(nil)

// NewReadBuffers returns an empty pool.
func NewReadBuffers() *ReadBuffers { return &ReadBuffers{} }

// Get returns a buffer of length n whose capacity is n rounded up to a size
// class; its contents are whatever the last user left.
func (p *ReadBuffers) Get(n int) *[]byte {
	class, ok := classOf(n)
	if !ok {
		b := make([]byte, n)
		return &b
	}
	if b, _ := p.classes[class].Get().(*[]byte); b != nil {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<(class+minBufferShift))
	return &b
}

// Put keeps b for reuse if its capacity is a size class. The caller must not
// use *b, or any slice of it, afterwards.
func (p *ReadBuffers) Put(b *[]byte) {
	c := cap(*b)
	class, ok := classOf(c)
	if !ok || 1<<(class+minBufferShift) != c {
		return
	}
	*b = (*b)[:0]
	p.classes[class].Put(b)
}

// classOf returns the index of the smallest size class that holds n bytes.
func classOf(n int) (int, bool) {
	shift := max(bits.Len(uint(max(n, 1)-1)), minBufferShift)
	if shift > maxBufferShift {
		return 0, false
	}
	return shift - minBufferShift, true
}
