package broker

import "testing"

func TestReadBuffers(t *testing.T) {
	p := NewReadBuffers()
	for _, tc := range []struct{ n, cap int }{
		{0, 4096}, {1, 4096}, {4096, 4096}, {4097, 8192}, {1 << 20, 1 << 20}, {1<<20 + 1, 2 << 20},
		{64 << 20, 64 << 20}, {64<<20 + 1, 64<<20 + 1},
	} {
		b := p.Get(tc.n)
		if len(*b) != tc.n || cap(*b) != tc.cap {
			t.Errorf("Get(%d): len %d cap %d, want cap %d", tc.n, len(*b), cap(*b), tc.cap)
		}
		p.Put(b)
	}
	// Buffers that are not of a class size are dropped, not kept to be
	// handed out too small.
	odd := make([]byte, 5000)
	p.Put(&odd)
	for range 100 {
		if b := p.Get(8192); cap(*b) < 8192 {
			t.Fatalf("Get(8192) returned capacity %d", cap(*b))
		}
	}
}
