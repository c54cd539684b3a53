package group_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/internal/fakeclock"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/metastore/metastoretest"
)

// startCoordinator runs a coordinator on store with a settable clock and no
// initial rebalance delay.
func startCoordinator(t *testing.T, store group.Store, clk *fakeclock.Clock) *group.Coordinator {
	t.Helper()
	c := group.New(store, group.Config{Now: clk.Now, MinSessionTimeout: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return c
}

// newTestCoordinator runs a coordinator on a fresh store, with a settable
// clock.
func newTestCoordinator(t *testing.T) (*metastoretest.Store, *fakeclock.Clock, *group.Coordinator) {
	t.Helper()
	store := metastoretest.New()
	clk := fakeclock.New(time.Unix(1_700_000_000, 0))
	return store, clk, startCoordinator(t, store, clk)
}

// newTickedCoordinator is a coordinator on a fresh store whose timers move
// only when the test calls Tick: no Run loop checks sessions behind its back.
func newTickedCoordinator(t *testing.T) (*metastoretest.Store, *fakeclock.Clock, *group.Coordinator) {
	t.Helper()
	store := metastoretest.New()
	clk := fakeclock.New(time.Unix(1_700_000_000, 0))
	return store, clk, group.New(store, group.Config{Now: clk.Now, MinSessionTimeout: time.Second})
}

func joinReq(memberID string) group.JoinRequest {
	return group.JoinRequest{
		Group: "g", MemberID: memberID, ClientID: "test", ClientHost: "/127.0.0.1", ProtocolType: "consumer",
		Protocols:      []metastore.GroupProtocol{{Name: "range", Metadata: []byte("meta-" + memberID)}},
		SessionTimeout: 10 * time.Second, RebalanceTimeout: 10 * time.Second, RequireKnownMemberID: true,
	}
}

// join goes through MEMBER_ID_REQUIRED and returns the member id.
func firstJoin(t *testing.T, c *group.Coordinator) string {
	t.Helper()
	_, err := c.Join(context.Background(), joinReq(""))
	var required *group.MemberIDRequiredError
	if !errors.As(err, &required) || required.MemberID == "" {
		t.Fatalf("first join: %v, want MEMBER_ID_REQUIRED with an id", err)
	}
	return required.MemberID
}

type joined struct {
	res group.JoinResult
	err error
}

func joinAsync(c *group.Coordinator, id string) <-chan joined {
	ch := make(chan joined, 1)
	go func() {
		res, err := c.Join(context.Background(), joinReq(id))
		ch <- joined{res, err}
	}()
	return ch
}

func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

func TestTwoMembersJoinSyncAndHeartbeat(t *testing.T) {
	_, _, c := newTestCoordinator(t)
	ctx := context.Background()

	a, b := firstJoin(t, c), firstJoin(t, c)
	ja, jb := joinAsync(c, a), joinAsync(c, b)
	ra, rb := wait(t, ja, "join a"), wait(t, jb, "join b")
	if ra.err != nil || rb.err != nil {
		t.Fatalf("joins: %v, %v", ra.err, rb.err)
	}
	if ra.res.Generation != 1 || rb.res.Generation != 1 || ra.res.Protocol != "range" || ra.res.Leader != rb.res.Leader {
		t.Fatalf("join results: %+v / %+v", ra.res, rb.res)
	}
	leader, follower := a, b
	leaderRes := ra.res
	if ra.res.Leader == b {
		leader, follower, leaderRes = b, a, rb.res
	}
	if len(leaderRes.Members) != 2 || string(leaderRes.Members[0].Metadata) != "meta-"+leaderRes.Members[0].MemberID {
		t.Fatalf("leader sees members %+v, want both with their metadata", leaderRes.Members)
	}

	// The follower's sync waits for the leader's assignment.
	fs := make(chan []byte, 1)
	go func() {
		got, err := c.Sync(ctx, group.SyncRequest{Group: "g", MemberID: follower, Generation: 1})
		if err != nil {
			t.Error(err)
		}
		fs <- got
	}()
	mine, err := c.Sync(ctx, group.SyncRequest{Group: "g", MemberID: leader, Generation: 1,
		Assignments: map[string][]byte{leader: []byte("p0"), follower: []byte("p1")}})
	if err != nil || string(mine) != "p0" {
		t.Fatalf("leader sync: %q, %v", mine, err)
	}
	if got := wait(t, fs, "follower sync"); string(got) != "p1" {
		t.Fatalf("follower got %q, want p1", got)
	}
	if err := c.Heartbeat(ctx, "g", follower, 1); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	if err := c.Heartbeat(ctx, "g", follower, 0); !errors.Is(err, group.ErrIllegalGeneration) {
		t.Fatalf("heartbeat with an old generation: %v", err)
	}
	if err := c.Heartbeat(ctx, "g", "nobody", 1); !errors.Is(err, group.ErrUnknownMemberID) {
		t.Fatalf("heartbeat of an unknown member: %v", err)
	}

	// Commits: members of the generation only; outsiders not while it has members.
	offs := []metastore.OffsetCommit{{Topic: "t", Partition: 0, Offset: 7, LeaderEpoch: -1}}
	if err := c.CommitOffsets(ctx, "g", leader, 1, offs); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if err := c.CommitOffsets(ctx, "g", leader, 0, offs); !errors.Is(err, group.ErrIllegalGeneration) {
		t.Fatalf("commit with an old generation: %v", err)
	}
	if err := c.CommitOffsets(ctx, "g", "", -1, offs); !errors.Is(err, group.ErrIllegalGeneration) {
		t.Fatalf("commit from outside a group with members: %v", err)
	}
	got, err := c.FetchOffsets(ctx, "g")
	if err != nil || len(got) != 1 || got[0].Offset != 7 {
		t.Fatalf("fetch offsets: %+v, %v", got, err)
	}
	if err := c.Delete(ctx, "g"); !errors.Is(err, group.ErrGroupNotEmpty) {
		t.Fatalf("delete of a group with members: %v", err)
	}
}

func TestExpiredMemberTriggersRebalance(t *testing.T) {
	_, clk, c := newTickedCoordinator(t)
	ctx := context.Background()
	a, b := firstJoin(t, c), firstJoin(t, c)
	ja, jb := joinAsync(c, a), joinAsync(c, b)
	ra := wait(t, ja, "join a")
	wait(t, jb, "join b")
	leader := ra.res.Leader
	other := a
	if leader == a {
		other = b
	}
	go c.Sync(ctx, group.SyncRequest{Group: "g", MemberID: other, Generation: 1})
	if _, err := c.Sync(ctx, group.SyncRequest{Group: "g", MemberID: leader, Generation: 1, Assignments: map[string][]byte{}}); err != nil {
		t.Fatal(err)
	}

	// The leader keeps heartbeating; the other goes silent past its session.
	for range 12 {
		clk.Advance(time.Second)
		err := c.Heartbeat(ctx, "g", leader, 1)
		if errors.Is(err, group.ErrRebalanceInProgress) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		c.Tick(ctx)
	}
	if err := c.Heartbeat(ctx, "g", leader, 1); !errors.Is(err, group.ErrRebalanceInProgress) {
		t.Fatalf("heartbeat after the other member expired: %v, want REBALANCE_IN_PROGRESS", err)
	}
	r := wait(t, joinAsync(c, leader), "rejoin")
	if r.err != nil || r.res.Generation != 2 || len(r.res.Members) != 1 {
		t.Fatalf("rejoin: %+v, %v; want generation 2 with one member", r.res, r.err)
	}
}

// A member that stops heartbeating is dropped once its session timeout has
// passed, not before, and the group it leaves empty is stored so.
func TestSessionExpiresOnlyAfterItsTimeout(t *testing.T) {
	store, clk, c := newTickedCoordinator(t)
	ctx := context.Background()
	id := firstJoin(t, c)
	r := wait(t, joinAsync(c, id), "join")
	if r.err != nil || r.res.Leader != id {
		t.Fatalf("join: %+v, %v; want to lead generation 1", r.res, r.err)
	}
	if _, err := c.Sync(ctx, group.SyncRequest{Group: "g", MemberID: id, Generation: 1,
		Assignments: map[string][]byte{id: []byte("all")}}); err != nil {
		t.Fatal(err)
	}
	session := joinReq(id).SessionTimeout

	// Sync renewed the session: it ends session after now, inclusive.
	clk.Advance(session)
	c.Tick(ctx)
	if d, err := c.Describe(ctx, "g"); err != nil || d.State != group.StateStable || len(d.Members) != 1 {
		t.Fatalf("at the session timeout: %+v, %v; want the member still in a stable group", d, err)
	}

	clk.Advance(time.Millisecond)
	c.Tick(ctx)
	if err := c.Heartbeat(ctx, "g", id, 1); !errors.Is(err, group.ErrUnknownMemberID) {
		t.Fatalf("heartbeat after the session timeout: %v, want UNKNOWN_MEMBER_ID", err)
	}
	if d, err := c.Describe(ctx, "g"); err != nil || d.State != group.StateEmpty || len(d.Members) != 0 {
		t.Fatalf("after the session timeout: %+v, %v; want an empty group", d, err)
	}
	// Tick stored the change before it returned.
	next := group.New(store, group.Config{Now: clk.Now, MinSessionTimeout: time.Second})
	if d, err := next.Describe(ctx, "g"); err != nil || d.State != group.StateEmpty || len(d.Members) != 0 {
		t.Fatalf("the stored group after the session timeout: %+v, %v; want it empty", d, err)
	}
}

// Another coordinator (the old one's broker died) continues the group from
// the metastore: same members, same generation, no rebalance.
func TestTakeOverFromMetastore(t *testing.T) {
	store, clk, first := newTestCoordinator(t)
	ctx := context.Background()
	a := firstJoin(t, first)
	r := wait(t, joinAsync(first, a), "join")
	if _, err := first.Sync(ctx, group.SyncRequest{Group: "g", MemberID: a, Generation: r.res.Generation,
		Assignments: map[string][]byte{a: []byte("all")}}); err != nil {
		t.Fatal(err)
	}

	second := startCoordinator(t, store, clk)
	if err := second.Heartbeat(ctx, "g", a, r.res.Generation); err != nil {
		t.Fatalf("heartbeat to the new coordinator: %v", err)
	}
	got, err := second.Sync(ctx, group.SyncRequest{Group: "g", MemberID: a, Generation: r.res.Generation})
	if err != nil || string(got) != "all" {
		t.Fatalf("assignment from the new coordinator: %q, %v", got, err)
	}
	if err := second.CommitOffsets(ctx, "g", a, r.res.Generation, []metastore.OffsetCommit{{Topic: "t", Offset: 3, LeaderEpoch: -1}}); err != nil {
		t.Fatalf("commit through the new coordinator: %v", err)
	}
	d, err := second.Describe(ctx, "g")
	if err != nil || d.State != group.StateStable || len(d.Members) != 1 {
		t.Fatalf("describe: %+v, %v", d, err)
	}
}

func TestLeaveEmptiesGroupAndAllowsDelete(t *testing.T) {
	store, _, c := newTestCoordinator(t)
	ctx := context.Background()
	a := firstJoin(t, c)
	r := wait(t, joinAsync(c, a), "join")
	if _, err := c.Sync(ctx, group.SyncRequest{Group: "g", MemberID: a, Generation: r.res.Generation, Assignments: map[string][]byte{}}); err != nil {
		t.Fatal(err)
	}
	if errs := c.Leave(ctx, "g", []string{a}, []string{""}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	d, _ := c.Describe(ctx, "g")
	if d.State != group.StateEmpty {
		t.Fatalf("state after the last member left: %s", d.State)
	}
	if err := c.CommitOffsets(ctx, "g", "", -1, []metastore.OffsetCommit{{Topic: "t", Offset: 1, LeaderEpoch: -1}}); err != nil {
		t.Fatalf("commit to an empty group: %v", err)
	}
	if err := c.Delete(ctx, "g"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if offs, err := store.FetchOffsets(ctx, "g"); err != nil || len(offs) != 0 {
		t.Fatalf("offsets after delete: %+v, %v", offs, err)
	}
	if err := c.Delete(ctx, "g"); !errors.Is(err, group.ErrGroupIDNotFound) {
		t.Fatalf("second delete: %v, want GROUP_ID_NOT_FOUND", err)
	}
}

// An idle member's auto-commit repeats the same offsets: they are not
// written again (the stored commit time stays), but a changed one is.
func TestUnchangedCommitIsNotWritten(t *testing.T) {
	store, clk, c := newTickedCoordinator(t)
	ctx := context.Background()
	m := stableMember(t, c)
	commit := func(offset int64) {
		t.Helper()
		if err := c.CommitOffsets(ctx, "g", m, 1, []metastore.OffsetCommit{{Topic: "t", Offset: offset, LeaderEpoch: -1}}); err != nil {
			t.Fatal(err)
		}
	}
	stored := func() metastore.OffsetCommit {
		t.Helper()
		offs, err := store.FetchOffsets(ctx, "g")
		if err != nil || len(offs) != 1 {
			t.Fatalf("stored offsets: %+v, %v", offs, err)
		}
		return offs[0]
	}
	commit(5)
	first := stored()
	clk.Advance(time.Second)
	commit(5)
	if again := stored(); !again.CommitTime.Equal(first.CommitTime) {
		t.Fatalf("unchanged commit was written again (commit time %v, then %v)", first.CommitTime, again.CommitTime)
	}
	commit(6)
	if moved := stored(); moved.Offset != 6 || !moved.CommitTime.After(first.CommitTime) {
		t.Fatalf("changed commit: %+v", moved)
	}
}

// stableMember makes one member join group "g" and sync: generation 1,
// Stable.
func stableMember(t *testing.T, c *group.Coordinator) string {
	t.Helper()
	m := firstJoin(t, c)
	if r := wait(t, joinAsync(c, m), "join"); r.err != nil || r.res.Generation != 1 {
		t.Fatalf("join: %+v, %v", r.res, r.err)
	}
	if _, err := c.Sync(context.Background(), group.SyncRequest{Group: "g", MemberID: m, Generation: 1,
		Assignments: map[string][]byte{m: []byte("all")}}); err != nil {
		t.Fatalf("sync: %v", err)
	}
	return m
}
