package metastore

import (
	"context"
	"fmt"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// ControllerTerm is a broker's time as the cluster's controller. It ends when
// the broker's lease ends (expired, revoked) or it resigns; every partition
// change made through it is fenced by the term, so a controller that lost
// its lease without noticing cannot overwrite its successor's decisions.
type ControllerTerm struct {
	session  *concurrency.Session
	election *concurrency.Election
	store    *Store
	nodeID   int32
}

// CampaignController blocks until the broker of reg is elected controller, or
// ctx ends. The election runs on the registration's lease: a broker that is
// gone from the cluster cannot stay controller.
func (s *Store) CampaignController(ctx context.Context, reg *Registration) (*ControllerTerm, error) {
	// The session is never closed, only orphaned: closing would revoke the
	// lease, which is the broker's registration.
	sess, err := concurrency.NewSession(s.client, concurrency.WithLease(reg.lease), concurrency.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("metastore: controller election: %w", err)
	}
	el := concurrency.NewElection(sess, s.controllerKey())
	if err := el.Campaign(ctx, strconv.Itoa(int(reg.info.NodeID))); err != nil {
		sess.Orphan()
		return nil, fmt.Errorf("metastore: controller election: %w", err)
	}
	return &ControllerTerm{session: sess, election: el, store: s, nodeID: reg.info.NodeID}, nil
}

// Done is closed when the term's lease is gone.
func (t *ControllerTerm) Done() <-chan struct{} { return t.session.Done() }

// Resign ends the term at once so another broker can take over.
func (t *ControllerTerm) Resign(ctx context.Context) error {
	defer t.session.Orphan()
	if err := t.election.Resign(ctx); err != nil {
		return fmt.Errorf("metastore: resign controller: %w", err)
	}
	return nil
}

// CompareAndSwapPartitionState is Store.CompareAndSwapPartitionState, valid
// only while the term lasts: ErrNotController otherwise.
func (t *ControllerTerm) CompareAndSwapPartitionState(ctx context.Context, old, next PartitionState) (PartitionState, error) {
	fence := clientv3.Compare(clientv3.CreateRevision(t.election.Key()), "=", t.election.Rev())
	return t.store.casPartition(ctx, old, next, []clientv3.Cmp{fence})
}
