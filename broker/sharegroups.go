package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/strata-broker/strata/broker/sharegroup"
	"github.com/strata-broker/strata/metastore"
)

// groupConfigsTTL is how long a group's configs read from the metastore
// are used before being read again: share partitions on any broker and
// the share-group coordinator read them on every use, and a config change
// reaches them within this time.
const groupConfigsTTL = time.Second

// groupConfigsCacheMax bounds the groups whose configs are cached; past it
// the cache is emptied (every entry is one metastore read away).
const groupConfigsCacheMax = 10_000

// errValidatedOnly stops AlterGroupConfigs after validation.
var errValidatedOnly = errors.New("validated only")

// groupConfigsCache is a TTL'd read-through cache of group configs.
type groupConfigsCache struct {
	mu      sync.Mutex
	entries map[string]groupConfigsEntry
}

type groupConfigsEntry struct {
	values  map[string]string
	expires time.Time
}

// newShareGroupCoordinator builds the coordinator of the share groups this
// broker owns; ownership is decided as for the other groups.
func newShareGroupCoordinator(b *Broker) (*sharegroup.Coordinator, error) {
	bounds, err := sharegroup.NewBounds(b.cfg.Settings)
	if err != nil {
		return nil, fmt.Errorf("broker: %w: %w", err, ErrInvalidConfig)
	}
	b.groupBounds = bounds
	b.groupConfigs.entries = map[string]groupConfigsEntry{}
	return sharegroup.New(b.store, sharegroup.Config{
		Bounds:       bounds,
		GroupConfigs: b.GroupConfigs,
		Partitions: func(topic string) (int32, bool) {
			t, ok := b.hosted.meta(topic)
			return t.Partitions, ok
		},
		Owns: func(name string) bool {
			return b.leaseOK() && b.GroupCoordinator(name).NodeID == b.cfg.NodeID
		},
		Now:    b.now,
		Logger: b.logger.With("component", "sharegroups"),
	}), nil
}

// ShareGroups is the coordinator of the share groups this broker owns.
func (b *Broker) ShareGroups() *sharegroup.Coordinator { return b.shareGroups }

// GroupConfigBounds are the broker settings that bound group configs.
func (b *Broker) GroupConfigBounds() sharegroup.Bounds { return b.groupBounds }

// GroupConfigs returns a group's effective configs (share.record.lock.
// duration.ms, share.auto.offset.reset, ...), from a cache refreshed from
// the metastore after groupConfigsTTL: cheap enough for every use by a
// share partition, and at most that stale.
func (b *Broker) GroupConfigs(ctx context.Context, group string) (sharegroup.Configs, error) {
	now := b.now()
	c := &b.groupConfigs
	c.mu.Lock()
	e, ok := c.entries[group]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return b.groupBounds.Effective(e.values), nil
	}
	values, _, err := b.store.GetGroupConfigs(ctx, group)
	if err != nil {
		return sharegroup.Configs{}, fmt.Errorf("broker: group %q configs: %w", group, err)
	}
	c.mu.Lock()
	if len(c.entries) >= groupConfigsCacheMax {
		clear(c.entries)
	}
	c.entries[group] = groupConfigsEntry{values: values, expires: now.Add(groupConfigsTTL)}
	c.mu.Unlock()
	return b.groupBounds.Effective(values), nil
}

// AlterGroupConfigs validates and stores a group's config overrides (the
// group need not exist), and returns them. This broker's cache takes them
// at once; other brokers' within groupConfigsTTL.
func (b *Broker) AlterGroupConfigs(ctx context.Context, group string, set map[string]string, del []string, validateOnly bool) (map[string]string, error) {
	validate := func(merged map[string]string) error {
		if err := b.groupBounds.Validate(merged); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
		}
		if validateOnly {
			return errValidatedOnly
		}
		return nil
	}
	values, err := b.store.AlterGroupConfigs(ctx, group, set, del, validate)
	if validateOnly && errors.Is(err, errValidatedOnly) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("broker: alter group %q configs: %w", group, err)
	}
	b.groupConfigs.mu.Lock()
	b.groupConfigs.entries[group] = groupConfigsEntry{values: values, expires: b.now().Add(groupConfigsTTL)}
	b.groupConfigs.mu.Unlock()
	return values, nil
}

// StoredGroupConfigs returns a group's overrides as stored, uncached (for
// DescribeConfigs, which must show a change at once).
func (b *Broker) StoredGroupConfigs(ctx context.Context, group string) (map[string]string, error) {
	values, _, err := b.store.GetGroupConfigs(ctx, group)
	if err != nil {
		return nil, fmt.Errorf("broker: group %q configs: %w", group, err)
	}
	return values, nil
}

// ShareGroupEmpty says whether a share group has no members, from its
// state in the metastore (any broker may be asked to alter a share group's
// offsets); a group never stored is empty.
func (b *Broker) ShareGroupEmpty(ctx context.Context, group string) (bool, error) {
	m, err := b.store.GetShareGroup(ctx, group)
	if errors.Is(err, metastore.ErrGroupNotFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("broker: share group %q: %w", group, err)
	}
	return len(m.Members) == 0, nil
}

// ShareGroupExists says whether a share group of that id is stored (a
// member joined it and it was not deleted since).
func (b *Broker) ShareGroupExists(ctx context.Context, group string) (bool, error) {
	_, err := b.store.GetShareGroup(ctx, group)
	if errors.Is(err, metastore.ErrGroupNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("broker: share group %q: %w", group, err)
	}
	return true, nil
}
