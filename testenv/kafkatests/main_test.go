package kafkatests_test

import (
	"testing"

	"github.com/strata-broker/strata/testenv/testenvtest"
)

func TestMain(m *testing.M) {
	testenvtest.Main(m)
}
