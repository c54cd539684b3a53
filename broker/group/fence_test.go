package group_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/internal/fakeclock"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/metastore/metastoretest"
)

// recordingStore remembers every group state that was stored, in order, so a
// test can check what the coordinators made durable, not only what they
// answered.
type recordingStore struct {
	*metastoretest.Store
	mu     sync.Mutex
	stored []metastore.GroupMeta
}

func (s *recordingStore) PutGroup(ctx context.Context, meta metastore.GroupMeta, prev int64) (metastore.GroupMeta, error) {
	got, err := s.Store.PutGroup(ctx, meta, prev)
	if err == nil {
		s.mu.Lock()
		s.stored = append(s.stored, got)
		s.mu.Unlock()
	}
	return got, err
}

func (s *recordingStore) history() []metastore.GroupMeta {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.stored)
}

func memberIDs(meta metastore.GroupMeta) []string {
	var ids []string
	for _, m := range meta.Members {
		ids = append(ids, m.MemberID)
	}
	slices.Sort(ids)
	return ids
}

// checkGenerations fails the test if a stored generation went backwards or
// was stored twice with different members.
func checkGenerations(t *testing.T, history []metastore.GroupMeta) {
	t.Helper()
	seen := map[int32][]string{}
	var last int32 = -1
	for i, meta := range history {
		if meta.Generation < last {
			t.Errorf("stored state %d has generation %d after %d: %+v", i, meta.Generation, last, history)
		}
		last = meta.Generation
		ids := memberIDs(meta)
		if prev, ok := seen[meta.Generation]; ok && len(ids) > 0 && len(prev) > 0 && !slices.Equal(prev, ids) {
			t.Errorf("generation %d stored with members %v and then %v", meta.Generation, prev, ids)
		}
		if len(ids) > 0 {
			seen[meta.Generation] = ids
		}
	}
}

