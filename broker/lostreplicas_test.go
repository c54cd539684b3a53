package broker

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/metastore/metastoretest"
)

// conflictOnce changes a partition's state just before the first
// compare-and-swap, as the controller or a leader can.
type conflictOnce struct {
	*metastoretest.Store
	done   atomic.Bool
	change func(metastore.PartitionState) metastore.PartitionState
}

func (s *conflictOnce) CompareAndSwapPartitionState(ctx context.Context, old, next metastore.PartitionState) (metastore.PartitionState, error) {
	if s.change != nil && s.done.CompareAndSwap(false, true) {
		if _, err := s.Store.CompareAndSwapPartitionState(ctx, old, s.change(old)); err != nil {
			return metastore.PartitionState{}, err
		}
	}
	return s.Store.CompareAndSwapPartitionState(ctx, old, next)
}

// A broker whose partition directories are gone leaves the ISRs and
// leaderships the metastore credits it with, and is recorded as lost; what
// it still holds, what has a single replica and what it does not replicate
// are left alone.
func TestReleaseLostReplicas(t *testing.T) {
	ctx := t.Context()
	store := metastoretest.New()
	dataDir := t.TempDir()
	const self = 1
	topics := map[string]metastore.Topic{}
	create := func(name string, replicas []int32, edit func(*metastore.PartitionState)) {
		t.Helper()
		tp, err := store.CreateTopic(ctx, metastore.Topic{Name: name}, [][]int32{replicas})
		if err != nil {
			t.Fatal(err)
		}
		topics[name] = tp
		if edit == nil {
			return
		}
		states, err := store.PartitionStates(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		next := states[0]
		edit(&next)
		if _, err := store.CompareAndSwapPartitionState(ctx, states[0], next); err != nil {
			t.Fatal(err)
		}
	}
	writeMeta := func(name, id string) {
		t.Helper()
		dir := partitionDirIn(dataDir, name, 0)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(partitionMeta{TopicID: id, Topic: name})
		if err := os.WriteFile(filepath.Join(dir, partitionMetaFile), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	create("led", []int32{1, 2, 3}, nil)
	create("last-in-sync", []int32{1, 2, 3}, func(st *metastore.PartitionState) {
		st.Leader, st.LeaderEpoch, st.ISR = -1, 3, []int32{1}
	})
	create("out-of-sync", []int32{2, 1, 3}, func(st *metastore.PartitionState) { st.ISR = []int32{2, 3} })
	create("older-incarnation", []int32{2, 1}, nil)
	writeMeta("older-incarnation", "00000000-0000-4000-8000-000000000000")
	create("kept", []int32{1, 2, 3}, nil)
	writeMeta("kept", topics["kept"].ID)
	create("single", []int32{1}, nil)
	create("elsewhere", []int32{2, 3}, nil)
	before := map[string]metastore.PartitionState{}
	for name := range topics {
		states, err := store.PartitionStates(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		before[name] = states[0]
	}

	if err := ReleaseLostReplicas(ctx, store, self, dataDir, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		leader, epoch int32
		isr, lost     []int32
	}{
		"led":               {leader: -1, epoch: 1, isr: []int32{2, 3}, lost: []int32{1}},
		"last-in-sync":      {leader: -1, epoch: 3, isr: []int32{}, lost: []int32{1}},
		"out-of-sync":       {leader: 2, epoch: 0, isr: []int32{2, 3}, lost: []int32{1}},
		"older-incarnation": {leader: 2, epoch: 0, isr: []int32{2}, lost: []int32{1}},
	}
	for name := range topics {
		states, err := store.PartitionStates(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		st := states[0]
		w, changed := want[name]
		if !changed {
			if st.Revision != before[name].Revision {
				t.Errorf("%s: state changed: %+v", name, st)
			}
			continue
		}
		if st.Leader != w.leader || st.LeaderEpoch != w.epoch || !slices.Equal(st.ISR, w.isr) || !slices.Equal(st.Lost, w.lost) {
			t.Errorf("%s: leader %d epoch %d isr %v lost %v; want %d %d %v %v", name, st.Leader, st.LeaderEpoch, st.ISR, st.Lost, w.leader, w.epoch, w.isr, w.lost)
		}
	}

	// Nothing is left to release: a second start writes nothing.
	revs := map[string]int64{}
	for name := range topics {
		states, _ := store.PartitionStates(ctx, name)
		revs[name] = states[0].Revision
	}
	if err := ReleaseLostReplicas(ctx, store, self, dataDir, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	for name := range topics {
		if states, _ := store.PartitionStates(ctx, name); states[0].Revision != revs[name] {
			t.Errorf("%s: written again: %+v", name, states[0])
		}
	}
}

// A state that changes under the broker is decided on again: here the
// controller has just elected the broker, whose log is gone.
func TestReleaseLostReplicasRetriesOnConflict(t *testing.T) {
	ctx := t.Context()
	store := &conflictOnce{Store: metastoretest.New(), change: func(st metastore.PartitionState) metastore.PartitionState {
		st.Leader, st.LeaderEpoch, st.ISR = 1, st.LeaderEpoch+1, []int32{1}
		return st
	}}
	if _, err := store.CreateTopic(ctx, metastore.Topic{Name: "t"}, [][]int32{{2, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := ReleaseLostReplicas(ctx, store, 1, t.TempDir(), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	states, err := store.PartitionStates(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if st := states[0]; st.Leader != -1 || st.LeaderEpoch != 2 || len(st.ISR) != 0 || !slices.Equal(st.Lost, []int32{1}) {
		t.Fatalf("state %+v, want leaderless in epoch 2 with an empty ISR and broker 1 lost", st)
	}
}
