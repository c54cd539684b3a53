package broker

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/broker/sharegroup"
	"github.com/strata-broker/strata/internal/await"
)

// Group configs are validated against the broker's bounds; a broker reads
// its own change at once, and another broker's within the cache's TTL.
func TestGroupConfigsCache(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	b, store := startBrokerWith(t, Config{Now: clock, Settings: map[string]string{"group.share.max.record.lock.duration.ms": "40000"}})
	ctx := context.Background()
	if _, err := b.AlterGroupConfigs(ctx, "g", map[string]string{sharegroup.ShareRecordLockDurationMs: "50000"}, nil, false); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("a value above the broker's bound: %v, want ErrInvalidConfig", err)
	}
	if _, err := b.AlterGroupConfigs(ctx, "g", map[string]string{sharegroup.ShareAutoOffsetReset: "earliest"}, nil, true); err != nil {
		t.Fatal(err)
	}
	if c, _, _ := store.GetGroupConfigs(ctx, "g"); len(c) != 0 {
		t.Fatalf("validate-only stored %v", c)
	}
	cfg, err := b.GroupConfigs(ctx, "g")
	if err != nil || cfg.AutoOffsetReset != "latest" || cfg.RecordLockDuration != 30*time.Second {
		t.Fatalf("GroupConfigs of a group without configs = %+v, %v", cfg, err)
	}
	if _, err := b.AlterGroupConfigs(ctx, "g", map[string]string{sharegroup.ShareAutoOffsetReset: "earliest"}, nil, false); err != nil {
		t.Fatal(err)
	}
	if cfg, err = b.GroupConfigs(ctx, "g"); err != nil || cfg.AutoOffsetReset != "earliest" {
		t.Fatalf("own change not read at once: %+v, %v", cfg, err)
	}
	// Another broker's change (written to the store directly) shows once
	// the cached entry is older than the TTL.
	if _, err := store.AlterGroupConfigs(ctx, "g", map[string]string{sharegroup.ShareRecordLockDurationMs: "20000"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if cfg, _ = b.GroupConfigs(ctx, "g"); cfg.RecordLockDuration != 30*time.Second {
		t.Fatalf("cached configs replaced before the TTL: %+v", cfg)
	}
	mu.Lock()
	now = now.Add(groupConfigsTTL + time.Millisecond)
	mu.Unlock()
	if cfg, _ = b.GroupConfigs(ctx, "g"); cfg.RecordLockDuration != 20*time.Second || cfg.AutoOffsetReset != "earliest" {
		t.Fatalf("configs after the TTL: %+v", cfg)
	}
}

// As for the other groups, a broker whose lease may have expired does not
// act as a share group's coordinator.
func TestShareGroupsNotCoordinatedWithoutLease(t *testing.T) {
	var expired atomic.Bool
	b, _ := startBrokerWith(t, Config{LeaseValidUntil: func() time.Time {
		if expired.Load() {
			return time.Now().Add(-time.Second)
		}
		return time.Now().Add(time.Hour)
	}})
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	await.True(t, await.DefaultTimeout, "broker 1 coordinates the group", func() bool {
		return b.GroupCoordinator("sg").NodeID == 1
	})
	res, err := b.ShareGroups().Heartbeat(ctx, sharegroup.HeartbeatRequest{Group: "sg", MemberID: "m", SubscribedTopicNames: []string{"t"}})
	if err != nil || len(res.Assignment) != 2 {
		t.Fatalf("join while the lease is good: %+v, %v", res, err)
	}
	expired.Store(true)
	if _, err := b.ShareGroups().Heartbeat(ctx, sharegroup.HeartbeatRequest{Group: "sg", MemberID: "m", MemberEpoch: res.MemberEpoch}); !errors.Is(err, sharegroup.ErrNotCoordinator) {
		t.Fatalf("heartbeat with an expired lease: %v, want NOT_COORDINATOR", err)
	}
	expired.Store(false)
	if _, err := b.ShareGroups().Heartbeat(ctx, sharegroup.HeartbeatRequest{Group: "sg", MemberID: "m", MemberEpoch: res.MemberEpoch}); err != nil {
		t.Fatalf("heartbeat once the lease is good again: %v", err)
	}
}

// A consumer group's own consumer.heartbeat.interval.ms and
// consumer.session.timeout.ms apply to its members; the broker's
// group.consumer.* settings are the defaults.
func TestConsumerGroupConfigsReachTheCoordinator(t *testing.T) {
	b, _ := startBrokerWith(t, Config{Settings: map[string]string{"group.consumer.heartbeat.interval.ms": "6000"}})
	ctx := context.Background()
	if _, err := b.AlterGroupConfigs(ctx, "configured", map[string]string{
		sharegroup.ConsumerHeartbeatIntervalMs: "9000", sharegroup.ConsumerSessionTimeoutMs: "50000"}, nil, false); err != nil {
		t.Fatal(err)
	}
	interval := func(name string) time.Duration {
		t.Helper()
		res, err := b.Groups().ConsumerGroupHeartbeat(ctx, group.ConsumerHeartbeat{Group: name, MemberEpoch: 0,
			RebalanceTimeout: 30 * time.Second, SubscribedTopics: []string{"t"}, Owned: map[string][]int32{}})
		if err != nil {
			t.Fatalf("heartbeat of group %s: %v", name, err)
		}
		return res.HeartbeatInterval
	}
	if got := interval("configured"); got != 9*time.Second {
		t.Fatalf("heartbeat interval of a group with its own: %v, want 9s", got)
	}
	if got := interval("plain"); got != 6*time.Second {
		t.Fatalf("heartbeat interval of a group without its own: %v, want the broker's 6s", got)
	}
}
