package metastoretest

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/strata-broker/strata/metastore"
)

// Registration is a broker's presence in a Store, as metastore.Registration
// is in etcd. There is no lease: it lasts until Close, until the ctx given
// to RegisterBroker ends (as if the lease's TTL passed at once), or until
// Expire or RemoveBroker ends it as a lost lease would.
type Registration struct {
	s    *Store
	info metastore.BrokerInfo
	ttl  time.Duration
	stop func() bool // unhooks the ctx of RegisterBroker
	done chan struct{}
	err  error // guarded by s.mu; set when done closes
}

// RegisterBroker is metastore.Store.RegisterBroker. A node id held by a live
// registration fails at once with ErrBrokerRegistered: here no registration
// can outlive its broker, so there is no previous run's lease to wait for.
func (s *Store) RegisterBroker(ctx context.Context, info metastore.BrokerInfo, ttl time.Duration) (*Registration, error) {
	if info.NodeID < 0 {
		return nil, fmt.Errorf("metastore: register broker %d: negative node id", info.NodeID)
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("metastore: register broker %d: ttl %v must be positive", info.NodeID, ttl)
	}
	if info.StartedAt.IsZero() {
		info.StartedAt = time.Now().UTC()
	}
	info.StartedAt = info.StartedAt.Round(0)
	secret, err := metastore.NewReplicaSecret()
	if err != nil {
		return nil, fmt.Errorf("metastore: register broker %d: %w", info.NodeID, err)
	}
	info.ReplicaSecret = secret
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("metastore: register broker %d: %w", info.NodeID, err)
	}
	s.mu.Lock()
	if _, held := s.brokers[info.NodeID]; held {
		s.mu.Unlock()
		return nil, fmt.Errorf("metastore: register broker %d: held by a live registration: %w", info.NodeID, metastore.ErrBrokerRegistered)
	}
	info.Epoch = s.write()
	r := &Registration{s: s, info: info, ttl: ttl, done: make(chan struct{})}
	s.brokers[info.NodeID] = r
	s.record(change{kind: brokerChange, broker: info})
	s.wake()
	s.mu.Unlock()
	r.stop = context.AfterFunc(ctx, func() { r.end(ctx.Err()) })
	return r, nil
}

// end removes the registration, if it is still live, and records why it
// ended.
func (r *Registration) end(why error) {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.brokers[r.info.NodeID] != r {
		return
	}
	s.write()
	delete(s.brokers, r.info.NodeID)
	s.record(change{kind: brokerChange, gone: true, broker: metastore.BrokerInfo{NodeID: r.info.NodeID}})
	// The election runs on the registration, as in etcd on its lease.
	s.candidates = slices.DeleteFunc(s.candidates, func(t *ControllerTerm) bool {
		if t.reg == r {
			t.endLocked()
			return true
		}
		return false
	})
	r.err = why
	close(r.done)
	s.wake()
}

// NodeID is the registered broker's id.
func (r *Registration) NodeID() int32 { return r.info.NodeID }

// Epoch is the registration's broker epoch: the revision that created it.
func (r *Registration) Epoch() int64 { return r.info.Epoch }

// ReplicaSecret is metastore.Registration.ReplicaSecret.
func (r *Registration) ReplicaSecret() metastore.ReplicaSecret { return r.info.ReplicaSecret }

// Done is closed when the registration ends.
func (r *Registration) Done() <-chan struct{} { return r.done }

// Err is nil while the registration is alive and after Close, the ctx's
// error if its ctx ended, ErrLeaseLost after Expire or RemoveBroker.
func (r *Registration) Err() error {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	return r.err
}

// ValidUntil is as far as a lease renewed just now would be trusted; zero
// once the registration ended.
func (r *Registration) ValidUntil() time.Time {
	select {
	case <-r.done:
		return time.Time{}
	default:
		return time.Now().Add(r.ttl - r.ttl/4)
	}
}

// Close ends the registration, removing the broker at once. It is
// idempotent.
func (r *Registration) Close() error {
	r.stop()
	r.end(nil)
	return nil
}

// Expire ends the registration as a lost lease does: the broker is gone and
// Err reports ErrLeaseLost.
func (r *Registration) Expire() {
	r.stop()
	r.end(metastore.ErrLeaseLost)
}

// RemoveBroker is metastore.Store.RemoveBroker: the node id's registration,
// if any, ends as if its lease were revoked.
func (s *Store) RemoveBroker(ctx context.Context, nodeID int32) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("metastore: remove broker %d: %w", nodeID, err)
	}
	s.mu.Lock()
	r := s.brokers[nodeID]
	s.mu.Unlock()
	if r != nil {
		r.Expire()
	}
	return nil
}

func (s *Store) sortedBrokers() []metastore.BrokerInfo {
	out := make([]metastore.BrokerInfo, 0, len(s.brokers))
	for _, r := range s.brokers {
		out = append(out, r.info)
	}
	slices.SortFunc(out, func(a, b metastore.BrokerInfo) int { return cmp.Compare(a.NodeID, b.NodeID) })
	return out
}

