package metastore

import (
	"context"
	"sync"
	"testing"
)

func TestClusterIDIsCreatedOnceAndShared(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			id, err := s.ClusterID(ctx)
			if err != nil {
				t.Error(err)
			}
			ids[i] = id
		})
	}
	wg.Wait()
	if len(ids[0]) != 22 {
		t.Fatalf("cluster id %q: want 22 base64url characters", ids[0])
	}
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("cluster ids differ: %v", ids)
		}
	}
	again, err := s.ClusterID(ctx)
	if err != nil || again != ids[0] {
		t.Fatalf("cluster id later = %q, %v; want %q", again, err, ids[0])
	}
}