// The fault-injection timeline: coordinator A is paused; B takes the group
// over from the store and rebalances it to generation 2; A wakes and its
// tick finds the member's session expired. A must not write its state over
// B's, the live members keep generation 2, and A's generation cannot commit.
func TestStaleCoordinatorDoesNotOverwriteSuccessor(t *testing.T) {
	ctx := context.Background()
	store := &recordingStore{Store: metastoretest.New()}
	clkA := fakeclock.New(time.Unix(1_700_000_000, 0))
	clkB := fakeclock.New(time.Unix(1_700_000_000, 0))
	a := group.New(store, group.Config{Now: clkA.Now, MinSessionTimeout: time.Second})
	b := group.New(store, group.Config{Now: clkB.Now, MinSessionTimeout: time.Second})

	m1 := firstJoin(t, a)
	r := wait(t, joinAsync(a, m1), "join on A")
	if r.err != nil || r.res.Generation != 1 {
		t.Fatalf("join on A: %+v, %v; want generation 1", r.res, r.err)
	}
	if _, err := a.Sync(ctx, group.SyncRequest{Group: "g", MemberID: m1, Generation: 1,
		Assignments: map[string][]byte{m1: []byte("all")}}); err != nil {
		t.Fatal(err)
	}

	// A pauses. B takes the group over (m1's heartbeat finds it there) and a
	// second member joins: generation 2.
	clkB.Advance(10 * time.Second)
	if err := b.Heartbeat(ctx, "g", m1, 1); err != nil {
		t.Fatalf("heartbeat to B: %v", err)
	}
	m2 := firstJoin(t, b)
	j2 := joinAsync(b, m2)
	await.True(t, await.DefaultTimeout, "m1 told to rejoin", func() bool {
		return errors.Is(b.Heartbeat(ctx, "g", m1, 1), group.ErrRebalanceInProgress)
	})
	j1 := joinAsync(b, m1)
	r1, r2 := wait(t, j1, "m1 joins B"), wait(t, j2, "m2 joins B")
	if r1.err != nil || r2.err != nil || r1.res.Generation != 2 || r2.res.Generation != 2 {
		t.Fatalf("joins on B: %+v %v / %+v %v; want generation 2", r1.res, r1.err, r2.res, r2.err)
	}
	if meta, err := store.GetGroup(ctx, "g"); err != nil || meta.Generation != 2 {
		t.Errorf("generation 2 was handed out before it was stored: stored %+v, %v", meta, err)
	}
	leader, follower := r1.res.Leader, m2
	if leader == m2 {
		follower = m1
	}
	fs := make(chan error, 1)
	go func() {
		_, err := b.Sync(ctx, group.SyncRequest{Group: "g", MemberID: follower, Generation: 2})
		fs <- err
	}()
	if _, err := b.Sync(ctx, group.SyncRequest{Group: "g", MemberID: leader, Generation: 2,
		Assignments: map[string][]byte{m1: []byte("p0"), m2: []byte("p1")}}); err != nil {
		t.Fatalf("leader's sync on B: %v", err)
	}
	if err := wait(t, fs, "follower's sync on B"); err != nil {
		t.Fatalf("follower's sync on B: %v", err)
	}
	before, err := store.GetGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}

	// A wakes past m1's session on its own clock and ticks before anything
	// tells it that it lost the group.
	clkA.Advance(11 * time.Second)
	a.Tick(ctx)

	after, err := store.GetGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if after.Revision != before.Revision || after.Generation != 2 || !slices.Equal(memberIDs(after), memberIDs(before)) {
		t.Fatalf("the stale coordinator wrote the group: before %+v, after %+v", before, after)
	}
	for _, m := range []string{m1, m2} {
		if err := b.Heartbeat(ctx, "g", m, 2); err != nil {
			t.Fatalf("member %s of generation 2 on B after A's tick: %v", m, err)
		}
	}
	if err := a.Heartbeat(ctx, "g", m1, 1); err == nil {
		t.Fatal("A still accepts generation 1")
	}
	offs := []metastore.OffsetCommit{{Topic: "t", Partition: 0, Offset: 42, LeaderEpoch: -1}}
	if err := a.CommitOffsets(ctx, "g", m1, 1, offs); err == nil {
		t.Fatal("A accepted a commit from generation 1")
	}
	if got, err := store.FetchOffsets(ctx, "g"); err != nil || len(got) != 0 {
		t.Fatalf("a fenced commit landed: %+v, %v", got, err)
	}
	if err := b.CommitOffsets(ctx, "g", m1, 2, offs); err != nil {
		t.Fatalf("commit of the live generation: %v", err)
	}
	checkGenerations(t, store.history())
}

// conflictingStore makes the next PutGroup lose its compare-and-swap, as if
// another coordinator had written the group just before.
type conflictingStore struct {
	*metastoretest.Store
	mu       sync.Mutex
	conflict bool
}

func (s *conflictingStore) PutGroup(ctx context.Context, meta metastore.GroupMeta, prev int64) (metastore.GroupMeta, error) {
	s.mu.Lock()
	conflict := s.conflict
	s.conflict = false
	s.mu.Unlock()
	if conflict {
		// The other coordinator's write: same state, a newer revision.
		cur, err := s.Store.GetGroup(ctx, meta.Group)
		if errors.Is(err, metastore.ErrGroupNotFound) {
			cur, prev = metastore.GroupMeta{Group: meta.Group, State: group.StateEmpty}, 0
		} else if err != nil {
			return metastore.GroupMeta{}, err
		} else {
			prev = cur.Revision
		}
		cur.Generation += 7
		if _, err := s.Store.PutGroup(ctx, cur, prev); err != nil {
			return metastore.GroupMeta{}, err
		}
	}
	return s.Store.PutGroup(ctx, meta, prev)
}