// Brokers is metastore.Store.Brokers: the live brokers sorted by node id.
func (s *Store) Brokers(ctx context.Context) ([]metastore.BrokerInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("metastore: list brokers: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sortedBrokers(), nil
}

// FollowBrokers is metastore.Store.FollowBrokers: the live brokers now and
// after every change, on the caller's goroutine until ctx ends.
func (s *Store) FollowBrokers(ctx context.Context, fn func([]metastore.BrokerInfo)) {
	s.mu.Lock()
	live := map[int32]metastore.BrokerInfo{}
	for id, r := range s.brokers {
		live[id] = r.info
	}
	first, pos := s.sortedBrokers(), len(s.history)
	s.mu.Unlock()
	if ctx.Err() != nil {
		return
	}
	fn(first)
	s.tail(ctx, pos, brokerChange, func(batch []change) bool {
		for _, c := range batch {
			if c.gone {
				delete(live, c.broker.NodeID)
			} else {
				live[c.broker.NodeID] = c.broker
			}
		}
		out := make([]metastore.BrokerInfo, 0, len(live))
		for _, b := range live {
			out = append(out, b)
		}
		slices.SortFunc(out, func(a, b metastore.BrokerInfo) int { return cmp.Compare(a.NodeID, b.NodeID) })
		fn(out)
		return true
	})
}

// ControllerTerm is a broker's time as controller of a Store, as
// metastore.ControllerTerm is in etcd.
type ControllerTerm struct {
	s        *Store
	reg      *Registration
	done     chan struct{}
	doneOnce sync.Once
}

// endLocked closes Done; s.mu is held.
func (t *ControllerTerm) endLocked() { t.doneOnce.Do(func() { close(t.done) }) }

// CampaignController is metastore.Store.CampaignController: it blocks until
// reg's broker is the controller or ctx ends. Campaigners are elected in the
// order they started; a term ends with its registration or Resign.
func (s *Store) CampaignController(ctx context.Context, reg *Registration) (*ControllerTerm, error) {
	t := &ControllerTerm{s: s, reg: reg, done: make(chan struct{})}
	s.mu.Lock()
	if s.brokers[reg.info.NodeID] != reg {
		s.mu.Unlock()
		return nil, fmt.Errorf("metastore: controller election: broker %d: %w", reg.info.NodeID, metastore.ErrLeaseLost)
	}
	s.write()
	s.candidates = append(s.candidates, t)
	s.wake()
	for {
		switch {
		case !slices.Contains(s.candidates, t):
			s.mu.Unlock()
			return nil, fmt.Errorf("metastore: controller election: broker %d: %w", reg.info.NodeID, metastore.ErrLeaseLost)
		case s.candidates[0] == t:
			s.mu.Unlock()
			return t, nil
		case ctx.Err() != nil:
			s.withdrawLocked(t)
			s.mu.Unlock()
			return nil, fmt.Errorf("metastore: controller election: %w", ctx.Err())
		}
		wake := s.changed
		s.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
		}
		s.mu.Lock()
	}
}

// withdrawLocked takes t out of the election; s.mu is held.
func (s *Store) withdrawLocked(t *ControllerTerm) {
	if !slices.Contains(s.candidates, t) {
		return
	}
	s.write()
	s.candidates = slices.DeleteFunc(s.candidates, func(c *ControllerTerm) bool { return c == t })
	t.endLocked()
	s.wake()
}

// Done is closed when the term ends.
func (t *ControllerTerm) Done() <-chan struct{} { return t.done }

// Resign ends the term at once so another broker can take over.
func (t *ControllerTerm) Resign(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("metastore: resign controller: %w", err)
	}
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	t.s.withdrawLocked(t)
	return nil
}

// CompareAndSwapPartitionState is Store.CompareAndSwapPartitionState, valid
// only while the term lasts: ErrNotController otherwise.
func (t *ControllerTerm) CompareAndSwapPartitionState(ctx context.Context, old, next metastore.PartitionState) (metastore.PartitionState, error) {
	return t.s.casPartition(ctx, old, next, t)
}

// Controller is metastore.Store.Controller: the elected controller's node
// id, or -1.
func (s *Store) Controller(ctx context.Context) (int32, error) {
	if err := ctx.Err(); err != nil {
		return -1, fmt.Errorf("metastore: controller: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.candidates) == 0 {
		return -1, nil
	}
	return s.candidates[0].reg.info.NodeID, nil
}

// ClusterID is metastore.Store.ClusterID: made on first use, then fixed.
func (s *Store) ClusterID(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("metastore: cluster id: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clusterID == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("metastore: cluster id: %w", err)
		}
		s.write()
		s.clusterID = base64.RawURLEncoding.EncodeToString(b[:])
	}
	return s.clusterID, nil
}

// ProducerIDHighWater is metastore.Store.ProducerIDHighWater.
func (s *Store) ProducerIDHighWater(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("metastore: producer id high water: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextPID, nil
}

// AllocateProducerIDs is metastore.Store.AllocateProducerIDs.
func (s *Store) AllocateProducerIDs(ctx context.Context, n int64) (int64, error) {
	if n <= 0 || n > metastore.MaxProducerIDBlock {
		return 0, fmt.Errorf("metastore: allocate producer ids: block size %d not in [1, %d]", n, metastore.MaxProducerIDBlock)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("metastore: allocate producer ids: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nextPID > math.MaxInt64-n {
		return 0, fmt.Errorf("metastore: allocate producer ids: next is %d: %w", s.nextPID, metastore.ErrProducerIDsExhausted)
	}
	first := s.nextPID
	s.write()
	s.nextPID += n
	return first, nil
}
