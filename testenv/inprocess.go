package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/strata-broker/strata/broker/server"
)

// StartInProcess runs a whole broker inside the test process, as `strata dev`
// does (embedded etcd, broker core, gRPC), on loopback ports and a temporary
// directory, with the given broker settings. It returns the gRPC address and
// stops the broker when the test ends. Use StartDev for a separate process
// that can be killed.
func StartInProcess(t testing.TB, settings map[string]string) string {
	t.Helper()
	return StartInProcessAddrs(t, settings).GRPC.String()
}

// StartInProcessAddrs is StartInProcess with a Kafka listener too; it
// returns every address the broker listens on.
func StartInProcessAddrs(t testing.TB, settings map[string]string) server.Addrs {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan server.Addrs, 1)
	done := make(chan error, 1)
	cfg := server.Config{
		NodeID:         1,
		DataDir:        t.TempDir(),
		GRPCAddr:       "127.0.0.1:0",
		HTTPAddr:       "127.0.0.1:0",
		KafkaAddr:      "127.0.0.1:0",
		EmbedEtcd:      true,
		EtcdClientAddr: "127.0.0.1:0",
		// One broker with its own etcd has nobody to fail over to; a short
		// lease only lets a test process starved of CPU (-race, packages
		// in parallel on two cores) lose the registration mid-test, which
		// once left the broker with no live brokers to place a topic on.
		SessionTimeout: 10 * time.Second,
		Settings:       settings,
	}
	go func() { done <- server.Run(ctx, cfg, func(a server.Addrs) { ready <- a }) }()
	select {
	case addr := <-ready:
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("broker: %v", err)
			}
		})
		return addr
	case err := <-done:
		cancel()
		t.Fatalf("broker exited before it was ready: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		<-done
		t.Fatal("broker not ready after 60s")
	}
	return server.Addrs{}
}
