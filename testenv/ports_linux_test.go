package testenv

import (
	"net"
	"testing"
)

// A killed server must get its ports back at restart: while testenv holds
// them, the kernel gives them to no other bind(0), yet the server's own
// listener binds them at every start, even over its previous run's
// connections in TIME_WAIT.
func TestHeldPortsSurviveRestarts(t *testing.T) {
	const n = 64
	held, err := holdLoopbackAddrs(n)
	if err != nil {
		t.Fatal(err)
	}
	defer held.release()
	mine := make(map[string]bool, n)
	for _, a := range held.addrs {
		if mine[a] {
			t.Fatalf("%s held twice", a)
		}
		mine[a] = true
	}

	addr := held.addrs[0]
	for start := range 3 {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("start %d: listen on the held %s: %v", start, addr, err)
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		// The server closes first, as a killed one does: its side of the
		// connection lingers in TIME_WAIT on the held port.
		s.Close()
		c.Close()
		ln.Close()
	}

	// Without the hold, 64 of the ~14k ports bind(0) prefers would be
	// handed out here about a dozen times.
	for range 3000 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		got := ln.Addr().String()
		ln.Close()
		if mine[got] {
			t.Fatalf("bind(0) was given the held %s", got)
		}
	}
}
