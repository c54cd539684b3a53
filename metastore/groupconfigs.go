// Group configs: the dynamic per-group settings of Kafka's GROUP config
// resource (share.*, consumer.*), set by IncrementalAlterConfigs and read by
// the coordinators and share-partition leaders of the group.
//
// # Key layout
//
//	<prefix>/groupconfigs/<group>   the group's overrides as a JSON object of strings
//
// <group> is url.PathEscape'd. The key is apart from the group's own keys
// (groups/, sharegroups/) because configs may be set before the group
// exists, and outlive it, as in Kafka.

package metastore

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func (s *Store) groupConfigsKey(group string) string {
	return s.prefix + "/groupconfigs/" + url.PathEscape(group)
}

// GetGroupConfigs returns the group's config overrides (an empty map when
// it has none) and the key's revision (0 when none).
func (s *Store) GetGroupConfigs(ctx context.Context, group string) (map[string]string, int64, error) {
	if err := CheckGroupName(group); err != nil {
		return nil, 0, fmt.Errorf("metastore: get group configs: %w", err)
	}
	resp, err := s.client.Get(ctx, s.groupConfigsKey(group))
	if err != nil {
		return nil, 0, fmt.Errorf("metastore: get group %q configs: %w", group, err)
	}
	if len(resp.Kvs) == 0 {
		return map[string]string{}, 0, nil
	}
	out := map[string]string{}
	if err := json.Unmarshal(resp.Kvs[0].Value, &out); err != nil {
		return nil, 0, fmt.Errorf("metastore: get group %q configs: key %q: %w", group, resp.Kvs[0].Key, err)
	}
	return out, resp.Kvs[0].ModRevision, nil
}

// AlterGroupConfigs sets and deletes the group's overrides, after validate
// (if not nil) accepted the merged overrides; a key in both set and del is
// refused. It is a compare-and-swap on the key's revision, retried when
// another writer changed the key meanwhile. The key is deleted when no
// override is left. It returns the overrides now stored.
func (s *Store) AlterGroupConfigs(ctx context.Context, group string, set map[string]string, del []string, validate func(map[string]string) error) (map[string]string, error) {
	if err := CheckGroupName(group); err != nil {
		return nil, fmt.Errorf("metastore: alter group configs: %w", err)
	}
	for _, k := range del {
		if _, ok := set[k]; ok {
			return nil, fmt.Errorf("metastore: alter group %q configs: key %q both set and deleted", group, k)
		}
	}
	key := s.groupConfigsKey(group)
	for range alterAttempts {
		cur, rev, err := s.GetGroupConfigs(ctx, group)
		if err != nil {
			return nil, err
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
		op := clientv3.OpDelete(key)
		if len(merged) > 0 {
			val, err := encode(merged)
			if err != nil {
				return nil, fmt.Errorf("metastore: alter group %q configs: %w", group, err)
			}
			op = clientv3.OpPut(key, val)
		}
		resp, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
			Then(op).
			Commit()
		if err != nil {
			return nil, fmt.Errorf("metastore: alter group %q configs: %w", group, err)
		}
		if resp.Succeeded {
			return merged, nil
		}
		s.logger.Debug("group configs changed during update, retrying", "group", group)
	}
	return nil, fmt.Errorf("metastore: alter group %q configs: %d attempts: %w", group, alterAttempts, ErrConflict)
}
