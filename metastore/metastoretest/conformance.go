package metastoretest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-broker/strata/metastore"
)

// eventTimeout bounds waiting for a watch or follow to deliver.
const eventTimeout = 10 * time.Second

// Run is the conformance suite: it checks that the metastore open returns
// has the semantics the broker, the group coordinator and the controller
// rely on. open is called once per subtest and must return an empty
// metastore that lives until the subtest ends.
func Run(t *testing.T, open func(t *testing.T) Target) {
	for _, c := range []struct {
		name string
		fn   func(t *testing.T, target Target)
	}{
		{"CreateAndRead", testCreateAndRead},
		{"CreateRefused", testCreateRefused},
		{"MissingTopic", testMissingTopic},
		{"InitialLeaderEpochs", testInitialLeaderEpochs},
		{"AlterTopicConfigs", testAlterTopicConfigs},
		{"AddPartitions", testAddPartitions},
		{"PartitionLimit", testPartitionLimit},
		{"WatchTopicsSince", testWatchTopicsSince},
		{"WatchTopics", testWatchTopics},
		{"DeletedTopicRecords", testDeletedTopicRecords},
		{"PartitionStateCAS", testPartitionStateCAS},
		{"FollowPartitions", testFollowPartitions},
		{"Brokers", testBrokers},
		{"Controller", testController},
		{"ProducerIDs", testProducerIDs},
		{"ClusterID", testClusterID},
		{"Offsets", testOffsets},
		{"GroupMeta", testGroupMeta},
		{"ConsumerGroupMeta", testConsumerGroupMeta},
		{"ExpireGroupOffsets", testExpireGroupOffsets},
		{"ScanGroupOffsets", testScanGroupOffsets},
		{"Transactions", testTransactions},
		{"ShareGroups", testShareGroups},
		{"GroupConfigs", testGroupConfigs},
		{"TxnOffsets", testTxnOffsets},
		{"ShareStates", testShareStates},
		{"ACLs", testACLs},
		{"ScramCredentials", testScramCredentials},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open(t)) })
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustCreate(t *testing.T, s Metastore, topic metastore.Topic, assignments [][]int32) metastore.Topic {
	t.Helper()
	got, err := s.CreateTopic(testCtx(t), topic, assignments)
	if err != nil {
		t.Fatalf("create topic %q: %v", topic.Name, err)
	}
	return got
}

func sameTopic(a, b metastore.Topic) bool {
	return a.Name == b.Name && a.ID == b.ID && a.Partitions == b.Partitions &&
		a.ReplicationFactor == b.ReplicationFactor && maps.Equal(a.Configs, b.Configs) &&
		a.CreatedAt.Equal(b.CreatedAt) && a.Revision == b.Revision
}

