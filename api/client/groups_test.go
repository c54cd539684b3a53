package client_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/strata-broker/strata/api/client"
	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
)

// groupSettings start a new group's first generation at once.
var groupSettings = map[string]string{"group.initial.rebalance.delay.ms": "0"}

func newGroupConsumer(t *testing.T, c *client.Client, group, topic string) *client.GroupConsumer {
	t.Helper()
	gc, err := client.NewGroupConsumer(c, client.GroupConsumerOptions{Group: group, Topic: topic, Start: client.StartEarliest, AutoCommitInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gc.Close() })
	return gc
}

func waitAssigned(t *testing.T, gc *client.GroupConsumer, n int) client.Assignment {
	t.Helper()
	var a client.Assignment
	await.NoError(t, 30*time.Second, fmt.Sprintf("an assignment of %d partitions", n), func() error {
		if a = gc.Assignment(); len(a.Partitions) == n && a.Generation >= 0 {
			return nil
		}
		return fmt.Errorf("assignment %+v, want %d partitions", a, n)
	})
	return a
}

// pollGroup polls until n records came back.
func pollGroup(t *testing.T, gc *client.GroupConsumer, n int) []client.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var out []client.Record
	for len(out) < n {
		recs, err := gc.PollRecords(ctx, n-len(out))
		if err != nil {
			t.Fatalf("after %d of %d records: %v", len(out), n, err)
		}
		out = append(out, recs...)
	}
	return out
}

func TestGroupConsumersShareAndResume(t *testing.T) {
	addr := testenv.StartInProcess(t, groupSettings)
	c := dial(t, addr)
	ctx := testCtx(t)
	createTopic(t, c, "clicks", 4)
	p := newProducer(t, c, client.ProducerOptions{})
	var recs []client.Record
	for i := range 40 {
		recs = append(recs, client.Record{Partition: int32(i % 4), Value: fmt.Appendf(nil, "v%d", i)})
	}
	produceAll(t, p, "clicks", recs)

	a := newGroupConsumer(t, c, "readers", "clicks")
	waitAssigned(t, a, 4)
	b := newGroupConsumer(t, dial(t, addr), "readers", "clicks")
	pa, pb := waitAssigned(t, a, 2), waitAssigned(t, b, 2)
	if all := slices.Sorted(slices.Values(slices.Concat(pa.Partitions, pb.Partitions))); !slices.Equal(all, []int32{0, 1, 2, 3}) {
		t.Fatalf("assignments %v and %v", pa, pb)
	}

	// Each reads its two partitions (10 records each) and commits.
	for _, gc := range []*client.GroupConsumer{a, b} {
		got := pollGroup(t, gc, 20)
		mine := gc.Assignment().Partitions
		for _, r := range got {
			if !slices.Contains(mine, r.Partition) {
				t.Fatalf("record of partition %d, assigned %v", r.Partition, mine)
			}
		}
		if err := gc.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	offs, err := c.FetchOffsets(ctx, "readers")
	if err != nil {
		t.Fatal(err)
	}
	if len(offs) != 4 || offs[0].GetOffset() != 10 || offs[3].GetOffset() != 10 {
		t.Fatalf("committed %v", offs)
	}

	// b leaves: a gets all four, and resumes b's partitions after b's
	// commit: only what is produced now.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitAssigned(t, a, 4)
	produceAll(t, p, "clicks", []client.Record{{Partition: pb.Partitions[0], Value: []byte("late")}})
	got := pollGroup(t, a, 1)
	if string(got[0].Value) != "late" || got[0].Offset != 10 {
		t.Fatalf("after the rebalance: %+v", got[0])
	}
	if err := a.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	// Without members the group's offsets can be reset.
	to, err := c.ResolveOffsets(ctx, "clicks", nil, client.ToOffset(3))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ResetOffsets(ctx, "readers", "clicks", to); err != nil {
		t.Fatal(err)
	}
	offs, err = c.FetchOffsets(ctx, "readers")
	if err != nil || len(offs) != 4 || offs[1].GetOffset() != 3 {
		t.Fatalf("after reset: %v, %v", offs, err)
	}
	groups, err := c.ListGroups(ctx)
	if err != nil || len(groups) != 1 || groups[0].GetGroup() != "readers" {
		t.Fatalf("list groups: %v, %v", groups, err)
	}
	if err := c.DeleteGroup(ctx, "readers"); err != nil {
		t.Fatal(err)
	}
}
