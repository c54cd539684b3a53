package server

import (
	"fmt"
	"net"
	"strconv"
)

// advertisedAddr is the address a listener publishes to clients and other
// brokers. A configured address is checked and used as given. Without one
// the bound address is published, except that an unspecified IP (0.0.0.0,
// [::]) becomes the host's name, as Kafka does: a peer dialling 0.0.0.0
// would reach itself. When the host has no name to offer, the broker
// refuses to start, naming the setting that fixes it, rather than publish
// an address that works only on this machine.
func advertisedAddr(configured string, bound net.Addr, setting string, hostname func() (string, error)) (string, error) {
	if configured != "" {
		if err := checkAdvertised(configured); err != nil {
			return "", fmt.Errorf("%s %q: %w", setting, configured, err)
		}
		return configured, nil
	}
	tcp, ok := bound.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return bound.String(), nil
	}
	host, err := hostname()
	if err != nil {
		return "", fmt.Errorf("listener bound to %s publishes the host's name, which is unavailable (%w): set %s", bound, err, setting)
	}
	if host == "" {
		return "", fmt.Errorf("listener bound to %s publishes the host's name, which is empty: set %s", bound, setting)
	}
	return net.JoinHostPort(host, strconv.Itoa(tcp.Port)), nil
}

// checkAdvertised refuses an address no other machine could dial.
func checkAdvertised(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("not host:port: %w", err)
	}
	if host == "" {
		return fmt.Errorf("no host")
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("%s is an unspecified address, which a client would dial as itself: advertise this host's name or IP", host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not 1-65535", port)
	}
	return nil
}
