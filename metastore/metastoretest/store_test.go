package metastoretest_test

import (
	"testing"

	"github.com/strata-broker/strata/metastore/metastoretest"
)

func TestConformance(t *testing.T) {
	metastoretest.Run(t, func(*testing.T) metastoretest.Target { return metastoretest.New().Target() })
}
