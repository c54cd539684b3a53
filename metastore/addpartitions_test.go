package metastore

import (
	"context"
	"errors"
	"testing"
)

func TestAddPartitions(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	created, err := s.CreateTopic(ctx, Topic{Name: "grow", Configs: map[string]string{"retention.ms": "1000"}}, [][]int32{{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := s.WatchTopicsSince(wctx, []Topic{created}, created.Revision)

	grown, err := s.AddPartitions(ctx, created, [][]int32{{2, 3}, {3, 1}})
	if err != nil {
		t.Fatal(err)
	}
	if grown.Partitions != 3 || grown.Revision <= created.Revision || grown.ID != created.ID || grown.Configs["retention.ms"] != "1000" {
		t.Fatalf("grown = %+v", grown)
	}
	got, err := s.GetTopic(ctx, "grow")
	if err != nil {
		t.Fatal(err)
	}
	if got.Partitions != 3 || got.Revision != grown.Revision || got.ReplicationFactor != 2 || !got.CreatedAt.Equal(created.CreatedAt) {
		t.Fatalf("GetTopic = %+v, want %+v", got, grown)
	}
	states, err := s.PartitionStates(ctx, "grow")
	if err != nil {
		t.Fatal(err)
	}
	want := []PartitionState{
		{Topic: "grow", Partition: 0, Leader: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}, Revision: created.Revision},
		{Topic: "grow", Partition: 1, Leader: 2, Replicas: []int32{2, 3}, ISR: []int32{2, 3}, Revision: grown.Revision},
		{Topic: "grow", Partition: 2, Leader: 3, Replicas: []int32{3, 1}, ISR: []int32{3, 1}, Revision: grown.Revision},
	}
	if !equalStates(states, want) {
		t.Fatalf("PartitionStates = %+v, want %+v", states, want)
	}
	for _, st := range states {
		if st.TopicID != created.ID {
			t.Fatalf("partition %d has topic id %q, want %q", st.Partition, st.TopicID, created.ID)
		}
	}
	// Brokers learn of it from the topic watch, as of any change.
	ev := expectEvent(t, ch, TopicPut, "grow", false)
	if ev.Topic.Partitions != 3 || ev.Topic.Revision != grown.Revision {
		t.Fatalf("watch event %+v", ev.Topic)
	}

	// The read it was computed from is stale: nothing is written.
	if _, err := s.AddPartitions(ctx, created, [][]int32{{1, 2}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale revision: %v, want ErrConflict", err)
	}
	if got, _ := s.GetTopic(ctx, "grow"); got.Partitions != 3 {
		t.Fatalf("after a conflict the topic has %d partitions", got.Partitions)
	}
	for name, assignments := range map[string][][]int32{
		"none":         nil,
		"wrong factor": {{1}},
		"duplicate":    {{1, 1}},
	} {
		if _, err := s.AddPartitions(ctx, grown, assignments); err == nil || errors.Is(err, ErrConflict) {
			t.Errorf("%s: %v, want a validation error", name, err)
		}
	}
	if err := s.DeleteTopic(ctx, "grow"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddPartitions(ctx, grown, [][]int32{{1, 2}}); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("deleted topic: %v, want ErrTopicNotFound", err)
	}
	if states, err := s.PartitionStates(ctx, "grow"); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("deleted topic has states %v (%v)", states, err)
	}
}
