// Package testenvtest holds what the integration tests of testenv and of
// testenv/kafkatests share: the TestMain both run, and helpers that start
// Kafka and gRPC clients against a testenv cluster or dev broker, run the
// strata CLI, and read what a cluster wrote to etcd and the bucket. The
// integration tests are two packages so that go test runs them side by side.
package testenvtest

import (
	"testing"

	"go.uber.org/goleak"
)

// Main runs a package's tests and fails them if a goroutine outlives them.
func Main(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// SkipShort skips a test that starts etcd and brokers under -short.
func SkipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts etcd and brokers; skipped with -short")
	}
}
