package rlm

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Every step's error series exists, at zero, before anything failed: an
// alert or a panel on their rate shows zero rather than no data.
func TestTieringErrorSeriesExistFromTheStart(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	newMetrics(reg)
	if got, want := testutil.CollectAndCount(reg, "strata_tiering_errors_total"), len(allSteps()); got != want {
		t.Fatalf("strata_tiering_errors_total series: %d, want %d (one per step)", got, want)
	}
}
