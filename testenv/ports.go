package testenv

import (
	"fmt"
	"net"
	"strconv"
	"testing"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
//
// The port is released before FreePort returns, so another process may take it
// before the caller binds it; the kernel hands out bind(0) ports in a
// randomised order, which makes that rare, and StartDev retries with new ports
// when a process fails with "address already in use".
func FreePort(t testing.TB) int {
	t.Helper()
	_, port, err := net.SplitHostPort(FreeAddr(t))
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return p
}

// FreeAddr returns "127.0.0.1:<port>" for a port that was free a moment ago;
// see FreePort.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return freeAddrs(t, 1)[0]
}

// freeAddrs returns n distinct free loopback addresses, failing t if the
// kernel has none to give; see freeLoopbackAddrs.
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	addrs, err := freeLoopbackAddrs(n)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return addrs
}

// freeLoopbackAddrs returns n distinct free loopback addresses. It keeps
// every listener open until all n are chosen, so the kernel cannot give the
// same port twice.
func freeLoopbackAddrs(n int) ([]string, error) {
	addrs := make([]string, 0, n)
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		listeners = append(listeners, l)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

// heldAddrs are loopback addresses kept for one server across its restarts;
// see holdLoopbackAddrs.
type heldAddrs struct {
	addrs   []string
	closeFn func() // idempotent
}

// release gives the ports back. It may be called more than once, and on nil
// (a server whose ports were never picked).
func (h *heldAddrs) release() {
	if h != nil {
		h.closeFn()
	}
}
