package rlm

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/tiering"
)

// A deleted topic's objects leave the bucket, its topic manifest last, and
// then its record; while the store fails deletes the record stays, and the
// task backs off rather than retrying in a loop. Other topics' objects
// stay.
func TestDeletedTopicObjectsLeaveTheBucket(t *testing.T) {
	r := newRig(t, nil)
	r.produce(0, 30)
	r.round(0) // t's segments and topic manifest in the bucket
	l := testTP.layout()
	kept := r.keys(l.TopicPrefix())
	doomed := TopicPartition{Topic: "gone", TopicID: "id-2"}
	dl := doomed.layout()
	ctx := context.Background()
	if err := tiering.WriteTopicManifest(ctx, r.store, tiering.TopicManifest{Name: "gone", ID: "id-2", Partitions: 1, ReplicationFactor: 1}, r.clk.Now()); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{dl.SegmentsPrefix(0) + "a.log", dl.SegmentsPrefix(0) + "a.index"} {
		if err := r.store.Put(ctx, k, strings.NewReader("x"), 1); err != nil {
			t.Fatal(err)
		}
	}
	dt := metastore.DeletedTopic{Name: "gone", ID: "id-2", DeletedAt: r.clk.Now(), Tiered: true}
	r.records.topics = []metastore.DeletedTopic{dt}
	r.m.SetDeletedTopicGrace(0)
	d := r.m.deleter

	r.store.FailDeletes.Store(true)
	if err := d.round(ctx); err == nil {
		t.Fatal("a round against a store failing deletes succeeded")
	}
	if !r.records.pending(dt.ID) || !slices.Contains(r.keys(dl.TopicPrefix()), dl.TopicManifestKey()) {
		t.Fatal("record or topic manifest gone while deletes fail")
	}
	if got := r.metric("strata_tiering_deleted_topics_pending"); got != 1 {
		t.Errorf("pending gauge %v, want 1", got)
	}
	if got := r.metric("strata_tiering_errors_total", "step", "delete_topic"); got != 1 {
		t.Errorf("delete_topic errors %v, want 1", got)
	}
	if _, _, err := r.m.Restorable(ctx, "gone"); !isPending(err) {
		t.Errorf("restore of a topic pending deletion: %v", err)
	}

	r.store.FailDeletes.Store(false)
	if err := d.round(ctx); err != nil {
		t.Fatal(err)
	}
	if r.records.pending(dt.ID) {
		t.Fatal("record kept once the prefix is empty")
	}
	if keys := r.keys(dl.TopicPrefix()); len(keys) != 0 {
		t.Fatalf("left under %s: %v", dl.TopicPrefix(), keys)
	}
	deleted := r.store.Deleted()
	if deleted[len(deleted)-1] != dl.TopicManifestKey() {
		t.Errorf("deleted %v: want the topic manifest last", deleted)
	}
	if got := r.metric("strata_tiering_deleted_topic_objects_total"); got != 3 {
		t.Errorf("deleted objects counter %v, want 3", got)
	}
	if got := r.metric("strata_tiering_deleted_topics_pending"); got != 0 {
		t.Errorf("pending gauge %v, want 0", got)
	}
	if now := r.keys(l.TopicPrefix()); !slices.Equal(now, kept) {
		t.Errorf("another topic's objects changed: %v, was %v", now, kept)
	}
}

func isPending(err error) bool {
	var pe *PendingDeletionError
	return errors.As(err, &pe)
}

// Against a store that keeps failing, rounds are spaced out, doubling.
func TestDeletedTopicTaskBacksOff(t *testing.T) {
	r := newRig(t, nil)
	r.store.FailDeletes.Store(true)
	ctx := context.Background()
	dl := TopicPartition{Topic: "gone", TopicID: "id-2"}.layout()
	if err := r.store.Put(ctx, dl.TopicManifestKey(), strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	r.records.topics = []metastore.DeletedTopic{{Name: "gone", ID: "id-2", DeletedAt: r.clk.Now()}}
	d := r.m.deleter
	d.interval = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.run(ctx)
	}()
	time.Sleep(400 * time.Millisecond) // let the deleter retry for a while, then count its attempts
	cancel()
	<-done
	// Without backoff: 40 attempts; with it: 10, 20, 40, 80, 160 ms.
	if n := r.store.DeleteCalls.Load(); n < 2 || n > 7 {
		t.Fatalf("%d delete attempts in 400ms with a 10ms interval, want a few, spaced out", n)
	}
}

// The record of a tiered topic outlives its emptied prefix for the grace
// given to uploads in flight; one that was not tiered needs none. A broker
// that is not the controller leaves the work to it.
func TestDeletedTopicGraceAndController(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	tiered := metastore.DeletedTopic{Name: "a", ID: "id-a", DeletedAt: r.clk.Now(), Tiered: true}
	plain := metastore.DeletedTopic{Name: "b", ID: "id-b", DeletedAt: r.clk.Now()}
	r.records.topics = []metastore.DeletedTopic{tiered, plain}
	ctl := &fakeController{}
	ctl.id.Store(2)
	d := r.m.deleter
	d.controllers = ctl
	if err := d.round(ctx); err != nil {
		t.Fatal(err)
	}
	if !r.records.pending("id-a") || !r.records.pending("id-b") {
		t.Fatal("a broker that is not the controller finished deletions")
	}
	ctl.id.Store(1)
	if err := d.round(ctx); err != nil {
		t.Fatal(err)
	}
	if !r.records.pending("id-a") || r.records.pending("id-b") {
		t.Fatalf("after a round: tiered pending %v (want true), plain pending %v (want false)",
			r.records.pending("id-a"), r.records.pending("id-b"))
	}
	r.clk.Advance(garbageGrace)
	if err := d.round(ctx); err != nil {
		t.Fatal(err)
	}
	if r.records.pending("id-a") {
		t.Fatal("the tiered topic's record outlived its grace")
	}
}

// Run drives the tasks until its context ends, and returns only once they
// have stopped.
func TestRunUploadsAndStops(t *testing.T) {
	r := newRig(t, nil)
	r.produce(0, 30)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.m.Run(ctx)
	}()
	await.True(t, 10*time.Second, "an upload", func() bool {
		m, found := r.bucketManifest()
		return found && len(m.Segments) > 0
	})
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	r.m.Remove(r.p)
	if len(r.m.partitions()) != 0 {
		t.Fatal("the partition is still managed after Remove")
	}
}
