package broker

import (
	"github.com/strata-broker/strata/tiering"
)

// remoteManifest is the partition's last known manifest and its epoch.
func (p *Partition) remoteManifest() (*tiering.PartitionManifest, int32) { return p.remote.Manifest() }

// setRemoteManifest replaces the partition's known manifest; nil forgets
// it, as after a restart.
func (p *Partition) setRemoteManifest(m *tiering.PartitionManifest, epoch int32) {
	p.remote.SetManifest(m, epoch)
}
