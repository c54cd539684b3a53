package broker

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/metastore"
)

// A broker whose lease may have expired (it was paused, or cut off from
// etcd) may have been replaced as the group's coordinator before its view
// of the live brokers shows it: it answers NOT_COORDINATOR and forgets its
// groups until its lease is good again.
func TestGroupsNotCoordinatedWithoutLease(t *testing.T) {
	var expired atomic.Bool
	b, _ := startBrokerWith(t, Config{LeaseValidUntil: func() time.Time {
		if expired.Load() {
			return time.Now().Add(-time.Second)
		}
		return time.Now().Add(time.Hour)
	}})
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	await.True(t, await.DefaultTimeout, "broker 1 coordinates the group", func() bool {
		return b.GroupCoordinator("g").NodeID == 1
	})
	commit := []metastore.OffsetCommit{{Topic: "t", Offset: 1, LeaderEpoch: -1}}
	if err := b.Groups().CommitOffsets(ctx, "g", "", -1, commit); err != nil {
		t.Fatalf("commit while the lease is good: %v", err)
	}
	expired.Store(true)
	if err := b.Groups().CommitOffsets(ctx, "g", "", -1, commit); !errors.Is(err, group.ErrNotCoordinator) {
		t.Fatalf("commit with an expired lease: %v, want NOT_COORDINATOR", err)
	}
	if _, err := b.Groups().Describe(ctx, "g"); !errors.Is(err, group.ErrNotCoordinator) {
		t.Fatalf("describe with an expired lease: %v, want NOT_COORDINATOR", err)
	}
	expired.Store(false)
	if _, err := b.Groups().Describe(ctx, "g"); err != nil {
		t.Fatalf("describe once the lease is good again: %v", err)
	}
}
