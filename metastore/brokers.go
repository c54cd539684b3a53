package metastore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// registerAttempts bounds RegisterBroker's rounds of waiting for the node id
// and racing other registrations for it.
const registerAttempts = 3

// BrokerInfo is what a live broker publishes about itself.
type BrokerInfo struct {
	NodeID   int32
	GRPCAddr string
	// KafkaAddr is the advertised address of the broker's first Kafka
	// listener, kept for readers that know one listener only.
	KafkaAddr string
	// Endpoints are the advertised addresses of every Kafka listener, by
	// listener name. A registration without them is from a broker that
	// knew one listener: its KafkaAddr serves every listener.
	Endpoints []Endpoint
	HTTPAddr  string
	// Rack is broker.rack: where the broker runs (a zone, a rack), which
	// Kafka clients see in Metadata; empty when unset.
	Rack      string
	StartedAt time.Time
	// Epoch is the etcd revision that created this registration (Kafka's
	// broker epoch): it changes whenever the broker registers again, so a
	// partition state written before it predates the broker's current run.
	// Filled on read; not stored.
	Epoch int64
	// ReplicaSecret is the registration's own secret, made by
	// RegisterBroker (whatever the caller put here is replaced): a follower
	// presents it with its replica fetches. It must reach no client.
	ReplicaSecret ReplicaSecret
}

// Endpoint is one Kafka listener's advertised address, as Kafka's broker
// registration lists them.
type Endpoint struct {
	// Listener is the listener's name (upper case, as Kafka normalises it).
	Listener         string `json:"listener"`
	SecurityProtocol string `json:"security_protocol"`
	Addr             string `json:"addr"`
}

// KafkaAddrFor is the broker's advertised address on the named listener,
// or "" when it has no such listener: Kafka answers a client with the
// addresses of the listener it came in on, and leaves out brokers without
// it.
func (b BrokerInfo) KafkaAddrFor(listener string) string {
	if len(b.Endpoints) == 0 {
		return b.KafkaAddr
	}
	for _, e := range b.Endpoints {
		if e.Listener == listener {
			return e.Addr
		}
	}
	return ""
}

// brokerValue is the JSON stored at <prefix>/brokers/<id>.
type brokerValue struct {
	NodeID    int32      `json:"node_id"`
	GRPCAddr  string     `json:"grpc_addr,omitempty"`
	KafkaAddr string     `json:"kafka_addr,omitempty"`
	Endpoints []Endpoint `json:"endpoints,omitempty"`
	HTTPAddr  string     `json:"http_addr,omitempty"`
	Rack      string     `json:"rack,omitempty"`
	StartedAt time.Time  `json:"started_at"`
	// ReplicaSecret is stored in the registration itself, so that it lives
	// and dies with the lease and every broker following the registrations
	// has it without another read.
	ReplicaSecret string `json:"replica_secret,omitempty"`
}

func decodeBroker(value []byte, epoch int64) (BrokerInfo, error) {
	var v brokerValue
	if err := json.Unmarshal(value, &v); err != nil {
		return BrokerInfo{}, fmt.Errorf("decode broker: %w", err)
	}
	return BrokerInfo{NodeID: v.NodeID, GRPCAddr: v.GRPCAddr, KafkaAddr: v.KafkaAddr, Endpoints: v.Endpoints, HTTPAddr: v.HTTPAddr,
		Rack: v.Rack, StartedAt: v.StartedAt, Epoch: epoch, ReplicaSecret: ReplicaSecret(v.ReplicaSecret)}, nil
}

func (b BrokerInfo) value() brokerValue {
	return brokerValue{NodeID: b.NodeID, GRPCAddr: b.GRPCAddr, KafkaAddr: b.KafkaAddr, Endpoints: b.Endpoints, HTTPAddr: b.HTTPAddr, Rack: b.Rack,
		StartedAt: b.StartedAt, ReplicaSecret: string(b.ReplicaSecret)}
}

