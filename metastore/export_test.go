package metastore

import "testing"

// NewTestStore gives the external tests of this package (the conformance
// suite, which cannot be an internal test: metastoretest imports this
// package) a Store on the etcd TestMain shares, under a prefix of the
// test's own.
func NewTestStore(t *testing.T) *Store { return newTestStore(t) }
