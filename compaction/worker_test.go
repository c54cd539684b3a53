package compaction

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/fakeclock"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/topicconfig"
)

// fakeReplica is a single-replica partition over a real log, with the
// broker's leadership and lease reduced to fields a test sets.
type fakeReplica struct {
	topic string
	index int32
	log   *partlog.Log

	mu     sync.Mutex
	leader bool
	epoch  int32
	// retainErr, when set, is what RetainBelow returns instead of deleting.
	retainErr error
	retains   int // RetainBelow calls
}

func (r *fakeReplica) Name() (string, int32) { return r.topic, r.index }
func (r *fakeReplica) Log() *partlog.Log     { return r.log }

// HighWatermark is the log end: a single replica commits what it appends.
func (r *fakeReplica) HighWatermark() int64 { return r.log.LogEndOffset() }

func (r *fakeReplica) LeaderEpoch() (int32, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.epoch, r.leader
}

func (r *fakeReplica) RetainBelow(offset int64, epoch int32) error {
	r.mu.Lock()
	r.retains++
	err := r.retainErr
	if err == nil && (!r.leader || r.epoch != epoch) {
		err = fmt.Errorf("%s-%d: epoch %d, now %d: %w", r.topic, r.index, epoch, r.epoch, ErrLeadershipLost)
	}
	r.mu.Unlock()
	if err != nil {
		return err
	}
	if _, err := r.log.DeleteSegmentsBelow(offset); err != nil {
		return fmt.Errorf("delete segments below %d: %w", offset, err)
	}
	return nil
}

func (r *fakeReplica) set(leader bool, epoch int32, retainErr error) {
	r.mu.Lock()
	r.leader, r.epoch, r.retainErr = leader, epoch, retainErr
	r.mu.Unlock()
}

// fakeHost is the broker as the workers see it: the replicas it hosts and
// the topics' configs.
type fakeHost struct {
	mu      sync.Mutex
	hosted  []*fakeReplica
	configs map[string]topicconfig.Topic
	clock   *fakeclock.Clock
}

func newFakeHost(clock *fakeclock.Clock) *fakeHost {
	return &fakeHost{configs: map[string]topicconfig.Topic{}, clock: clock}
}

// host opens a log for topic-index in a temporary directory (segment.bytes
// from the topic's config) and hosts it as leader of epoch 1.
func (h *fakeHost) host(t *testing.T, topic string, index int32) *fakeReplica {
	t.Helper()
	cfg, err := h.topicConfig(topic)
	if err != nil {
		t.Fatal(err)
	}
	l, err := partlog.Open(partlog.Options{Dir: tempDir(t), Config: partlog.Config{SegmentBytes: cfg.SegmentBytes}, Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	r := &fakeReplica{topic: topic, index: index, log: l, leader: true, epoch: 1}
	h.mu.Lock()
	h.hosted = append(h.hosted, r)
	h.mu.Unlock()
	return r
}

// unhost stops hosting every replica of topic.
func (h *fakeHost) unhost(topic string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var kept []*fakeReplica
	for _, r := range h.hosted {
		if r.topic != topic {
			kept = append(kept, r)
		}
	}
	h.hosted = kept
}

func (h *fakeHost) configure(t *testing.T, topic string, overrides map[string]string) {
	t.Helper()
	cfg := topicConfig(t, overrides)
	h.mu.Lock()
	h.configs[topic] = cfg
	h.mu.Unlock()
}

func (h *fakeHost) topicConfig(topic string) (topicconfig.Topic, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cfg, ok := h.configs[topic]
	if !ok {
		return topicconfig.Topic{}, fmt.Errorf("unknown topic %q", topic)
	}
	return cfg, nil
}

func (h *fakeHost) leaderReplicas() []LeaderReplica {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]LeaderReplica, len(h.hosted))
	for i, r := range h.hosted {
		out[i] = r
	}
	return out
}

func (h *fakeHost) replicas() []Replica {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Replica, len(h.hosted))
	for i, r := range h.hosted {
		out[i] = r
	}
	return out
}

// appendValues appends n batches of one 100-byte record each, stamped
// with the clock's time.
func appendValues(t *testing.T, l *partlog.Log, clock *fakeclock.Clock, n int) {
	t.Helper()
	for i := range n {
		appendBatch(t, l, clock, record.Record{Value: fmt.Appendf(nil, "%0100d", i)})
	}
}

// appendKeyed appends one batch of key-<k> = v<round>-<k> for k in
// [0, keys).
func appendKeyed(t *testing.T, l *partlog.Log, clock *fakeclock.Clock, keys, round int) {
	t.Helper()
	recs := make([]record.Record, keys)
	for k := range keys {
		recs[k] = record.Record{Key: fmt.Appendf(nil, "key-%d", k), Value: fmt.Appendf(nil, "v%d-%d", round, k)}
	}
	appendBatch(t, l, clock, recs...)
}

func appendBatch(t *testing.T, l *partlog.Log, clock *fakeclock.Clock, recs ...record.Record) {
	t.Helper()
	b := record.NewBuilder(clock.Now().UnixMilli(), 0)
	for i := range recs {
		b.Append(&recs[i])
	}
	batch, err := b.Build(record.None)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(append([]byte(nil), batch...), 1); err != nil {
		t.Fatal(err)
	}
}

// Close returns only once Run's loop has ended, so a broker closing its
// logs after it knows no worker is still using them.
func TestLifecycleCloseWaitsForRun(t *testing.T) {
	var l lifecycle
	var ended atomic.Bool
	started := make(chan struct{})
	go l.run(context.Background(), func(ctx context.Context) {
		close(started)
		<-ctx.Done()
		time.Sleep(20 * time.Millisecond) // a loop finishing its round
		ended.Store(true)
	})
	<-started
	l.close()
	if !ended.Load() {
		t.Fatal("close returned before the loop ended")
	}
}
