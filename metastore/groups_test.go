package metastore

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ms is a time at millisecond precision, as the store keeps it.
func ms(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }

func fetchOffsets(t *testing.T, s *Store, group string) []OffsetCommit {
	t.Helper()
	got, err := s.FetchOffsets(testContext(t), group)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func putGroup(t *testing.T, s *Store, meta GroupMeta, prev int64) GroupMeta {
	t.Helper()
	stored, err := s.PutGroup(testContext(t), meta, prev)
	if err != nil {
		t.Fatal(err)
	}
	return stored
}

func commitOffsets(t *testing.T, s *Store, group, memberID string, generation int32, offsets ...OffsetCommit) {
	t.Helper()
	if err := s.CommitOffsets(testContext(t), group, memberID, generation, offsets); err != nil {
		t.Fatal(err)
	}
}

func listGroupNames(t *testing.T, s *Store) []string {
	t.Helper()
	groups, err := s.ListGroups(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range groups {
		names = append(names, g.Group)
	}
	return names
}

func TestCommitFetchOffsetsRoundTrip(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	at := ms(time.Now().Add(-time.Minute))
	in := []OffsetCommit{
		{Topic: "orders", Partition: 10, Offset: 1000, LeaderEpoch: 3, Metadata: "m10", CommitTime: at},
		{Topic: "orders", Partition: 2, Offset: 200, LeaderEpoch: -1, CommitTime: at},
		{Topic: "audit", Partition: 0, Offset: 7, LeaderEpoch: 0, Metadata: `{"json": "x"}`, CommitTime: at.Add(time.Second)},
	}
	if err := s.CommitOffsets(ctx, "g", "", -1, in); err != nil {
		t.Fatal(err)
	}
	want := []OffsetCommit{in[2], in[1], in[0]} // by topic, then partition numerically
	if got := fetchOffsets(t, s, "g"); !reflect.DeepEqual(got, want) {
		t.Fatalf("fetched %+v\nwant %+v", got, want)
	}

	// A later commit overwrites; a zero CommitTime is now; of a partition
	// listed twice the later entry wins.
	before := time.Now()
	commitOffsets(t, s, "g", "", -1,
		OffsetCommit{Topic: "orders", Partition: 2, Offset: 250, LeaderEpoch: 4, Metadata: "first"},
		OffsetCommit{Topic: "orders", Partition: 2, Offset: 300, LeaderEpoch: 4, Metadata: "second"})
	got := fetchOffsets(t, s, "g")
	if len(got) != 3 {
		t.Fatalf("%d offsets after overwrite, want 3", len(got))
	}
	o := got[1]
	if o.Offset != 300 || o.LeaderEpoch != 4 || o.Metadata != "second" {
		t.Errorf("overwritten offset is %+v", o)
	}
	if o.CommitTime.Before(ms(before)) || o.CommitTime.After(time.Now()) {
		t.Errorf("zero commit time stored as %v, want about %v", o.CommitTime, before)
	}

	if got := fetchOffsets(t, s, "other"); len(got) != 0 {
		t.Errorf("unknown group has offsets %+v", got)
	}
	for _, bad := range []OffsetCommit{{Topic: "", Partition: 0}, {Topic: "t", Partition: -1}} {
		if err := s.CommitOffsets(ctx, "g", "", -1, []OffsetCommit{bad}); err == nil {
			t.Errorf("commit of %+v accepted", bad)
		}
	}
	if err := s.CommitOffsets(ctx, "", "", -1, in); err == nil {
		t.Error("commit for empty group id accepted")
	}
}

// A commit of more offsets than one transaction may hold is stored
// completely, in transactions of groupMaxTxnOps written in order.
func TestCommitOffsetsAboveMaxTxnOps(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	putGroup(t, s, GroupMeta{Group: "big", Generation: 1, State: "Stable", Members: []GroupMember{{MemberID: "m"}}}, 0)
	const n = 300
	in := make([]OffsetCommit, n)
	for i := range in {
		in[i] = OffsetCommit{Topic: "t", Partition: int32(i), Offset: int64(i) * 10, LeaderEpoch: 1, CommitTime: ms(time.Now())}
	}
	if err := s.CommitOffsets(ctx, "big", "m", 1, in); err != nil {
		t.Fatal(err)
	}
	got := fetchOffsets(t, s, "big")
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("fetched %d offsets, want %d equal to the committed ones", len(got), n)
	}

	resp, err := s.client.Get(ctx, s.groupOffsetsPrefix("big"), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	revs := map[int64]int{}
	for _, kv := range resp.Kvs {
		revs[kv.ModRevision]++
	}
	wantTxns := (n + groupMaxTxnOps - 1) / groupMaxTxnOps
	if len(revs) != wantTxns {
		t.Errorf("offsets written in %d transactions, want %d", len(revs), wantTxns)
	}
	for rev, count := range revs {
		if count > groupMaxTxnOps {
			t.Errorf("transaction at revision %d wrote %d offsets", rev, count)
		}
	}

	// Fenced by a stale generation, the first transaction fails and
	// nothing is stored.
	stale := make([]OffsetCommit, n)
	for i := range stale {
		stale[i] = OffsetCommit{Topic: "t", Partition: int32(i), Offset: -5}
	}
	if err := s.CommitOffsets(ctx, "big", "m", 0, stale); !errors.Is(err, ErrGenerationMismatch) {
		t.Fatalf("stale large commit: err = %v, want ErrGenerationMismatch", err)
	}
	if got := fetchOffsets(t, s, "big"); !reflect.DeepEqual(got, in) {
		t.Error("stale large commit changed offsets")
	}
}

// Offsets with large metadata are written in transactions that etcd
// accepts (it refuses requests over 1.5 MiB by default): offset metadata
// may be up to 1 MiB each.
func TestCommitOffsetsSplitByBytes(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	const n = 6
	in := make([]OffsetCommit, n)
	for i := range in {
		in[i] = OffsetCommit{Topic: "t", Partition: int32(i), Offset: int64(i), LeaderEpoch: -1,
			Metadata: strings.Repeat(string(rune('a'+i)), 700<<10), CommitTime: ms(time.Now())}
	}
	if err := s.CommitOffsets(ctx, "large", "", -1, in); err != nil {
		t.Fatalf("commit of %d offsets with 700 KiB of metadata each: %v", n, err)
	}
	if got := fetchOffsets(t, s, "large"); !reflect.DeepEqual(got, in) {
		t.Fatalf("fetched %d offsets, want the %d committed", len(got), n)
	}
}

func TestCommitOffsetsGenerationFencing(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	one := []OffsetCommit{{Topic: "t", Partition: 0, Offset: 42, LeaderEpoch: -1}}

	// No group yet: a member's commit has no generation to match.
	if err := s.CommitOffsets(ctx, "g", "m", 0, one); !errors.Is(err, ErrGenerationMismatch) {
		t.Fatalf("commit to group without generation: err = %v, want ErrGenerationMismatch", err)
	}

	putGroup(t, s, GroupMeta{Group: "g", ProtocolType: "consumer", Generation: 5, State: "Stable", Members: []GroupMember{{MemberID: "m"}}}, 0)
	err := s.CommitOffsets(ctx, "g", "m", 4, one)
	if !errors.Is(err, ErrGenerationMismatch) {
		t.Fatalf("commit with generation 4: err = %v, want ErrGenerationMismatch", err)
	}
	if !strings.Contains(err.Error(), "stored generation 5") {
		t.Errorf("error %q does not name the stored generation", err)
	}
	if got := fetchOffsets(t, s, "g"); len(got) != 0 {
		t.Fatalf("failed commit stored %+v", got)
	}

	if err := s.CommitOffsets(ctx, "g", "other", 5, one); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("commit of a member not in generation 5: err = %v, want ErrUnknownMember", err)
	}
	commitOffsets(t, s, "g", "m", 5, one...)
	if got := fetchOffsets(t, s, "g"); len(got) != 1 || got[0].Offset != 42 {
		t.Fatalf("after commit with generation 5: %+v", got)
	}
	commitOffsets(t, s, "g", "", -1, OffsetCommit{Topic: "t", Partition: 0, Offset: 43, LeaderEpoch: -1})
	if got := fetchOffsets(t, s, "g"); len(got) != 1 || got[0].Offset != 43 {
		t.Fatalf("after commit without generation: %+v", got)
	}
}

func TestPutGroupRoundTripAndConflict(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	if _, err := s.GetGroup(ctx, "g"); !errors.Is(err, ErrGroupNotFound) {
		t.Fatalf("get missing group: err = %v, want ErrGroupNotFound", err)
	}
	meta := GroupMeta{
		Group:        "g",
		ProtocolType: "consumer",
		Protocol:     "cooperative-sticky",
		Generation:   3,
		Leader:       "m1",
		Members: []GroupMember{
			{
				MemberID: "m1", InstanceID: "i1", ClientID: "c1", ClientHost: "/10.0.0.1",
				SessionTimeoutMs: 45000, RebalanceTimeoutMs: 300000,
				Protocols:  []GroupProtocol{{Name: "cooperative-sticky", Metadata: []byte{0, 1, 2}}, {Name: "range", Metadata: []byte{3}}},
				Assignment: []byte{9, 8, 7},
			},
			{MemberID: "m2", SessionTimeoutMs: 10000, RebalanceTimeoutMs: 60000, Protocols: []GroupProtocol{{Name: "range"}}},
		},
		State:     "Stable",
		UpdatedAt: time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC),
	}
	first := putGroup(t, s, meta, 0)
	if first.Revision == 0 || !first.UpdatedAt.Equal(ms(meta.UpdatedAt)) {
		t.Errorf("stored meta has revision %d, updated at %v", first.Revision, first.UpdatedAt)
	}
	got, err := s.GetGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, first) {
		t.Fatalf("read back %+v\nwant %+v", got, first)
	}

	// Creating again fails, and returns the current meta.
	current, err := s.PutGroup(ctx, meta, 0)
	if !errors.Is(err, ErrConflict) || current.Revision != first.Revision {
		t.Fatalf("second create: err = %v, revision %d; want ErrConflict, %d", err, current.Revision, first.Revision)
	}
	next := first
	next.Generation, next.State, next.UpdatedAt = 4, "PreparingRebalance", time.Time{}
	second := putGroup(t, s, next, first.Revision)
	if second.Revision <= first.Revision || second.UpdatedAt.IsZero() {
		t.Errorf("update: revision %d, updated at %v", second.Revision, second.UpdatedAt)
	}
	if _, err := s.PutGroup(ctx, next, first.Revision); !errors.Is(err, ErrConflict) {
		t.Fatalf("update with stale revision: err = %v, want ErrConflict", err)
	}
	// The generation key follows the meta.
	if err := s.CommitOffsets(ctx, "g", "m1", 4, []OffsetCommit{{Topic: "t"}}); err != nil {
		t.Errorf("commit with the new generation: %v", err)
	}
	if err := s.CommitOffsets(ctx, "g", "m1", 3, []OffsetCommit{{Topic: "t"}}); !errors.Is(err, ErrGenerationMismatch) {
		t.Errorf("commit with the old generation: err = %v, want ErrGenerationMismatch", err)
	}

	if err := s.DeleteGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	current, err = s.PutGroup(ctx, next, second.Revision)
	if !errors.Is(err, ErrConflict) || current.Revision != 0 {
		t.Fatalf("update of deleted group: err = %v, revision %d; want ErrConflict, 0", err, current.Revision)
	}
	for _, bad := range []GroupMeta{{Group: ""}, {Group: "g", Generation: -1}} {
		if _, err := s.PutGroup(ctx, bad, 0); err == nil {
			t.Errorf("PutGroup(%+v) accepted", bad)
		}
	}
}

