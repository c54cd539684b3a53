package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/tiering"
)

// The lookup is Kafka's leader epoch cache's: the latest epoch ends at the
// log end, an older one where the next begins, one between two known
// epochs answers the older known one, one below all the first start.
func TestEndOffsetForEpoch(t *testing.T) {
	entries := []partlog.EpochEntry{{Epoch: 2, StartOffset: 10}, {Epoch: 5, StartOffset: 40}, {Epoch: 7, StartOffset: 90}}
	for _, c := range []struct {
		epoch int32
		want  EpochEndOffset
	}{
		{7, EpochEndOffset{7, 120}},
		{5, EpochEndOffset{5, 90}},
		{6, EpochEndOffset{5, 90}},
		{3, EpochEndOffset{2, 40}},
		{2, EpochEndOffset{2, 40}},
		{1, EpochEndOffset{1, 10}},
		{8, EpochEndOffset{-1, -1}},
		{-1, EpochEndOffset{-1, -1}},
	} {
		if got := endOffsetForEpoch(entries, c.epoch, 120); got != c.want {
			t.Errorf("epoch %d: %+v, want %+v", c.epoch, got, c.want)
		}
	}
	if got := endOffsetForEpoch(nil, 0, 0); got != (EpochEndOffset{-1, -1}) {
		t.Errorf("no epochs: %+v", got)
	}
}

// A tiered partition's history starts with the bucket's epochs: the local
// log kept only the epoch holding its local start, moved up to it.
func TestEpochHistoryMergesTheBucket(t *testing.T) {
	m := &tiering.PartitionManifest{Segments: []tiering.SegmentMeta{
		{BaseOffset: 0, NextOffset: 50, Epochs: []tiering.EpochStart{{Epoch: 1, StartOffset: 0}, {Epoch: 3, StartOffset: 20}}},
		{BaseOffset: 50, NextOffset: 100, Epochs: []tiering.EpochStart{{Epoch: 3, StartOffset: 50}, {Epoch: 4, StartOffset: 70}}},
	}}
	local := []partlog.EpochEntry{{Epoch: 4, StartOffset: 100}, {Epoch: 6, StartOffset: 130}}
	want := []partlog.EpochEntry{{Epoch: 1, StartOffset: 0}, {Epoch: 3, StartOffset: 20}, {Epoch: 4, StartOffset: 70}, {Epoch: 6, StartOffset: 130}}
	if got := epochHistory(m, local, 0); !slices.Equal(got, want) {
		t.Fatalf("history %+v, want %+v", got, want)
	}
	// Retention moved the log start into epoch 3: epoch 1 is forgotten.
	want = []partlog.EpochEntry{{Epoch: 3, StartOffset: 35}, {Epoch: 4, StartOffset: 70}, {Epoch: 6, StartOffset: 130}}
	if got := epochHistory(m, local, 35); !slices.Equal(got, want) {
		t.Fatalf("history from 35: %+v, want %+v", got, want)
	}
	if got := epochHistory(nil, local, 0); !slices.Equal(got, local) {
		t.Fatalf("without a manifest: %+v", got)
	}
}

