package group_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/internal/fakeclock"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/metastore/metastoretest"
)

const topicA = "00000000-0000-4000-8000-00000000000a"

// consumerEnv is a coordinator, with no Run loop, over topic "a" (topicA)
// of 4 partitions.
type consumerEnv struct {
	t      *testing.T
	store  *metastoretest.Store
	clk    *fakeclock.Clock
	topics []group.TopicInfo
	c      *group.Coordinator
}

func newConsumerEnv(t *testing.T) *consumerEnv {
	e := &consumerEnv{t: t, store: metastoretest.New(), clk: fakeclock.New(time.Unix(1_700_000_000, 0)),
		topics: []group.TopicInfo{{Name: "a", ID: topicA, Partitions: 4}}}
	e.c = e.coordinator()
	return e
}

func (e *consumerEnv) coordinator() *group.Coordinator {
	return group.New(e.store, group.Config{Now: e.clk.Now, MinSessionTimeout: time.Second,
		Topics: func() []group.TopicInfo { return slices.Clone(e.topics) }})
}

// join sends a joining heartbeat subscribed to "a".
func (e *consumerEnv) join(id string) group.ConsumerHeartbeatResult {
	e.t.Helper()
	res, err := e.c.ConsumerGroupHeartbeat(context.Background(), group.ConsumerHeartbeat{
		Group: "g", MemberID: id, MemberEpoch: 0, RebalanceTimeout: 30 * time.Second, SubscribedTopics: []string{"a"},
		Owned: map[string][]int32{},
	})
	if err != nil {
		e.t.Fatalf("%s joins: %v", id, err)
	}
	return res
}

// beat sends a heartbeat at epoch reporting owned (nil: not reported).
func (e *consumerEnv) beat(id string, epoch int32, owned []int32) (group.ConsumerHeartbeatResult, error) {
	req := group.ConsumerHeartbeat{Group: "g", MemberID: id, MemberEpoch: epoch, RebalanceTimeout: -1}
	if owned != nil {
		req.Owned = map[string][]int32{topicA: owned}
	}
	return e.c.ConsumerGroupHeartbeat(context.Background(), req)
}

func (e *consumerEnv) mustBeat(id string, epoch int32, owned []int32) group.ConsumerHeartbeatResult {
	e.t.Helper()
	res, err := e.beat(id, epoch, owned)
	if err != nil {
		e.t.Fatalf("%s heartbeats at epoch %d: %v", id, epoch, err)
	}
	return res
}

func parts(res group.ConsumerHeartbeatResult) []int32 { return res.Assignment[topicA] }

