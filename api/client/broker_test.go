package client_test

import (
	"testing"

	"github.com/strata-broker/strata/testenv"
)

// startBroker runs a broker in-process and returns its gRPC address.
func startBroker(t *testing.T) string { return testenv.StartInProcess(t, nil) }

// The client's whole suite against the real broker.
func TestAgainstBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker with embedded etcd")
	}
	runSuite(t, startBroker(t))
}
