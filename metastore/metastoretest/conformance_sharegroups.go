package metastoretest

import (
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/strata-broker/strata/metastore"
)

// testShareGroups pins the share-group coordinator's store: one value per
// group, read back normalized (members, subscriptions and assignments
// sorted, times to the ms), changed only by compare-and-swap on its
// revision, never created over a classic group's id nor the other way.
func testShareGroups(t *testing.T, target Target) {
	s, ctx := target.Store, testCtx(t)
	if _, err := s.GetShareGroup(ctx, "s/1"); !errors.Is(err, metastore.ErrGroupNotFound) {
		t.Fatalf("GetShareGroup of an unknown group: %v, want ErrGroupNotFound", err)
	}
	now := time.Date(2024, 5, 1, 12, 0, 0, 987654321, time.UTC)
	meta := metastore.ShareGroupMeta{
		Group: "s/1", Epoch: 3, AssignmentEpoch: 3, UpdatedAt: now,
		Members: []metastore.ShareGroupMember{
			{MemberID: "m2", MemberEpoch: 3, ClientID: "c", ClientHost: "/10.0.0.1", SubscribedTopics: []string{"b", "a", "b"},
				Assignment: []metastore.TopicPartition{{Topic: "b", Partition: 1}, {Topic: "a", Partition: 0}}},
			{MemberID: "m1", MemberEpoch: 2, RackID: "r1"},
		},
	}
	put, err := s.PutShareGroup(ctx, meta, 0)
	if err != nil {
		t.Fatal(err)
	}
	if put.Revision <= 0 || put.Members[0].MemberID != "m1" || !reflect.DeepEqual(put.Members[1].SubscribedTopics, []string{"a", "b"}) ||
		!reflect.DeepEqual(put.Members[1].Assignment, []metastore.TopicPartition{{Topic: "a", Partition: 0}, {Topic: "b", Partition: 1}}) ||
		!put.UpdatedAt.Equal(time.UnixMilli(now.UnixMilli())) {
		t.Fatalf("stored %+v: want a revision, members by id, sorted topics and partitions, time to the ms", put)
	}
	got, err := s.GetShareGroup(ctx, "s/1")
	if err != nil || !reflect.DeepEqual(got, put) {
		t.Fatalf("GetShareGroup = %+v, %v; want %+v", got, err, put)
	}
	if _, err := s.PutShareGroup(ctx, meta, 0); !errors.Is(err, metastore.ErrConflict) {
		t.Fatalf("second create: %v, want ErrConflict", err)
	}
	next := got
	next.Epoch = 4
	next.Members = next.Members[:1]
	stored, err := s.PutShareGroup(ctx, next, got.Revision)
	if err != nil || stored.Revision <= got.Revision || len(stored.Members) != 1 {
		t.Fatalf("PutShareGroup at the current revision = %+v, %v", stored, err)
	}
	cur, err := s.PutShareGroup(ctx, next, got.Revision)
	if !errors.Is(err, metastore.ErrConflict) || cur.Revision != stored.Revision || cur.Epoch != 4 {
		t.Fatalf("stale PutShareGroup = %+v, %v; want ErrConflict with the stored group", cur, err)
	}

	// A value etcd would refuse is refused before it is sent.
	huge := stored
	huge.Members = []metastore.ShareGroupMember{{MemberID: "big", SubscribedTopics: []string{strings.Repeat("x", metastore.MaxShareGroupBytes)}}}
	if _, err := s.PutShareGroup(ctx, huge, stored.Revision); !errors.Is(err, metastore.ErrShareGroupTooLarge) {
		t.Fatalf("a share group over MaxShareGroupBytes: %v, want ErrShareGroupTooLarge", err)
	}

	// A classic group's id cannot become a share group's.
	if _, err := s.PutGroup(ctx, metastore.GroupMeta{Group: "classic", State: metastore.GroupStateEmpty}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutShareGroup(ctx, metastore.ShareGroupMeta{Group: "classic"}, 0); !errors.Is(err, metastore.ErrGroupTypeConflict) {
		t.Fatalf("share group over a classic group: %v, want ErrGroupTypeConflict", err)
	}
	if err := s.CommitOffsets(ctx, "offsets-only", "", -1, []metastore.OffsetCommit{{Topic: "t", Partition: 0, Offset: 1, LeaderEpoch: -1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutShareGroup(ctx, metastore.ShareGroupMeta{Group: "offsets-only"}, 0); !errors.Is(err, metastore.ErrGroupTypeConflict) {
		t.Fatalf("share group over a group with offsets: %v, want ErrGroupTypeConflict", err)
	}
	// Nor can a share group's id become a classic or consumer group's.
	if _, err := s.PutGroup(ctx, metastore.GroupMeta{Group: "s/1", State: metastore.GroupStateEmpty}, 0); !errors.Is(err, metastore.ErrGroupTypeConflict) {
		t.Fatalf("classic group over a share group: %v, want ErrGroupTypeConflict", err)
	}
	if _, err := s.GetGroup(ctx, "s/1"); !errors.Is(err, metastore.ErrGroupNotFound) {
		t.Fatalf("GetGroup after a refused create: %v, want ErrGroupNotFound", err)
	}
	if err := s.CommitOffsets(ctx, "s/1", "", -1, []metastore.OffsetCommit{{Topic: "t", Partition: 0, Offset: 1, LeaderEpoch: -1}}); !errors.Is(err, metastore.ErrGroupTypeConflict) {
		t.Fatalf("a commit from outside any group under a share group's id: %v, want ErrGroupTypeConflict", err)
	}
	if offs, err := s.FetchOffsets(ctx, "s/1"); err != nil || len(offs) != 0 {
		t.Fatalf("offsets under a share group's id: %+v, %v", offs, err)
	}
	// A group id that is a prefix of a classic one is free.
	if _, err := s.PutShareGroup(ctx, metastore.ShareGroupMeta{Group: "class"}, 0); err != nil {
		t.Fatalf("share group class beside classic: %v", err)
	}

	list, err := s.ListShareGroups(ctx)
	if err != nil || len(list) != 2 || list[0].Group != "class" || list[1].Group != "s/1" {
		t.Fatalf("ListShareGroups = %+v, %v", list, err)
	}
	if err := s.DeleteShareGroup(ctx, "s/1", got.Revision); !errors.Is(err, metastore.ErrConflict) {
		t.Fatalf("stale DeleteShareGroup: %v, want ErrConflict", err)
	}
	if err := s.DeleteShareGroup(ctx, "s/1", stored.Revision); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetShareGroup(ctx, "s/1"); !errors.Is(err, metastore.ErrGroupNotFound) {
		t.Fatalf("GetShareGroup after delete: %v", err)
	}
	if _, err := s.PutGroup(ctx, metastore.GroupMeta{Group: "s/1", State: metastore.GroupStateEmpty}, 0); err != nil {
		t.Fatalf("classic group once the share group is deleted: %v", err)
	}
}

// testGroupConfigs pins the group configs: settable before the group
// exists, merged by set and delete, validated on the merged result, gone
// when the last one is deleted.
func testGroupConfigs(t *testing.T, target Target) {
	s, ctx := target.Store, testCtx(t)
	c, rev, err := s.GetGroupConfigs(ctx, "g/1")
	if err != nil || len(c) != 0 || rev != 0 {
		t.Fatalf("GetGroupConfigs of a group without configs = %v, %d, %v", c, rev, err)
	}
	got, err := s.AlterGroupConfigs(ctx, "g/1", map[string]string{"a": "1", "b": "2"}, nil, nil)
	if err != nil || !maps.Equal(got, map[string]string{"a": "1", "b": "2"}) {
		t.Fatalf("AlterGroupConfigs = %v, %v", got, err)
	}
	var seen map[string]string
	refuse := errors.New("refused")
	if _, err := s.AlterGroupConfigs(ctx, "g/1", map[string]string{"c": "3"}, []string{"a"}, func(m map[string]string) error {
		seen = m
		return refuse
	}); !errors.Is(err, refuse) || !maps.Equal(seen, map[string]string{"b": "2", "c": "3"}) {
		t.Fatalf("validate saw %v and returned %v; want the merged configs and its error", seen, err)
	}
	if _, err := s.AlterGroupConfigs(ctx, "g/1", map[string]string{"a": "1"}, []string{"a"}, nil); err == nil {
		t.Fatal("a key both set and deleted was accepted")
	}
	got, err = s.AlterGroupConfigs(ctx, "g/1", map[string]string{"c": "3"}, []string{"a"}, nil)
	if err != nil || !maps.Equal(got, map[string]string{"b": "2", "c": "3"}) {
		t.Fatalf("AlterGroupConfigs = %v, %v", got, err)
	}
	c, rev, err = s.GetGroupConfigs(ctx, "g/1")
	if err != nil || !maps.Equal(c, got) || rev <= 0 {
		t.Fatalf("GetGroupConfigs = %v, %d, %v; want %v at a revision", c, rev, err, got)
	}
	if other, _, err := s.GetGroupConfigs(ctx, "g"); err != nil || len(other) != 0 {
		t.Fatalf("GetGroupConfigs of another group = %v, %v", other, err)
	}
	if got, err = s.AlterGroupConfigs(ctx, "g/1", nil, []string{"b", "c", "absent"}, nil); err != nil || len(got) != 0 {
		t.Fatalf("deleting every config = %v, %v", got, err)
	}
	if c, rev, err = s.GetGroupConfigs(ctx, "g/1"); err != nil || len(c) != 0 || rev != 0 {
		t.Fatalf("GetGroupConfigs after deleting every config = %v, %d, %v", c, rev, err)
	}
}
