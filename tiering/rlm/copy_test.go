package rlm

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/tiering"
)

// Only sealed segments wholly below the high watermark are uploaded: the
// active segment and records not yet committed stay local, counted in the
// backlog while sealed.
func TestUploadsSealedSegmentsBelowTheHighWatermarkOnly(t *testing.T) {
	r := newRig(t, nil)
	r.produce(0, 60)
	sealed := r.sealed()
	if len(sealed) < 4 {
		t.Fatalf("%d sealed segments, want several", len(sealed))
	}
	hw := sealed[1].NextOffset + 1 // inside the third segment
	r.replica.set(func(f *fakeReplica) { f.hw = hw })
	r.round(0)

	m, found := r.bucketManifest()
	if !found || len(m.Segments) != 2 || m.EndOffset() != sealed[1].NextOffset {
		t.Fatalf("manifest after a round with the high watermark at %d: found %v, %d segments ending at %d; want 2 ending at %d",
			hw, found, len(m.Segments), m.EndOffset(), sealed[1].NextOffset)
	}
	for _, s := range m.Segments {
		if s.NextOffset > hw || s.LeaderEpoch != 1 {
			t.Errorf("uploaded segment %d-%d of epoch %d, high watermark %d", s.BaseOffset, s.NextOffset, s.LeaderEpoch, hw)
		}
	}
	if known, epoch := r.p.Manifest(); known == nil || known.EndOffset() != m.EndOffset() || epoch != 1 {
		t.Errorf("known manifest %+v in epoch %d, want the written one in epoch 1", known, epoch)
	}
	var backlog int64
	for _, s := range sealed[2:] {
		backlog += s.Size
	}
	if got := r.metric("strata_tiering_upload_backlog_bytes", "topic", "t", "partition", "0"); got != float64(backlog) {
		t.Errorf("backlog %v, want %d: the sealed segments not uploaded", got, backlog)
	}

	// Everything committed: every sealed segment, never the active one.
	r.replica.set(func(f *fakeReplica) { f.hw = r.log.LogEndOffset() })
	r.round(1)
	m, _ = r.bucketManifest()
	if want := sealed[len(sealed)-1].NextOffset; m.EndOffset() != want || len(m.Segments) != len(sealed) {
		t.Fatalf("manifest ends at %d with %d segments, want %d with %d", m.EndOffset(), len(m.Segments), want, len(sealed))
	}
	if got := r.metric("strata_tiering_upload_backlog_bytes", "topic", "t", "partition", "0"); got != 0 {
		t.Errorf("backlog %v after uploading everything", got)
	}
	if got := r.metric("strata_tiering_uploaded_bytes_total"); got != float64(r.bytes(sealed)) {
		t.Errorf("uploaded bytes %v, want %d", got, r.bytes(sealed))
	}
	// Partition 0's leader records the topic's definition.
	if tm, err := tiering.FindTopic(context.Background(), r.store, "t"); err != nil || tm.ID != "id-1" {
		t.Errorf("topic manifest: %+v, %v", tm, err)
	}
}

func (r *rig) bytes(segs []partlog.SegmentInfo) int64 {
	var n int64
	for _, s := range segs {
		n += s.Size
	}
	return n
}

// A broker that does not lead the partition, leads it with a lease it
// cannot trust, or was deposed during the round writes no manifest; and a
// leader whose epoch is older than the bucket's manifest builds on nothing.
func TestDeposedLeaderEpochCannotWrite(t *testing.T) {
	r := newRig(t, nil)
	r.produce(0, 40)

	r.replica.set(func(f *fakeReplica) { f.leader = false })
	r.round(0)
	if keys := r.keys(testTP.layout().TopicPrefix()); len(keys) != 0 {
		t.Fatalf("a follower wrote %v", keys)
	}

	r.replica.set(func(f *fakeReplica) { f.leader = true })
	r.lease.Store(false)
	r.round(0)
	if keys := r.keys(testTP.layout().TopicPrefix()); len(keys) != 0 {
		t.Fatalf("a leader without a lease wrote %v", keys)
	}
	r.lease.Store(true)

	// Deposed after its first upload: no manifest names it.
	hook := func(key string) {
		if strings.HasSuffix(key, ".log") {
			r.replica.set(func(f *fakeReplica) { f.epoch = 2 })
		}
	}
	r.store.OnPut.Store(&hook)
	r.round(0)
	r.store.OnPut.Store(nil)
	if _, found := r.bucketManifest(); found {
		t.Fatal("a leader deposed mid-round wrote a manifest")
	}

	// The new leader (epoch 2) writes; the old one, back in epoch 1 as far
	// as it knows, cannot build on the newer manifest.
	r.round(1)
	m, found := r.bucketManifest()
	if !found || m.LeaderEpoch != 2 {
		t.Fatalf("the epoch 2 leader's manifest: found %v, %+v", found, m)
	}
	r.produce(40, 60)
	r.replica.set(func(f *fakeReplica) { f.epoch = 1 })
	r.round(2)
	if again, _ := r.bucketManifest(); again.LeaderEpoch != 2 || again.Seq != m.Seq || again.EndOffset() != m.EndOffset() {
		t.Fatalf("a leader of an older epoch changed the manifest: %+v", again)
	}
	if got := r.metric("strata_tiering_errors_total", "step", "read_manifest"); got != 1 {
		t.Errorf("read_manifest errors %v, want 1", got)
	}
}