func testCreateAndRead(t *testing.T, target Target) {
	s, ctx := target.Store, testCtx(t)
	created := mustCreate(t, s, metastore.Topic{Name: "orders", Configs: map[string]string{"retention.ms": "1000"}}, [][]int32{{1, 2}, {2, 1}, {1, 2}})
	if created.ID == "" || created.Revision <= 0 || created.CreatedAt.IsZero() {
		t.Fatalf("created topic lacks id, revision or creation time: %+v", created)
	}
	if created.Partitions != 3 || created.ReplicationFactor != 2 {
		t.Fatalf("partitions and replication factor not taken from the assignments: %+v", created)
	}
	other := mustCreate(t, s, metastore.Topic{Name: "audit"}, [][]int32{{3}})
	if other.ID == created.ID {
		t.Fatal("two topics got the same id")
	}
	if other.Revision <= created.Revision {
		t.Fatalf("revision did not grow: %d then %d", created.Revision, other.Revision)
	}
	got, err := s.GetTopic(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if !sameTopic(got, created) {
		t.Fatalf("GetTopic = %+v, created %+v", got, created)
	}
	if got, err := s.GetTopic(ctx, "audit"); err != nil || got.Configs == nil {
		t.Fatalf("a topic without overrides must read back with empty, not nil, configs: %+v, %v", got, err)
	}
	list, rev, err := s.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "audit" || list[1].Name != "orders" {
		t.Fatalf("ListTopics = %+v, want audit and orders sorted by name", list)
	}
	if !sameTopic(list[1], created) {
		t.Fatalf("listed %+v, created %+v", list[1], created)
	}
	if rev < other.Revision {
		t.Fatalf("listing revision %d is before the last write %d", rev, other.Revision)
	}
	states, err := s.PartitionStates(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 3 {
		t.Fatalf("%d partition states, want 3", len(states))
	}
	for p, st := range states {
		want := [][]int32{{1, 2}, {2, 1}, {1, 2}}[p]
		if st.Topic != "orders" || st.TopicID != created.ID || st.Partition != int32(p) || st.Leader != want[0] ||
			st.LeaderEpoch != 0 || !slices.Equal(st.Replicas, want) || !slices.Equal(st.ISR, want) || st.Revision <= 0 {
			t.Fatalf("partition %d state %+v: want leader %d, replicas and ISR %v, epoch 0", p, st, want[0], want)
		}
	}
	// The store keeps its own copy of what it is given.
	created.Configs["retention.ms"] = "changed"
	if got, _ := s.GetTopic(ctx, "orders"); got.Configs["retention.ms"] != "1000" {
		t.Fatalf("caller's map aliased by the store: %v", got.Configs)
	}
	id := "6ba7b810-9dad-41d1-80b4-00c04fd430c8"
	if got := mustCreate(t, s, metastore.Topic{Name: "restored", ID: id}, [][]int32{{1}}); got.ID != id {
		t.Fatalf("id %s not kept: %s", id, got.ID)
	}
}

func testCreateRefused(t *testing.T, target Target) {
	s, ctx := target.Store, testCtx(t)
	mustCreate(t, s, metastore.Topic{Name: "t"}, [][]int32{{1}})
	if _, err := s.CreateTopic(ctx, metastore.Topic{Name: "t"}, [][]int32{{1}}); !errors.Is(err, metastore.ErrTopicExists) {
		t.Fatalf("creating an existing topic: %v, want ErrTopicExists", err)
	}
	for _, c := range []struct {
		name        string
		topic       metastore.Topic
		assignments [][]int32
	}{
		{"empty name", metastore.Topic{}, [][]int32{{1}}},
		{"slash in name", metastore.Topic{Name: "a/b"}, [][]int32{{1}}},
		{"no partitions", metastore.Topic{Name: "u"}, nil},
		{"count disagrees", metastore.Topic{Name: "u", Partitions: 2}, [][]int32{{1}}},
		{"factor disagrees", metastore.Topic{Name: "u", ReplicationFactor: 2}, [][]int32{{1}}},
		{"uneven replicas", metastore.Topic{Name: "u"}, [][]int32{{1, 2}, {1}}},
		{"replica twice", metastore.Topic{Name: "u"}, [][]int32{{1, 1}}},
		{"bad id", metastore.Topic{Name: "u", ID: "not-a-uuid"}, [][]int32{{1}}},
		{"zero id", metastore.Topic{Name: "u", ID: "00000000-0000-0000-0000-000000000000"}, [][]int32{{1}}},
	} {
		if _, err := s.CreateTopic(ctx, c.topic, c.assignments); err == nil || errors.Is(err, metastore.ErrTopicExists) {
			t.Errorf("%s: %v, want a validation error", c.name, err)
		}
	}
	if _, err := s.GetTopic(ctx, "u"); !errors.Is(err, metastore.ErrTopicNotFound) {
		t.Fatalf("a refused topic was stored: %v", err)
	}
}

func testMissingTopic(t *testing.T, target Target) {
	s, ctx := target.Store, testCtx(t)
	if _, err := s.GetTopic(ctx, "nope"); !errors.Is(err, metastore.ErrTopicNotFound) {
		t.Errorf("GetTopic: %v", err)
	}
	if err := s.DeleteTopic(ctx, "nope"); !errors.Is(err, metastore.ErrTopicNotFound) {
		t.Errorf("DeleteTopic: %v", err)
	}
	if _, err := s.PartitionStates(ctx, "nope"); !errors.Is(err, metastore.ErrTopicNotFound) {
		t.Errorf("PartitionStates: %v", err)
	}
	if _, err := s.AlterTopicConfigs(ctx, "nope", map[string]string{"a": "b"}, nil, nil); !errors.Is(err, metastore.ErrTopicNotFound) {
		t.Errorf("AlterTopicConfigs: %v", err)
	}
	if list, _, err := s.ListTopics(ctx); err != nil || len(list) != 0 {
		t.Errorf("ListTopics of an empty store: %v, %v", list, err)
	}
}

func testInitialLeaderEpochs(t *testing.T, target Target) {
	s, ctx := target.Store, testCtx(t)
	mustCreate(t, s, metastore.Topic{Name: "r", InitialLeaderEpochs: []int32{7, 9}}, [][]int32{{1}, {1}, {1}})
	states, err := s.PartitionStates(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if got := []int32{states[0].LeaderEpoch, states[1].LeaderEpoch, states[2].LeaderEpoch}; !slices.Equal(got, []int32{7, 9, 0}) {
		t.Fatalf("leader epochs %v, want [7 9 0]", got)
	}
	if got, _ := s.GetTopic(ctx, "r"); got.InitialLeaderEpochs != nil {
		t.Fatalf("initial leader epochs are not stored with the topic: %v", got.InitialLeaderEpochs)
	}
}

func testAlterTopicConfigs(t *testing.T, target Target) {
	s, ctx := target.Store, testCtx(t)
	created := mustCreate(t, s, metastore.Topic{Name: "t", Configs: map[string]string{"a": "1", "b": "2"}}, [][]int32{{1}})
	var seen map[string]string
	got, err := s.AlterTopicConfigs(ctx, "t", map[string]string{"c": "3"}, []string{"a"}, func(m map[string]string) error {
		seen = m
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"b": "2", "c": "3"}
	if !maps.Equal(got.Configs, want) || !maps.Equal(seen, want) {
		t.Fatalf("configs %v, validated %v; want %v", got.Configs, seen, want)
	}
	if got.Revision <= created.Revision || got.ID != created.ID || got.Partitions != 1 {
		t.Fatalf("altered topic %+v, created %+v", got, created)
	}
	if read, _ := s.GetTopic(ctx, "t"); !sameTopic(read, got) {
		t.Fatalf("read back %+v, altered %+v", read, got)
	}
	same, err := s.AlterTopicConfigs(ctx, "t", map[string]string{"c": "3"}, nil, nil)
	if err != nil || same.Revision != got.Revision {
		t.Fatalf("a change to nothing must write nothing: revision %d then %d, %v", got.Revision, same.Revision, err)
	}
	refused := errors.New("refused")
	if _, err := s.AlterTopicConfigs(ctx, "t", map[string]string{"d": "4"}, nil, func(map[string]string) error { return refused }); err != refused {
		t.Fatalf("validate's error must come back as is: %v", err)
	}
	if _, err := s.AlterTopicConfigs(ctx, "t", map[string]string{"b": "5"}, []string{"b"}, nil); err == nil {
		t.Fatal("a key both set and deleted was accepted")
	}
	if read, _ := s.GetTopic(ctx, "t"); !maps.Equal(read.Configs, want) {
		t.Fatalf("refused changes were written: %v", read.Configs)
	}
}

func testAddPartitions(t *testing.T, target Target) {
	s, ctx := target.Store, testCtx(t)
	created := mustCreate(t, s, metastore.Topic{Name: "t"}, [][]int32{{1, 2}})
	grown, err := s.AddPartitions(ctx, created, [][]int32{{2, 1}, {1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	if grown.Partitions != 3 || grown.Revision <= created.Revision || grown.ID != created.ID {
		t.Fatalf("grown topic %+v", grown)
	}
	if read, _ := s.GetTopic(ctx, "t"); read.Partitions != 3 || read.Revision != grown.Revision {
		t.Fatalf("read back %+v, grown %+v", read, grown)
	}
	states, err := s.PartitionStates(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 3 || states[1].Leader != 2 || !slices.Equal(states[1].ISR, []int32{2, 1}) || states[2].Leader != 1 || states[1].TopicID != created.ID {
		t.Fatalf("states after growing: %+v", states)
	}
	if _, err := s.AddPartitions(ctx, created, [][]int32{{1, 2}}); !errors.Is(err, metastore.ErrConflict) {
		t.Fatalf("growing from a stale revision: %v, want ErrConflict", err)
	}
	if _, err := s.AddPartitions(ctx, grown, [][]int32{{1}}); err == nil || errors.Is(err, metastore.ErrConflict) {
		t.Fatalf("a partition with too few replicas: %v, want a validation error", err)
	}
	unread := grown
	unread.Revision = 0
	if _, err := s.AddPartitions(ctx, unread, [][]int32{{1, 2}}); err == nil {
		t.Fatal("a topic without a revision was grown")
	}
	if err := s.DeleteTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddPartitions(ctx, grown, [][]int32{{1, 2}}); !errors.Is(err, metastore.ErrTopicNotFound) {
		t.Fatalf("growing a deleted topic: %v, want ErrTopicNotFound", err)
	}
}

// nextEvent reads one event, failing the test if none comes.
func nextEvent(t *testing.T, events <-chan metastore.TopicEvent) metastore.TopicEvent {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("watch closed")
		}
		return ev
	case <-time.After(eventTimeout):
		t.Fatal("no topic event")
	}
	return metastore.TopicEvent{}
}

func expectEvent(t *testing.T, events <-chan metastore.TopicEvent, typ metastore.TopicEventType, name string, resync bool) metastore.TopicEvent {
	t.Helper()
	ev := nextEvent(t, events)
	if ev.Type != typ || ev.Topic.Name != name || ev.Resync != resync {
		t.Fatalf("event %v %q (resync %v), want %v %q (resync %v)", ev.Type, ev.Topic.Name, ev.Resync, typ, name, resync)
	}
	return ev
}

// expectClosed waits for a watch to close after its ctx ended.
func expectClosed(t *testing.T, events <-chan metastore.TopicEvent) {
	t.Helper()
	deadline := time.After(eventTimeout)
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("watch still open after its ctx ended")
		}
	}
}

func testWatchTopicsSince(t *testing.T, target Target) {
	s, ctx := target.Store, testCtx(t)
	mustCreate(t, s, metastore.Topic{Name: "before"}, [][]int32{{1}})
	doomed := mustCreate(t, s, metastore.Topic{Name: "doomed"}, [][]int32{{1}})
	known, rev, err := s.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Changes between the listing and the watch are not missed.
	a := mustCreate(t, s, metastore.Topic{Name: "a"}, [][]int32{{1}})
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := s.WatchTopicsSince(wctx, known, rev)
	altered, err := s.AlterTopicConfigs(ctx, "a", map[string]string{"k": "v"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTopic(ctx, "doomed"); err != nil {
		t.Fatal(err)
	}
	if ev := expectEvent(t, events, metastore.TopicPut, "a", false); !sameTopic(ev.Topic, a) {
		t.Fatalf("create event %+v, created %+v", ev.Topic, a)
	}
	if ev := expectEvent(t, events, metastore.TopicPut, "a", false); !sameTopic(ev.Topic, altered) {
		t.Fatalf("alter event %+v, altered %+v", ev.Topic, altered)
	}
	expectEvent(t, events, metastore.TopicDeleted, "doomed", false)
	cancel()
	expectClosed(t, events)

	// From a later revision only what came after it.
	wctx, cancel = context.WithCancel(ctx)
	defer cancel()
	events = s.WatchTopicsSince(wctx, nil, altered.Revision)
	expectEvent(t, events, metastore.TopicDeleted, "doomed", false)
	again := mustCreate(t, s, metastore.Topic{Name: "doomed"}, [][]int32{{1}})
	if ev := expectEvent(t, events, metastore.TopicPut, "doomed", false); ev.Topic.ID != again.ID || ev.Topic.ID == doomed.ID {
		t.Fatalf("re-creation event has id %s; old %s, new %s", ev.Topic.ID, doomed.ID, again.ID)
	}
	cancel()
	expectClosed(t, events)
}

func testWatchTopics(t *testing.T, target Target) {
	s, ctx := target.Store, testCtx(t)
	mustCreate(t, s, metastore.Topic{Name: "y"}, [][]int32{{1}})
	mustCreate(t, s, metastore.Topic{Name: "x"}, [][]int32{{1}})
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := s.WatchTopics(wctx)
	expectEvent(t, events, metastore.TopicPut, "x", true)
	expectEvent(t, events, metastore.TopicPut, "y", true)
	if err := s.DeleteTopic(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, events, metastore.TopicDeleted, "x", false)
	cancel()
	expectClosed(t, events)
}

func testDeletedTopicRecords(t *testing.T, target Target) {
	s, ctx := target.Store, testCtx(t)
	if list, err := s.DeletedTopics(ctx); err != nil || len(list) != 0 {
		t.Fatalf("records in an empty store: %v, %v", list, err)
	}
	tiered := mustCreate(t, s, metastore.Topic{Name: "tiered", Configs: map[string]string{"remote.storage.enable": "true"}}, [][]int32{{1}, {1}})
	local := mustCreate(t, s, metastore.Topic{Name: "local"}, [][]int32{{1}})
	before := time.Now().Add(-time.Second)
	for _, name := range []string{"tiered", "local"} {
		if err := s.DeleteTopic(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.PartitionStates(ctx, "tiered"); !errors.Is(err, metastore.ErrTopicNotFound) {
		t.Fatalf("partition states outlived their topic: %v", err)
	}
	list, err := s.DeletedTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != tiered.ID || list[1].ID != local.ID {
		t.Fatalf("records %+v, want tiered then local (oldest deletion first)", list)
	}
	d := list[0]
	if d.Name != "tiered" || !d.Tiered || d.Revision <= 0 || d.DeletedAt.Before(before) || list[1].Tiered {
		t.Fatalf("records %+v", list)
	}
	got, found, err := s.DeletedTopic(ctx, tiered.ID)
	if err != nil || !found || got.Name != d.Name || got.ID != d.ID || !got.DeletedAt.Equal(d.DeletedAt) || got.Tiered != d.Tiered || got.Revision != d.Revision {
		t.Fatalf("DeletedTopic = %+v, %v, %v; listed %+v", got, found, err, d)
	}
	// The id cannot be reused until its objects are gone; the name can.
	if _, err := s.CreateTopic(ctx, metastore.Topic{Name: "tiered", ID: tiered.ID}, [][]int32{{1}}); !errors.Is(err, metastore.ErrTopicDeletionPending) {
		t.Fatalf("re-creating a pending id: %v, want ErrTopicDeletionPending", err)
	}
	mustCreate(t, s, metastore.Topic{Name: "local"}, [][]int32{{1}})

	stale := d
	stale.Revision++
	if err := s.FinishTopicDeletion(ctx, stale); !errors.Is(err, metastore.ErrConflict) {
		t.Fatalf("finishing from a stale revision: %v, want ErrConflict", err)
	}
	if err := s.FinishTopicDeletion(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishTopicDeletion(ctx, d); err != nil {
		t.Fatalf("finishing twice: %v", err)
	}
	if _, found, err := s.DeletedTopic(ctx, tiered.ID); err != nil || found {
		t.Fatalf("record after finishing: found %v, %v", found, err)
	}
	if _, found, err := s.DeletedTopic(ctx, "6ba7b810-9dad-41d1-80b4-00c04fd430c8"); err != nil || found {
		t.Fatalf("record of an id never deleted: found %v, %v", found, err)
	}
	mustCreate(t, s, metastore.Topic{Name: "tiered", ID: tiered.ID}, [][]int32{{1}})
}

func testPartitionStateCAS(t *testing.T, target Target) {
	s, ctx := target.Store, testCtx(t)
	mustCreate(t, s, metastore.Topic{Name: "t"}, [][]int32{{1, 2, 3}})
	states, err := s.PartitionStates(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	old := states[0]
	next := old
	next.Leader, next.LeaderEpoch, next.ISR = 2, 1, []int32{2, 3}
	swapped, err := s.CompareAndSwapPartitionState(ctx, old, next)
	if err != nil {
		t.Fatal(err)
	}
	if swapped.Revision <= old.Revision || swapped.Leader != 2 || !slices.Equal(swapped.ISR, []int32{2, 3}) {
		t.Fatalf("swapped %+v", swapped)
	}
	if read, _ := s.PartitionStates(ctx, "t"); !reflect.DeepEqual(read[0], swapped) {
		t.Fatalf("read back %+v, swapped %+v", read[0], swapped)
	}
	lost := old
	lost.ISR = []int32{1}
	cur, err := s.CompareAndSwapPartitionState(ctx, old, lost)
	if !errors.Is(err, metastore.ErrConflict) {
		t.Fatalf("swap from a stale revision: %v, want ErrConflict", err)
	}
	if !reflect.DeepEqual(cur, swapped) {
		t.Fatalf("a lost swap returns the current state %+v, got %+v", swapped, cur)
	}
	for _, c := range []struct {
		name string
		edit func(*metastore.PartitionState)
	}{
		{"epoch backwards", func(st *metastore.PartitionState) { st.LeaderEpoch = 0 }},
		{"leader not a replica", func(st *metastore.PartitionState) { st.Leader = 9 }},
		{"ISR not replicas", func(st *metastore.PartitionState) { st.ISR = []int32{2, 9} }},
		{"no replicas", func(st *metastore.PartitionState) { st.Replicas, st.ISR, st.Leader = nil, nil, -1 }},
		{"other partition", func(st *metastore.PartitionState) { st.Partition = 1 }},
		{"other incarnation", func(st *metastore.PartitionState) { st.TopicID = "other" }},
	} {
		bad := swapped
		bad.Replicas, bad.ISR = slices.Clone(bad.Replicas), slices.Clone(bad.ISR)
		c.edit(&bad)
		if _, err := s.CompareAndSwapPartitionState(ctx, swapped, bad); err == nil || errors.Is(err, metastore.ErrConflict) {
			t.Errorf("%s: %v, want a validation error", c.name, err)
		}
	}
	unread := swapped
	unread.Revision = 0
	if _, err := s.CompareAndSwapPartitionState(ctx, unread, swapped); err == nil {
		t.Fatal("a swap from revision 0 was accepted")
	}
	leaderless := swapped
	leaderless.Leader, leaderless.LeaderEpoch = -1, 2
	leaderless, err = s.CompareAndSwapPartitionState(ctx, swapped, leaderless)
	if err != nil {
		t.Fatalf("no leader (-1) is a valid state: %v", err)
	}
	// Lost is stored, and a replica in the ISR (or no longer a replica) is
	// dropped from it by the swap itself.
	withLost := leaderless
	withLost.ISR, withLost.Lost = []int32{2}, []int32{1, 3}
	withLost, err = s.CompareAndSwapPartitionState(ctx, leaderless, withLost)
	if err != nil || !slices.Equal(withLost.Lost, []int32{1, 3}) {
		t.Fatalf("swap naming lost replicas: %+v, %v", withLost, err)
	}
	if read, _ := s.PartitionStates(ctx, "t"); !reflect.DeepEqual(read[0], withLost) {
		t.Fatalf("read back %+v, swapped %+v", read[0], withLost)
	}
	rejoined := withLost
	rejoined.ISR = []int32{2, 3}
	if rejoined, err = s.CompareAndSwapPartitionState(ctx, withLost, rejoined); err != nil || !slices.Equal(rejoined.Lost, []int32{1}) {
		t.Fatalf("replica 3 joined the ISR: lost %v, want [1] (%v)", rejoined.Lost, err)
	}
	if read, _ := s.PartitionStates(ctx, "t"); !reflect.DeepEqual(read[0], rejoined) {
		t.Fatalf("read back %+v, swapped %+v", read[0], rejoined)
	}
	if err := s.DeleteTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CompareAndSwapPartitionState(ctx, swapped, next); !errors.Is(err, metastore.ErrTopicNotFound) {
		t.Fatalf("swap on a deleted topic: %v, want ErrTopicNotFound", err)
	}
}

// follow runs a Follow* method until the test ends, passing what it
// delivers to a channel.
func follow[T any](t *testing.T, run func(ctx context.Context, fn func(T))) <-chan T {
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan T, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(ctx, func(v T) {
			select {
			case out <- v:
			case <-ctx.Done():
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(eventTimeout):
			t.Error("follow did not return after its ctx ended")
		}
	})
	return out
}

func next[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(eventTimeout):
		t.Fatalf("nothing delivered in %v", eventTimeout)
	}
	var zero T
	return zero
}

func testFollowPartitions(t *testing.T, target Target) {
	s, ctx := target.Store, testCtx(t)
	mustCreate(t, s, metastore.Topic{Name: "a"}, [][]int32{{1}, {1}})
	updates := follow(t, s.FollowPartitions)
	snap := next(t, updates)
	if !snap.Snapshot || len(snap.States) != 2 || len(snap.Deleted) != 0 {
		t.Fatalf("first delivery %+v, want a snapshot of 2 states", snap)
	}
	mustCreate(t, s, metastore.Topic{Name: "b"}, [][]int32{{1}, {1}, {1}})
	if u := next(t, updates); u.Snapshot || len(u.States) != 3 || u.States[0].Topic != "b" {
		t.Fatalf("creating b delivered %+v, want b's 3 states in one update", u)
	}
	states, err := s.PartitionStates(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	nextState := states[1]
	nextState.LeaderEpoch++
	swapped, err := s.CompareAndSwapPartitionState(ctx, states[1], nextState)
	if err != nil {
		t.Fatal(err)
	}
	if u := next(t, updates); u.Snapshot || len(u.States) != 1 || !reflect.DeepEqual(u.States[0], swapped) {
		t.Fatalf("swap delivered %+v, want %+v", u, swapped)
	}
	if err := s.DeleteTopic(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	u := next(t, updates)
	slices.SortFunc(u.Deleted, func(x, y metastore.TopicPartition) int { return int(x.Partition - y.Partition) })
	if u.Snapshot || len(u.States) != 0 || !slices.Equal(u.Deleted, []metastore.TopicPartition{{Topic: "a", Partition: 0}, {Topic: "a", Partition: 1}}) {
		t.Fatalf("deleting a delivered %+v", u)
	}
}

func nodeIDs(brokers []metastore.BrokerInfo) []int32 {
	out := []int32{}
	for _, b := range brokers {
		out = append(out, b.NodeID)
	}
	return out
}

func testBrokers(t *testing.T, target Target) {
	s, ctx := target.Store, testCtx(t)
	if list, err := s.Brokers(ctx); err != nil || len(list) != 0 {
		t.Fatalf("brokers of an empty store: %v, %v", list, err)
	}
	live := follow(t, s.FollowBrokers)
	if got := next(t, live); len(got) != 0 {
		t.Fatalf("first delivery %v, want none", got)
	}
	started := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	endpoints := []metastore.Endpoint{{Listener: "INTERNAL", SecurityProtocol: "PLAINTEXT", Addr: "k2"}, {Listener: "EXTERNAL", SecurityProtocol: "SSL", Addr: "e2"}}
	r2, err := target.RegisterBroker(ctx, metastore.BrokerInfo{NodeID: 2, GRPCAddr: "g2", KafkaAddr: "k2", Endpoints: endpoints, HTTPAddr: "h2", Rack: "zone-b", StartedAt: started}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if got := next(t, live); !slices.Equal(nodeIDs(got), []int32{2}) {
		t.Fatalf("after registering 2: %v", nodeIDs(got))
	}
	r1, err := target.RegisterBroker(ctx, metastore.BrokerInfo{NodeID: 1}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	if got := next(t, live); !slices.Equal(nodeIDs(got), []int32{1, 2}) {
		t.Fatalf("after registering 1: %v", nodeIDs(got))
	}
	list, err := s.Brokers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(nodeIDs(list), []int32{1, 2}) {
		t.Fatalf("Brokers = %v, want 1 and 2 by node id", nodeIDs(list))
	}
	want := metastore.BrokerInfo{NodeID: 2, GRPCAddr: "g2", KafkaAddr: "k2", HTTPAddr: "h2", Rack: "zone-b", StartedAt: started, Epoch: r2.Epoch()}
	if b := list[1]; b.NodeID != want.NodeID || b.GRPCAddr != want.GRPCAddr || b.KafkaAddr != want.KafkaAddr || b.Rack != want.Rack ||
		b.HTTPAddr != want.HTTPAddr || !b.StartedAt.Equal(started) || b.Epoch != want.Epoch || !slices.Equal(b.Endpoints, endpoints) {
		t.Fatalf("broker 2 = %+v, want %+v", b, want)
	}
	if b := list[1]; b.KafkaAddrFor("EXTERNAL") != "e2" || b.KafkaAddrFor("INTERNAL") != "k2" || b.KafkaAddrFor("OTHER") != "" {
		t.Fatalf("broker 2's listeners: EXTERNAL %q, INTERNAL %q, OTHER %q", b.KafkaAddrFor("EXTERNAL"), b.KafkaAddrFor("INTERNAL"), b.KafkaAddrFor("OTHER"))
	}
	if r2.Epoch() <= 0 || r1.Epoch() <= r2.Epoch() || r1.NodeID() != 1 {
		t.Fatalf("epochs %d then %d, node id %d", r2.Epoch(), r1.Epoch(), r1.NodeID())
	}
	if list[0].StartedAt.IsZero() {
		t.Fatal("a registration without a start time must get one")
	}
	// Each registration has a secret of its own, which those following the
	// brokers read and nothing prints.
	if r2.ReplicaSecret() == "" || r1.ReplicaSecret() == r2.ReplicaSecret() ||
		!list[1].ReplicaSecret.Matches(string(r2.ReplicaSecret())) || !list[0].ReplicaSecret.Matches(string(r1.ReplicaSecret())) {
		t.Fatal("registrations' replica secrets are not their own, or not listed with them")
	}
	if printed := fmt.Sprintf("%v %+v %#v %s", list[1], list[1], list[1], list[1].ReplicaSecret); strings.Contains(printed, string(r2.ReplicaSecret())) {
		t.Fatalf("a broker registration prints its replica secret: %s", printed)
	}
	if err := r2.Close(); err != nil {
		t.Fatal(err)
	}
	if got := next(t, live); !slices.Equal(nodeIDs(got), []int32{1}) {
		t.Fatalf("after 2 left: %v", nodeIDs(got))
	}
	select {
	case <-r2.Done():
	case <-time.After(eventTimeout):
		t.Fatal("a closed registration is not done")
	}
	if err := r2.Err(); err != nil {
		t.Fatalf("Err after Close = %v, want nil", err)
	}
	if err := s.RemoveBroker(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if got := next(t, live); len(got) != 0 {
		t.Fatalf("after removing 1: %v", nodeIDs(got))
	}
	if _, err := target.RegisterBroker(ctx, metastore.BrokerInfo{NodeID: -1}, time.Second); err == nil {
		t.Fatal("a negative node id was registered")
	}
	if _, err := target.RegisterBroker(ctx, metastore.BrokerInfo{NodeID: 3}, 0); err == nil {
		t.Fatal("a registration without a ttl was accepted")
	}
}

func testController(t *testing.T, target Target) {
	s, ctx := target.Store, testCtx(t)
	if id, err := s.Controller(ctx); err != nil || id != -1 {
		t.Fatalf("controller of an empty store: %d, %v; want -1", id, err)
	}
	mustCreate(t, s, metastore.Topic{Name: "t"}, [][]int32{{1, 2}})
	r1, err := target.RegisterBroker(ctx, metastore.BrokerInfo{NodeID: 1}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	r2, err := target.RegisterBroker(ctx, metastore.BrokerInfo{NodeID: 2}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	term1, err := target.CampaignController(ctx, r1)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := s.Controller(ctx); err != nil || id != 1 {
		t.Fatalf("controller %d, %v; want 1", id, err)
	}
	type result struct {
		term Term
		err  error
	}
	elected := make(chan result, 1)
	go func() {
		term, err := target.CampaignController(ctx, r2)
		elected <- result{term, err}
	}()
	select {
	case r := <-elected:
		t.Fatalf("broker 2 elected while 1 is controller: %v", r.err)
	case <-time.After(200 * time.Millisecond):
	}
	states, err := s.PartitionStates(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	st := states[0]
	moved := st
	moved.Leader, moved.LeaderEpoch = 2, 1
	st, err = term1.CompareAndSwapPartitionState(ctx, st, moved)
	if err != nil {
		t.Fatalf("the controller's swap: %v", err)
	}
	// The election runs on the registration: a controller that leaves the
	// cluster is controller no more, and its term is fenced off.
	if err := r1.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-term1.Done():
	case <-time.After(eventTimeout):
		t.Fatal("the term outlived its registration")
	}
	var term2 Term
	select {
	case r := <-elected:
		if r.err != nil {
			t.Fatal(r.err)
		}
		term2 = r.term
	case <-time.After(eventTimeout):
		t.Fatal("broker 2 not elected after 1 left")
	}
	if id, err := s.Controller(ctx); err != nil || id != 2 {
		t.Fatalf("controller %d, %v; want 2", id, err)
	}
	back := st
	back.Leader, back.LeaderEpoch = 1, 2
	cur, err := term1.CompareAndSwapPartitionState(ctx, st, back)
	if !errors.Is(err, metastore.ErrNotController) {
		t.Fatalf("a past term's swap: %v, want ErrNotController", err)
	}
	if !reflect.DeepEqual(cur, st) {
		t.Fatalf("a fenced swap returns the current state %+v, got %+v", st, cur)
	}
	if _, err := term2.CompareAndSwapPartitionState(ctx, st, back); err != nil {
		t.Fatalf("the new controller's swap: %v", err)
	}
	if _, err := term2.CompareAndSwapPartitionState(ctx, st, back); !errors.Is(err, metastore.ErrConflict) {
		t.Fatalf("the controller's swap from a stale revision: %v, want ErrConflict", err)
	}
	if err := term2.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-term2.Done():
	case <-time.After(eventTimeout):
		t.Fatal("a resigned term is not done")
	}
	if id, err := s.Controller(ctx); err != nil || id != -1 {
		t.Fatalf("controller %d, %v after it resigned; want -1", id, err)
	}
}

func testProducerIDs(t *testing.T, target Target) {
	s, ctx := target.Store, testCtx(t)
	highWater := func() int64 {
		t.Helper()
		hw, err := s.ProducerIDHighWater(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return hw
	}
	if hw := highWater(); hw != metastore.FirstProducerID {
		t.Fatalf("high water %d before any allocation, want %d", hw, metastore.FirstProducerID)
	}
	first, err := s.AllocateProducerIDs(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if first != metastore.FirstProducerID {
		t.Fatalf("first block starts at %d, want %d", first, metastore.FirstProducerID)
	}
	if hw := highWater(); hw != first+10 {
		t.Fatalf("high water %d after the block [%d, %d)", hw, first, first+10)
	}
	second, err := s.AllocateProducerIDs(ctx, 5)
	if err != nil || second != first+10 {
		t.Fatalf("second block at %d, %v; want %d", second, err, first+10)
	}
	// Concurrent allocations get disjoint blocks.
	const n, size = 8, 3
	var mu sync.Mutex
	var starts []int64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			got, err := s.AllocateProducerIDs(ctx, size)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			starts = append(starts, got)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(starts)
	for i, got := range starts {
		if want := second + 5 + int64(i)*size; got != want {
			t.Fatalf("concurrent blocks start at %v, want every %d from %d", starts, size, second+5)
		}
	}
	for _, bad := range []int64{0, -1, metastore.MaxProducerIDBlock + 1} {
		if _, err := s.AllocateProducerIDs(ctx, bad); err == nil {
			t.Errorf("block of %d accepted", bad)
		}
	}
	if got, err := s.AllocateProducerIDs(ctx, 1); err != nil || got != second+5+n*size {
		t.Fatalf("after refused blocks: %d, %v; want %d", got, err, second+5+n*size)
	}
	if hw := highWater(); hw != second+5+n*size+1 {
		t.Fatalf("high water %d after every block, want %d", hw, second+5+n*size+1)
	}
}

func testClusterID(t *testing.T, target Target) {
	s, ctx := target.Store, testCtx(t)
	id, err := s.ClusterID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(id) != 22 {
		t.Fatalf("cluster id %q: want 22 characters of base64url", id)
	}
	if again, err := s.ClusterID(ctx); err != nil || again != id {
		t.Fatalf("cluster id changed: %q then %q, %v", id, again, err)
	}
}

func offsetKey(o metastore.OffsetCommit) string {
	return fmt.Sprintf("%s-%d@%d", o.Topic, o.Partition, o.Offset)
}

func testOffsets(t *testing.T, target Target) {
	s, ctx := target.Store, testCtx(t)
	if got, err := s.FetchOffsets(ctx, "g"); err != nil || len(got) != 0 {
		t.Fatalf("offsets of an unknown group: %v, %v", got, err)
	}
	// Group ids are as long as the int16 length of Kafka's older group APIs
	// allows, and no longer.
	longest := strings.Repeat("g", metastore.MaxGroupIDBytes)
	if err := s.CommitOffsets(ctx, longest, "", -1, []metastore.OffsetCommit{{Topic: "t", Offset: 1, LeaderEpoch: -1}}); err != nil {
		t.Fatalf("commit to a group id of %d bytes: %v", len(longest), err)
	}
	if err := s.CommitOffsets(ctx, longest+"g", "", -1, []metastore.OffsetCommit{{Topic: "t", Offset: 1, LeaderEpoch: -1}}); err == nil {
		t.Fatalf("commit to a group id of %d bytes accepted", len(longest)+1)
	}
	if err := s.DeleteGroup(ctx, longest); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)
	err := s.CommitOffsets(ctx, "g", "", -1, []metastore.OffsetCommit{
		{Topic: "b", Partition: 0, Offset: 5, LeaderEpoch: 2, Metadata: "m", CommitTime: at},
		{Topic: "a", Partition: 1, Offset: 7, LeaderEpoch: -1, CommitTime: at},
		{Topic: "a", Partition: 0, Offset: 1, LeaderEpoch: -1, CommitTime: at},
		{Topic: "a", Partition: 0, Offset: 3, LeaderEpoch: -1, CommitTime: at}, // the later entry wins
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.FetchOffsets(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{}
	for _, o := range got {
		keys = append(keys, offsetKey(o))
	}
	if !slices.Equal(keys, []string{"a-0@3", "a-1@7", "b-0@5"}) {
		t.Fatalf("offsets %v, want sorted by topic and partition", keys)
	}
	wantTime := time.UnixMilli(at.UnixMilli()).UTC()
	if b := got[2]; b.LeaderEpoch != 2 || b.Metadata != "m" || !b.CommitTime.Equal(wantTime) || b.CommitTime.Location() != time.UTC {
		t.Fatalf("offset %+v, want epoch 2, metadata m, commit time %v (to the ms, UTC)", b, wantTime)
	}
	before := time.Now().Add(-time.Second)
	if err := s.CommitOffsets(ctx, "g", "", -1, []metastore.OffsetCommit{{Topic: "c", Offset: 1}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.FetchOffsets(ctx, "g"); got[3].CommitTime.Before(before) {
		t.Fatalf("a zero commit time must become now: %v", got[3].CommitTime)
	}

	// A member's commit is fenced by the group's stored generation and its
	// members.
	if err := s.CommitOffsets(ctx, "g", "m1", 1, []metastore.OffsetCommit{{Topic: "a", Offset: 9}}); !errors.Is(err, metastore.ErrGenerationMismatch) {
		t.Fatalf("commit for a group without a generation: %v, want ErrGenerationMismatch", err)
	}
	gen1, err := s.PutGroup(ctx, metastore.GroupMeta{Group: "g", Generation: 1, State: "Stable",
		Members: []metastore.GroupMember{{MemberID: "m1"}, {MemberID: "m2"}}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CommitOffsets(ctx, "g", "m1", 2, []metastore.OffsetCommit{{Topic: "a", Offset: 9}}); !errors.Is(err, metastore.ErrGenerationMismatch) {
		t.Fatalf("commit for another generation: %v, want ErrGenerationMismatch", err)
	}
	if err := s.CommitOffsets(ctx, "g", "m3", 1, []metastore.OffsetCommit{{Topic: "a", Offset: 9}}); !errors.Is(err, metastore.ErrUnknownMember) {
		t.Fatalf("commit of a member not in the stored generation: %v, want ErrUnknownMember", err)
	}
	if err := s.CommitOffsets(ctx, "g", "m1", 1, []metastore.OffsetCommit{{Topic: "a", Offset: 9}}); err != nil {
		t.Fatalf("commit for the current generation: %v", err)
	}
	// A generation stored again with other members (what a deposed
	// coordinator would hand out) fences the members it no longer has, even
	// under the same generation number.
	if _, err := s.PutGroup(ctx, metastore.GroupMeta{Group: "g", Generation: 1, State: "Stable",
		Members: []metastore.GroupMember{{MemberID: "m3"}}}, gen1.Revision); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitOffsets(ctx, "g", "m1", 1, []metastore.OffsetCommit{{Topic: "a", Offset: 10}}); !errors.Is(err, metastore.ErrUnknownMember) {
		t.Fatalf("commit of a member the stored generation no longer has: %v, want ErrUnknownMember", err)
	}
	if err := s.CommitOffsets(ctx, "g", "m3", 1, []metastore.OffsetCommit{{Topic: "a", Offset: 9}}); err != nil {
		t.Fatalf("commit of a member of the stored generation: %v", err)
	}
	if got, _ := s.FetchOffsets(ctx, "g"); got[0].Offset != 9 {
		t.Fatalf("fenced commit not stored: %+v", got[0])
	}
	for _, bad := range []struct {
		group string
		o     metastore.OffsetCommit
	}{{"", metastore.OffsetCommit{Topic: "a"}}, {"g", metastore.OffsetCommit{}}, {"g", metastore.OffsetCommit{Topic: "a", Partition: -1}}} {
		if err := s.CommitOffsets(ctx, bad.group, "", -1, []metastore.OffsetCommit{bad.o}); err == nil {
			t.Errorf("commit of %+v to group %q accepted", bad.o, bad.group)
		}
	}

	if err := s.DeleteOffsets(ctx, "g", "a", []int32{1, 5}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteOffsets(ctx, "g", "b", nil); err != nil {
		t.Fatal(err)
	}
	got, _ = s.FetchOffsets(ctx, "g")
	keys = keys[:0]
	for _, o := range got {
		keys = append(keys, offsetKey(o))
	}
	if !slices.Equal(keys, []string{"a-0@9", "c-0@1"}) {
		t.Fatalf("offsets after deleting a-1 and all of b: %v", keys)
	}
	if err := s.DeleteOffsets(ctx, "g", "", nil); err == nil {
		t.Error("deleting the offsets of an unnamed topic was accepted")
	}
	if err := s.DeleteOffsets(ctx, "g", "a", []int32{-1}); err == nil {
		t.Error("deleting a negative partition's offset was accepted")
	}
}

func testGroupMeta(t *testing.T, target Target) {
	s, ctx := target.Store, testCtx(t)
	if _, err := s.GetGroup(ctx, "g"); !errors.Is(err, metastore.ErrGroupNotFound) {
		t.Fatalf("GetGroup of an unknown group: %v, want ErrGroupNotFound", err)
	}
	if err := s.DeleteGroup(ctx, "g"); !errors.Is(err, metastore.ErrGroupNotFound) {
		t.Fatalf("DeleteGroup of an unknown group: %v, want ErrGroupNotFound", err)
	}
	updated := time.Date(2024, 5, 1, 12, 0, 0, 987654321, time.UTC)
	meta := metastore.GroupMeta{
		Group: "g", ProtocolType: "consumer", Protocol: "range", Generation: 3, Leader: "m1", State: "Stable", UpdatedAt: updated,
		Members: []metastore.GroupMember{{
			MemberID: "m1", InstanceID: "i1", ClientID: "c1", ClientHost: "/10.0.0.1", SessionTimeoutMs: 10000, RebalanceTimeoutMs: 20000,
			Protocols:  []metastore.GroupProtocol{{Name: "range", Metadata: []byte{1, 2}}, {Name: "roundrobin"}},
			Assignment: []byte{3},
		}},
	}
	put, err := s.PutGroup(ctx, meta, 0)
	if err != nil {
		t.Fatal(err)
	}
	if put.Revision <= 0 || !put.UpdatedAt.Equal(time.UnixMilli(updated.UnixMilli())) {
		t.Fatalf("stored %+v: want a revision and the update time to the ms", put)
	}
	got, err := s.GetGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, put) {
		t.Fatalf("read back\n%+v\nstored\n%+v", got, put)
	}
	if _, err := s.PutGroup(ctx, meta, 0); !errors.Is(err, metastore.ErrConflict) {
		t.Fatalf("creating an existing group: %v, want ErrConflict", err)
	}
	meta.Generation, meta.State = 4, metastore.GroupStateEmpty
	cur, err := s.PutGroup(ctx, meta, put.Revision-1)
	if !errors.Is(err, metastore.ErrConflict) || !reflect.DeepEqual(cur, put) {
		t.Fatalf("put from a stale revision: %+v, %v; want ErrConflict and the current %+v", cur, err, put)
	}
	again, err := s.PutGroup(ctx, meta, put.Revision)
	if err != nil || again.Revision <= put.Revision {
		t.Fatalf("put from the current revision: %+v, %v", again, err)
	}
	if err := s.CommitOffsets(ctx, "g", "m1", 4, []metastore.OffsetCommit{{Topic: "a", Offset: 1}}); err != nil {
		t.Fatalf("the generation is written with the metadata: %v", err)
	}
	if err := s.CommitOffsets(ctx, "orphan", "", -1, []metastore.OffsetCommit{{Topic: "a", Offset: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutGroup(ctx, metastore.GroupMeta{Group: "g", Generation: -1}, again.Revision); err == nil {
		t.Fatal("a negative generation was stored")
	}
	if _, err := s.PutGroup(ctx, metastore.GroupMeta{Group: ""}, 0); err == nil {
		t.Fatal("a group without a name was stored")
	}
	list, err := s.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || !reflect.DeepEqual(list[0], again) {
		t.Fatalf("ListGroups = %+v, want g as stored and orphan", list)
	}
	if o := list[1]; o.Group != "orphan" || o.State != metastore.GroupStateEmpty || o.Revision != 0 || o.Generation != 0 {
		t.Fatalf("a group with offsets only lists as %+v, want Empty with revision 0", o)
	}
	if err := s.DeleteGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetGroup(ctx, "g"); !errors.Is(err, metastore.ErrGroupNotFound) {
		t.Fatalf("GetGroup after delete: %v", err)
	}
	if got, err := s.FetchOffsets(ctx, "g"); err != nil || len(got) != 0 {
		t.Fatalf("offsets outlived their group: %v, %v", got, err)
	}
	if err := s.CommitOffsets(ctx, "g", "m1", 4, []metastore.OffsetCommit{{Topic: "a", Offset: 1}}); !errors.Is(err, metastore.ErrGenerationMismatch) {
		t.Fatalf("the generation outlived its group: %v", err)
	}
	if _, err := s.PutGroup(ctx, meta, 0); err != nil {
		t.Fatalf("re-creating a deleted group: %v", err)
	}
}

func testExpireGroupOffsets(t *testing.T, target Target) {
	s, ctx := target.Store, testCtx(t)
	now := time.Now()
	old := now.Add(-2 * time.Hour)
	commit := func(group string, at time.Time) {
		t.Helper()
		if err := s.CommitOffsets(ctx, group, "", -1, []metastore.OffsetCommit{{Topic: "t", Offset: 1, CommitTime: at}}); err != nil {
			t.Fatal(err)
		}
	}
	putGroup := func(group, state string, at time.Time) {
		t.Helper()
		if _, err := s.PutGroup(ctx, metastore.GroupMeta{Group: group, Generation: 1, State: state, UpdatedAt: at}, 0); err != nil {
			t.Fatal(err)
		}
	}
	commit("offsets-only-old", old)
	commit("offsets-only-new", now)
	putGroup("empty-old", metastore.GroupStateEmpty, old)
	commit("empty-old", old)
	putGroup("empty-recent-update", metastore.GroupStateEmpty, now)
	commit("empty-recent-update", old)
	putGroup("dead-old", metastore.GroupStateDead, old)
	putGroup("stable-old", "Stable", old)
	commit("stable-old", old)

	if _, err := s.ExpireGroupOffsets(ctx, now, 0); err == nil {
		t.Fatal("a retention of 0 was accepted")
	}
	expired, err := s.ExpireGroupOffsets(ctx, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"dead-old", "empty-old", "offsets-only-old"}; !slices.Equal(expired, want) {
		t.Fatalf("expired %v, want %v", expired, want)
	}
	list, err := s.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range list {
		names = append(names, g.Group)
	}
	if want := []string{"empty-recent-update", "offsets-only-new", "stable-old"}; !slices.Equal(names, want) {
		t.Fatalf("groups left %v, want %v", names, want)
	}
	if _, err := s.GetGroup(ctx, "empty-old"); !errors.Is(err, metastore.ErrGroupNotFound) {
		t.Fatalf("an expired group kept its metadata: %v", err)
	}
	if expired, err := s.ExpireGroupOffsets(ctx, now, time.Hour); err != nil || len(expired) != 0 {
		t.Fatalf("second expiry: %v, %v; want none", expired, err)
	}
}

// A scan reads groups in key order, each with its offsets and member count,
// and a key budget stops it where etcd's pages of 256 keys end.
func testScanGroupOffsets(t *testing.T, target Target) {
	s, ctx := target.Store, testCtx(t)
	// a: state (two members), generation and one offset, keys 0-2; b: 300
	// offsets, keys 3-302; c: one offset, key 303.
	if _, err := s.PutGroup(ctx, metastore.GroupMeta{Group: "a", Generation: 1, State: "Stable",
		Members: []metastore.GroupMember{{MemberID: "m1"}, {MemberID: "m2"}}}, 0); err != nil {
		t.Fatal(err)
	}
	commit := func(group string, n int) {
		t.Helper()
		offs := make([]metastore.OffsetCommit, n)
		for i := range offs {
			offs[i] = metastore.OffsetCommit{Topic: "t", Partition: int32(i), Offset: int64(i), LeaderEpoch: -1}
		}
		if err := s.CommitOffsets(ctx, group, "", -1, offs); err != nil {
			t.Fatal(err)
		}
	}
	commit("a", 1)
	commit("b", 300)
	commit("c", 1)
	scan := func(maxKeys int) (string, bool) {
		t.Helper()
		var seen []string
		complete, err := s.ScanGroupOffsets(ctx, maxKeys, func(g metastore.GroupOffsets) {
			last := int32(-1)
			if n := len(g.Offsets); n > 0 {
				last = g.Offsets[n-1].Partition
			}
			seen = append(seen, fmt.Sprintf("%s:%d members,%d offsets,last %d", g.Group, g.Members, len(g.Offsets), last))
		})
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(seen, " "), complete
	}
	all := "a:2 members,1 offsets,last 0 b:0 members,300 offsets,last 299 c:0 members,1 offsets,last 0"
	for _, c := range []struct {
		maxKeys  int
		want     string
		complete bool
	}{
		{0, all, true},
		{1, "a:2 members,1 offsets,last 0", false},
		{256, "a:2 members,1 offsets,last 0", false},
		{257, all, true},
		{10_000, all, true},
	} {
		if got, complete := scan(c.maxKeys); got != c.want || complete != c.complete {
			t.Errorf("scan of at most %d keys: %q (complete %v), want %q (complete %v)", c.maxKeys, got, complete, c.want, c.complete)
		}
	}
}

// testConsumerGroupMeta: a consumer-protocol group's state reads back as
// written, and its members commit with their member epochs.
func testConsumerGroupMeta(t *testing.T, target Target) {
	s, ctx := target.Store, testCtx(t)
	meta := metastore.GroupMeta{
		Group: "cg", ProtocolType: "consumer", Generation: 5, State: "Reconciling",
		Consumer: &metastore.ConsumerGroupMeta{AssignmentEpoch: 5, Assignor: "uniform", Members: []metastore.ConsumerMember{
			{MemberID: "m1", InstanceID: "i1", ClientID: "c", MemberEpoch: 5, PreviousEpoch: 4, State: "stable",
				RebalanceTimeoutMs: 30000, SubscribedTopics: []string{"a"}, ServerAssignor: "range",
				Assigned: map[string][]int32{"t1": {0, 1}}, Target: map[string][]int32{"t1": {0, 1}}},
			{MemberID: "m2", MemberEpoch: 4, PreviousEpoch: 3, State: "unrevoked_partitions", SubscribedRegex: "a.*",
				Assigned: map[string][]int32{"t1": {2}}, Revoking: map[string][]int32{"t1": {3}}},
		}},
	}
	put, err := s.PutGroup(ctx, meta, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GetGroup(ctx, "cg")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, put) || !reflect.DeepEqual(got.Consumer, meta.Consumer) || got.Type() != metastore.GroupTypeConsumer {
		t.Fatalf("read back\n%+v\nstored\n%+v", got.Consumer, meta.Consumer)
	}
	if err := s.CommitOffsets(ctx, "cg", "m2", 4, []metastore.OffsetCommit{{Topic: "a", Offset: 1}}); err != nil {
		t.Fatalf("commit with the member's epoch: %v", err)
	}
	if err := s.CommitOffsets(ctx, "cg", "m2", 5, []metastore.OffsetCommit{{Topic: "a", Offset: 2}}); !errors.Is(err, metastore.ErrGenerationMismatch) {
		t.Fatalf("commit with another member's epoch: %v, want ErrGenerationMismatch", err)
	}
	if err := s.CommitOffsets(ctx, "cg", "m3", 5, []metastore.OffsetCommit{{Topic: "a", Offset: 2}}); !errors.Is(err, metastore.ErrUnknownMember) {
		t.Fatalf("commit of a stranger: %v, want ErrUnknownMember", err)
	}
	groups, err := s.ListGroups(ctx)
	if err != nil || len(groups) != 1 || groups[0].Type() != metastore.GroupTypeConsumer {
		t.Fatalf("ListGroups = %+v, %v; want the consumer group", groups, err)
	}

	// A state etcd would refuse (members' subscriptions are what clients
	// send) is refused before it is sent, and nothing changes.
	huge := got
	huge.Consumer = &metastore.ConsumerGroupMeta{Members: append(slices.Clone(got.Consumer.Members),
		metastore.ConsumerMember{MemberID: "big", SubscribedTopics: []string{strings.Repeat("x", metastore.MaxGroupBytes)}})}
	if _, err := s.PutGroup(ctx, huge, got.Revision); !errors.Is(err, metastore.ErrGroupTooLarge) {
		t.Fatalf("a group over MaxGroupBytes: %v, want ErrGroupTooLarge", err)
	}
	if again, err := s.GetGroup(ctx, "cg"); err != nil || again.Revision != got.Revision {
		t.Fatalf("after a refused write: %+v, %v; want revision %d", again, err, got.Revision)
	}
}
