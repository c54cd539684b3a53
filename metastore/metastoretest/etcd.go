package metastoretest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-broker/strata/metastore"
)

// etcdStartTimeout bounds starting etcd and dialling it in a test.
const etcdStartTimeout = 30 * time.Second

// StartEtcd starts an embedded etcd for the test, its data in a temporary
// directory, and returns its client endpoints. It stops when the test ends,
// after the cleanups registered later (close clients first: etcd waits for
// their watches).
func StartEtcd(t testing.TB) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), etcdStartTimeout)
	defer cancel()
	e, err := metastore.StartEmbedded(ctx, filepath.Join(t.TempDir(), "etcd"), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatalf("start embedded etcd: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("stop embedded etcd: %v", err)
		}
	})
	return e.Endpoints()
}

// NewEtcdStore starts an embedded etcd for the test (StartEtcd) and returns
// a Store on it under the default prefix; both close when the test ends.
func NewEtcdStore(t testing.TB) *metastore.Store {
	t.Helper()
	endpoints := StartEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), etcdStartTimeout)
	defer cancel()
	s, err := metastore.Dial(ctx, endpoints, "", nil)
	if err != nil {
		t.Fatalf("dial embedded etcd: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close metastore: %v", err)
		}
	})
	return s
}
