package kafkaapi

import (
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// A member's owned partitions are merged by topic, sorted and without
// repeats; a topic repeated many times (a hostile request) is sorted once,
// not at every repeat.
func TestOwnedPartitionsMergedInOneSort(t *testing.T) {
	id := [16]byte{1}
	topics := make([]kmsg.ConsumerGroupHeartbeatRequestTopic, 2000)
	for i := range topics {
		topics[i] = kmsg.ConsumerGroupHeartbeatRequestTopic{TopicID: id, Partitions: []int32{int32(2000 - i), 0}}
	}
	owned := ownedPartitions(topics)
	ps := owned[uuidString(id)]
	if len(owned) != 1 || len(ps) != 2001 || !slices.IsSorted(ps) || ps[0] != 0 || ps[2000] != 2000 {
		t.Fatalf("owned = %d topics, %d partitions (sorted %v)", len(owned), len(ps), slices.IsSorted(ps))
	}
	// Sorting at every repeat allocates a slice per repeat.
	if allocs := testing.AllocsPerRun(5, func() { ownedPartitions(topics) }); allocs > 100 {
		t.Fatalf("%v allocations for one topic repeated %d times, want a few (one sort)", allocs, len(topics))
	}
}