// Registration is a broker's presence in the cluster, bound to an etcd lease
// that it keeps alive. Close it to leave.
type Registration struct {
	client *clientv3.Client
	info   BrokerInfo
	lease  clientv3.LeaseID
	ttl    time.Duration

	cancel context.CancelFunc
	done   chan struct{} // closed when the keep-alive goroutine has stopped

	mu      sync.Mutex
	closing bool
	err     error

	// validUntil (unix nanoseconds) is when the lease may have expired, as
	// far as the last renewal tells; see ValidUntil.
	validUntil atomic.Int64

	closeOnce sync.Once
	closeErr  error
}

// RegisterBroker publishes info under a lease of the given TTL (etcd rounds
// it up to whole seconds and to its minimum, about 2 s by default) and keeps
// the lease alive until the Registration is closed or ctx ends. When ctx ends
// the lease is not revoked: the broker key disappears once the TTL passes.
//
// A node id is registered at most once at a time. If the id is still held,
// RegisterBroker waits up to the holder's lease TTL (plus a second) for the
// key to go: a broker restarting after a crash thus waits for its previous
// run's lease to expire. If the key outlives that wait, a live broker holds
// the id and RegisterBroker fails with ErrBrokerRegistered.
func (s *Store) RegisterBroker(ctx context.Context, info BrokerInfo, ttl time.Duration) (*Registration, error) {
	if info.NodeID < 0 {
		return nil, fmt.Errorf("metastore: register broker %d: negative node id", info.NodeID)
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("metastore: register broker %d: ttl %v must be positive", info.NodeID, ttl)
	}
	if info.StartedAt.IsZero() {
		info.StartedAt = time.Now().UTC()
	}
	secret, err := NewReplicaSecret()
	if err != nil {
		return nil, fmt.Errorf("metastore: register broker %d: %w", info.NodeID, err)
	}
	info.ReplicaSecret = secret
	val, err := encode(info.value())
	if err != nil {
		return nil, fmt.Errorf("metastore: register broker %d: %w", info.NodeID, err)
	}
	key := s.brokerKey(info.NodeID)
	var lease clientv3.LeaseID
	var granted time.Time
	for attempt := 0; lease == 0; attempt++ {
		if attempt == registerAttempts {
			return nil, fmt.Errorf("metastore: register broker %d: %d attempts: %w", info.NodeID, attempt, ErrBrokerRegistered)
		}
		if err := s.waitForBrokerKey(ctx, info.NodeID); err != nil {
			return nil, fmt.Errorf("metastore: register broker %d: %w", info.NodeID, err)
		}
		// The lease is granted only now: waiting above may take longer than
		// its TTL.
		granted = time.Now()
		grant, err := s.client.Grant(ctx, int64(math.Ceil(ttl.Seconds())))
		if err != nil {
			return nil, fmt.Errorf("metastore: register broker %d: grant lease: %w", info.NodeID, err)
		}
		resp, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, val, clientv3.WithLease(grant.ID))).
			Commit()
		if err != nil {
			s.revoke(grant.ID, ttl)
			return nil, fmt.Errorf("metastore: register broker %d: %w", info.NodeID, err)
		}
		if !resp.Succeeded { // another registration got in first
			s.revoke(grant.ID, ttl)
			continue
		}
		lease = grant.ID
		info.Epoch = resp.Header.Revision
	}

	kaCtx, cancel := context.WithCancel(ctx)
	r := &Registration{
		client: s.client,
		info:   info,
		lease:  lease,
		ttl:    ttl,
		cancel: cancel,
		done:   make(chan struct{}),
	}
	r.renewed(granted, ttl)
	go r.keepAlive(kaCtx)
	s.logger.Info("broker registered", "node_id", info.NodeID, "lease", fmt.Sprintf("%x", int64(lease)), "ttl", ttl)
	return r, nil
}

