package broker

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-broker/strata/tiering"
)

// remoteManifest is the partition's last known manifest and its epoch.
func (p *Partition) remoteManifest() (*tiering.PartitionManifest, int32) { return p.remote.Manifest() }

// setRemoteManifest replaces the partition's known manifest; nil forgets
// it, as after a restart.
func (p *Partition) setRemoteManifest(m *tiering.PartitionManifest, epoch int32) {
	p.remote.SetManifest(m, epoch)
}

// metricValue is the value of the unlabelled gauge or counter name in g.
func metricValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name || len(f.GetMetric()) != 1 {
			continue
		}
		m := f.GetMetric()[0]
		if m.GetGauge() != nil {
			return m.GetGauge().GetValue()
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}
