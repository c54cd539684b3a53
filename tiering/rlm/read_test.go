package rlm

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
)

// tierAway uploads the rig's records 0..n-1 and keeps almost nothing
// locally, so that the oldest are only in the bucket.
func tierAway(t *testing.T, r *rig, n int) {
	t.Helper()
	r.produce(0, n)
	r.round(0)
	if r.log.LogStartOffset() == 0 {
		t.Fatal("nothing left the local log")
	}
}

// Reads below the local log are served from the bucket, through the
// manifest read back after it was forgotten, and offsets by time reach
// into it.
func TestReadsBelowTheLocalLogComeFromTheBucket(t *testing.T) {
	r := newRig(t, map[string]string{"local.retention.bytes": "1"})
	tierAway(t, r, 40)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.m.reader.Run(ctx) // the read-ahead
	}()
	defer func() { cancel(); <-done }()

	r.p.SetManifest(nil, -1) // as after a restart
	if got := r.p.LogStartOffset(); got == 0 {
		t.Fatal("log start 0 without a known manifest: it cannot know the bucket holds the start")
	}
	r.p.EnsureManifest(ctx)
	if got := r.p.LogStartOffset(); got != 0 {
		t.Fatalf("log start %d after reading the manifest, want 0", got)
	}
	for offset := int64(0); offset < r.log.LogStartOffset(); {
		res, buf, remote, err := r.p.Read(ctx, offset, 700, nil)
		if err != nil || !remote || buf != nil || len(res.Data) == 0 {
			t.Fatalf("read at %d: %d bytes, remote %v, %v", offset, len(res.Data), remote, err)
		}
		checkValues(t, res.Data, offset)
		offset = res.NextOffset
	}
	pc, remote, err := r.p.ReadPieces(ctx, 3, 1<<20)
	if err != nil || !remote || pc.Len == 0 {
		t.Fatalf("read in pieces: %d bytes, remote %v, %v", pc.Len, remote, err)
	}
	pc.Release()
	if _, _, remote, err := r.p.Read(ctx, r.log.LogStartOffset(), 700, nil); remote || err != nil {
		t.Fatalf("a read of a local offset went to the bucket: %v, %v", remote, err)
	}

	off, _, found, err := r.p.OffsetForTimestamp(ctx, 0)
	if err != nil || !found || off != 0 {
		t.Fatalf("offset for time 0: %d, found %v, %v", off, found, err)
	}
}

// checkValues checks that data holds the rig's records from offset on.
func checkValues(t *testing.T, data []byte, offset int64) {
	t.Helper()
	it := record.NewBatches(data)
	for it.Next() {
		err := record.ForEach(it.Bytes(), func(rec *record.Record) error {
			if want := fmt.Sprintf("value-%05d-%0100d", rec.Offset, rec.Offset); rec.Offset >= offset && string(rec.Value) != want {
				return fmt.Errorf("record %d is %.20q", rec.Offset, rec.Value)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
}

// DeleteRecords moves the manifest's log start and deletes the objects
// wholly below it; reads below it are out of range. A broker that does not
// lead cannot.
func TestDeleteRecordsMovesTheBucketStart(t *testing.T) {
	r := newRig(t, map[string]string{"local.retention.bytes": "1"})
	tierAway(t, r, 40)
	ctx := context.Background()
	before, _ := r.bucketManifest()
	const cut = 12
	if err := r.p.DeleteRecords(ctx, cut); err != nil {
		t.Fatal(err)
	}
	m, _ := r.bucketManifest()
	if m.LogStartOffset != cut || m.Segments[0].BaseOffset > cut || m.Segments[0].NextOffset <= cut {
		t.Fatalf("manifest after DeleteRecords: start %d, first segment %+v", m.LogStartOffset, m.Segments[0])
	}
	for _, s := range before.Segments {
		_, ok, err := r.store.Exists(ctx, s.Key)
		if err != nil || ok == (s.NextOffset <= cut) {
			t.Fatalf("segment %d-%d: exists %v, %v", s.BaseOffset, s.NextOffset, ok, err)
		}
	}
	if got := r.p.LogStartOffset(); got != cut {
		t.Fatalf("log start %d, want %d", got, cut)
	}
	var oor *partlog.OffsetOutOfRangeError
	if _, _, remote, err := r.p.Read(ctx, cut-1, 700, nil); !remote || !errors.As(err, &oor) {
		t.Fatalf("read below the new start: remote %v, %v; want out of range", remote, err)
	}

	r.replica.set(func(f *fakeReplica) { f.leader = false })
	if err := r.p.DeleteRecords(ctx, cut+5); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("DeleteRecords by a broker that does not lead: %v", err)
	}
}

// The status of a tiered partition its leader knows: what the bucket and
// the local log hold, and the backlog; nothing from a follower.
func TestStatus(t *testing.T) {
	r := newRig(t, map[string]string{"local.retention.bytes": "1"})
	tierAway(t, r, 40)
	r.p.SetManifest(nil, -1) // read again for the status
	st, ok := r.p.Status(context.Background())
	m, _ := r.bucketManifest()
	want := Status{Topic: "t", Partition: 0, Leader: 1, LeaderEpoch: 1, RemoteEnabled: true,
		LocalStart: r.log.LogStartOffset(), LocalEnd: 40, LocalBytes: r.log.Size(),
		RemoteStart: 0, RemoteEnd: m.EndOffset(), RemoteBytes: m.Bytes(), RemoteSegments: int64(len(m.Segments)),
		Backlog: 0, HighWatermark: 40, LogStartOffset: 0}
	if !ok || st != want {
		t.Fatalf("status %+v, %v\n want %+v", st, ok, want)
	}
	r.replica.set(func(f *fakeReplica) { f.leader = false })
	if _, ok := r.p.Status(context.Background()); ok {
		t.Fatal("a follower reported a status")
	}
}
