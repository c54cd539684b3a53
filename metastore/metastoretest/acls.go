package metastoretest

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/metastore"
)

// CreateACLs is metastore.Store.CreateACLs. Like etcd's puts of an
// existing key, creating an existing binding is a write that follows see.
func (s *Store) CreateACLs(ctx context.Context, bindings []acl.Binding) error {
	for _, b := range bindings {
		if err := b.Validate(); err != nil {
			return fmt.Errorf("metastore: create ACL %v: %w", b, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("metastore: create %d ACLs: %w", len(bindings), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.write()
	for _, b := range bindings {
		s.acls[b] = true
		s.record(change{kind: aclChange, acl: b})
	}
	s.wake()
	return nil
}

// ListACLs is metastore.Store.ListACLs.
func (s *Store) ListACLs(ctx context.Context, filter acl.Filter) ([]acl.Binding, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("metastore: list ACLs: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []acl.Binding
	for b := range s.acls {
		if filter.Matches(b) {
			out = append(out, b)
		}
	}
	metastore.SortACLs(out)
	return out, nil
}

// DeleteACLs is metastore.Store.DeleteACLs.
func (s *Store) DeleteACLs(ctx context.Context, filters []acl.Filter) ([][]acl.Binding, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("metastore: delete ACLs: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]acl.Binding, len(filters))
	var gone []change
	for b := range s.acls {
		for i, f := range filters {
			if f.Matches(b) {
				out[i] = append(out[i], b)
				gone = append(gone, change{kind: aclChange, gone: true, acl: b})
				break
			}
		}
	}
	if len(gone) > 0 {
		s.write()
		for _, c := range gone {
			delete(s.acls, c.acl)
		}
		s.record(gone...)
		s.wake()
	}
	for _, bs := range out {
		metastore.SortACLs(bs)
	}
	return out, nil
}

// FollowACLs is metastore.Store.FollowACLs: every binding now and after
// every change, on the caller's goroutine until ctx ends.
func (s *Store) FollowACLs(ctx context.Context, fn func([]acl.Binding)) {
	s.mu.Lock()
	current := maps.Clone(s.acls)
	pos := len(s.history)
	s.mu.Unlock()
	sorted := func() []acl.Binding {
		out := slices.Collect(maps.Keys(current))
		metastore.SortACLs(out)
		return out
	}
	if ctx.Err() != nil {
		return
	}
	fn(sorted())
	s.tail(ctx, pos, aclChange, func(batch []change) bool {
		for _, c := range batch {
			if c.gone {
				delete(current, c.acl)
			} else {
				current[c.acl] = true
			}
		}
		fn(sorted())
		return true
	})
}