// TestConsumerReconciliation: two members share the topic, a third joins,
// and a partition goes to its new owner only once its old owner has
// reported that it revoked it.
func TestConsumerReconciliation(t *testing.T) {
	e := newConsumerEnv(t)
	r1 := e.join("m1")
	if r1.MemberEpoch != 1 || len(parts(r1)) != 4 || r1.HeartbeatInterval != group.DefaultConsumerHeartbeatInterval {
		t.Fatalf("first member: %+v, want epoch 1 with all 4 partitions", r1)
	}
	r2 := e.join("m2")
	if r2.MemberEpoch != 2 || len(parts(r2)) != 0 {
		t.Fatalf("second member: %+v, want epoch 2 and nothing while m1 owns everything", r2)
	}
	// m1 learns it must give two partitions up; it keeps its epoch.
	r1 = e.mustBeat("m1", 1, []int32{0, 1, 2, 3})
	kept := parts(r1)
	if r1.MemberEpoch != 1 || len(kept) != 2 {
		t.Fatalf("m1 while revoking: %+v, want epoch 1 and 2 partitions", r1)
	}
	// m1 has not revoked yet: m2 still gets nothing.
	if r2 = e.mustBeat("m2", 2, []int32{}); len(parts(r2)) != 0 {
		t.Fatalf("m2 got %v before m1 revoked", parts(r2))
	}
	d, err := e.c.DescribeConsumerGroup(context.Background(), "g")
	if err != nil || d.State != group.ConsumerStateReconciling || d.Epoch != 2 {
		t.Fatalf("describe while reconciling: %+v, %v", d, err)
	}
	// m1 reports it owns only what it kept: it moves to epoch 2.
	if r1 = e.mustBeat("m1", 1, kept); r1.MemberEpoch != 2 {
		t.Fatalf("m1 after revoking: %+v, want epoch 2", r1)
	}
	r2 = e.mustBeat("m2", 2, []int32{})
	got := append(slices.Clone(kept), parts(r2)...)
	slices.Sort(got)
	if !slices.Equal(got, []int32{0, 1, 2, 3}) || len(parts(r2)) != 2 {
		t.Fatalf("after the revocation m1 has %v and m2 %v", kept, parts(r2))
	}
	if d, _ = e.c.DescribeConsumerGroup(context.Background(), "g"); d.State != group.ConsumerStateStable {
		t.Fatalf("state %s, want Stable", d.State)
	}

	// A third member joins; the members heartbeat, each reporting what
	// it was last given, until they settle: at no point do two of them
	// own a partition.
	r3 := e.join("m3")
	if r3.MemberEpoch != 3 || len(parts(r3)) != 0 {
		t.Fatalf("third member: %+v", r3)
	}
	state := map[string]*group.ConsumerHeartbeatResult{"m1": &r1, "m2": &r2, "m3": &r3}
	owned := map[string][]int32{"m1": kept, "m2": parts(r2), "m3": nil}
	for range 4 {
		for _, id := range []string{"m1", "m2", "m3"} {
			res := e.mustBeat(id, state[id].MemberEpoch, owned[id])
			if res.Assignment != nil {
				owned[id] = parts(res)
			}
			*state[id] = res
			seen := map[int32]string{}
			for who, ps := range owned {
				for _, p := range ps {
					if other, dup := seen[p]; dup {
						t.Fatalf("partition %d owned by %s and %s", p, other, who)
					}
					seen[p] = who
				}
			}
		}
	}
	r1.Assignment, r2.Assignment, r3.Assignment = map[string][]int32{topicA: owned["m1"]}, map[string][]int32{topicA: owned["m2"]}, map[string][]int32{topicA: owned["m3"]}
	if r1.MemberEpoch != 3 || r2.MemberEpoch != 3 || len(parts(r1))+len(parts(r2))+len(parts(r3)) != 4 || len(parts(r3)) == 0 {
		t.Fatalf("three members: m1 %+v, m2 %+v, m3 %+v", r1, r2, r3)
	}

	// m2 leaves: its partitions go to the others, with a new epoch.
	if res, err := e.c.ConsumerGroupHeartbeat(context.Background(), group.ConsumerHeartbeat{Group: "g", MemberID: "m2", MemberEpoch: -1}); err != nil || res.MemberEpoch != -1 {
		t.Fatalf("leave: %+v, %v", res, err)
	}
	r1 = e.mustBeat("m1", 3, parts(r1))
	r3 = e.mustBeat("m3", 3, parts(r3))
	if r1.Assignment != nil {
		owned["m1"] = parts(r1)
	}
	if r3.Assignment != nil {
		owned["m3"] = parts(r3)
	}
	if r1.MemberEpoch != 4 || r3.MemberEpoch != 4 || len(owned["m1"])+len(owned["m3"]) != 4 {
		t.Fatalf("after m2 left: m1 %+v, m3 %+v", r1, r3)
	}
	if _, err := e.beat("m2", 3, nil); !errors.Is(err, group.ErrUnknownMemberID) {
		t.Fatalf("heartbeat of a member that left: %v, want ErrUnknownMemberID", err)
	}
}

