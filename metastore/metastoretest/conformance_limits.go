package metastoretest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/strata-broker/strata/metastore"
)

// testPartitionLimit: a topic or partitions that would take the cluster
// past Topic.PartitionLimit are refused with nothing written, also
// when many creators race for the last partitions.
func testPartitionLimit(t *testing.T, target Target) {
	s, ctx := target.Store, testCtx(t)
	const limit = 10
	a := mustCreate(t, s, metastore.Topic{Name: "a", PartitionLimit: limit}, [][]int32{{1}, {1}, {1}, {1}})
	if a.PartitionLimit != 0 {
		t.Errorf("the created topic carries the limit: %+v", a)
	}
	_, err := s.CreateTopic(ctx, metastore.Topic{Name: "b", PartitionLimit: limit}, sevenPartitions())
	var le *metastore.PartitionLimitError
	if !errors.As(err, &le) || !errors.Is(err, metastore.ErrPartitionLimit) || *le != (metastore.PartitionLimitError{Limit: limit, Current: 4, Adding: 7}) {
		t.Fatalf("a topic of 7 partitions with 4 of %d used: %v", limit, err)
	}
	if _, err := s.GetTopic(ctx, "b"); !errors.Is(err, metastore.ErrTopicNotFound) {
		t.Fatalf("the refused topic was written: %v", err)
	}
	if states, _ := s.PartitionStates(ctx, "b"); len(states) != 0 {
		t.Fatalf("the refused topic's partition states were written: %+v", states)
	}
	// Without a limit nothing is counted.
	mustCreate(t, s, metastore.Topic{Name: "c"}, sevenPartitions())
	if err := s.DeleteTopic(ctx, "c"); err != nil {
		t.Fatal(err)
	}

	a.PartitionLimit = limit
	if _, err := s.AddPartitions(ctx, a, sevenPartitions()); !errors.Is(err, metastore.ErrPartitionLimit) {
		t.Fatalf("growing past the limit: %v", err)
	}
	if read, _ := s.GetTopic(ctx, "a"); read.Partitions != 4 {
		t.Fatalf("a refused growth was written: %d partitions", read.Partitions)
	}
	grown, err := s.AddPartitions(ctx, a, [][]int32{{1}, {1}})
	if err != nil || grown.Partitions != 6 || grown.PartitionLimit != 0 {
		t.Fatalf("growing within the limit: %+v, %v", grown, err)
	}

	// Eight creators race for the 4 partitions left, 2 each: two win.
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = s.CreateTopic(ctx, metastore.Topic{Name: fmt.Sprintf("r%d", i), PartitionLimit: limit}, [][]int32{{1}, {1}})
		})
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, metastore.ErrPartitionLimit) && !errors.Is(err, metastore.ErrConflict):
			t.Errorf("creator %d: %v", i, err)
		}
	}
	topics, _, err := s.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, tp := range topics {
		total += int(tp.Partitions)
	}
	if total > limit || won > 2 || won == 0 {
		t.Fatalf("%d creators won; the cluster has %d partitions, limit %d", won, total, limit)
	}
}

// sevenPartitions is the assignments of seven partitions on broker 1.
func sevenPartitions() [][]int32 {
	out := make([][]int32, 7)
	for i := range out {
		out[i] = []int32{1}
	}
	return out
}
