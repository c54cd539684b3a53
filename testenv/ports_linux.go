package testenv

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"
)

// holdLoopbackAddrs picks n distinct free loopback ports and keeps them for
// the caller until release: each is held by a socket bound to it with
// SO_REUSEADDR that never listens.
//
// A server that testenv kills and starts again must bind the same ports: its
// addresses are in etcd, in env.json and in the clients' configuration. A
// port picked by bind(0) lies in the kernel's ephemeral range, so once the
// server is gone any other bind(0) on the machine (another test's listener
// or proxy, or the test binaries of other packages running at the same time)
// may be handed it, and the restart fails with "address already in use".
// While a bound socket holds the port, the kernel hands it to no bind(0) and
// no connect(); yet Linux lets a socket with SO_REUSEADDR bind and listen on
// a port whose other sockets all have it too and none listens. Go's
// net.Listen sets SO_REUSEADDR, so the server's own listener still gets the
// port, at every start. A bind without SO_REUSEADDR is refused, as before.
func holdLoopbackAddrs(n int) (_ *heldAddrs, err error) {
	fds := make([]int, 0, n)
	closeAll := func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
	}
	defer func() {
		if err != nil {
			closeAll()
			err = fmt.Errorf("hold a free port: %w", err)
		}
	}()
	addrs := make([]string, 0, n)
	for range n {
		// CLOEXEC: a child inheriting the socket would hold the port past
		// release.
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		fds = append(fds, fd)
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
			return nil, err
		}
		if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			return nil, err
		}
		sa, err := syscall.Getsockname(fd)
		if err != nil {
			return nil, err
		}
		sa4, ok := sa.(*syscall.SockaddrInet4)
		if !ok {
			return nil, fmt.Errorf("bound to %T, not an IPv4 address", sa)
		}
		addrs = append(addrs, net.JoinHostPort("127.0.0.1", strconv.Itoa(sa4.Port)))
	}
	return &heldAddrs{addrs: addrs, closeFn: sync.OnceFunc(closeAll)}, nil
}