func TestConsumerFencing(t *testing.T) {
	e := newConsumerEnv(t)
	r := e.join("m1")
	if _, err := e.beat("m1", r.MemberEpoch+1, nil); !errors.Is(err, group.ErrFencedMemberEpoch) {
		t.Fatalf("epoch from the future: %v, want ErrFencedMemberEpoch", err)
	}
	e.join("m2")
	e.mustBeat("m1", 1, []int32{0, 1, 2, 3}) // revoking, still at 1
	r = e.mustBeat("m1", 1, []int32{0, 1})   // revoked: now at 2
	if r.MemberEpoch != 2 {
		t.Fatalf("m1 at %d, want 2", r.MemberEpoch)
	}
	// Its previous epoch is accepted while it owns a part of what it has
	// (it may have missed the answer), an older one is not.
	if _, err := e.beat("m1", 1, []int32{0}); err != nil {
		t.Fatalf("previous epoch with a subset: %v", err)
	}
	if _, err := e.beat("m1", 1, []int32{0, 3}); !errors.Is(err, group.ErrFencedMemberEpoch) {
		t.Fatalf("previous epoch owning another's partition: %v, want ErrFencedMemberEpoch", err)
	}
	if _, err := e.beat("nobody", 1, nil); !errors.Is(err, group.ErrUnknownMemberID) {
		t.Fatalf("unknown member: %v, want ErrUnknownMemberID", err)
	}
	// Commits are fenced by the member epoch.
	ctx := context.Background()
	offs := []metastore.OffsetCommit{{Topic: "a", Partition: 0, Offset: 5}}
	if err := e.c.CommitOffsets(ctx, "g", "m1", 2, offs); err != nil {
		t.Fatalf("commit at the member's epoch: %v", err)
	}
	if err := e.c.CommitOffsets(ctx, "g", "m1", 1, offs); !errors.Is(err, group.ErrStaleMemberEpoch) {
		t.Fatalf("commit at an old epoch: %v, want ErrStaleMemberEpoch", err)
	}
	if err := e.c.CommitOffsets(ctx, "g", "stranger", 2, offs); !errors.Is(err, group.ErrUnknownMemberID) {
		t.Fatalf("commit of a stranger: %v, want ErrUnknownMemberID", err)
	}
}

// TestConsumerSessionAndRevocationTimeouts: a member that stops
// heartbeating is removed after the session timeout; one that does not
// revoke within its rebalance timeout is fenced.
func TestConsumerSessionAndRevocationTimeouts(t *testing.T) {
	e := newConsumerEnv(t)
	ctx := context.Background()
	e.join("m1")
	e.join("m2")
	e.mustBeat("m1", 1, []int32{0, 1, 2, 3}) // must revoke two; never does
	e.clk.Advance(31 * time.Second)
	e.mustBeat("m2", 2, []int32{})
	e.c.Tick(ctx)
	if _, err := e.beat("m1", 1, []int32{0, 1, 2, 3}); !errors.Is(err, group.ErrUnknownMemberID) {
		t.Fatalf("member that did not revoke in time: %v, want ErrUnknownMemberID", err)
	}
	if r := e.mustBeat("m2", 2, []int32{}); r.MemberEpoch != 3 || len(parts(r)) != 4 {
		t.Fatalf("remaining member: %+v, want epoch 3 and every partition", r)
	}
	e.clk.Advance(group.DefaultConsumerSessionTimeout + time.Second)
	e.c.Tick(ctx)
	if _, err := e.beat("m2", 3, nil); !errors.Is(err, group.ErrUnknownMemberID) {
		t.Fatalf("member past its session: %v, want ErrUnknownMemberID", err)
	}
	meta, err := e.store.GetGroup(ctx, "g")
	if err != nil || meta.Consumer == nil || len(meta.Consumer.Members) != 0 || meta.State != group.ConsumerStateEmpty {
		t.Fatalf("stored after the last member expired: %+v, %v", meta, err)
	}
}

