package metastore_test

import (
	"testing"

	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/metastore/metastoretest"
)

// The suite that the in-memory store also passes (see metastoretest), run
// against etcd: what the fake promises, etcd does.
func TestConformance(t *testing.T) {
	metastoretest.Run(t, func(t *testing.T) metastoretest.Target {
		return metastoretest.EtcdTarget(metastore.NewTestStore(t))
	})
}
