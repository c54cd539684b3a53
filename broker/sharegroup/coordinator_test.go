package sharegroup

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/metastore/metastoretest"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newTestCoordinator(t *testing.T, store Store, clk *clock, owns func(string) bool) *Coordinator {
	t.Helper()
	b, err := NewBounds(nil)
	if err != nil {
		t.Fatal(err)
	}
	b.MaxSize = 3
	return New(store, Config{
		Bounds: b,
		Partitions: func(topic string) (int32, bool) {
			return map[string]int32{"t": 2, "u": 1}[topic], topic == "t" || topic == "u"
		},
		Owns: owns,
		Now:  clk.Now,
	})
}

func join(t *testing.T, c *Coordinator, id string, topics ...string) HeartbeatResult {
	t.Helper()
	res, err := c.Heartbeat(t.Context(), HeartbeatRequest{Group: "g", MemberID: id, SubscribedTopicNames: topics, ClientID: "c"})
	if err != nil {
		t.Fatalf("join %s: %v", id, err)
	}
	return res
}

func beat(c *Coordinator, id string, epoch int32) (HeartbeatResult, error) {
	return c.Heartbeat(context.Background(), HeartbeatRequest{Group: "g", MemberID: id, MemberEpoch: epoch, ClientID: "c"})
}

func TestHeartbeatLifecycle(t *testing.T) {
	store := metastoretest.New()
	clk := &clock{now: time.Unix(1000, 0)}
	c := newTestCoordinator(t, store, clk, func(string) bool { return true })

	if _, err := beat(c, "a", 3); !errors.Is(err, ErrGroupIDNotFound) {
		t.Fatalf("heartbeat of an unknown group: %v, want ErrGroupIDNotFound", err)
	}
	if _, err := c.Heartbeat(t.Context(), HeartbeatRequest{Group: "g", MemberID: "a"}); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("join without topics: %v, want ErrInvalidRequest", err)
	}
	a := join(t, c, "a", "t")
	if a.MemberEpoch != 1 || !a.SendAssignment || !reflect.DeepEqual(a.Assignment, []metastore.TopicPartition{tp("t", 0), tp("t", 1)}) ||
		a.HeartbeatInterval != 5*time.Second {
		t.Fatalf("first join = %+v", a)
	}
	b := join(t, c, "b", "t")
	if b.MemberEpoch != 2 || !reflect.DeepEqual(b.Assignment, []metastore.TopicPartition{tp("t", 1)}) {
		t.Fatalf("second join = %+v", b)
	}
	// a's assignment shrank: it learns so at its next heartbeat, with the
	// new epoch; its old epoch is still accepted once.
	a2, err := beat(c, "a", 1)
	if err != nil || a2.MemberEpoch != 2 || !a2.SendAssignment || !reflect.DeepEqual(a2.Assignment, []metastore.TopicPartition{tp("t", 0)}) {
		t.Fatalf("a's heartbeat after b joined = %+v, %v", a2, err)
	}
	if again, err := beat(c, "a", 2); err != nil || again.SendAssignment {
		t.Fatalf("steady heartbeat = %+v, %v; want no assignment", again, err)
	}
	if _, err := beat(c, "a", 1); !errors.Is(err, ErrFencedMemberEpoch) {
		t.Fatalf("heartbeat with an old epoch: %v, want ErrFencedMemberEpoch", err)
	}
	if _, err := beat(c, "zz", 2); !errors.Is(err, ErrUnknownMemberID) {
		t.Fatalf("unknown member: %v, want ErrUnknownMemberID", err)
	}
	join(t, c, "c", "u")
	if _, err := c.Heartbeat(t.Context(), HeartbeatRequest{Group: "g", MemberID: "d", SubscribedTopicNames: []string{"t"}}); !errors.Is(err, ErrGroupMaxSizeReached) {
		t.Fatalf("fourth member: %v, want ErrGroupMaxSizeReached", err)
	}

	// Leaving hands the partition back.
	if res, err := beat(c, "b", LeaveEpoch); err != nil || res.MemberEpoch != LeaveEpoch {
		t.Fatalf("leave = %+v, %v", res, err)
	}
	if _, err := beat(c, "b", LeaveEpoch); !errors.Is(err, ErrUnknownMemberID) {
		t.Fatalf("second leave: %v, want ErrUnknownMemberID", err)
	}
	d, err := c.Describe(t.Context(), "g")
	if err != nil || len(d.Members) != 2 || State(d) != StateStable {
		t.Fatalf("Describe = %+v, %v", d, err)
	}
	if d.Members[0].MemberID != "a" || !reflect.DeepEqual(d.Members[0].Assignment, []metastore.TopicPartition{tp("t", 0), tp("t", 1)}) {
		t.Fatalf("a's target after b left = %+v", d.Members[0])
	}

	// Sessions: a keeps heartbeating, c does not.
	clk.Add(30 * time.Second)
	if _, err := beat(c, "a", d.Members[0].MemberEpoch); err != nil {
		t.Fatal(err)
	}
	clk.Add(20 * time.Second)
	c.Tick(t.Context())
	d, err = c.Describe(t.Context(), "g")
	if err != nil || len(d.Members) != 1 || d.Members[0].MemberID != "a" {
		t.Fatalf("after c's session ended: %+v, %v", d, err)
	}
	clk.Add(time.Minute)
	c.Tick(t.Context())
	d, err = c.Describe(t.Context(), "g")
	if err != nil || len(d.Members) != 0 || State(d) != StateEmpty {
		t.Fatalf("after every session ended: %+v, %v", d, err)
	}
}

