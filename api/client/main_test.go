package client_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Producers, consumers and streams each own goroutines; every test must leave
// none behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