// Of coordinators racing to update a group from the same revision, one wins.
func TestPutGroupConcurrentOneWins(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	base := putGroup(t, s, GroupMeta{Group: "g", State: "Empty"}, 0)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.PutGroup(ctx, GroupMeta{Group: "g", Generation: int32(i + 1), State: "Stable"}, base.Revision)
		})
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, ErrConflict):
			t.Errorf("unexpected error %v", err)
		}
	}
	if wins != 1 {
		t.Errorf("%d writers won, want 1", wins)
	}
}

// Group names are escaped so that no group's keys are under another's
// prefix: "a/b" is not in "a", and "a%2Fb" (the escape of "a/b") is its own
// group.
func TestGroupNamesEscaped(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	names := []string{"a", "a/b", "a%2Fb", "a b%/c", "ä?#", "a/"}
	for i, name := range names {
		commitOffsets(t, s, name, "", -1, OffsetCommit{Topic: "t/x y", Partition: int32(i), Offset: int64(i)})
	}
	putGroup(t, s, GroupMeta{Group: "a/b", Generation: 1, State: "Stable"}, 0)

	want := slices.Sorted(slices.Values(names))
	if got := listGroupNames(t, s); !slices.Equal(got, want) {
		t.Fatalf("listed %q, want %q", got, want)
	}
	for i, name := range names {
		got := fetchOffsets(t, s, name)
		if len(got) != 1 || got[0].Partition != int32(i) || got[0].Topic != "t/x y" {
			t.Errorf("group %q has offsets %+v", name, got)
		}
	}

	if err := s.DeleteGroup(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if got := fetchOffsets(t, s, "a"); len(got) != 0 {
		t.Errorf("deleted group has offsets %+v", got)
	}
	want = slices.DeleteFunc(want, func(n string) bool { return n == "a" })
	if got := listGroupNames(t, s); !slices.Equal(got, want) {
		t.Fatalf("after deleting %q listed %q, want %q", "a", got, want)
	}
	if _, err := s.GetGroup(ctx, "a/b"); err != nil {
		t.Errorf("group a/b lost its meta: %v", err)
	}
	for i, name := range names[1:] {
		if got := fetchOffsets(t, s, name); len(got) != 1 || got[0].Partition != int32(i+1) {
			t.Errorf("after deleting %q, group %q has offsets %+v", "a", name, got)
		}
	}
}

func TestDeleteGroupRemovesEverything(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	putGroup(t, s, GroupMeta{Group: "g", Generation: 2, State: "Stable"}, 0)
	offsets := make([]OffsetCommit, 200)
	for i := range offsets {
		offsets[i] = OffsetCommit{Topic: fmt.Sprintf("t%d", i%3), Partition: int32(i)}
	}
	commitOffsets(t, s, "g", "", -1, offsets...)
	commitOffsets(t, s, "g2", "", -1, OffsetCommit{Topic: "t"})

	if err := s.DeleteGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	resp, err := s.client.Get(ctx, s.groupPrefix("g"), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != 0 {
		t.Errorf("%d keys left of the deleted group", resp.Count)
	}
	if _, err := s.GetGroup(ctx, "g"); !errors.Is(err, ErrGroupNotFound) {
		t.Errorf("get deleted group: err = %v, want ErrGroupNotFound", err)
	}
	if err := s.DeleteGroup(ctx, "g"); !errors.Is(err, ErrGroupNotFound) {
		t.Errorf("delete again: err = %v, want ErrGroupNotFound", err)
	}
	if got := listGroupNames(t, s); !slices.Equal(got, []string{"g2"}) {
		t.Errorf("listed %q, want [g2]", got)
	}
}

func TestDeleteOffsets(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	commitOffsets(t, s, "g", "", -1,
		OffsetCommit{Topic: "t1", Partition: 0}, OffsetCommit{Topic: "t1", Partition: 1},
		OffsetCommit{Topic: "t1", Partition: 2}, OffsetCommit{Topic: "t10", Partition: 0},
		OffsetCommit{Topic: "t2", Partition: 0})
	if err := s.DeleteOffsets(ctx, "g", "t1", []int32{2, 0, 0, 7}); err != nil {
		t.Fatal(err)
	}
	left := func() []string {
		var l []string
		for _, o := range fetchOffsets(t, s, "g") {
			l = append(l, fmt.Sprintf("%s-%d", o.Topic, o.Partition))
		}
		return l
	}
	if got, want := left(), []string{"t1-1", "t10-0", "t2-0"}; !slices.Equal(got, want) {
		t.Fatalf("left %q, want %q", got, want)
	}
	// No partitions: all of the topic's, and not those of a topic whose
	// name it prefixes.
	if err := s.DeleteOffsets(ctx, "g", "t1", nil); err != nil {
		t.Fatal(err)
	}
	if got, want := left(), []string{"t10-0", "t2-0"}; !slices.Equal(got, want) {
		t.Fatalf("left %q, want %q", got, want)
	}
	if err := s.DeleteOffsets(ctx, "g", "t2", []int32{-1}); err == nil {
		t.Error("negative partition accepted")
	}
}

func TestListGroupsIncludesOffsetOnlyGroups(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	stable := putGroup(t, s, GroupMeta{Group: "m-stable", ProtocolType: "consumer", Generation: 3, State: "Stable", Leader: "x"}, 0)
	// Enough offsets in one group that the scan spans pages.
	offsets := make([]OffsetCommit, groupScanPage+50)
	for i := range offsets {
		offsets[i] = OffsetCommit{Topic: "t", Partition: int32(i)}
	}
	commitOffsets(t, s, "m-stable", "", -1, offsets...)
	commitOffsets(t, s, "o-only", "", -1, OffsetCommit{Topic: "t", Partition: 0, Offset: 5})
	commitOffsets(t, s, "a-first", "", -1, OffsetCommit{Topic: "t", Partition: 0, Offset: 5})

	groups, err := s.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []GroupMeta{
		{Group: "a-first", State: "Empty"},
		stable,
		{Group: "o-only", State: "Empty"},
	}
	if !reflect.DeepEqual(groups, want) {
		t.Fatalf("listed %+v\nwant %+v", groups, want)
	}

	// A group whose meta is gone but whose generation key is left reports
	// that generation.
	if _, err := s.client.Put(ctx, s.groupGenerationKey("o-only"), "7"); err != nil {
		t.Fatal(err)
	}
	groups, err = s.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if g := groups[2]; g.Group != "o-only" || g.Generation != 7 || g.State != "Empty" {
		t.Errorf("offset-only group listed as %+v", g)
	}
}

func TestExpireGroupOffsets(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	now := time.Now()
	retention := time.Hour
	old, recent := now.Add(-2*time.Hour), now.Add(-time.Minute)
	at := func(t time.Time) OffsetCommit { return OffsetCommit{Topic: "t", CommitTime: t} }

	commitOffsets(t, s, "old-offsets-only", "", -1, at(old), OffsetCommit{Topic: "u", CommitTime: old})
	putGroup(t, s, GroupMeta{Group: "old-empty", State: "Empty", Generation: 4, UpdatedAt: old}, 0)
	commitOffsets(t, s, "old-empty", "", -1, at(old))
	putGroup(t, s, GroupMeta{Group: "old-dead-no-offsets", State: "Dead", UpdatedAt: old}, 0)
	putGroup(t, s, GroupMeta{Group: "old-stable", State: "Stable", Generation: 1, UpdatedAt: old}, 0)
	commitOffsets(t, s, "old-stable", "", -1, at(old))
	commitOffsets(t, s, "recent-commit", "", -1, at(old), OffsetCommit{Topic: "t", Partition: 1, CommitTime: recent})
	putGroup(t, s, GroupMeta{Group: "recently-emptied", State: "Empty", UpdatedAt: recent}, 0)
	commitOffsets(t, s, "recently-emptied", "", -1, at(old))

	expired, err := s.ExpireGroupOffsets(ctx, now, retention)
	if err != nil {
		t.Fatal(err)
	}
	wantExpired := []string{"old-dead-no-offsets", "old-empty", "old-offsets-only"}
	if !slices.Equal(expired, wantExpired) {
		t.Fatalf("expired %q, want %q", expired, wantExpired)
	}
	if got, want := listGroupNames(t, s), []string{"old-stable", "recent-commit", "recently-emptied"}; !slices.Equal(got, want) {
		t.Fatalf("left %q, want %q", got, want)
	}
	for _, g := range []string{"old-stable", "recent-commit", "recently-emptied"} {
		if len(fetchOffsets(t, s, g)) == 0 {
			t.Errorf("group %q lost its offsets", g)
		}
	}
	if _, err := s.GetGroup(ctx, "old-empty"); !errors.Is(err, ErrGroupNotFound) {
		t.Errorf("expired group still has meta: %v", err)
	}
	if expired, err := s.ExpireGroupOffsets(ctx, now, retention); err != nil || len(expired) != 0 {
		t.Errorf("second run expired %q, %v", expired, err)
	}
	if _, err := s.ExpireGroupOffsets(ctx, now, 0); err == nil {
		t.Error("zero retention accepted")
	}
}

// A group written after expiry read it is not deleted.
func TestExpireGuardsAgainstChanges(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	commitOffsets(t, s, "g", "", -1, OffsetCommit{Topic: "t", Partition: 0})
	resp, err := s.client.Get(ctx, s.groupsPrefix(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	readRev := resp.Header.Revision

	commitOffsets(t, s, "g", "", -1, OffsetCommit{Topic: "t", Partition: 1}) // a new key
	if deleted, err := s.deleteGroupUnchangedSince(ctx, "g", readRev); err != nil || deleted {
		t.Fatalf("deleted = %v, %v after a new commit; want false", deleted, err)
	}
	readRev++
	commitOffsets(t, s, "g", "", -1, OffsetCommit{Topic: "t", Partition: 0, Offset: 1}) // an overwrite
	if deleted, err := s.deleteGroupUnchangedSince(ctx, "g", readRev); err != nil || deleted {
		t.Fatalf("deleted = %v, %v after an overwrite; want false", deleted, err)
	}
	if got := fetchOffsets(t, s, "g"); len(got) != 2 {
		t.Fatalf("group has %d offsets, want 2", len(got))
	}
	if deleted, err := s.deleteGroupUnchangedSince(ctx, "g", readRev+1); err != nil || !deleted {
		t.Fatalf("deleted = %v, %v at the current revision; want true", deleted, err)
	}
}

func TestGroupsCorruptValues(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	put := func(key, val string) {
		t.Helper()
		if _, err := s.client.Put(ctx, key, val); err != nil {
			t.Fatal(err)
		}
	}
	wantKeyErr := func(what string, err error, key string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: err = %v, want an error naming %q", what, err, key)
		}
	}
	old := time.Now().Add(-48 * time.Hour)
	commitOffsets(t, s, "fine", "", -1, OffsetCommit{Topic: "t", CommitTime: old})

	metaKey := s.groupMetaKey("bad meta")
	put(metaKey, "{not json")
	_, err := s.GetGroup(ctx, "bad meta")
	wantKeyErr("GetGroup", err, metaKey)
	_, err = s.ListGroups(ctx)
	wantKeyErr("ListGroups", err, metaKey)
	_, err = s.PutGroup(ctx, GroupMeta{Group: "bad meta"}, 1)
	wantKeyErr("PutGroup", err, metaKey)

	offsetKey := s.groupOffsetKey("bad offset", "t", 0)
	put(offsetKey, `{"o":"x"}`)
	_, err = s.FetchOffsets(ctx, "bad offset")
	wantKeyErr("FetchOffsets", err, offsetKey)
	badPartition := s.groupTopicOffsetsPrefix("bad partition", "t") + "x"
	put(badPartition, `{"o":1}`)
	_, err = s.FetchOffsets(ctx, "bad partition")
	wantKeyErr("FetchOffsets bad partition", err, badPartition)

	// Expiry leaves damaged groups alone, reports them, and expires the
	// others.
	expired, err := s.ExpireGroupOffsets(ctx, time.Now(), time.Hour)
	wantKeyErr("ExpireGroupOffsets", err, metaKey)
	wantKeyErr("ExpireGroupOffsets", err, offsetKey)
	if !slices.Equal(expired, []string{"fine"}) {
		t.Errorf("expired %q, want [fine]", expired)
	}

	if err := s.DeleteGroup(ctx, "bad meta"); err != nil {
		t.Fatal(err)
	}
	genKey := s.groupGenerationKey("bad gen")
	put(genKey, "five")
	_, err = s.ListGroups(ctx)
	wantKeyErr("ListGroups bad generation", err, genKey)
	if err := s.DeleteGroup(ctx, "bad gen"); err != nil {
		t.Fatal(err)
	}

	// A key under groups/ that no group name escapes to.
	stray := s.groupsPrefix() + "a%2fb/meta"
	put(stray, "{}")
	_, err = s.ListGroups(ctx)
	wantKeyErr("ListGroups stray key", err, stray)
}