// TestConsumerTakeover: another coordinator reading the group back carries
// on with the same epochs and partitions; heartbeats that change nothing
// write nothing.
func TestConsumerTakeover(t *testing.T) {
	e := newConsumerEnv(t)
	ctx := context.Background()
	e.join("m1")
	r := e.join("m2")
	e.mustBeat("m1", 1, []int32{0, 1, 2, 3})
	r1 := e.mustBeat("m1", 1, []int32{0, 1})
	r2 := e.mustBeat("m2", r.MemberEpoch, []int32{})
	before, err := e.store.GetGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	e.mustBeat("m1", r1.MemberEpoch, nil)
	e.mustBeat("m2", r2.MemberEpoch, parts(r2))
	if after, _ := e.store.GetGroup(ctx, "g"); after.Revision != before.Revision {
		t.Fatalf("idle heartbeats wrote the group: revision %d -> %d", before.Revision, after.Revision)
	}
	e.c = e.coordinator()
	n1 := e.mustBeat("m1", r1.MemberEpoch, parts(r1))
	n2 := e.mustBeat("m2", r2.MemberEpoch, parts(r2))
	if n1.MemberEpoch != r1.MemberEpoch || n2.MemberEpoch != r2.MemberEpoch || n1.Assignment != nil {
		t.Fatalf("after takeover: m1 %+v, m2 %+v; want the same epochs and no new assignment", n1, n2)
	}
	if err := e.c.CommitOffsets(ctx, "g", "m2", r2.MemberEpoch, []metastore.OffsetCommit{{Topic: "a", Partition: parts(r2)[0], Offset: 1}}); err != nil {
		t.Fatalf("commit after takeover: %v", err)
	}
}

// TestConsumerStaticMember: a static member that leaves with epoch -2 keeps
// its partitions, and its successor with the same instance id takes them
// over; another member may not take an instance id in use.
func TestConsumerStaticMember(t *testing.T) {
	e := newConsumerEnv(t)
	ctx := context.Background()
	inst := "i1"
	join := func(id string) (group.ConsumerHeartbeatResult, error) {
		return e.c.ConsumerGroupHeartbeat(ctx, group.ConsumerHeartbeat{Group: "g", MemberID: id, InstanceID: &inst,
			RebalanceTimeout: time.Minute, SubscribedTopics: []string{"a"}, Owned: map[string][]int32{}})
	}
	r, err := join("s1")
	if err != nil || len(parts(r)) != 4 {
		t.Fatalf("static member joins: %+v, %v", r, err)
	}
	if _, err := join("s2"); !errors.Is(err, group.ErrUnreleasedInstanceID) {
		t.Fatalf("another member with the instance id: %v, want ErrUnreleasedInstanceID", err)
	}
	if res, err := e.c.ConsumerGroupHeartbeat(ctx, group.ConsumerHeartbeat{Group: "g", MemberID: "s1", MemberEpoch: -2, InstanceID: &inst}); err != nil || res.MemberEpoch != -2 {
		t.Fatalf("static leave: %+v, %v", res, err)
	}
	s2, err := join("s2")
	if err != nil || s2.MemberEpoch != r.MemberEpoch || !slices.Equal(parts(s2), parts(r)) {
		t.Fatalf("successor: %+v, %v; want epoch %d and %v", s2, err, r.MemberEpoch, parts(r))
	}
	if d, _ := e.c.DescribeConsumerGroup(ctx, "g"); len(d.Members) != 1 || d.Members[0].MemberID != "s2" || d.Epoch != 1 {
		t.Fatalf("after the static rejoin: %+v; want s2 alone, no new group epoch", d)
	}
	// The successor is stored before it hears of its epoch: its commits
	// pass the metastore's fence, and a coordinator taking over knows it.
	if err := e.c.CommitOffsets(ctx, "g", "s2", s2.MemberEpoch, []metastore.OffsetCommit{{Topic: "a", Partition: 0, Offset: 5, LeaderEpoch: -1}}); err != nil {
		t.Fatalf("the successor commits at its epoch: %v", err)
	}
	e.c = e.coordinator()
	if r, err := e.beat("s2", s2.MemberEpoch, parts(s2)); err != nil || r.MemberEpoch != s2.MemberEpoch {
		t.Fatalf("the successor after a takeover: %+v, %v", r, err)
	}
}

