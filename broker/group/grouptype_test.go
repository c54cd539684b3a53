package group_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/internal/fakeclock"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/metastore/metastoretest"
)

// consumerJoin is a joining ConsumerGroupHeartbeat of group g.
func consumerJoin(g string) group.ConsumerHeartbeat {
	return group.ConsumerHeartbeat{Group: g, MemberEpoch: 0, RebalanceTimeout: 30 * time.Second,
		SubscribedTopics: []string{"a"}, Owned: map[string][]int32{}}
}

// TestShareGroupIDRefusedByClassicAndConsumerGroups: a share group's id
// is not taken by a classic JoinGroup (INCONSISTENT_GROUP_PROTOCOL) nor by
// a consumer group's heartbeat (GROUP_ID_NOT_FOUND), as Kafka answers
// them, every time (not NOT_COORDINATOR, which clients retry forever), and
// nothing of a classic or consumer group is stored.
func TestShareGroupIDRefusedByClassicAndConsumerGroups(t *testing.T) {
	store := metastoretest.New()
	ctx := context.Background()
	if _, err := store.PutShareGroup(ctx, metastore.ShareGroupMeta{Group: "g"}, 0); err != nil {
		t.Fatal(err)
	}
	c := startCoordinator(t, store, fakeclock.New(time.Unix(1_700_000_000, 0)))
	for range 2 {
		_, err := c.Join(ctx, joinReq(""))
		if !errors.Is(err, group.ErrInconsistentProtocol) || errors.Is(err, group.ErrNotCoordinator) {
			t.Fatalf("JoinGroup on a share group's id: %v, want ErrInconsistentProtocol", err)
		}
		_, err = c.ConsumerGroupHeartbeat(ctx, consumerJoin("g"))
		if !errors.Is(err, group.ErrGroupIDNotFound) || errors.Is(err, group.ErrNotCoordinator) {
			t.Fatalf("ConsumerGroupHeartbeat on a share group's id: %v, want ErrGroupIDNotFound", err)
		}
	}
	if _, err := store.GetGroup(ctx, "g"); !errors.Is(err, metastore.ErrGroupNotFound) {
		t.Fatalf("group state stored for a share group's id: %v", err)
	}
	// Another id is unaffected.
	if _, err := c.ConsumerGroupHeartbeat(ctx, consumerJoin("other")); err != nil {
		t.Fatalf("heartbeat of another group: %v", err)
	}
}

// racingShareStore hides share groups from GetShareGroup, as if the share
// group were created just after the coordinator looked: only PutGroup's
// compare can refuse the id then.
type racingShareStore struct {
	*metastoretest.Store
}

func (s racingShareStore) GetShareGroup(ctx context.Context, g string) (metastore.ShareGroupMeta, error) {
	return metastore.ShareGroupMeta{}, fmt.Errorf("hidden: %w", metastore.ErrGroupNotFound)
}

// TestShareGroupCreatedDuringJoinRefusesTheGroup: a share group created
// between the coordinator's look and its first write of the group wins the
// id; the classic members waiting to join and the consumer member are told
// as Kafka tells them, and nothing is stored.
func TestShareGroupCreatedDuringJoinRefusesTheGroup(t *testing.T) {
	store := metastoretest.New()
	ctx := context.Background()
	if _, err := store.PutShareGroup(ctx, metastore.ShareGroupMeta{Group: "g"}, 0); err != nil {
		t.Fatal(err)
	}
	c := startCoordinator(t, racingShareStore{store}, fakeclock.New(time.Unix(1_700_000_000, 0)))

	// The consumer group's first heartbeat writes the group at once.
	if _, err := c.ConsumerGroupHeartbeat(ctx, consumerJoin("g")); !errors.Is(err, group.ErrGroupIDNotFound) {
		t.Fatalf("ConsumerGroupHeartbeat racing a share group: %v, want ErrGroupIDNotFound", err)
	}
	// The classic group is written when its join phase ends.
	id := firstJoin(t, c)
	if r := wait(t, joinAsync(c, id), "join"); !errors.Is(r.err, group.ErrInconsistentProtocol) {
		t.Fatalf("JoinGroup racing a share group: %+v, want ErrInconsistentProtocol", r)
	}
	if _, err := store.GetGroup(ctx, "g"); !errors.Is(err, metastore.ErrGroupNotFound) {
		t.Fatalf("group state stored over a share group: %v", err)
	}
}

// TestCommitUnderShareGroupIDRefused: a commit from outside any group
// (generation -1) under a share group's id is answered GROUP_ID_NOT_FOUND,
// as Kafka answers it, and stores no offsets there.
func TestCommitUnderShareGroupIDRefused(t *testing.T) {
	store := metastoretest.New()
	ctx := context.Background()
	if _, err := store.PutShareGroup(ctx, metastore.ShareGroupMeta{Group: "g"}, 0); err != nil {
		t.Fatal(err)
	}
	c := group.New(store, group.Config{})
	err := c.CommitOffsets(ctx, "g", "", -1, []metastore.OffsetCommit{{Topic: "a", Partition: 0, Offset: 1, LeaderEpoch: -1}})
	if !errors.Is(err, group.ErrGroupIDNotFound) {
		t.Fatalf("commit under a share group's id: %v, want ErrGroupIDNotFound", err)
	}
	if offs, err := store.FetchOffsets(ctx, "g"); err != nil || len(offs) != 0 {
		t.Fatalf("offsets stored under a share group's id: %+v, %v", offs, err)
	}
}
