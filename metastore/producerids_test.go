package metastore

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestAllocateProducerIDsSequential(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	first, err := s.AllocateProducerIDs(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if first != FirstProducerID {
		t.Fatalf("first block starts at %d, want %d", first, FirstProducerID)
	}
	second, err := s.AllocateProducerIDs(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	if second != first+10 {
		t.Fatalf("second block starts at %d, want %d", second, first+10)
	}
	for _, n := range []int64{0, -1, MaxProducerIDBlock + 1} {
		if _, err := s.AllocateProducerIDs(ctx, n); err == nil {
			t.Errorf("block of %d allowed", n)
		}
	}
}

// A broker that restarts (a new Store on the same prefix) must never be
// handed ids given out before.
func TestAllocateProducerIDsSurviveNewStore(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	first, err := s.AllocateProducerIDs(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Dial(ctx, testEndpoints, s.prefix, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	next, err := again.AllocateProducerIDs(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	if next < first+100 {
		t.Fatalf("after reconnecting got block at %d, overlapping [%d, %d)", next, first, first+100)
	}
}

// Two brokers allocating at the same time get disjoint blocks, and together
// they use the id space without holes.
func TestAllocateProducerIDsConcurrentStoresDisjoint(t *testing.T) {
	s1 := newTestStore(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	s2, err := Dial(ctx, testEndpoints, s1.prefix, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()

	const (
		workers = 8 // per store
		blocks  = 10
		size    = 7
	)
	var (
		mu     sync.Mutex
		starts []int64
		wg     sync.WaitGroup
	)
	for _, s := range []*Store{s1, s2} {
		for range workers {
			wg.Go(func() {
				for range blocks {
					first, err := s.AllocateProducerIDs(ctx, size)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					starts = append(starts, first)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	slices.Sort(starts)
	if len(starts) != 2*workers*blocks {
		t.Fatalf("%d blocks, want %d", len(starts), 2*workers*blocks)
	}
	for i, first := range starts {
		if want := FirstProducerID + int64(i)*size; first != want {
			t.Fatalf("block %d starts at %d, want %d (blocks overlap or leave a hole): %v", i, first, want, starts)
		}
	}
}
