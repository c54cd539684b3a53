package controller

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"github.com/strata-broker/strata/metastore"
)

// recordingTerm accepts every change and records it.
type recordingTerm struct {
	mu      sync.Mutex
	changes []metastore.PartitionState
}

func (r *recordingTerm) CompareAndSwapPartitionState(_ context.Context, old, next metastore.PartitionState) (metastore.PartitionState, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next.Revision = old.Revision + 1
	r.changes = append(r.changes, next)
	return next, nil
}

func (r *recordingTerm) Done() <-chan struct{} { return nil }

// brokerList is a store that knows only the live brokers: the controller
// reads them before it changes anything.
type brokerList struct {
	Store
	live []metastore.BrokerInfo
}

func (b brokerList) Brokers(context.Context) ([]metastore.BrokerInfo, error) { return b.live, nil }

// Partitions added to a topic (CreatePartitions) arrive as ordinary changes
// of the partition states the controller follows, and are decided on like
// any other: one whose leader is gone gets a new one.
func TestPartitionsAddedLaterAreControlled(t *testing.T) {
	term := &recordingTerm{}
	live := []metastore.BrokerInfo{{NodeID: 1, Epoch: 10}, {NodeID: 2, Epoch: 10}}
	c := &controller{
		store: brokerList{live: live},
		term:  term, logger: slog.New(slog.DiscardHandler),
		states: map[metastore.TopicPartition]metastore.PartitionState{},
		kick:   make(chan struct{}, 1),
	}
	c.brokersChanged(live)
	c.partitions(metastore.PartitionsUpdate{Snapshot: true, States: []metastore.PartitionState{
		{Topic: "g", Partition: 0, Leader: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}, Revision: 50},
	}})
	c.reconcile(context.Background())
	if len(term.changes) != 0 {
		t.Fatalf("changes to a healthy topic: %+v", term.changes)
	}
	// Partition 1 is added with a leader that is gone by now.
	c.partitions(metastore.PartitionsUpdate{States: []metastore.PartitionState{
		{Topic: "g", Partition: 1, Leader: 3, Replicas: []int32{3, 2}, ISR: []int32{3, 2}, Revision: 60},
	}})
	c.reconcile(context.Background())
	if len(term.changes) != 1 {
		t.Fatalf("changes %+v, want one for partition 1", term.changes)
	}
	got := term.changes[0]
	if got.Partition != 1 || got.Leader != 2 || got.LeaderEpoch != 1 || !slices.Equal(got.ISR, []int32{2}) {
		t.Fatalf("partition 1 became %+v", got)
	}
}