// TestConsumerGroupConversion: an empty classic group becomes a consumer
// group and back; a group with members of the other protocol refuses.
func TestConsumerGroupConversion(t *testing.T) {
	e := newConsumerEnv(t)
	ctx := context.Background()
	e.join("m1")
	if _, err := e.c.Join(ctx, joinReq("")); !errors.Is(err, group.ErrInconsistentProtocol) {
		t.Fatalf("classic join to a consumer group with members: %v, want ErrInconsistentProtocol", err)
	}
	if _, err := e.c.ConsumerGroupHeartbeat(ctx, group.ConsumerHeartbeat{Group: "g", MemberID: "m1", MemberEpoch: -1}); err != nil {
		t.Fatal(err)
	}
	list, err := e.c.List(ctx)
	if err != nil || len(list) != 1 || list[0].Type != metastore.GroupTypeConsumer {
		t.Fatalf("List = %+v, %v; want the consumer group", list, err)
	}
	if _, err := e.c.Describe(ctx, "g"); !errors.Is(err, group.ErrGroupIDNotFound) {
		t.Fatalf("DescribeGroups of a consumer group: %v, want ErrGroupIDNotFound", err)
	}
	// Empty: a classic member may take it.
	id := firstJoinGroup(t, e.c, "c1")
	if _, err := e.c.ConsumerGroupHeartbeat(ctx, group.ConsumerHeartbeat{Group: "g", MemberID: "m9", RebalanceTimeout: time.Second,
		SubscribedTopics: []string{"a"}}); !errors.Is(err, group.ErrGroupIDNotFound) {
		t.Fatalf("consumer heartbeat to a classic group with members: %v, want ErrGroupIDNotFound", err)
	}
	if _, err := e.c.DescribeConsumerGroup(ctx, "g"); !errors.Is(err, group.ErrGroupIDNotFound) {
		t.Fatalf("ConsumerGroupDescribe of a classic group: %v, want ErrGroupIDNotFound", err)
	}
	_ = id
}

// firstJoinGroup joins a classic member to "g" without waiting for a
// rebalance delay and returns its id.
func firstJoinGroup(t *testing.T, c *group.Coordinator, clientID string) string {
	t.Helper()
	req := joinReq("")
	req.ClientID = clientID
	_, err := c.Join(context.Background(), req)
	var required *group.MemberIDRequiredError
	if !errors.As(err, &required) {
		t.Fatalf("first classic join: %v, want MEMBER_ID_REQUIRED", err)
	}
	return required.MemberID
}

func TestConsumerHeartbeatRefusals(t *testing.T) {
	e := newConsumerEnv(t)
	ctx := context.Background()
	bad := "("
	unknown := "sticky"
	for _, c := range []struct {
		req  group.ConsumerHeartbeat
		want error
	}{
		{group.ConsumerHeartbeat{Group: "g", MemberID: "m", RebalanceTimeout: time.Second}, group.ErrInvalidRequest},
		{group.ConsumerHeartbeat{Group: "g", MemberID: "m", RebalanceTimeout: -1, SubscribedTopics: []string{"a"}}, group.ErrInvalidRequest},
		{group.ConsumerHeartbeat{Group: "g", MemberID: "m", MemberEpoch: -2}, group.ErrInvalidRequest},
		{group.ConsumerHeartbeat{Group: "g", MemberID: "m", RebalanceTimeout: time.Second, SubscribedRegex: &bad}, group.ErrInvalidRegularExpression},
		{group.ConsumerHeartbeat{Group: "g", MemberID: "m", RebalanceTimeout: time.Second, SubscribedTopics: []string{"a"}, ServerAssignor: &unknown}, group.ErrUnsupportedAssignor},
		{group.ConsumerHeartbeat{Group: "", MemberID: "m", RebalanceTimeout: time.Second, SubscribedTopics: []string{"a"}}, group.ErrInvalidGroupID},
	} {
		if _, err := e.c.ConsumerGroupHeartbeat(ctx, c.req); !errors.Is(err, c.want) {
			t.Errorf("%+v: %v, want %v", c.req, err, c.want)
		}
	}
}

