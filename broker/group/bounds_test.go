package group_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/internal/fakeclock"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/metastore/metastoretest"
)

// What clients control of a coordinator's state is bounded: offset
// metadata, offsets of partitions that do not exist, members and pending
// members of a group, pending members of all groups, and groups kept in
// memory.

// countingStore counts the group reads, which tell whether the coordinator
// still held a group or had to read it back.
type countingStore struct {
	*metastoretest.Store
	gets atomic.Int64
}

func (s *countingStore) GetGroup(ctx context.Context, name string) (metastore.GroupMeta, error) {
	s.gets.Add(1)
	return s.Store.GetGroup(ctx, name)
}

func boundedCoordinator(t *testing.T, cfg group.Config) (*countingStore, *fakeclock.Clock, *group.Coordinator) {
	t.Helper()
	store := &countingStore{Store: metastoretest.New()}
	clk := fakeclock.New(time.Unix(1_700_000_000, 0))
	cfg.Now, cfg.MinSessionTimeout = clk.Now, time.Second
	return store, clk, group.New(store, cfg)
}

// twoPartitions is PartitionExists for one topic "t" of partitions 0 and 1.
func twoPartitions(topic string, p int32) bool { return topic == "t" && p >= 0 && p < 2 }

func TestCommitRefusesOffsetsOneByOne(t *testing.T) {
	store, _, c := boundedCoordinator(t, group.Config{MaxMetadataBytes: 10, PartitionExists: twoPartitions})
	ctx := context.Background()
	err := c.CommitOffsets(ctx, "readers", "", -1, []metastore.OffsetCommit{
		{Topic: "t", Partition: 0, Offset: 1, LeaderEpoch: -1, Metadata: strings.Repeat("m", 11)},
		{Topic: "t", Partition: 1, Offset: 2, LeaderEpoch: -1, Metadata: strings.Repeat("m", 10)},
		{Topic: "t", Partition: 2, Offset: 3, LeaderEpoch: -1},
		{Topic: "gone", Partition: 0, Offset: 4, LeaderEpoch: -1},
	})
	var each *group.OffsetErrors
	if !errors.As(err, &each) || len(each.Errs) != 4 {
		t.Fatalf("commit: %v, want an error per offset", err)
	}
	for i, want := range []error{group.ErrOffsetMetadataTooLarge, nil, group.ErrUnknownTopicOrPartition, group.ErrUnknownTopicOrPartition} {
		if got := each.Errs[i]; (want == nil) != (got == nil) || want != nil && !errors.Is(got, want) {
			t.Errorf("offset %d: %v, want %v", i, got, want)
		}
	}
	offs, err := store.FetchOffsets(ctx, "readers")
	if err != nil || len(offs) != 1 || offs[0].Partition != 1 || offs[0].Metadata != strings.Repeat("m", 10) {
		t.Fatalf("stored: %+v, %v; want t-1 only", offs, err)
	}

	// Nothing valid: nothing written, and the group is not even read.
	reads := store.gets.Load()
	err = c.CommitOffsets(ctx, "ghosts", "", -1, []metastore.OffsetCommit{{Topic: "gone", Partition: 0, Offset: 1, LeaderEpoch: -1}})
	if !errors.Is(err, group.ErrUnknownTopicOrPartition) {
		t.Fatalf("commit of a partition that does not exist: %v", err)
	}
	if groups, err := store.ListGroups(ctx); err != nil || len(groups) != 1 {
		t.Fatalf("stored groups: %+v, %v; want readers only", groups, err)
	}
	if n := store.gets.Load() - reads; n != 0 {
		t.Errorf("a commit refused for every offset read the group %d times", n)
	}
}

// A member's commit with the wrong generation: each offset says why it was
// not committed, its own reason first.
func TestCommitRefusedByTheGroupKeepsEachReason(t *testing.T) {
	_, _, c := boundedCoordinator(t, group.Config{MaxMetadataBytes: 10, PartitionExists: twoPartitions})
	m := stableMember(t, c)
	err := c.CommitOffsets(context.Background(), "g", m, 7, []metastore.OffsetCommit{
		{Topic: "t", Partition: 0, Offset: 1, LeaderEpoch: -1, Metadata: strings.Repeat("m", 11)},
		{Topic: "t", Partition: 1, Offset: 2, LeaderEpoch: -1},
	})
	var each *group.OffsetErrors
	if !errors.As(err, &each) || len(each.Errs) != 2 ||
		!errors.Is(each.Errs[0], group.ErrOffsetMetadataTooLarge) || !errors.Is(each.Errs[1], group.ErrIllegalGeneration) {
		t.Fatalf("commit with generation 7 of a group at 1: %v", err)
	}
}

