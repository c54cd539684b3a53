package server

import (
	"errors"
	"net"
	"strings"
	"testing"
)

func TestAdvertisedAddr(t *testing.T) {
	named := func() (string, error) { return "broker-1.example", nil }
	nameless := func() (string, error) { return "", errors.New("no name") }
	empty := func() (string, error) { return "", nil }
	loopback := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9093}
	any4 := &net.TCPAddr{IP: net.IPv4zero, Port: 9093}
	any6 := &net.TCPAddr{IP: net.IPv6unspecified, Port: 9093}
	for _, tc := range []struct {
		name       string
		configured string
		bound      net.Addr
		hostname   func() (string, error)
		want       string
		wantErr    string // a substring; empty wants no error
	}{
		{name: "configured wins", configured: "strata-1:9093", bound: any4, hostname: nameless, want: "strata-1:9093"},
		{name: "bound loopback published as bound", bound: loopback, hostname: nameless, want: "127.0.0.1:9093"},
		{name: "0.0.0.0 publishes the host name", bound: any4, hostname: named, want: "broker-1.example:9093"},
		{name: "[::] publishes the host name", bound: any6, hostname: named, want: "broker-1.example:9093"},
		{name: "no host name refuses", bound: any4, hostname: nameless, wantErr: "set --advertised-grpc-addr"},
		{name: "empty host name refuses", bound: any6, hostname: empty, wantErr: "set --advertised-grpc-addr"},
		{name: "configured 0.0.0.0 refused", configured: "0.0.0.0:9093", bound: loopback, hostname: named, wantErr: `--advertised-grpc-addr "0.0.0.0:9093": 0.0.0.0 is an unspecified address`},
		{name: "configured [::] refused", configured: "[::]:9093", bound: loopback, hostname: named, wantErr: "unspecified address"},
		{name: "configured without host refused", configured: ":9093", bound: loopback, hostname: named, wantErr: "no host"},
		{name: "configured without port refused", configured: "strata-1", bound: loopback, hostname: named, wantErr: "not host:port"},
		{name: "configured port 0 refused", configured: "strata-1:0", bound: loopback, hostname: named, wantErr: "not 1-65535"},
		{name: "configured port not a number refused", configured: "strata-1:grpc", bound: loopback, hostname: named, wantErr: "not 1-65535"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := advertisedAddr(tc.configured, tc.bound, "--advertised-grpc-addr", tc.hostname)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("advertisedAddr = %q, %v; want an error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("advertisedAddr = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
