//go:build !linux

package testenv

// holdLoopbackAddrs picks n distinct free loopback ports but does not hold
// them: whether a listener may bind beside a socket that holds its port (what
// the Linux version relies on) differs between kernels. A restart may thus
// lose a port to another process here, as a first start may (see the retries
// with new ports).
func holdLoopbackAddrs(n int) (*heldAddrs, error) {
	addrs, err := freeLoopbackAddrs(n)
	if err != nil {
		return nil, err
	}
	return &heldAddrs{addrs: addrs, closeFn: func() {}}, nil
}