// A join phase whose new generation cannot be stored hands out nothing: the
// members are told to find the coordinator again, and the coordinator
// continues from what the store holds.
func TestGenerationHandedOutOnlyOnceStored(t *testing.T) {
	ctx := context.Background()
	store := &conflictingStore{Store: metastoretest.New()}
	clk := fakeclock.New(time.Unix(1_700_000_000, 0))
	c := group.New(store, group.Config{Now: clk.Now, MinSessionTimeout: time.Second})

	id := firstJoin(t, c)
	store.mu.Lock()
	store.conflict = true
	store.mu.Unlock()
	r := wait(t, joinAsync(c, id), "join")
	if !errors.Is(r.err, group.ErrNotCoordinator) {
		t.Fatalf("join whose generation lost the compare-and-swap: %+v, %v; want NOT_COORDINATOR", r.res, r.err)
	}
	stored, err := store.GetGroup(ctx, "g")
	if err != nil || stored.Generation != 7 {
		t.Fatalf("stored %+v, %v; want the other coordinator's generation 7 left alone", stored, err)
	}
	// The member finds the coordinator again and joins; the generation
	// follows the stored one.
	id = firstJoin(t, c)
	r = wait(t, joinAsync(c, id), "join again")
	if r.err != nil || r.res.Generation != 8 {
		t.Fatalf("join again: %+v, %v; want generation 8", r.res, r.err)
	}
	if stored, err := store.GetGroup(ctx, "g"); err != nil || stored.Generation != 8 {
		t.Fatalf("stored %+v, %v; want generation 8 stored before it was handed out", stored, err)
	}
}

// A leader's SyncGroup whose state cannot be stored does not hand out the
// assignment.
func TestSyncThatLosesTheStoreStepsDown(t *testing.T) {
	ctx := context.Background()
	store := &conflictingStore{Store: metastoretest.New()}
	clk := fakeclock.New(time.Unix(1_700_000_000, 0))
	c := group.New(store, group.Config{Now: clk.Now, MinSessionTimeout: time.Second})
	id := firstJoin(t, c)
	r := wait(t, joinAsync(c, id), "join")
	if r.err != nil {
		t.Fatal(r.err)
	}
	store.mu.Lock()
	store.conflict = true
	store.mu.Unlock()
	if a, err := c.Sync(ctx, group.SyncRequest{Group: "g", MemberID: id, Generation: r.res.Generation,
		Assignments: map[string][]byte{id: []byte("all")}}); !errors.Is(err, group.ErrNotCoordinator) {
		t.Fatalf("sync that lost the compare-and-swap: %q, %v; want NOT_COORDINATOR", a, err)
	}
	// Read back from the store, the generation is the other coordinator's.
	if err := c.Heartbeat(ctx, "g", id, r.res.Generation); !errors.Is(err, group.ErrIllegalGeneration) {
		t.Fatalf("heartbeat after stepping down: %v, want ILLEGAL_GENERATION", err)
	}
}

// A generation stored when its join phase ended, but whose leader never
// synced, is taken over as a rebalance: the members join again rather than
// carry on without assignments.
func TestTakeOverOfUnsyncedGeneration(t *testing.T) {
	ctx := context.Background()
	store := metastoretest.New()
	clk := fakeclock.New(time.Unix(1_700_000_000, 0))
	first := group.New(store, group.Config{Now: clk.Now, MinSessionTimeout: time.Second})
	id := firstJoin(t, first)
	r := wait(t, joinAsync(first, id), "join")
	if r.err != nil || r.res.Generation != 1 {
		t.Fatalf("join: %+v, %v", r.res, r.err)
	}
	second := group.New(store, group.Config{Now: clk.Now, MinSessionTimeout: time.Second})
	if err := second.Heartbeat(ctx, "g", id, 1); !errors.Is(err, group.ErrRebalanceInProgress) {
		t.Fatalf("heartbeat to the new coordinator: %v, want REBALANCE_IN_PROGRESS", err)
	}
	if _, err := second.Sync(ctx, group.SyncRequest{Group: "g", MemberID: id, Generation: 1}); !errors.Is(err, group.ErrRebalanceInProgress) {
		t.Fatalf("sync to the new coordinator: %v, want REBALANCE_IN_PROGRESS", err)
	}
	r = wait(t, joinAsync(second, id), "rejoin")
	if r.err != nil || r.res.Generation != 2 {
		t.Fatalf("rejoin: %+v, %v; want generation 2", r.res, r.err)
	}
}