func TestMetadataLimitDefaultsToKafkas(t *testing.T) {
	_, _, c := boundedCoordinator(t, group.Config{})
	ctx := context.Background()
	ok := []metastore.OffsetCommit{{Topic: "t", Offset: 1, LeaderEpoch: -1, Metadata: strings.Repeat("m", 4096)}}
	if err := c.CommitOffsets(ctx, "g", "", -1, ok); err != nil {
		t.Fatalf("4096 bytes of metadata: %v", err)
	}
	tooLong := []metastore.OffsetCommit{{Topic: "t", Offset: 1, LeaderEpoch: -1, Metadata: strings.Repeat("m", 4097)}}
	if err := c.CommitOffsets(ctx, "g", "", -1, tooLong); !errors.Is(err, group.ErrOffsetMetadataTooLarge) {
		t.Fatalf("4097 bytes of metadata: %v", err)
	}
	_, _, none := boundedCoordinator(t, group.Config{MaxMetadataBytes: -1})
	if err := none.CommitOffsets(ctx, "g", "", -1, []metastore.OffsetCommit{{Topic: "t", Offset: 1, LeaderEpoch: -1, Metadata: "x"}}); !errors.Is(err, group.ErrOffsetMetadataTooLarge) {
		t.Fatalf("metadata with no metadata allowed: %v", err)
	}
}

func joinGroupReq(groupName, memberID, instanceID string) group.JoinRequest {
	r := joinReq(memberID)
	r.Group, r.InstanceID = groupName, instanceID
	return r
}

func TestGroupMaxSizeCountsPendingMembers(t *testing.T) {
	_, _, c := boundedCoordinator(t, group.Config{MaxSize: 3})
	ctx := context.Background()
	var pending []string
	for range 3 {
		pending = append(pending, firstJoin(t, c))
	}
	if _, err := c.Join(ctx, joinReq("")); !errors.Is(err, group.ErrGroupMaxSizeReached) {
		t.Fatalf("a fourth member id: %v, want GROUP_MAX_SIZE_REACHED", err)
	}
	// The pending ones join: still three, still full.
	var joins []<-chan joined
	for _, id := range pending {
		joins = append(joins, joinAsync(c, id))
	}
	for i, j := range joins {
		if r := wait(t, j, "join"); r.err != nil || r.res.Generation != 1 {
			t.Fatalf("member %d joins: %+v, %v", i, r.res, r.err)
		}
	}
	if _, err := c.Join(ctx, joinReq("")); !errors.Is(err, group.ErrGroupMaxSizeReached) {
		t.Fatalf("a fourth member: %v, want GROUP_MAX_SIZE_REACHED", err)
	}
	// Another group is not affected.
	if _, err := c.Join(ctx, joinGroupReq("other", "", "")); !errors.As(err, new(*group.MemberIDRequiredError)) {
		t.Fatalf("first member of another group: %v", err)
	}
}

// A static member coming back under a new member id replaces itself: it is
// not a new member, even in a full group.
func TestFullGroupTakesBackItsStaticMember(t *testing.T) {
	_, _, c := boundedCoordinator(t, group.Config{MaxSize: 1})
	first := wait(t, asyncJoin(c, joinGroupReq("g", "", "instance-1")), "static join")
	if first.err != nil {
		t.Fatalf("static member joins: %v", first.err)
	}
	again := wait(t, asyncJoin(c, joinGroupReq("g", "", "instance-1")), "static rejoin")
	if again.err != nil || again.res.MemberID == first.res.MemberID {
		t.Fatalf("static member back under a new id: %+v, %v", again.res, again.err)
	}
	if _, err := c.Join(context.Background(), joinGroupReq("g", "", "instance-2")); !errors.Is(err, group.ErrGroupMaxSizeReached) {
		t.Fatalf("another static member: %v, want GROUP_MAX_SIZE_REACHED", err)
	}
}

func asyncJoin(c *group.Coordinator, req group.JoinRequest) <-chan joined {
	ch := make(chan joined, 1)
	go func() {
		res, err := c.Join(context.Background(), req)
		ch <- joined{res, err}
	}()
	return ch
}

// Member ids handed out and not used are bounded over all groups: the
// oldest is forgotten first.
func TestPendingMembersBoundedOverAllGroups(t *testing.T) {
	_, _, c := boundedCoordinator(t, group.Config{MaxPendingMembers: 5})
	ctx := context.Background()
	ids := make([]string, 8)
	for i := range ids {
		_, err := c.Join(ctx, joinGroupReq(fmt.Sprintf("g%d", i), "", ""))
		var required *group.MemberIDRequiredError
		if !errors.As(err, &required) {
			t.Fatalf("first join of g%d: %v", i, err)
		}
		ids[i] = required.MemberID
	}
	for i := range 3 {
		if _, err := c.Join(ctx, joinGroupReq(fmt.Sprintf("g%d", i), ids[i], "")); !errors.Is(err, group.ErrUnknownMemberID) {
			t.Errorf("g%d joined with a member id forgotten for newer ones: %v", i, err)
		}
	}
	if r := wait(t, asyncJoin(c, joinGroupReq("g7", ids[7], "")), "join of g7"); r.err != nil || r.res.Generation != 1 {
		t.Errorf("the newest pending member joins: %+v, %v", r.res, r.err)
	}
}