func TestTakeoverRestoresMembers(t *testing.T) {
	store := metastoretest.New()
	clk := &clock{now: time.Unix(1000, 0)}
	var mu sync.Mutex
	owner := 1
	owns := func(me int) func(string) bool {
		return func(string) bool { mu.Lock(); defer mu.Unlock(); return owner == me }
	}
	c1 := newTestCoordinator(t, store, clk, owns(1))
	c2 := newTestCoordinator(t, store, clk, owns(2))
	a := join(t, c1, "a", "t")
	b := join(t, c1, "b", "t")

	mu.Lock()
	owner = 2
	mu.Unlock()
	if _, err := beat(c1, "a", a.MemberEpoch); !errors.Is(err, ErrNotCoordinator) {
		t.Fatalf("old coordinator: %v, want ErrNotCoordinator", err)
	}
	res, err := beat(c2, "b", b.MemberEpoch)
	if err != nil || res.MemberEpoch != b.MemberEpoch || res.SendAssignment {
		t.Fatalf("b at the new coordinator = %+v, %v; want the same epoch", res, err)
	}
	// The sessions restart at takeover: a, silent, expires there.
	clk.Add(40 * time.Second)
	if _, err := beat(c2, "b", b.MemberEpoch); err != nil {
		t.Fatal(err)
	}
	clk.Add(10 * time.Second)
	c2.Tick(t.Context())
	d, err := c2.Describe(t.Context(), "g")
	if err != nil || len(d.Members) != 1 || d.Members[0].MemberID != "b" {
		t.Fatalf("after a's session ended at the new coordinator: %+v, %v", d, err)
	}

	// A deposed coordinator that still believes it owns the group cannot
	// overwrite it.
	mu.Lock()
	owner = 1
	mu.Unlock()
	c1.Tick(t.Context()) // still holds the stale group
	if _, err := beat(c1, "a", a.MemberEpoch); err == nil {
		t.Fatal("deposed coordinator accepted a heartbeat of a removed member")
	}
}

func TestShareGroupIDOfAClassicGroup(t *testing.T) {
	store := metastoretest.New()
	if _, err := store.PutGroup(t.Context(), metastore.GroupMeta{Group: "g", State: metastore.GroupStateEmpty}, 0); err != nil {
		t.Fatal(err)
	}
	c := newTestCoordinator(t, store, &clock{now: time.Unix(1000, 0)}, func(string) bool { return true })
	if _, err := c.Heartbeat(t.Context(), HeartbeatRequest{Group: "g", MemberID: "a", SubscribedTopicNames: []string{"t"}}); !errors.Is(err, ErrGroupIDNotFound) {
		t.Fatalf("share member joining a classic group: %v, want ErrGroupIDNotFound", err)
	}
}

func TestListOnlyOwnedGroups(t *testing.T) {
	store := metastoretest.New()
	clk := &clock{now: time.Unix(1000, 0)}
	all := newTestCoordinator(t, store, clk, func(string) bool { return true })
	for _, g := range []string{"g", "h"} {
		if _, err := all.Heartbeat(t.Context(), HeartbeatRequest{Group: g, MemberID: "a", SubscribedTopicNames: []string{"t"}}); err != nil {
			t.Fatal(err)
		}
	}
	onlyH := newTestCoordinator(t, store, clk, func(name string) bool { return name == "h" })
	list, err := onlyH.List(t.Context())
	if err != nil || len(list) != 1 || list[0].Group != "h" || State(list[0]) != StateStable {
		t.Fatalf("List = %+v, %v; want only h", list, err)
	}
}