// Local segments past local retention are deleted only once a manifest in
// the bucket names them: while manifest writes fail, they stay.
func TestLocalSegmentDeletedOnlyOnceTheManifestNamesIt(t *testing.T) {
	r := newRig(t, map[string]string{"local.retention.bytes": "1"})
	r.produce(0, 60)
	start := r.log.LogStartOffset()

	r.failManifests(true)
	r.round(0)
	if got := r.log.LogStartOffset(); got != start {
		t.Fatalf("local log start moved to %d while no manifest could be written", got)
	}
	if got := r.metric("strata_tiering_errors_total", "step", "write_manifest"); got == 0 {
		t.Error("failed manifest writes not counted")
	}
	if n, _ := r.retained(TierLocal); n != 0 {
		t.Errorf("%d local segments counted as deleted", n)
	}

	r.failManifests(false)
	before := r.sealed()
	r.round(1)
	m, found := r.bucketManifest()
	if !found {
		t.Fatal("no manifest once writes work")
	}
	local := r.log.LogStartOffset()
	if local == start || local > m.EndOffset() {
		t.Fatalf("local log start %d, manifest ends at %d: want the uploaded segments deleted, and no gap", local, m.EndOffset())
	}
	if got := r.p.LogStartOffset(); got != 0 {
		t.Errorf("partition log start %d, want 0: the bucket holds the start", got)
	}
	n, bytes := r.retained(TierLocal)
	var want int64
	for _, s := range before {
		if s.NextOffset <= local {
			want += s.Size
		}
	}
	if n == 0 || bytes != want {
		t.Errorf("local retention counted %d segments of %d bytes, want %d bytes", n, bytes, want)
	}
}

// Remote retention drops the oldest remote segments: the manifest leaving
// them out first, then their objects; the local log start follows.
func TestRemoteRetention(t *testing.T) {
	r := newRig(t, map[string]string{"local.retention.bytes": "1", "retention.ms": "3600000"})
	r.produce(0, 40)
	r.round(0)
	old, _ := r.bucketManifest()
	if len(old.Segments) < 2 {
		t.Fatalf("%d segments uploaded", len(old.Segments))
	}

	r.clk.Advance(2 * time.Hour) // the first records are now past retention.ms
	r.produce(40, 60)
	sealed := r.sealed()
	r.round(1)
	m, _ := r.bucketManifest()
	if m.LogStartOffset <= old.LogStartOffset || m.Segments[0].BaseOffset < old.EndOffset() {
		t.Fatalf("after retention: manifest starts at %d, first segment at %d; the old segments ended at %d",
			m.LogStartOffset, m.Segments[0].BaseOffset, old.EndOffset())
	}
	for _, s := range old.Segments {
		for _, k := range []string{s.Key, s.IndexKey, s.TimeIndexKey} {
			if _, ok, err := r.store.Exists(context.Background(), k); err != nil || ok {
				t.Errorf("object %s of an expired segment: exists %v, %v", k, ok, err)
			}
		}
	}
	// The old segments, and those of the old records uploaded in the same
	// round.
	wantN, wantBytes := int64(len(old.Segments)), old.Bytes()
	for _, s := range sealed {
		if s.BaseOffset >= old.EndOffset() && s.NextOffset <= m.LogStartOffset {
			wantN, wantBytes = wantN+1, wantBytes+s.Size
		}
	}
	if n, bytes := r.retained(TierRemote); n != wantN || bytes != wantBytes {
		t.Errorf("remote retention counted %d segments, %d bytes; want %d, %d", n, bytes, wantN, wantBytes)
	}
	if got := r.p.LogStartOffset(); got != m.LogStartOffset {
		t.Errorf("partition log start %d, want the manifest's %d", got, m.LogStartOffset)
	}
	if r.log.LogStartOffset() < m.LogStartOffset {
		t.Errorf("local log start %d below the manifest's %d", r.log.LogStartOffset(), m.LogStartOffset)
	}
}

// Garbage collection deletes the segment objects no manifest names once
// they are older than the grace given to uploads in flight.
func TestGarbageCollection(t *testing.T) {
	r := newRig(t, nil)
	r.produce(0, 30)
	r.round(0)
	l := testTP.layout()
	stray, _, _ := l.SegmentKeys(0, 999_999, 1)
	if err := r.store.Put(context.Background(), stray, strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	r.round(collectEvery - 1)
	if _, ok, _ := r.store.Exists(context.Background(), stray); !ok {
		t.Fatal("a fresh unreferenced object was collected: it may be an upload in flight")
	}
	r.clk.Advance(garbageGrace + time.Minute)
	r.round(collectEvery - 1)
	if _, ok, _ := r.store.Exists(context.Background(), stray); ok {
		t.Fatal("an old unreferenced object was not collected")
	}
	m, _ := r.bucketManifest()
	for _, s := range m.Segments {
		if _, ok, _ := r.store.Exists(context.Background(), s.Key); !ok {
			t.Fatalf("collected %s, which the manifest names", s.Key)
		}
	}
}

// Rounds do nothing for a topic that is not tiered.
func TestUntieredTopicIsLeftAlone(t *testing.T) {
	r := newRig(t, map[string]string{"remote.storage.enable": "false"})
	r.produce(0, 30)
	r.round(0)
	if keys := r.keys(""); len(keys) != 0 {
		t.Fatalf("objects written for a topic that is not tiered: %v", keys)
	}
}