// TestConsumerRegexFollowsTopics: a subscription by regular expression is
// resolved against the topics that exist, again when topics come and go.
func TestConsumerRegexFollowsTopics(t *testing.T) {
	e := newConsumerEnv(t)
	ctx := context.Background()
	re := "a|b.*"
	r, err := e.c.ConsumerGroupHeartbeat(ctx, group.ConsumerHeartbeat{Group: "g", MemberID: "m1", RebalanceTimeout: time.Second,
		SubscribedRegex: &re, Owned: map[string][]int32{}})
	if err != nil || len(parts(r)) != 4 || len(r.Assignment) != 1 {
		t.Fatalf("regex member: %+v, %v", r, err)
	}
	const topicB = "00000000-0000-4000-8000-00000000000b"
	e.topics = append(e.topics, group.TopicInfo{Name: "bb", ID: topicB, Partitions: 2}, group.TopicInfo{Name: "xa", ID: "x", Partitions: 1})
	// Topics are looked at again once a second, not at every heartbeat.
	if r = e.mustBeat("m1", r.MemberEpoch, []int32{0, 1, 2, 3}); r.MemberEpoch != 1 {
		t.Fatalf("topics resolved again at once: %+v", r)
	}
	e.clk.Advance(time.Second)
	r = e.mustBeat("m1", r.MemberEpoch, []int32{0, 1, 2, 3})
	if r.MemberEpoch != 2 || len(r.Assignment[topicB]) != 2 || len(r.Assignment) != 2 {
		t.Fatalf("after topic bb was created: %+v; want epoch 2 with a and bb (xa does not match whole)", r)
	}
	e.topics = e.topics[1:]
	e.clk.Advance(time.Second)
	r, err = e.c.ConsumerGroupHeartbeat(ctx, group.ConsumerHeartbeat{Group: "g", MemberID: "m1", MemberEpoch: 2, RebalanceTimeout: -1,
		Owned: map[string][]int32{topicA: {0, 1, 2, 3}, topicB: {0, 1}}})
	if err != nil || r.MemberEpoch != 2 || len(r.Assignment[topicA]) != 0 {
		t.Fatalf("after topic a was deleted: %+v, %v; want a revoked first", r, err)
	}
}

// TestConsumerJoinWritesOnce: a heartbeat that moves the group epoch and
// the member's own epoch writes the group once, not once for each (the
// whole group is one etcd value, rewritten at each write).
func TestConsumerJoinWritesOnce(t *testing.T) {
	e := newConsumerEnv(t)
	rec := &recordingStore{Store: e.store}
	e.c = group.New(rec, group.Config{Now: e.clk.Now, MinSessionTimeout: time.Second,
		Topics: func() []group.TopicInfo { return slices.Clone(e.topics) }})
	r1 := e.join("m1")
	if h := rec.history(); len(h) != 1 || h[0].Generation != 1 || h[0].Consumer.Members[0].MemberEpoch != 1 {
		t.Fatalf("first join wrote %d times (%+v), want once: epoch 1 with the member at it", len(h), h)
	}
	e.join("m2")
	if h := rec.history(); len(h) != 2 {
		t.Fatalf("second join: %d writes in all, want 2", len(h))
	}
	e.mustBeat("m1", r1.MemberEpoch, parts(r1)) // told to revoke: a write
	e.mustBeat("m1", r1.MemberEpoch, parts(r1)) // nothing changed: none
	if h := rec.history(); len(h) != 3 {
		t.Fatalf("after m1's heartbeats: %d writes in all, want 3", len(h))
	}
}