// OffsetForLeaderEpoch answers from the whole history of a tiered
// partition: the end of an epoch whose records are only in the bucket is
// where the next epoch began, not the local log start.
func TestOffsetForLeaderEpochOfATieredPartition(t *testing.T) {
	b, _ := startTieredBroker(t)
	ctx := context.Background()
	_, err := b.CreateTopic(ctx, TopicSpec{Name: "epochs", Partitions: 1, Configs: map[string]string{
		"remote.storage.enable": "true", "segment.bytes": "1024", "local.retention.bytes": "2048",
	}})
	if err != nil {
		t.Fatal(err)
	}
	produceValues(t, b, "epochs", 0, 100)
	p, _ := b.hosted.partition("epochs", 0)
	first := p.log.LatestEpoch()

	// A new epoch of the same leader, as after a restart.
	st, _ := p.State()
	next := st
	next.LeaderEpoch = st.LeaderEpoch + 1
	if _, err := b.store.CompareAndSwapPartitionState(ctx, st, next); err != nil {
		t.Fatal(err)
	}
	await.NoError(t, 10*time.Second, "the new epoch applied", func() error {
		if err := p.checkCurrentEpoch(next.LeaderEpoch); err != nil {
			return err
		}
		return p.checkLeader()
	})
	produceValues(t, b, "epochs", 100, 200)
	if got := p.log.LatestEpoch(); got != next.LeaderEpoch {
		t.Fatalf("latest epoch %d, want %d", got, next.LeaderEpoch)
	}
	await.NoError(t, 20*time.Second, "the first epoch only in the bucket", func() error {
		if start := p.log.LogStartOffset(); start <= 100 {
			return fmt.Errorf("local log start %d", start)
		}
		return nil
	})

	got, err := b.OffsetForLeaderEpoch("epochs", 0, next.LeaderEpoch, first)
	if err != nil || got != (EpochEndOffset{Epoch: first, EndOffset: 100}) {
		t.Fatalf("end of epoch %d: %+v, %v; want it to end at 100", first, got, err)
	}
	got, err = b.OffsetForLeaderEpoch("epochs", 0, -1, next.LeaderEpoch)
	if err != nil || got != (EpochEndOffset{Epoch: next.LeaderEpoch, EndOffset: 200}) {
		t.Fatalf("end of the current epoch: %+v, %v; want the log end", got, err)
	}
	if _, err := b.OffsetForLeaderEpoch("epochs", 0, first, first); !errors.Is(err, ErrFencedLeaderEpoch) {
		t.Fatalf("an old current epoch: %v, want fenced", err)
	}
	if _, err := b.OffsetForLeaderEpoch("epochs", 0, next.LeaderEpoch+1, first); !errors.Is(err, ErrUnknownLeaderEpoch) {
		t.Fatalf("a newer current epoch: %v, want unknown", err)
	}
	if _, err := b.OffsetForLeaderEpoch("nope", 0, -1, 0); !errors.Is(err, ErrUnknownTopicOrPartition) {
		t.Fatalf("unknown topic: %v", err)
	}

	// ListOffsets tells the epoch of what it finds, and serves the tiering
	// specs: the first local offset and the last one in the bucket.
	list := func(ts int64) ListedOffset {
		t.Helper()
		lo, err := b.ListOffsetsAt(ctx, "epochs", 0, next.LeaderEpoch, ts, ReadUncommitted)
		if err != nil || !lo.Found {
			t.Fatalf("list offsets %d: %+v, %v", ts, lo, err)
		}
		return lo
	}
	if lo := list(EarliestTimestamp); lo.Offset != 0 || lo.LeaderEpoch != first {
		t.Errorf("earliest: %+v, want 0 in epoch %d", lo, first)
	}
	if lo := list(LatestTimestamp); lo.Offset != 200 || lo.LeaderEpoch != next.LeaderEpoch {
		t.Errorf("latest: %+v, want 200 in epoch %d", lo, next.LeaderEpoch)
	}
	if lo, local := list(EarliestLocalTimestamp), p.log.LogStartOffset(); lo.Offset != local || lo.LeaderEpoch != next.LeaderEpoch {
		t.Errorf("earliest local: %+v, want %d in epoch %d", lo, local, next.LeaderEpoch)
	}
	m, _ := p.remoteManifest()
	if lo, want := list(LatestTieredTimestamp), m.EndOffset()-1; lo.Offset != want || lo.Offset < 100 || lo.LeaderEpoch != next.LeaderEpoch {
		t.Errorf("latest tiered: %+v, want %d in epoch %d", lo, want, next.LeaderEpoch)
	}
	if _, err := b.ListOffsetsAt(ctx, "epochs", 0, first, LatestTimestamp, ReadUncommitted); !errors.Is(err, ErrFencedLeaderEpoch) {
		t.Errorf("list offsets with an old current epoch: %v, want fenced", err)
	}
}

// Fetch fences a partition by the leader epoch the client knows, as Kafka
// does: an older one than the partition's is fenced, a newer one unknown;
// a fetch that does not ask is not checked.
func TestFetchFencesByCurrentLeaderEpoch(t *testing.T) {
	b, _ := startBroker(t)
	ctx := context.Background()
	if _, err := b.CreateTopic(ctx, TopicSpec{Name: "fenced", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	produceValues(t, b, "fenced", 0, 3)
	p, _ := b.hosted.partition("fenced", 0)
	st, _ := p.State()
	next := st
	next.LeaderEpoch = st.LeaderEpoch + 1
	if _, err := b.store.CompareAndSwapPartitionState(ctx, st, next); err != nil {
		t.Fatal(err)
	}
	await.NoError(t, 10*time.Second, "the new epoch applied", func() error {
		if err := p.checkCurrentEpoch(next.LeaderEpoch); err != nil {
			return err
		}
		return p.checkLeader()
	})
	fetch := func(check bool, current int32) error {
		t.Helper()
		res, err := b.Fetch(ctx, []FetchPartition{{Topic: "fenced", Partition: 0, CheckLeaderEpoch: check, CurrentLeaderEpoch: current}}, FetchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return res[0].Err
	}
	if err := fetch(true, next.LeaderEpoch); err != nil {
		t.Fatalf("at the leader's epoch: %v", err)
	}
	if err := fetch(true, st.LeaderEpoch); !errors.Is(err, ErrFencedLeaderEpoch) {
		t.Fatalf("an old epoch: %v, want fenced", err)
	}
	if err := fetch(true, next.LeaderEpoch+1); !errors.Is(err, ErrUnknownLeaderEpoch) {
		t.Fatalf("a newer epoch: %v, want unknown", err)
	}
	if err := fetch(true, -1); err != nil {
		t.Fatalf("epoch -1: %v", err)
	}
	if err := fetch(false, st.LeaderEpoch); err != nil {
		t.Fatalf("unchecked: %v", err)
	}
}
