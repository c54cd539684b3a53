package metastoretest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/strata-broker/strata/metastore"
)

// copyShareGroup gives the store and its callers their own slices.
func copyShareGroup(m metastore.ShareGroupMeta) metastore.ShareGroupMeta {
	members := slices.Clone(m.Members)
	for i := range members {
		members[i].SubscribedTopics = slices.Clone(members[i].SubscribedTopics)
		members[i].Assignment = slices.Clone(members[i].Assignment)
	}
	m.Members = members
	return m
}

// GetShareGroup is metastore.Store.GetShareGroup.
func (s *Store) GetShareGroup(ctx context.Context, group string) (metastore.ShareGroupMeta, error) {
	if err := metastore.CheckGroupName(group); err != nil {
		return metastore.ShareGroupMeta{}, fmt.Errorf("metastore: get share group: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return metastore.ShareGroupMeta{}, fmt.Errorf("metastore: get share group %q: %w", group, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.shareGroups[group]
	if !ok {
		return metastore.ShareGroupMeta{}, fmt.Errorf("metastore: get share group %q: %w", group, metastore.ErrGroupNotFound)
	}
	return copyShareGroup(m), nil
}

// PutShareGroup is metastore.Store.PutShareGroup.
func (s *Store) PutShareGroup(ctx context.Context, meta metastore.ShareGroupMeta, prevRevision int64) (metastore.ShareGroupMeta, error) {
	group := meta.Group
	meta = metastore.NormalizeShareGroup(meta)
	if err := metastore.CheckShareGroup(meta); err != nil {
		return metastore.ShareGroupMeta{}, fmt.Errorf("metastore: put share group %q: %w", group, err)
	}
	if prevRevision < 0 {
		return metastore.ShareGroupMeta{}, fmt.Errorf("metastore: put share group %q: negative revision %d", group, prevRevision)
	}
	if err := ctx.Err(); err != nil {
		return metastore.ShareGroupMeta{}, fmt.Errorf("metastore: put share group %q: %w", group, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.shareGroups[group]
	if !ok {
		cur = metastore.ShareGroupMeta{Group: group}
	}
	if cur.Revision != prevRevision {
		return copyShareGroup(cur), fmt.Errorf("metastore: put share group %q: revision %d is stale (now %d): %w",
			group, prevRevision, cur.Revision, metastore.ErrConflict)
	}
	if g := s.groups[group]; prevRevision == 0 && g != nil && !g.empty() {
		return copyShareGroup(cur), fmt.Errorf("metastore: put share group %q: %w", group, metastore.ErrGroupTypeConflict)
	}
	meta.Revision = s.write()
	s.shareGroups[group] = copyShareGroup(meta)
	return meta, nil
}

// DeleteShareGroup is metastore.Store.DeleteShareGroup.
func (s *Store) DeleteShareGroup(ctx context.Context, group string, revision int64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("metastore: delete share group %q: %w", group, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shareGroups[group].Revision != revision {
		return fmt.Errorf("metastore: delete share group %q: revision %d is stale: %w", group, revision, metastore.ErrConflict)
	}
	if _, ok := s.shareGroups[group]; ok {
		s.write()
		delete(s.shareGroups, group)
	}
	return nil
}

// ListShareGroups is metastore.Store.ListShareGroups.
func (s *Store) ListShareGroups(ctx context.Context) ([]metastore.ShareGroupMeta, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("metastore: list share groups: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []metastore.ShareGroupMeta
	for _, m := range s.shareGroups {
		out = append(out, copyShareGroup(m))
	}
	slices.SortFunc(out, func(a, b metastore.ShareGroupMeta) int { return strings.Compare(a.Group, b.Group) })
	return out, nil
}

// GetGroupConfigs is metastore.Store.GetGroupConfigs.
func (s *Store) GetGroupConfigs(ctx context.Context, group string) (map[string]string, int64, error) {
	if err := metastore.CheckGroupName(group); err != nil {
		return nil, 0, fmt.Errorf("metastore: get group configs: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("metastore: get group %q configs: %w", group, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.groupConfigs[group]
	if c.values == nil {
		return map[string]string{}, 0, nil
	}
	return maps.Clone(c.values), c.rev, nil
}

// groupConfigs is a group's stored overrides and their revision.
type groupConfigs struct {
	values map[string]string
	rev    int64
}

// AlterGroupConfigs is metastore.Store.AlterGroupConfigs.
func (s *Store) AlterGroupConfigs(ctx context.Context, group string, set map[string]string, del []string, validate func(map[string]string) error) (map[string]string, error) {
	if err := metastore.CheckGroupName(group); err != nil {
		return nil, fmt.Errorf("metastore: alter group configs: %w", err)
	}
	for _, k := range del {
		if _, ok := set[k]; ok {
			return nil, fmt.Errorf("metastore: alter group %q configs: key %q both set and deleted", group, k)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("metastore: alter group %q configs: %w", group, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := maps.Clone(s.groupConfigs[group].values)
	if cur == nil {
		cur = map[string]string{}
	}
	merged := maps.Clone(cur)
	maps.Copy(merged, set)
	for _, k := range del {
		delete(merged, k)
	}
	if validate != nil {
		if err := validate(maps.Clone(merged)); err != nil {
			return nil, err
		}
	}
	if maps.Equal(merged, cur) {
		return cur, nil
	}
	rev := s.write()
	if len(merged) == 0 {
		delete(s.groupConfigs, group)
	} else {
		s.groupConfigs[group] = groupConfigs{values: maps.Clone(merged), rev: rev}
	}
	return merged, nil
}
