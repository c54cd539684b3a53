package rlm

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/tiering"
)

// topicDeleteBatch bounds the keys of one Delete call, so progress is
// counted and a long deletion can be interrupted between calls (S3 deletes
// at most 1,000 keys per request anyway).
const topicDeleteBatch = 1000

// topicDeleteTimeout bounds the work on one deleted topic in a round; what is
// left is taken up in a later one.
const topicDeleteTimeout = 5 * time.Minute

// topicDeleteEtcdTimeout bounds each metastore call of a round, so a
// metastore that does not answer ends the round (and backs off) rather
// than holding it.
const topicDeleteEtcdTimeout = 10 * time.Second

// maxTopicDeleteBackoff caps the wait after a failed round: a store that is
// down is asked again at this pace, not in a loop.
const maxTopicDeleteBackoff = 5 * time.Minute

// topicDeleter deletes the objects of deleted topic incarnations from the
// object store. The metastore records each deletion in the transaction that
// deletes the topic (metastore.DeletedTopic), so a crash or a store that is
// down loses nothing: the record stays until a round has found the
// incarnation's prefix empty. Only records are ever acted on, never the
// absence of a topic from the metastore, so topics in a bucket whose etcd
// was wiped can still be restored from it.
//
// The elected controller does the work (every broker when none is elected:
// the work is idempotent, so two brokers doing it at once only repeat each
// other's deletes).
type topicDeleter struct {
	*env
	records     DeletedTopics
	controllers Controllers // nil: always act
	self        int32
	interval    time.Duration
	// grace keeps the record of a tiered topic for this long after its
	// deletion, its prefix listed every round: an upload that was in
	// flight on the partition's leader may still land after the first
	// pass, as garbage collection assumes for unreferenced objects.
	grace time.Duration

	deletedObjects prometheus.Counter
	pending        prometheus.Gauge
}

func newTopicDeleter(m *Manager) *topicDeleter {
	d := &topicDeleter{
		env:         m.env,
		records:     m.cfg.DeletedTopics,
		controllers: m.cfg.Controllers,
		self:        m.cfg.NodeID,
		interval:    m.cfg.Interval,
		grace:       garbageGrace,
		deletedObjects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_tiering_deleted_topic_objects_total",
			Help: "Objects of deleted topics removed from the object store.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "strata_tiering_deleted_topics_pending",
			Help: "Deleted topics whose objects are still to be removed from the object store, as last listed by this broker (0 on brokers that are not the controller).",
		}),
	}
	if reg := m.cfg.Registerer; reg != nil {
		reg.MustRegister(d.deletedObjects, d.pending)
	}
	return d
}

// run deletes pending topics' objects every interval until ctx ends, backing
// off after failures.
func (d *topicDeleter) run(ctx context.Context) {
	wait := d.interval
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := d.round(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			wait = min(2*wait, max(d.interval, maxTopicDeleteBackoff))
			d.logger.Warn("tiering: cannot delete the objects of deleted topics; retrying", "retry_in", wait, "err", err)
		} else {
			wait = d.interval
		}
		t.Reset(wait)
	}
}

// acting reports whether this broker does the work now.
func (d *topicDeleter) acting(ctx context.Context) (bool, error) {
	if d.controllers == nil {
		return true, nil
	}
	id, err := d.controllers.Controller(ctx)
	if err != nil {
		return false, fmt.Errorf("controller: %w", err)
	}
	return id == d.self || id < 0, nil
}

// round goes once over the pending deletions, oldest first. It stops at the
// first failure: with the store or the metastore down the others would
// fail too.
func (d *topicDeleter) round(ctx context.Context) error {
	ectx, cancel := context.WithTimeout(ctx, topicDeleteEtcdTimeout)
	defer cancel()
	acting, err := d.acting(ectx)
	if err != nil {
		return err
	}
	if !acting {
		d.pending.Set(0)
		return nil
	}
	list, err := d.records.DeletedTopics(ectx)
	if err != nil {
		return fmt.Errorf("deleted topics: %w", err)
	}
	d.pending.Set(float64(len(list)))
	for _, dt := range list {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		done, err := d.deleteObjects(ctx, dt)
		if err != nil {
			d.metrics.failed(stepDeleteTopic)
			return fmt.Errorf("topic %q (id %s): %w", dt.Name, dt.ID, err)
		}
		if !done {
			continue
		}
		if err := d.finish(ctx, dt); err != nil {
			return fmt.Errorf("topic %q (id %s): finish deletion: %w", dt.Name, dt.ID, err)
		}
		d.pending.Dec()
		d.logger.Info("tiering: deleted topic's objects are gone from the object store", "topic", dt.Name, "topic_id", dt.ID)
	}
	return nil
}

func (d *topicDeleter) finish(ctx context.Context, dt metastore.DeletedTopic) error {
	ctx, cancel := context.WithTimeout(ctx, topicDeleteEtcdTimeout)
	defer cancel()
	return d.records.FinishTopicDeletion(ctx, dt)
}

// deleteObjects deletes every object of the incarnation, its topic manifest
// last (a prefix half deleted is still recognisable as the topic's), and
// reports whether its record may go: the prefix was found empty and no
// upload can still be in flight.
func (d *topicDeleter) deleteObjects(ctx context.Context, dt metastore.DeletedTopic) (bool, error) {
	st := d.store
	if st == nil {
		// No bucket to clean: the cluster's brokers share one object store,
		// and a cluster without one has no tiered topics. Keeping the record
		// would grow etcd by one key per topic ever deleted.
		return true, nil
	}
	ctx, cancel := context.WithTimeout(ctx, topicDeleteTimeout)
	defer cancel()
	l := tiering.Layout{Topic: dt.Name, TopicID: dt.ID}
	for pass := 0; ; pass++ {
		objs, err := st.List(ctx, l.TopicPrefix())
		if err != nil {
			return false, fmt.Errorf("list %s: %w", l.TopicPrefix(), err)
		}
		if len(objs) == 0 {
			return !dt.Tiered || d.now().Sub(dt.DeletedAt) >= d.grace, nil
		}
		if pass > 0 {
			// Objects written after the first pass: an upload in flight.
			// The next round takes them.
			return false, nil
		}
		keys := make([]string, 0, len(objs))
		manifest := false
		for _, o := range objs {
			if o.Key == l.TopicManifestKey() {
				manifest = true
			} else {
				keys = append(keys, o.Key)
			}
		}
		n, err := d.deleteKeys(ctx, st, keys)
		if err == nil && manifest {
			var m int
			m, err = d.deleteKeys(ctx, st, []string{l.TopicManifestKey()})
			n += m
		}
		if n > 0 {
			d.logger.Info("tiering: deleted objects of a deleted topic", "topic", dt.Name, "topic_id", dt.ID, "objects", n)
		}
		if err != nil {
			return false, err
		}
	}
}

// deleteKeys deletes keys in batches and returns how many were deleted.
func (d *topicDeleter) deleteKeys(ctx context.Context, st tiering.Store, keys []string) (int, error) {
	n := 0
	for len(keys) > 0 {
		batch := keys[:min(len(keys), topicDeleteBatch)]
		if err := st.Delete(ctx, batch...); err != nil {
			return n, fmt.Errorf("delete %d objects from %s: %w", len(batch), batch[0], err)
		}
		n += len(batch)
		d.deletedObjects.Add(float64(len(batch)))
		keys = keys[len(batch):]
	}
	return n, nil
}