// Groups without members, pending members or work under way are not kept
// in memory: the next request reads them back, as they were stored.
func TestEmptyGroupsAreForgotten(t *testing.T) {
	store, clk, c := boundedCoordinator(t, group.Config{})
	ctx := context.Background()
	held := func(name string) bool {
		t.Helper()
		before := store.gets.Load()
		if _, err := c.Describe(ctx, name); err != nil {
			t.Fatal(err)
		}
		return store.gets.Load() == before
	}

	// A commit from outside a group that is not known does not create it.
	if err := c.CommitOffsets(ctx, "outsider", "", -1, []metastore.OffsetCommit{{Topic: "t", Offset: 1, LeaderEpoch: -1}}); err != nil {
		t.Fatal(err)
	}
	c.Tick(ctx)
	if held("outsider") {
		t.Error("a group only committed to from outside is held in memory")
	}

	// A pending member keeps its group until it expires.
	firstJoin(t, c)
	c.Tick(ctx)
	if !held("g") {
		t.Error("a group with a pending member was forgotten")
	}
	clk.Advance(11 * time.Second) // joinReq's session timeout is 10 s
	c.Tick(ctx)
	if held("g") {
		t.Error("a group whose pending member expired is still held")
	}

	// A member that leaves: the group is stored empty, forgotten, and read
	// back with its generation.
	m := stableMember(t, c)
	if errs := c.Leave(ctx, "g", []string{m}, nil); errs[0] != nil {
		t.Fatal(errs[0])
	}
	c.Tick(ctx)
	if held("g") {
		t.Error("a group whose members left is still held")
	}
	d, err := c.Describe(ctx, "g")
	if err != nil || d.State != group.StateEmpty || d.Generation != 2 {
		t.Fatalf("the group read back: %+v, %v; want Empty at generation 2", d, err)
	}
	if r := wait(t, joinAsync(c, firstJoin(t, c)), "join"); r.err != nil || r.res.Generation != 3 {
		t.Fatalf("a member joins the group read back: %+v, %v; want generation 3", r.res, r.err)
	}
}

func TestGroupIDLongerThanOldVersionsCarryIsRefused(t *testing.T) {
	_, _, c := boundedCoordinator(t, group.Config{})
	long := strings.Repeat("g", metastore.MaxGroupIDBytes+1)
	if _, err := c.Join(context.Background(), joinGroupReq(long, "", "")); !errors.Is(err, group.ErrInvalidGroupID) {
		t.Fatalf("join of a %d-byte group id: %v", len(long), err)
	}
	if _, err := c.FetchOffsets(context.Background(), long); !errors.Is(err, group.ErrInvalidGroupID) {
		t.Fatalf("offsets of a %d-byte group id: %v", len(long), err)
	}
}

// A member id starts with the client id, cut so that the id fits every
// version of the group APIs, at a rune boundary.
func TestMemberIDOfALongClientIDIsBounded(t *testing.T) {
	_, _, c := boundedCoordinator(t, group.Config{})
	req := joinReq("")
	req.ClientID = strings.Repeat("é", 20_000) // 40,000 bytes
	_, err := c.Join(context.Background(), req)
	var required *group.MemberIDRequiredError
	if !errors.As(err, &required) {
		t.Fatalf("first join: %v", err)
	}
	if id := required.MemberID; len(id) > 300 || !utf8.ValidString(id) || !strings.HasPrefix(id, "éé") {
		t.Fatalf("member id of %d bytes (valid UTF-8: %v): %.20q...", len(id), utf8.ValidString(id), id)
	}
}

// TestConsumerHeartbeatTooLargeToStoreIsRefused: a subscription that would
// make the group's stored state longer than etcd takes is refused
// (INVALID_REQUEST, which a client does not retry, rather than
// COORDINATOR_NOT_AVAILABLE forever), and the group carries on as stored.
func TestConsumerHeartbeatTooLargeToStoreIsRefused(t *testing.T) {
	e := newConsumerEnv(t)
	ctx := context.Background()
	r1 := e.join("m1")
	topics := make([]string, 9000)
	for i := range topics {
		topics[i] = fmt.Sprintf("%0120d", i)
	}
	_, err := e.c.ConsumerGroupHeartbeat(ctx, group.ConsumerHeartbeat{Group: "g", MemberEpoch: 0,
		RebalanceTimeout: 30 * time.Second, SubscribedTopics: topics, Owned: map[string][]int32{}})
	if !errors.Is(err, group.ErrInvalidRequest) {
		t.Fatalf("a subscription too large to store: %v, want ErrInvalidRequest", err)
	}
	meta, err := e.store.GetGroup(ctx, "g")
	if err != nil || meta.Generation != r1.MemberEpoch || len(meta.Consumer.Members) != 1 {
		t.Fatalf("stored after the refusal: %+v, %v; want m1 alone at epoch %d", meta, err, r1.MemberEpoch)
	}
	if r := e.mustBeat("m1", r1.MemberEpoch, []int32{0, 1, 2, 3}); r.MemberEpoch != r1.MemberEpoch {
		t.Fatalf("m1 after the refusal: %+v", r)
	}
}
