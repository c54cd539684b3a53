package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/topicconfig"
)

// ACLStore keeps Kafka's ACL bindings and reports their changes.
type ACLStore interface {
	CreateACLs(ctx context.Context, bindings []acl.Binding) error
	ListACLs(ctx context.Context, filter acl.Filter) ([]acl.Binding, error)
	DeleteACLs(ctx context.Context, filters []acl.Filter) ([][]acl.Binding, error)
	FollowACLs(ctx context.Context, fn func([]acl.Binding))
}

// ErrSecurityDisabled refuses the ACL APIs on a broker without an
// authorizer (authorizer.class.name unset), as Kafka does.
var ErrSecurityDisabled = errors.New("no authorizer is configured")

// newAuthorizer is the broker's authorizer, nil when authorizer.class.name
// is unset.
func newAuthorizer(settings map[string]string) (*acl.Authorizer, error) {
	cfg, enabled, err := topicconfig.Authorizer(settings)
	if err != nil {
		return nil, fmt.Errorf("broker: settings: %w", err)
	}
	if !enabled {
		return nil, nil
	}
	return acl.New(cfg), nil
}

// followACLs keeps the authorizer's bindings those of the metastore, on a
// goroutine wg accounts for, until ctx ends. ready is closed once the
// first set is in, so the broker never decides against an empty set that
// is only not loaded yet.
func (b *Broker) followACLs(ctx context.Context, wg *sync.WaitGroup) (ready <-chan struct{}) {
	done := make(chan struct{})
	var once sync.Once
	wg.Add(1)
	go func() {
		defer wg.Done()
		b.store.FollowACLs(ctx, func(bindings []acl.Binding) {
			b.authorizer.Update(bindings)
			once.Do(func() { close(done) })
		})
		once.Do(func() { close(done) })
	}()
	return done
}

// Authorizer is the broker's view of the cluster's ACLs, following the
// metastore; nil when no authorizer is configured.
func (b *Broker) Authorizer() *acl.Authorizer { return b.authorizer }

// ACLsEnabled tells whether authorizer.class.name configured an authorizer.
func (b *Broker) ACLsEnabled() bool { return b.authorizer != nil }

// CreateACLs stores valid bindings (see acl.Binding.Validate).
func (b *Broker) CreateACLs(ctx context.Context, bindings []acl.Binding) error {
	if b.authorizer == nil {
		return ErrSecurityDisabled
	}
	if err := b.store.CreateACLs(ctx, bindings); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	return nil
}

// DescribeACLs lists the bindings filter matches, read from the metastore
// so that a binding created through any broker is seen at once.
func (b *Broker) DescribeACLs(ctx context.Context, filter acl.Filter) ([]acl.Binding, error) {
	if b.authorizer == nil {
		return nil, ErrSecurityDisabled
	}
	out, err := b.store.ListACLs(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	return out, nil
}

// DeleteACLs deletes the bindings the filters match, reporting them per
// filter.
func (b *Broker) DeleteACLs(ctx context.Context, filters []acl.Filter) ([][]acl.Binding, error) {
	if b.authorizer == nil {
		return nil, ErrSecurityDisabled
	}
	out, err := b.store.DeleteACLs(ctx, filters)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	return out, nil
}
