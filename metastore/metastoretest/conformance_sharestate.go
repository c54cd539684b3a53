package metastoretest

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/strata-broker/strata/metastore"
)

// testShareStates checks share-partition state: created only where none
// is, then written by compare-and-swap on its revision (a stale writer gets
// ErrConflict and the stored state), listed per group in topic and
// partition order, deleted per topic or group, and refused when malformed.
func testShareStates(t *testing.T, target Target) {
	s, ctx := target.Store, testCtx(t)
	if _, err := s.GetShareState(ctx, "g", "t", 0); !errors.Is(err, metastore.ErrShareStateNotFound) {
		t.Fatalf("get of a missing state: got %v, want ErrShareStateNotFound", err)
	}
	st := metastore.ShareState{
		Group: "g", Topic: "t", Partition: 2, TopicID: "id1", StateEpoch: 1, LeaderEpoch: 3, StartOffset: 10,
		Batches: []metastore.ShareStateBatch{{FirstOffset: 10, LastOffset: 12, State: 0, DeliveryCount: 2}, {FirstOffset: 14, LastOffset: 14, State: 2, DeliveryCount: 1}},
	}
	first, err := s.PutShareState(ctx, st, 0)
	if err != nil || first.Revision <= 0 {
		t.Fatalf("first put: %+v, %v", first, err)
	}
	got, err := s.GetShareState(ctx, "g", "t", 2)
	if err != nil || got.Revision != first.Revision || got.StartOffset != 10 || got.LeaderEpoch != 3 || got.StateEpoch != 1 ||
		got.TopicID != "id1" || !slices.Equal(got.Batches, st.Batches) {
		t.Fatalf("read back %+v, %v; want %+v", got, err, first)
	}
	if _, err := s.PutShareState(ctx, st, 0); !errors.Is(err, metastore.ErrConflict) {
		t.Fatalf("second create: got %v, want ErrConflict", err)
	}
	// The new leader writes over what it read; the old one, still holding
	// the first revision, is refused and told what is stored.
	next := st
	next.LeaderEpoch, next.StartOffset, next.Batches = 4, 15, nil
	second, err := s.PutShareState(ctx, next, first.Revision)
	if err != nil || second.Revision <= first.Revision {
		t.Fatalf("put over revision %d: %+v, %v", first.Revision, second, err)
	}
	cur, err := s.PutShareState(ctx, st, first.Revision)
	if !errors.Is(err, metastore.ErrConflict) || cur.Revision != second.Revision || cur.LeaderEpoch != 4 || cur.StartOffset != 15 {
		t.Fatalf("stale put: got %+v, %v; want ErrConflict with the stored state", cur, err)
	}
	for _, bad := range []metastore.ShareState{
		{Group: "", Topic: "t"},
		{Group: "g", Topic: "t", StartOffset: -1},
		{Group: "g", Topic: "t", StartOffset: 5, Batches: []metastore.ShareStateBatch{{FirstOffset: 4, LastOffset: 6}}},
		{Group: "g", Topic: "t", StartOffset: 5, Batches: []metastore.ShareStateBatch{{FirstOffset: 5, LastOffset: 6}, {FirstOffset: 6, LastOffset: 7}}},
		{Group: "g", Topic: "t", StartOffset: 5, Batches: []metastore.ShareStateBatch{{FirstOffset: 5, LastOffset: 6, State: 1}}},
		{Group: "g", Topic: "t", StartOffset: 0, Batches: make([]metastore.ShareStateBatch, metastore.MaxShareStateBatches+1)},
	} {
		if _, err := s.PutShareState(ctx, bad, 0); err == nil || errors.Is(err, metastore.ErrConflict) {
			t.Errorf("malformed state %+v: got %v, want a refusal", bad.StartOffset, err)
		}
	}
	for _, k := range []struct {
		group, topic string
		p            int32
	}{{"g", "t", 10}, {"g", "a.b", 0}, {"g2", "t", 0}, {"g/x", "t", 1}} {
		if _, err := s.PutShareState(ctx, metastore.ShareState{Group: k.group, Topic: k.topic, Partition: k.p}, 0); err != nil {
			t.Fatalf("put %v: %v", k, err)
		}
	}
	list, err := s.ListShareStates(ctx, "g")
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	var names []string
	for _, st := range list {
		names = append(names, fmt.Sprintf("%s-%d", st.Topic, st.Partition))
	}
	if want := []string{"a.b-0", "t-2", "t-10"}; !slices.Equal(names, want) {
		t.Fatalf("list of g: %v, want %v", names, want)
	}
	if n, err := s.DeleteShareStates(ctx, "g", "t"); err != nil || n != 2 {
		t.Fatalf("delete topic t of g: %d, %v; want 2", n, err)
	}
	if list, _ := s.ListShareStates(ctx, "g"); len(list) != 1 || list[0].Topic != "a.b" {
		t.Fatalf("after deleting t: %+v", list)
	}
	if n, err := s.DeleteShareStates(ctx, "g", ""); err != nil || n != 1 {
		t.Fatalf("delete group g: %d, %v; want 1", n, err)
	}
	for _, g := range []string{"g2", "g/x"} {
		if list, _ := s.ListShareStates(ctx, g); len(list) != 1 {
			t.Fatalf("group %q lost its state with g's: %+v", g, list)
		}
	}
}
