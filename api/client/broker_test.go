package client_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/strata-broker/strata/broker/server"
)

// startBroker runs a whole broker process in-process, as `strata dev` does
// (embedded etcd, broker core, gRPC), on loopback ports and a temporary
// directory, and returns its gRPC address. It stops when the test ends.
func startBroker(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	cfg := server.Config{
		NodeID:         1,
		DataDir:        t.TempDir(),
		GRPCAddr:       "127.0.0.1:0",
		HTTPAddr:       "127.0.0.1:0",
		EmbedEtcd:      true,
		EtcdClientAddr: "127.0.0.1:0",
	}
	go func() { done <- server.Run(ctx, cfg, func(g, _ net.Addr) { ready <- g }) }()
	select {
	case addr := <-ready:
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("broker: %v", err)
			}
		})
		return addr.String()
	case err := <-done:
		cancel()
		t.Fatalf("broker exited before it was ready: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		<-done
		t.Fatal("broker not ready after 60s")
	}
	return ""
}

// The client's whole suite against the real broker.
func TestAgainstBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker with embedded etcd")
	}
	runSuite(t, startBroker(t))
}
