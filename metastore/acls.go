package metastore

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strata-broker/strata/acl"
)

// aclTxnOps bounds the operations of one ACL transaction, well under
// etcd's default --max-txn-ops (128).
const aclTxnOps = 64

func (s *Store) aclsPrefix() string { return s.prefix + "/acls/" }

// aclKey names a binding by the hash of its fields, so that creating a
// binding twice writes the same key: creation is idempotent, as in Kafka,
// without a read first.
func (s *Store) aclKey(b acl.Binding) string {
	canon, _ := json.Marshal(b) // fixed field order; cannot fail
	sum := sha256.Sum256(canon)
	return s.aclsPrefix() + hex.EncodeToString(sum[:16])
}

// SortACLs orders bindings by resource then entry, the order ListACLs and
// FollowACLs deliver.
func SortACLs(bs []acl.Binding) {
	slices.SortFunc(bs, func(a, b acl.Binding) int {
		return cmp.Or(
			cmp.Compare(a.ResourceType, b.ResourceType),
			cmp.Compare(a.ResourceName, b.ResourceName),
			cmp.Compare(a.PatternType, b.PatternType),
			cmp.Compare(a.Principal, b.Principal),
			cmp.Compare(a.Host, b.Host),
			cmp.Compare(a.Operation, b.Operation),
			cmp.Compare(a.Permission, b.Permission),
		)
	})
}

// CreateACLs stores bindings. Creating one that exists changes nothing a
// reader sees. Every binding must be valid (acl.Binding.Validate): the
// caller reports each invalid one on its own, as Kafka does.
func (s *Store) CreateACLs(ctx context.Context, bindings []acl.Binding) error {
	ops := make([]clientv3.Op, 0, len(bindings))
	for _, b := range bindings {
		if err := b.Validate(); err != nil {
			return fmt.Errorf("metastore: create ACL %v: %w", b, err)
		}
		val, err := encode(b)
		if err != nil {
			return fmt.Errorf("metastore: create ACL %v: %w", b, err)
		}
		ops = append(ops, clientv3.OpPut(s.aclKey(b), val))
	}
	for chunk := range slices.Chunk(ops, aclTxnOps) {
		if _, err := s.client.Txn(ctx).Then(chunk...).Commit(); err != nil {
			return fmt.Errorf("metastore: create %d ACLs: %w", len(bindings), err)
		}
	}
	return nil
}

// listACLs reads every binding with its key. Undecodable values are
// logged and left out.
func (s *Store) listACLs(ctx context.Context) (map[string]acl.Binding, error) {
	resp, err := s.client.Get(ctx, s.aclsPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("metastore: list ACLs: %w", err)
	}
	out := make(map[string]acl.Binding, len(resp.Kvs))
	for _, e := range resp.Kvs {
		b, err := s.decodeACL(string(e.Key), e.Value)
		if err != nil {
			continue
		}
		out[string(e.Key)] = b
	}
	return out, nil
}

func (s *Store) decodeACL(key string, value []byte) (acl.Binding, error) {
	var b acl.Binding
	err := json.Unmarshal(value, &b)
	if err == nil {
		err = b.Validate()
	}
	if err != nil {
		s.logger.Error("skipping undecodable ACL", "key", key, "err", err)
	}
	return b, err
}

// ListACLs returns the bindings filter matches, sorted (SortACLs).
func (s *Store) ListACLs(ctx context.Context, filter acl.Filter) ([]acl.Binding, error) {
	all, err := s.listACLs(ctx)
	if err != nil {
		return nil, err
	}
	var out []acl.Binding
	for _, b := range all {
		if filter.Matches(b) {
			out = append(out, b)
		}
	}
	SortACLs(out)
	return out, nil
}

// DeleteACLs deletes the bindings the filters match and returns, for each
// filter, the bindings it deleted, sorted. A binding more than one filter
// matches is reported under the first, as Kafka does. Only what this call
// deleted is reported: a binding deleted meanwhile by another call is
// that call's.
func (s *Store) DeleteACLs(ctx context.Context, filters []acl.Filter) ([][]acl.Binding, error) {
	all, err := s.listACLs(ctx)
	if err != nil {
		return nil, err
	}
	type match struct {
		key    string
		filter int
		b      acl.Binding
	}
	var matched []match
	for _, key := range slices.Sorted(maps.Keys(all)) {
		b := all[key]
		for i, f := range filters {
			if f.Matches(b) {
				matched = append(matched, match{key, i, b})
				break
			}
		}
	}
	out := make([][]acl.Binding, len(filters))
	for chunk := range slices.Chunk(matched, aclTxnOps) {
		ops := make([]clientv3.Op, len(chunk))
		for i, m := range chunk {
			ops[i] = clientv3.OpDelete(m.key)
		}
		resp, err := s.client.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return nil, fmt.Errorf("metastore: delete ACLs: %w", err)
		}
		for i, r := range resp.Responses {
			if r.GetResponseDeleteRange().Deleted > 0 {
				out[chunk[i].filter] = append(out[chunk[i].filter], chunk[i].b)
			}
		}
	}
	for _, bs := range out {
		SortACLs(bs)
	}
	return out, nil
}

// FollowACLs calls fn with every binding, sorted, now and after every
// change, until ctx ends (see followPrefix).
func (s *Store) FollowACLs(ctx context.Context, fn func([]acl.Binding)) {
	followDecoded(ctx, s, s.aclsPrefix(), s.decodeACL, SortACLs, fn)
}