func TestUnknownGroupsAreNotKept(t *testing.T) {
	c := newTestCoordinator(t, metastoretest.New(), &clock{now: time.Unix(1000, 0)}, func(string) bool { return true })
	if _, err := c.Describe(t.Context(), "nope"); !errors.Is(err, ErrGroupIDNotFound) {
		t.Fatalf("Describe: %v", err)
	}
	if _, err := beat(c, "m", 4); !errors.Is(err, ErrGroupIDNotFound) {
		t.Fatalf("heartbeat: %v", err)
	}
	c.mu.Lock()
	n := len(c.groups)
	c.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d groups held after requests for groups that do not exist", n)
	}
}

func TestRunStopsAndForgetsGroups(t *testing.T) {
	c := newTestCoordinator(t, metastoretest.New(), &clock{now: time.Unix(1000, 0)}, func(string) bool { return true })
	join(t, c, "a", "t")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	// Concurrent requests while Run stops must not race with it.
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				beat(c, "a", 1)
			}
		}()
	}
	cancel()
	<-done
	wg.Wait()
	if d, err := c.Describe(t.Context(), "g"); err != nil || len(d.Members) != 1 {
		t.Fatalf("the group read back after Run stopped: %+v, %v", d, err)
	}
}

func TestOversizedSubscriptionIsRefused(t *testing.T) {
	c := newTestCoordinator(t, metastoretest.New(), &clock{now: time.Unix(1000, 0)}, func(string) bool { return true })
	a := join(t, c, "a", "t")
	var topics []string
	for i := range 20_000 {
		topics = append(topics, fmt.Sprintf("%060d", i))
	}
	if _, err := c.Heartbeat(t.Context(), HeartbeatRequest{Group: "g", MemberID: "b", SubscribedTopicNames: topics}); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("a subscription too large to store: %v, want ErrInvalidRequest", err)
	}
	if res, err := beat(c, "a", a.MemberEpoch); err != nil || res.MemberEpoch != a.MemberEpoch {
		t.Fatalf("the other member after the refusal: %+v, %v", res, err)
	}
}

// hangingStore is a store whose calls, once hang is set, block until their
// context ends, as etcd's do while it is unreachable.
type hangingStore struct {
	Store
	mu   sync.Mutex
	hang bool
}

func (s *hangingStore) wait(ctx context.Context) error {
	s.mu.Lock()
	hang := s.hang
	s.mu.Unlock()
	if !hang {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func (s *hangingStore) GetShareGroup(ctx context.Context, group string) (metastore.ShareGroupMeta, error) {
	if err := s.wait(ctx); err != nil {
		return metastore.ShareGroupMeta{}, err
	}
	return s.Store.GetShareGroup(ctx, group)
}

func (s *hangingStore) PutShareGroup(ctx context.Context, meta metastore.ShareGroupMeta, prev int64) (metastore.ShareGroupMeta, error) {
	if err := s.wait(ctx); err != nil {
		return metastore.ShareGroupMeta{}, err
	}
	return s.Store.PutShareGroup(ctx, meta, prev)
}

// A metastore that does not answer must not hold a group's heartbeats (nor
// the group's lock) for ever: each call is bounded, and the member is told
// COORDINATOR_NOT_AVAILABLE.
func TestHeartbeatBoundsMetastoreCalls(t *testing.T) {
	store := &hangingStore{Store: metastoretest.New()}
	clk := &clock{now: time.Unix(1000, 0)}
	c := newTestCoordinator(t, store, clk, func(string) bool { return true })
	c.cfg.StoreTimeout = 50 * time.Millisecond
	join(t, c, "a", "t")
	store.mu.Lock()
	store.hang = true
	store.mu.Unlock()

	done := make(chan error, 2)
	for _, id := range []string{"b", "c"} { // a store and, once dropped, a load
		go func() {
			_, err := c.Heartbeat(context.Background(), HeartbeatRequest{Group: "g", MemberID: id, SubscribedTopicNames: []string{"t"}})
			done <- err
		}()
	}
	for range 2 {
		select {
		case err := <-done:
			if !errors.Is(err, ErrCoordinatorNotAvailable) {
				t.Fatalf("heartbeat with the metastore hanging: %v, want coordinator not available", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a heartbeat still waits on a metastore that does not answer")
		}
	}
}
