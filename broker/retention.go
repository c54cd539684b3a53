package broker

import (
	"context"
	"errors"
	"fmt"

	"github.com/strata-broker/strata/compaction"
	"github.com/strata-broker/strata/partlog"
)

// defaultRetentionCheckIntervalMs is log.retention.check.interval.ms when
// the broker settings do not give it. Kafka's default is 300000 (five
// minutes); ours is 30 s because an operator who lowers retention.ms must
// see it take effect within a minute.
const defaultRetentionCheckIntervalMs = 30_000

// retentionWorker is the broker's compaction.RetentionWorker, which applies
// time and size retention to the partitions this broker leads of topics
// without remote storage. The remote log manager applies retention to
// tiered topics and reports to the same metrics (see newRemoteLogManager).
type retentionWorker struct {
	*compaction.RetentionWorker
	b *Broker
}

func newRetentionWorker(b *Broker) (*retentionWorker, error) {
	interval, err := settingMs(b.cfg.Settings, "log.retention.check.interval.ms", defaultRetentionCheckIntervalMs)
	if err != nil {
		return nil, err
	}
	w, err := compaction.NewRetentionWorker(compaction.RetentionConfig{
		Interval:    interval,
		Partitions:  hostedReplicas[compaction.LeaderReplica](b),
		TopicConfig: b.hosted.TopicConfig,
		Now:         b.now,
		Logger:      b.logger,
		Registerer:  b.cfg.Registerer,
	})
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	return &retentionWorker{RetentionWorker: w, b: b}, nil
}

// run runs the worker, on a goroutine of b's (see Broker.background).
func (w *retentionWorker) run(ctx context.Context) {
	if err := w.Run(ctx); err != nil {
		w.b.logger.Error("retention worker stopped", "err", err)
	}
}

// hostedReplicas lists the hosted partitions whose log is online as the
// workers of package compaction see them, each worker through its own
// interface R.
func hostedReplicas[R compaction.Replica](b *Broker) func() []R {
	return func() []R {
		ps := b.hosted.allPartitions()
		out := make([]R, 0, len(ps))
		for _, p := range ps {
			if _, failure := p.offlineState(); failure != nil {
				continue // nothing to clean or delete until it recovers
			}
			out = append(out, any(hostedReplica{b: b, p: p}).(R))
		}
		return out
	}
}

// It satisfies both workers' interfaces, so hostedReplicas' type assertion
// cannot fail.
var _ compaction.LeaderReplica = hostedReplica{}

// hostedReplica is a hosted partition as the workers of package compaction
// see it.
type hostedReplica struct {
	b *Broker
	p *Partition
}

func (r hostedReplica) Name() (string, int32) { return r.p.Topic, r.p.Index }
func (r hostedReplica) Log() *partlog.Log     { return r.p.log }
func (r hostedReplica) HighWatermark() int64  { return r.p.HighWatermark() }

func (r hostedReplica) LeaderEpoch() (int32, bool) {
	st, role := r.p.State()
	if role != roleLeader {
		return 0, false
	}
	return st.LeaderEpoch, r.b.leaseOK()
}

func (r hostedReplica) RetainBelow(offset int64, epoch int32) error {
	err := r.p.retainBelow(offset, epoch, r.b.leaseOK, r.b.registered())
	if errors.Is(err, ErrNotLeader) {
		return fmt.Errorf("%w: %w", compaction.ErrLeadershipLost, err)
	}
	return err
}

// retainBelow deletes the segments below offset as the leader of epoch.
// The role is held for the whole call, as for an append, so that a broker
// deposed meanwhile does not move its log start after its successor took
// over.
func (p *Partition) retainBelow(offset int64, epoch int32, leaseOK func() bool, registered int64) error {
	p.roleMu.RLock()
	defer p.roleMu.RUnlock()
	p.mu.Lock()
	err := p.leaderErrLocked()
	if err == nil && (p.leaderEpoch != epoch || p.predatesLocked(registered)) {
		err = fmt.Errorf("%s-%d: leadership changed since epoch %d: %w", p.Topic, p.Index, epoch, ErrNotLeader)
	}
	p.mu.Unlock()
	if err != nil {
		return err
	}
	if !leaseOK() {
		return fmt.Errorf("%s-%d: cannot confirm leadership: broker lease not renewed: %w", p.Topic, p.Index, ErrNotLeader)
	}
	if hw := p.HighWatermark(); offset > hw {
		// The policy never goes past the high watermark, which does not go
		// back while this broker leads; checked so that it never can.
		return fmt.Errorf("%s-%d: retention would delete up to %d, beyond the high watermark %d", p.Topic, p.Index, offset, hw)
	}
	if _, err := p.log.DeleteSegmentsBelow(offset); err != nil {
		return fmt.Errorf("%s-%d: delete segments below %d: %w", p.Topic, p.Index, offset, err)
	}
	// Long polls below the new start end now with OffsetOutOfRange.
	p.wake()
	return nil
}