// waitForBrokerKey returns once node id's key is absent. If it is present
// it waits up to its lease's granted TTL plus a second for it to be deleted;
// a key still there after that is kept alive by a live broker:
// ErrBrokerRegistered.
func (s *Store) waitForBrokerKey(ctx context.Context, id int32) error {
	key := s.brokerKey(id)
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return err
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	kv := resp.Kvs[0]
	holder := "another broker"
	if other, err := decodeBroker(kv.Value, kv.CreateRevision); err == nil {
		holder = fmt.Sprintf("a broker started %s (kafka %s)", other.StartedAt.Format(time.RFC3339), other.KafkaAddr)
	}
	if kv.Lease == 0 {
		return fmt.Errorf("held by %s without a lease: %w", holder, ErrBrokerRegistered)
	}
	ttl, err := s.client.TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
	if err != nil {
		return fmt.Errorf("lease of the current holder: %w", err)
	}
	wait := time.Duration(ttl.GrantedTTL)*time.Second + time.Second
	s.logger.Info("broker id still registered, perhaps by this broker's previous run; waiting for its lease to expire",
		"node_id", id, "holder", holder, "wait", wait)
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for wresp := range s.client.Watch(wctx, key, clientv3.WithRev(kv.ModRevision+1)) {
		if err := wresp.Err(); err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) {
				return nil // history is gone; the caller's transaction decides
			}
			return err
		}
		for _, ev := range wresp.Events {
			if ev.Type == clientv3.EventTypeDelete {
				return nil
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return fmt.Errorf("held by %s, alive after %v: %w", holder, wait, ErrBrokerRegistered)
}

// keepAlive renews the lease every third of its TTL, each renewal on its
// own (KeepAliveOnce) so that its validity counts from when it was sent: an
// answer read late, after the process was paused, must not stretch
// ValidUntil past what etcd granted. Renewals that fail are retried for as
// long as it takes; only etcd saying the lease is gone ends the registration
// with ErrLeaseLost.
//
// Giving up after a TTL without an answer would turn every etcd outage
// longer than a third of the TTL into a new registration, a new broker
// epoch, and so leadership moved for every partition: etcd does not expire
// leases while it is down, and extends them all by their TTL when it comes
// back, so the lease is usually still there. Safety does not depend on
// giving up: ValidUntil passes a TTL after the last renewal, and a broker
// does not lead past it.
func (r *Registration) keepAlive(ctx context.Context) {
	defer close(r.done)
	lost := r.renewLoop(ctx)
	r.validUntil.Store(0)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closing:
		r.err = nil
	case ctx.Err() != nil && !lost:
		r.err = ctx.Err()
	default:
		r.err = ErrLeaseLost
	}
}

// renewRetry is the pause before retrying a failed renewal at first;
// renewRetryMax is what it grows to while etcd stays unreachable.
const (
	renewRetry    = 100 * time.Millisecond
	renewRetryMax = time.Second
)

// renewLoop renews until ctx ends (false) or etcd says the lease is gone
// (true).
func (r *Registration) renewLoop(ctx context.Context) bool {
	interval := r.ttl / 3
	wait := interval
	retry := renewRetry
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		sent := time.Now()
		rctx, cancel := context.WithTimeout(ctx, interval)
		resp, err := r.client.KeepAliveOnce(rctx, r.lease)
		cancel()
		switch {
		case err == nil:
			r.renewed(sent, min(r.ttl, time.Duration(resp.TTL)*time.Second))
			wait, retry = interval, renewRetry
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			return true
		case ctx.Err() != nil:
			return false
		default:
			wait, retry = retry, min(2*retry, renewRetryMax)
		}
	}
}

// renewed records a renewal sent at t. etcd restarted the lease's TTL when
// it handled the renewal, after t; the quarter TTL taken off leaves room for
// clocks that do not run at quite the same rate, so ValidUntil errs early.
func (r *Registration) renewed(t time.Time, ttl time.Duration) {
	r.validUntil.Store(t.Add(ttl - ttl/4).UnixNano())
}

