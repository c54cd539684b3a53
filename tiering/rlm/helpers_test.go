package rlm

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/strata-broker/strata/internal/fakeclock"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/tiering"
	"github.com/strata-broker/strata/tiering/objstore"
	"github.com/strata-broker/strata/tiering/objstore/objstoretest"
	"github.com/strata-broker/strata/topicconfig"
)

// fakeReplica is a replica whose leadership, high watermark and config the
// test sets.
type fakeReplica struct {
	mu     sync.Mutex
	epoch  int32
	leader bool
	hw     int64
	cfg    topicconfig.Topic
	tm     tiering.TopicManifest
	// log gives the last stable offset, as the broker computes it.
	log *partlog.Log
}

func (r *fakeReplica) Leadership() (int32, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.epoch, r.leader
}

func (r *fakeReplica) HighWatermark() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hw
}

func (r *fakeReplica) LastStableOffset() int64 {
	hw := r.HighWatermark()
	if r.log == nil {
		return hw
	}
	return r.log.LastStableOffset(hw)
}

func (r *fakeReplica) Config() (topicconfig.Topic, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cfg, nil
}

func (r *fakeReplica) TopicManifest() (tiering.TopicManifest, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tm, r.tm.Name != ""
}

func (r *fakeReplica) set(fn func(r *fakeReplica)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn(r)
}

func isManifestKey(key string) bool {
	_, _, ok := tiering.ParseManifestKey(key)
	return ok
}

// fakeRecords is the metastore's record of deleted topics.
type fakeRecords struct {
	mu       sync.Mutex
	topics   []metastore.DeletedTopic
	finished []string
}

func (f *fakeRecords) DeletedTopics(context.Context) ([]metastore.DeletedTopic, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.topics), nil
}

func (f *fakeRecords) DeletedTopic(_ context.Context, id string) (metastore.DeletedTopic, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range f.topics {
		if d.ID == id {
			return d, true, nil
		}
	}
	return metastore.DeletedTopic{}, false, nil
}

func (f *fakeRecords) FinishTopicDeletion(_ context.Context, d metastore.DeletedTopic) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.topics = slices.DeleteFunc(f.topics, func(x metastore.DeletedTopic) bool { return x.ID == d.ID })
	f.finished = append(f.finished, d.ID)
	return nil
}

func (f *fakeRecords) pending(id string) bool {
	_, found, _ := f.DeletedTopic(context.Background(), id)
	return found
}

// fakeController answers with a fixed controller id.
type fakeController struct{ id atomic.Int32 }

func (c *fakeController) Controller(context.Context) (int32, error) { return c.id.Load(), nil }

// rig is a manager over a local-directory store with one partition, t-0,
// whose log rolls every few records.
type rig struct {
	t         *testing.T
	m         *Manager
	store     *objstoretest.Faulty
	reg       *prometheus.Registry
	clk       *fakeclock.Clock
	log       *partlog.Log
	replica   *fakeReplica
	p         *Partition
	records   *fakeRecords
	lease     atomic.Bool
	retention map[string][2]int64 // tier: segments, bytes
	retMu     sync.Mutex
}

var testTP = TopicPartition{Topic: "t", TopicID: "id-1", Partition: 0}

// newRig starts a rig whose topic has the configs given over the
// defaults, remote storage enabled.
func newRig(t *testing.T, configs map[string]string) *rig {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	objects, err := objstore.Open(ctx, "file://"+dir+"/objects", objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, store: objstoretest.NewFaulty(objects), reg: prometheus.NewRegistry(), clk: fakeclock.New(time.Now()),
		records: &fakeRecords{}, retention: map[string][2]int64{}}
	all := map[string]string{"remote.storage.enable": "true", "segment.bytes": "1024"}
	for k, v := range configs {
		all[k] = v
	}
	r.lease.Store(true)
	cfg, _, err := topicconfig.Resolve(all, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.log, err = partlog.Open(partlog.Options{Dir: dir + "/t-0", Config: partlog.Config{SegmentBytes: cfg.SegmentBytes, IndexIntervalBytes: 256}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.log.Close() })
	r.replica = &fakeReplica{epoch: 1, leader: true, cfg: cfg, log: r.log,
		tm: tiering.TopicManifest{Name: "t", ID: "id-1", Partitions: 1, ReplicationFactor: 1, Configs: all}}
	r.m, err = New(Config{
		NodeID: 1, Store: r.store, DataDir: dir, Interval: 10 * time.Millisecond,
		DeletedTopics: r.records, CompactionMapBytes: 1 << 20,
		RetentionDeleted: func(topic, tier string, segments int, bytes int64) {
			r.retMu.Lock()
			defer r.retMu.Unlock()
			c := r.retention[tier]
			r.retention[tier] = [2]int64{c[0] + int64(segments), c[1] + bytes}
		},
		LeaseOK: r.lease.Load, Now: r.clk.Now, Registerer: r.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.p = r.m.Add(testTP, r.log, r.replica)
	return r
}

// produce appends records from..to-1 of about 120 bytes each, makes them
// durable, and moves the high watermark to the log end.
func (r *rig) produce(from, to int) {
	r.t.Helper()
	for i := from; i < to; i++ {
		b := record.NewBuilder(r.clk.Now().UnixMilli(), 0)
		b.Append(&record.Record{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "value-%05d-%0100d", i, i)})
		batch, err := b.Build(record.None)
		if err != nil {
			r.t.Fatal(err)
		}
		if _, err := r.log.Append(batch, 1); err != nil {
			r.t.Fatal(err)
		}
	}
	if err := r.log.Flush(); err != nil {
		r.t.Fatal(err)
	}
	r.replica.set(func(f *fakeReplica) { f.hw = r.log.LogEndOffset() })
}

// round runs one tiering round over the rig's partition.
func (r *rig) round(n int) {
	r.p.round(context.Background(), n)
}

// bucketManifest is the newest manifest in the bucket.
func (r *rig) bucketManifest() (tiering.PartitionManifest, bool) {
	r.t.Helper()
	m, _, found, err := tiering.LatestManifest(context.Background(), r.store, testTP.layout(), 0)
	if err != nil {
		r.t.Fatal(err)
	}
	return m, found
}

// keys lists the objects under prefix.
func (r *rig) keys(prefix string) []string {
	r.t.Helper()
	objs, err := r.store.List(context.Background(), prefix)
	if err != nil {
		r.t.Fatal(err)
	}
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.Key
	}
	return out
}

// sealed is the log's sealed segments.
func (r *rig) sealed() []partlog.SegmentInfo {
	var out []partlog.SegmentInfo
	for _, s := range r.log.Segments() {
		if s.Sealed {
			out = append(out, s)
		}
	}
	return out
}

func (r *rig) retained(tier string) (segments, bytes int64) {
	r.retMu.Lock()
	defer r.retMu.Unlock()
	c := r.retention[tier]
	return c[0], c[1]
}

// metric is the value of the gauge or counter name with the given labels
// (name=value pairs), 0 when it has no such series.
func (r *rig) metric(name string, labels ...string) float64 {
	r.t.Helper()
	families, err := r.reg.Gather()
	if err != nil {
		r.t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool {
					return l.GetName() == labels[i] && l.GetValue() == labels[i+1]
				}) {
					continue series
				}
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// failManifests makes the store's manifest writes fail, or work again.
func (r *rig) failManifests(fail bool) {
	if !fail {
		r.store.FailPut.Store(nil)
		return
	}
	match := isManifestKey
	r.store.FailPut.Store(&match)
}
