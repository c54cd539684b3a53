package metastore

import (
	"context"
	"testing"
	"time"
)

// nextEvent returns the next event or fails after a timeout.
func nextEvent(t *testing.T, ch <-chan TopicEvent) TopicEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed early")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no topic event within 10s")
	}
	return TopicEvent{}
}

func expectEvent(t *testing.T, ch <-chan TopicEvent, typ TopicEventType, name string, resync bool) TopicEvent {
	t.Helper()
	ev := nextEvent(t, ch)
	if ev.Type != typ || ev.Topic.Name != name || ev.Resync != resync {
		t.Fatalf("event = %v %q resync=%v, want %v %q resync=%v", ev.Type, ev.Topic.Name, ev.Resync, typ, name, resync)
	}
	return ev
}

func expectClosed(t *testing.T, ch <-chan TopicEvent) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("watch channel not closed 10s after cancel")
		}
	}
}

func TestWatchTopics(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	existing := createTestTopic(t, s, "existing", 1, nil)

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := s.WatchTopics(wctx)
	ev := expectEvent(t, ch, TopicPut, "existing", true)
	if ev.Topic.ID != existing.ID || ev.Topic.Revision != existing.Revision {
		t.Errorf("listed %+v, want %+v", ev.Topic, existing)
	}

	created := createTestTopic(t, s, "new", 2, nil)
	altered, err := s.AlterTopicConfigs(ctx, "new", map[string]string{"retention.ms": "5"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTopic(ctx, "existing"); err != nil {
		t.Fatal(err)
	}

	ev = expectEvent(t, ch, TopicPut, "new", false)
	if ev.Topic.ID != created.ID || ev.Topic.Partitions != 2 || ev.Topic.Revision != created.Revision {
		t.Errorf("create event %+v, want %+v", ev.Topic, created)
	}
	ev = expectEvent(t, ch, TopicPut, "new", false)
	if ev.Topic.Configs["retention.ms"] != "5" || ev.Topic.Revision != altered.Revision {
		t.Errorf("alter event %+v, want %+v", ev.Topic, altered)
	}
	expectEvent(t, ch, TopicDeleted, "existing", false)

	cancel()
	expectClosed(t, ch)
}

// After etcd compacted the revisions the watch needs, it re-lists: puts for
// what exists, deletes for what the consumer holds that no longer does.
func TestWatchTopicsResyncsAfterCompaction(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	createTestTopic(t, s, "kept", 1, nil)
	createTestTopic(t, s, "dropped", 1, nil)
	_, rev, err := s.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Changes the consumer misses while compaction removes their history.
	createTestTopic(t, s, "added", 1, nil)
	if err := s.DeleteTopic(ctx, "dropped"); err != nil {
		t.Fatal(err)
	}
	resp, err := s.client.Get(ctx, "/compaction-point")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := s.watchTopics(wctx, []string{"dropped", "kept"}, rev+1)
	expectEvent(t, ch, TopicPut, "added", true)
	expectEvent(t, ch, TopicPut, "kept", true)
	expectEvent(t, ch, TopicDeleted, "dropped", true)

	// And it carries on watching from the listing.
	createTestTopic(t, s, "later", 1, nil)
	expectEvent(t, ch, TopicPut, "later", false)

	cancel()
	expectClosed(t, ch)
}

// The watch ends with the client even if its context does not.
func TestWatchTopicsStopsWhenStoreCloses(t *testing.T) {
	ctx := testContext(t)
	s, err := Dial(ctx, testEndpoints, "/test/"+t.Name(), testLogger())
	if err != nil {
		t.Fatal(err)
	}
	ch := s.WatchTopics(ctx)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, ch)
}

// A consumer that listed the topics itself and starts watching later sees
// what changed in between, including a delete.
func TestWatchTopicsSinceSeesChangesAfterTheListing(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	createTestTopic(t, s, "kept", 1, nil)
	createTestTopic(t, s, "doomed", 1, nil)
	listed, rev, err := s.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTopic(ctx, "doomed"); err != nil {
		t.Fatal(err)
	}
	createTestTopic(t, s, "later", 1, nil)

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := s.WatchTopicsSince(wctx, listed, rev)
	expectEvent(t, ch, TopicDeleted, "doomed", false)
	expectEvent(t, ch, TopicPut, "later", false)
	cancel()
	expectClosed(t, ch)
}