// ValidUntil is the time until which the broker's lease is surely alive in
// etcd, judged from its last renewal. A broker must not act as a partition
// leader past it: etcd may already have expired the lease and the
// controller moved leadership elsewhere. Zero once the registration ended.
func (r *Registration) ValidUntil() time.Time {
	ns := r.validUntil.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// NodeID is the registered broker's id.
func (r *Registration) NodeID() int32 { return r.info.NodeID }

// Epoch is the registration's broker epoch (see BrokerInfo.Epoch).
func (r *Registration) Epoch() int64 { return r.info.Epoch }

// ReplicaSecret is the registration's secret (see BrokerInfo.ReplicaSecret).
func (r *Registration) ReplicaSecret() ReplicaSecret { return r.info.ReplicaSecret }

// Done is closed when the registration ends: by Close, because the ctx given
// to RegisterBroker ended, or because the lease was lost (expired while etcd
// was unreachable, or revoked by someone else). A broker whose registration
// ends without Close should stop acting as a cluster member.
func (r *Registration) Done() <-chan struct{} { return r.done }

// Err reports why the registration ended: nil while it is alive and after
// Close, the context's error if ctx ended, ErrLeaseLost if the lease was lost.
func (r *Registration) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Close stops keeping the lease alive and revokes it, removing the broker key
// at once. It waits for the revoke at most the lease's TTL; if the revoke
// fails the key still disappears when the TTL passes. Close is idempotent.
func (r *Registration) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closing = true
		r.mu.Unlock()
		r.cancel()
		<-r.done
		if errors.Is(r.Err(), ErrLeaseLost) {
			return // nothing left to revoke
		}
		ctx, cancel := context.WithTimeout(context.Background(), r.ttl)
		defer cancel()
		if _, err := r.client.Revoke(ctx, r.lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			r.closeErr = fmt.Errorf("metastore: unregister broker %d: revoke lease: %w", r.info.NodeID, err)
		}
	})
	return r.closeErr
}

// revoke drops a lease that is no longer wanted; failure only delays its
// expiry, so it is logged, not returned.
func (s *Store) revoke(id clientv3.LeaseID, ttl time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), ttl)
	defer cancel()
	if _, err := s.client.Revoke(ctx, id); err != nil {
		s.logger.Warn("revoking unused lease failed; it will expire", "lease", fmt.Sprintf("%x", int64(id)), "err", err)
	}
}

// Brokers returns the registered (live) brokers sorted by node id. A
// registration whose value cannot be decoded is logged and left out.
func (s *Store) Brokers(ctx context.Context) ([]BrokerInfo, error) {
	resp, err := s.client.Get(ctx, s.brokersPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("metastore: list brokers: %w", err)
	}
	brokers := make([]BrokerInfo, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		b, err := decodeBroker(kv.Value, kv.CreateRevision)
		if err != nil {
			s.logger.Error("skipping undecodable broker registration", "key", string(kv.Key), "err", err)
			continue
		}
		brokers = append(brokers, b)
	}
	slices.SortFunc(brokers, func(a, b BrokerInfo) int { return cmp.Compare(a.NodeID, b.NodeID) })
	return brokers, nil
}

// RemoveBroker deletes a node id's registration and revokes its lease. It is
// for a process that knows the registration can only be its own previous
// run's — `strata dev`, whose etcd lives in the same process — so that a
// restart after a crash need not wait for the old lease to expire.
func (s *Store) RemoveBroker(ctx context.Context, nodeID int32) error {
	resp, err := s.client.Get(ctx, s.brokerKey(nodeID))
	if err != nil {
		return fmt.Errorf("metastore: remove broker %d: %w", nodeID, err)
	}
	for _, kv := range resp.Kvs {
		if kv.Lease != 0 {
			if _, err := s.client.Revoke(ctx, clientv3.LeaseID(kv.Lease)); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
				return fmt.Errorf("metastore: remove broker %d: revoke lease: %w", nodeID, err)
			}
		}
	}
	if _, err := s.client.Delete(ctx, s.brokerKey(nodeID)); err != nil {
		return fmt.Errorf("metastore: remove broker %d: %w", nodeID, err)
	}
	return nil
}
