package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/strata-broker/strata/broker/controller"
	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/metastore"
)

// runController makes broker id's registration the cluster's controller
// for the rest of the test.
func (c *coreCluster) runController(id int32) {
	c.t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	term, err := c.store.CampaignController(ctx, c.regs[id])
	if err != nil {
		c.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		controller.Run(ctx, c.store, term, nil, slog.New(slog.DiscardHandler))
	}()
	c.t.Cleanup(func() {
		stop()
		<-done
	})
}

// A partition moves from brokers 1,2 to 3,4 with its records: the new
// replicas catch up and join the ISR, the controller writes the target,
// leadership leaves broker 1, and brokers 1 and 2 delete their copies.
func TestReassignMovesAPartition(t *testing.T) {
	c := startCoreCluster(t, 4, nil)
	c.runController(4)
	ctx := context.Background()
	admin := c.core(1)
	if _, err := admin.CreateTopic(ctx, TopicSpec{Name: "m", Partitions: 1, ReplicationFactor: 2,
		Configs: map[string]string{"min.insync.replicas": "2"}}); err != nil {
		t.Fatal(err)
	}
	d, err := admin.DescribeTopic(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	from := d.Partitions[0].Replicas
	to := []int32{3, 4}
	if slices.Contains(from, 3) || slices.Contains(from, 4) {
		// Placement starts at partition 0 % brokers: 1,2.
		t.Fatalf("placed on %v", from)
	}
	leader := c.core(d.Partitions[0].Leader)
	appendRecords(t, leader, "m", 0, 20)
	oldDir := c.hosted(from[0], "m", 0).log.Dir()

	errs := admin.AlterPartitionReassignments(ctx, []Reassignment{{Topic: "m", Partition: 0, Replicas: to}})
	if errs[0] != nil {
		t.Fatal(errs[0])
	}
	await.NoError(t, 30*time.Second, "the move to complete", func() error {
		st, err := admin.freshState(ctx, "m", 0)
		if err != nil {
			return err
		}
		if st.Moving() || !slices.Equal(st.Replicas, to) || !slices.Contains(to, st.Leader) {
			return fmt.Errorf("state %+v", st)
		}
		return nil
	})
	st, _ := admin.freshState(ctx, "m", 0)
	newLeader := c.core(st.Leader)
	await.True(t, 30*time.Second, "the new leader to lead", func() bool {
		_, err := newLeader.hosted.leaderPartition("m", 0)
		return err == nil
	})
	if n, err := countRecords(t, newLeader, "m", 0, 0); err != nil || n != 20 {
		t.Fatalf("on the new leader: %d records, %v", n, err)
	}
	if off := appendRecords(t, newLeader, "m", 0, 1); off != 20 {
		t.Fatalf("the moved partition continues at %d, want 20", off)
	}
	for _, id := range from {
		await.True(t, 30*time.Second, fmt.Sprint("broker ", id, " to let go of the partition"), func() bool {
			return c.hosted(id, "m", 0) == nil
		})
	}
	await.True(t, 30*time.Second, "the old replica's directory to be deleted", func() bool {
		_, err := os.Stat(oldDir)
		return errors.Is(err, os.ErrNotExist)
	})
	if moves, err := admin.ListPartitionReassignments(ctx, nil); err != nil || len(moves) != 0 {
		t.Fatalf("moves left: %v, %v", moves, err)
	}
}

// A move whose new replica cannot catch up (its broker is stopped) waits,
// is listed, and can be cancelled: the original replicas stay, with every
// record.
func TestReassignWaitsAndCancels(t *testing.T) {
	c := startCoreCluster(t, 3, nil)
	c.runController(1)
	ctx := context.Background()
	admin := c.core(1)
	if _, err := admin.CreateTopic(ctx, TopicSpec{Name: "w", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	appendRecords(t, admin, "w", 0, 5)
	c.stop(3) // registered but not fetching: it cannot join the ISR
	if errs := admin.AlterPartitionReassignments(ctx, []Reassignment{{Topic: "w", Partition: 0, Replicas: []int32{3}}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	moves, err := admin.ListPartitionReassignments(ctx, []metastore.TopicPartition{{Topic: "w", Partition: 0}})
	if err != nil || len(moves) != 1 || !slices.Equal(moves[0].AddingReplicas, []int32{3}) || !slices.Equal(moves[0].RemovingReplicas, []int32{1}) {
		t.Fatalf("listed: %+v, %v", moves, err)
	}
	// Still served by broker 1 while it moves.
	if off := appendRecords(t, admin, "w", 0, 1); off != 5 {
		t.Fatalf("append during the move at %d", off)
	}
	if errs := admin.AlterPartitionReassignments(ctx, []Reassignment{{Topic: "w", Partition: 0}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	st, _ := admin.freshState(ctx, "w", 0)
	if st.Moving() || !slices.Equal(st.Replicas, []int32{1}) || st.Leader != 1 {
		t.Fatalf("after cancel: %+v", st)
	}
	if errs := admin.AlterPartitionReassignments(ctx, []Reassignment{{Topic: "w", Partition: 0}}); Classify(errs[0]) != KindNoReassignmentInProgress {
		t.Fatalf("second cancel: %v", errs[0])
	}
	if n, err := countRecords(t, admin, "w", 0, 0); err != nil || n != 6 {
		t.Fatalf("after cancel: %d records, %v", n, err)
	}
	for _, m := range []Reassignment{
		{Topic: "w", Partition: 0, Replicas: []int32{9}},
		{Topic: "w", Partition: 0, Replicas: []int32{1, 1}},
	} {
		if errs := admin.AlterPartitionReassignments(ctx, []Reassignment{m}); Classify(errs[0]) != KindInvalidReplicaAssignment {
			t.Errorf("%v: %v", m.Replicas, errs[0])
		}
	}
	if _, err := admin.AlterTopicConfigs(ctx, "w", map[string]string{"min.insync.replicas": "2"}, nil, false); err != nil {
		t.Fatal(err)
	}
	if errs := admin.AlterPartitionReassignments(ctx, []Reassignment{{Topic: "w", Partition: 0, Replicas: []int32{2}}}); Classify(errs[0]) != KindInvalidReplicaAssignment {
		t.Errorf("a target below min.insync.replicas: %v", errs[0])
	}
	if errs := admin.AlterPartitionReassignments(ctx, []Reassignment{{Topic: "w", Partition: 7, Replicas: []int32{1, 2}}}); Classify(errs[0]) != KindUnknownTopicOrPartition {
		t.Errorf("unknown partition: %v", errs[0])
	}
}

// A broker that was down while its replica moved away deletes the
// partition's directory when it starts again.
func TestMovedAwayWhileDownIsDeletedAtStart(t *testing.T) {
	c := startCoreCluster(t, 3, nil)
	c.runController(3)
	ctx := context.Background()
	admin := c.core(2)
	if _, err := admin.CreateTopic(ctx, TopicSpec{Name: "a", Partitions: 1, ReplicationFactor: 2}); err != nil {
		t.Fatal(err)
	}
	// Placed on 1,2; broker 1 leads.
	await.True(t, 30*time.Second, "broker 1 to lead", func() bool {
		_, err := c.core(1).hosted.leaderPartition("a", 0)
		return err == nil
	})
	appendRecords(t, c.core(1), "a", 0, 3)
	dir := c.hosted(1, "a", 0).log.Dir()
	await.True(t, 30*time.Second, "broker 2 to catch up", func() bool {
		p := c.hosted(2, "a", 0)
		return p != nil && p.LogEndOffset() == 3
	})
	c.stop(1)
	// Broker 1 still looks alive to the controller (its registration
	// stays), so the move waits for nothing from it: 2 leads once 1 is
	// out, then 3 joins.
	st, err := admin.freshState(ctx, "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	next := st
	next.Leader, next.LeaderEpoch, next.ISR = 2, st.LeaderEpoch+1, []int32{2}
	if _, err := c.store.CompareAndSwapPartitionState(ctx, st, next); err != nil {
		t.Fatal(err)
	}
	if errs := admin.AlterPartitionReassignments(ctx, []Reassignment{{Topic: "a", Partition: 0, Replicas: []int32{2, 3}}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	await.NoError(t, 30*time.Second, "the move to complete", func() error {
		st, err := admin.freshState(ctx, "a", 0)
		if err != nil {
			return err
		}
		if st.Moving() || !slices.Equal(st.Replicas, []int32{2, 3}) {
			return fmt.Errorf("state %+v", st)
		}
		return nil
	})
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("broker 1's directory before its restart: %v", err)
	}
	c.start(1)
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("broker 1's directory after its restart: %v", err)
	}
	if c.hosted(1, "a", 0) != nil {
		t.Fatal("broker 1 hosts the partition it no longer replicates")
	}
}

// freshState reads a partition's state from the metastore.
func (b *Broker) freshState(ctx context.Context, topic string, partition int32) (metastore.PartitionState, error) {
	return b.newStateReader().get(ctx, topic, partition)
}
