package server

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/strata-broker/strata/broker/controller"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/topicconfig"
)

// membership keeps the broker registered in etcd and runs for controller.
// While etcd cannot be reached the broker keeps renewing and stops leading
// once validUntil passes; if etcd was down, the lease is still there when it
// returns and nothing changes. When etcd says the lease is gone (it expired
// while this broker was cut off from a working etcd, or paused), the broker
// stays up, registers again, and the controller gives it partitions back as
// a follower that catches up.
type membership struct {
	store  *metastore.Store
	logger *slog.Logger
	ttl    time.Duration
	info   metastore.BrokerInfo
	// rebalance is what this broker's controller does about leader
	// imbalance (auto.leader.rebalance.enable).
	rebalance topicconfig.LeaderRebalance
	// metrics are the controller's, kept across terms.
	metrics *controller.Metrics

	mu        sync.Mutex
	reg       *metastore.Registration
	lastEpoch int64
}

func (m *membership) current() *metastore.Registration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reg
}

// validUntil is when this broker's lease may have expired.
func (m *membership) validUntil() time.Time {
	if r := m.current(); r != nil {
		return r.ValidUntil()
	}
	return time.Time{}
}

// replicaSecret is the current registration's secret, which this broker's
// replica fetches present; "" while unregistered (leaders refuse them then,
// as they would the old registration's secret).
func (m *membership) replicaSecret() metastore.ReplicaSecret {
	if r := m.current(); r != nil {
		return r.ReplicaSecret()
	}
	return ""
}

// epoch is the current registration's broker epoch; while unregistered, the
// last one (states it named are not this broker's to act on either way).
func (m *membership) epoch() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastEpoch
}

func (m *membership) register(ctx context.Context) error {
	r, err := m.store.RegisterBroker(ctx, m.info, m.ttl)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.reg, m.lastEpoch = r, r.Epoch()
	m.mu.Unlock()
	return nil
}

// run campaigns for controller on the current registration and re-registers
// after a lost lease, until ctx ends.
func (m *membership) run(ctx context.Context, defaults map[string]string) {
	for ctx.Err() == nil {
		r := m.current()
		if r == nil {
			if err := m.register(ctx); err != nil {
				if ctx.Err() == nil {
					m.logger.Warn("cannot register in etcd; retrying", "err", err)
					sleep(ctx, time.Second)
				}
				continue
			}
			m.logger.Info("registered again in etcd")
			r = m.current()
		}
		regCtx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.campaign(regCtx, r, defaults)
		}()
		select {
		case <-r.Done():
		case <-ctx.Done():
		}
		cancel()
		wg.Wait()
		if ctx.Err() != nil {
			return
		}
		m.logger.Error("lost the broker's lease in etcd: not leading any partition until registered again", "err", r.Err())
		m.mu.Lock()
		m.reg = nil
		m.mu.Unlock()
		r.Close()
	}
}

// campaign runs for controller and acts as one whenever elected.
func (m *membership) campaign(ctx context.Context, r *metastore.Registration, defaults map[string]string) {
	for ctx.Err() == nil {
		term, err := m.store.CampaignController(ctx, r)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
				m.logger.Warn("controller election failed; retrying", "err", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		controller.Run(ctx, m.store, term, defaults, m.logger.With("component", "controller"),
			controller.WithLeaderRebalance(m.rebalance), controller.WithMetrics(m.metrics))
		if ctx.Err() != nil {
			// Leaving: hand the role over now rather than after the lease.
			rctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = term.Resign(rctx)
			cancel()
		}
	}
}

func (m *membership) close() {
	if r := m.current(); r != nil {
		if err := r.Close(); err != nil {
			m.logger.Warn("leaving the cluster", "err", err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
