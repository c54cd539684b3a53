// Share groups (KIP-932): the members of a share group, their epochs,
// subscriptions and assignments, so that a broker taking over the group's
// coordinator role continues it. The share partitions' own state (record
// locks, start offsets) is kept apart, by the share-partition leaders.
//
// # Key layout
//
//	<prefix>/sharegroups/<group>   ShareGroupMeta as JSON: epochs, members with their epochs, subscriptions and assignments
//
// <group> is url.PathEscape'd, as for consumer groups. One key per group:
// a heartbeat that changes the group rewrites it by compare-and-swap on its
// mod revision, so a deposed coordinator's write fails.
//
// A group id names one kind of group: a share group is created only while
// no key of a classic or consumer group of that id exists (the creating
// transaction compares the whole <prefix>/groups/<group>/ range), and
// PutGroup creates a classic or consumer group's meta only while the share
// group's key is absent.

package metastore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// MaxShareGroupBytes bounds a share group's stored value: it is one etcd
// value (etcd refuses requests over 1.5 MiB by default), rewritten at every
// change, and its members' subscriptions are what clients send.
const MaxShareGroupBytes = 1 << 20

// ErrShareGroupTooLarge refuses a share group whose value would be longer
// than MaxShareGroupBytes.
var ErrShareGroupTooLarge = errors.New("metastore: share group state too large")

// ErrGroupTypeConflict refuses to create a share group whose id a classic or
// consumer group uses, and a classic or consumer group whose id a share
// group uses.
var ErrGroupTypeConflict = errors.New("metastore: the group id is used by a group of another type")

// ShareGroupMeta is the state of a share group that a coordinator needs to
// continue it.
type ShareGroupMeta struct {
	Group string
	// Epoch is the group epoch, bumped when the members or their
	// subscriptions change; AssignmentEpoch is the epoch of the members'
	// current assignment.
	Epoch, AssignmentEpoch int32
	Members                []ShareGroupMember // sorted by member id on write
	// UpdatedAt is stored to the millisecond; zero means now on put.
	UpdatedAt time.Time
	// Revision is the etcd mod revision of the key, filled on read.
	Revision int64
}

// ShareGroupMember is one member of a share group.
type ShareGroupMember struct {
	MemberID, RackID, ClientID, ClientHost string
	MemberEpoch                            int32
	SubscribedTopics                       []string // sorted
	// Assignment is the member's partitions, sorted.
	Assignment []TopicPartition
}

type shareGroupValue struct {
	Epoch           int32              `json:"e"`
	AssignmentEpoch int32              `json:"ae"`
	Members         []shareMemberValue `json:"m,omitempty"`
	UpdatedAt       int64              `json:"u"` // Unix ms
}

type shareMemberValue struct {
	MemberID    string          `json:"id"`
	RackID      string          `json:"rack,omitempty"`
	ClientID    string          `json:"cid,omitempty"`
	ClientHost  string          `json:"host,omitempty"`
	MemberEpoch int32           `json:"e"`
	Topics      []string        `json:"t,omitempty"`
	Assignment  []txnTopicValue `json:"a,omitempty"`
}

// NormalizeShareGroup sorts members, subscriptions and assignments and
// drops duplicates, as the group is read back after a put.
func NormalizeShareGroup(m ShareGroupMeta) ShareGroupMeta {
	members := make([]ShareGroupMember, 0, len(m.Members))
	for _, mm := range m.Members {
		mm.SubscribedTopics = slices.Compact(slices.Sorted(slices.Values(mm.SubscribedTopics)))
		if len(mm.SubscribedTopics) == 0 {
			mm.SubscribedTopics = nil
		}
		mm.Assignment = slices.Clone(mm.Assignment)
		slices.SortFunc(mm.Assignment, CompareTopicPartitions)
		mm.Assignment = slices.Compact(mm.Assignment)
		if len(mm.Assignment) == 0 {
			mm.Assignment = nil
		}
		members = append(members, mm)
	}
	slices.SortFunc(members, func(a, b ShareGroupMember) int { return strings.Compare(a.MemberID, b.MemberID) })
	if len(members) == 0 {
		members = nil
	}
	m.Members = members
	m.UpdatedAt = time.UnixMilli(m.UpdatedAt.UnixMilli()).UTC()
	return m
}

// CheckShareGroup refuses what no share group holds.
func CheckShareGroup(m ShareGroupMeta) error {
	if err := CheckGroupName(m.Group); err != nil {
		return err
	}
	if m.Epoch < 0 || m.AssignmentEpoch < 0 {
		return fmt.Errorf("negative epoch %d or assignment epoch %d", m.Epoch, m.AssignmentEpoch)
	}
	for i, mm := range m.Members {
		if mm.MemberID == "" {
			return errors.New("member without an id")
		}
		if i > 0 && m.Members[i-1].MemberID == mm.MemberID {
			return fmt.Errorf("member %q listed twice", mm.MemberID)
		}
		for _, tp := range mm.Assignment {
			if tp.Topic == "" || tp.Partition < 0 {
				return fmt.Errorf("member %q: bad partition %q-%d", mm.MemberID, tp.Topic, tp.Partition)
			}
		}
	}
	if b, err := json.Marshal(m.value()); err != nil || len(b) > MaxShareGroupBytes {
		return fmt.Errorf("%w: %d bytes encoded, at most %d (%v)", ErrShareGroupTooLarge, len(b), MaxShareGroupBytes, err)
	}
	return nil
}

func (m ShareGroupMeta) value() shareGroupValue {
	v := shareGroupValue{Epoch: m.Epoch, AssignmentEpoch: m.AssignmentEpoch, UpdatedAt: m.UpdatedAt.UnixMilli()}
	for _, mm := range m.Members {
		mv := shareMemberValue{
			MemberID: mm.MemberID, RackID: mm.RackID, ClientID: mm.ClientID, ClientHost: mm.ClientHost,
			MemberEpoch: mm.MemberEpoch, Topics: mm.SubscribedTopics,
		}
		for _, tp := range mm.Assignment { // sorted: one run per topic
			if n := len(mv.Assignment); n > 0 && mv.Assignment[n-1].Topic == tp.Topic {
				mv.Assignment[n-1].Partitions = append(mv.Assignment[n-1].Partitions, tp.Partition)
				continue
			}
			mv.Assignment = append(mv.Assignment, txnTopicValue{Topic: tp.Topic, Partitions: []int32{tp.Partition}})
		}
		v.Members = append(v.Members, mv)
	}
	return v
}

func decodeShareGroup(group string, kv *mvccpb.KeyValue) (ShareGroupMeta, error) {
	var v shareGroupValue
	if err := json.Unmarshal(kv.Value, &v); err != nil {
		return ShareGroupMeta{}, fmt.Errorf("key %q: decode share group: %w", kv.Key, err)
	}
	m := ShareGroupMeta{
		Group: group, Epoch: v.Epoch, AssignmentEpoch: v.AssignmentEpoch,
		UpdatedAt: time.UnixMilli(v.UpdatedAt).UTC(), Revision: kv.ModRevision,
	}
	for _, mv := range v.Members {
		mm := ShareGroupMember{
			MemberID: mv.MemberID, RackID: mv.RackID, ClientID: mv.ClientID, ClientHost: mv.ClientHost,
			MemberEpoch: mv.MemberEpoch, SubscribedTopics: mv.Topics,
		}
		for _, t := range mv.Assignment {
			for _, p := range t.Partitions {
				mm.Assignment = append(mm.Assignment, TopicPartition{Topic: t.Topic, Partition: p})
			}
		}
		m.Members = append(m.Members, mm)
	}
	return m, nil
}

func (s *Store) shareGroupsPrefix() string { return s.prefix + "/sharegroups/" }

func (s *Store) shareGroupKey(group string) string {
	return s.shareGroupsPrefix() + url.PathEscape(group)
}

// GetShareGroup returns the stored share group, or ErrGroupNotFound.
func (s *Store) GetShareGroup(ctx context.Context, group string) (ShareGroupMeta, error) {
	if err := CheckGroupName(group); err != nil {
		return ShareGroupMeta{}, fmt.Errorf("metastore: get share group: %w", err)
	}
	resp, err := s.client.Get(ctx, s.shareGroupKey(group))
	if err != nil {
		return ShareGroupMeta{}, fmt.Errorf("metastore: get share group %q: %w", group, err)
	}
	if len(resp.Kvs) == 0 {
		return ShareGroupMeta{}, fmt.Errorf("metastore: get share group %q: %w", group, ErrGroupNotFound)
	}
	m, err := decodeShareGroup(group, resp.Kvs[0])
	if err != nil {
		return ShareGroupMeta{}, fmt.Errorf("metastore: get share group %q: %w", group, err)
	}
	return m, nil
}

// PutShareGroup stores meta if the group's key is still at prevRevision (0:
// the group does not exist), else fails with ErrConflict and returns what
// is stored. Creating a share group fails with ErrGroupTypeConflict while a
// classic or consumer group of that id has any key.
func (s *Store) PutShareGroup(ctx context.Context, meta ShareGroupMeta, prevRevision int64) (ShareGroupMeta, error) {
	group := meta.Group
	meta = NormalizeShareGroup(meta)
	if err := CheckShareGroup(meta); err != nil {
		return ShareGroupMeta{}, fmt.Errorf("metastore: put share group %q: %w", group, err)
	}
	if prevRevision < 0 {
		return ShareGroupMeta{}, fmt.Errorf("metastore: put share group %q: negative revision %d", group, prevRevision)
	}
	val, err := encode(meta.value())
	if err != nil {
		return ShareGroupMeta{}, fmt.Errorf("metastore: put share group %q: %w", group, err)
	}
	key := s.shareGroupKey(group)
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", prevRevision)}
	if prevRevision == 0 {
		// No key of the range may exist: every key's create revision is 0.
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(s.groupPrefix(group)), "=", 0).WithPrefix())
	}
	resp, err := s.client.Txn(ctx).
		If(cmps...).
		Then(clientv3.OpPut(key, val)).
		Else(clientv3.OpGet(key), clientv3.OpGet(s.groupPrefix(group), clientv3.WithPrefix(), clientv3.WithCountOnly())).
		Commit()
	if err != nil {
		return ShareGroupMeta{}, fmt.Errorf("metastore: put share group %q: %w", group, err)
	}
	if resp.Succeeded {
		meta.Revision = resp.Header.Revision
		return meta, nil
	}
	current := ShareGroupMeta{Group: group}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		if current, err = decodeShareGroup(group, kvs[0]); err != nil {
			return ShareGroupMeta{}, fmt.Errorf("metastore: put share group %q: %w", group, err)
		}
	}
	if current.Revision == prevRevision && resp.Responses[1].GetResponseRange().Count > 0 {
		return current, fmt.Errorf("metastore: put share group %q: %w", group, ErrGroupTypeConflict)
	}
	return current, fmt.Errorf("metastore: put share group %q: revision %d is stale (now %d): %w",
		group, prevRevision, current.Revision, ErrConflict)
}

// DeleteShareGroup deletes the share group if its key is still at revision.
func (s *Store) DeleteShareGroup(ctx context.Context, group string, revision int64) error {
	key := s.shareGroupKey(group)
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", revision)).
		Then(clientv3.OpDelete(key)).
		Commit()
	if err != nil {
		return fmt.Errorf("metastore: delete share group %q: %w", group, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("metastore: delete share group %q: revision %d is stale: %w", group, revision, ErrConflict)
	}
	return nil
}

// ListShareGroups returns every share group, sorted by id, read in pages.
func (s *Store) ListShareGroups(ctx context.Context) ([]ShareGroupMeta, error) {
	prefix := s.shareGroupsPrefix()
	var out []ShareGroupMeta
	from := prefix
	end := clientv3.GetPrefixRangeEnd(prefix)
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(groupScanPage), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend)}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.client.Get(ctx, from, opts...)
		if err != nil {
			return nil, fmt.Errorf("metastore: list share groups: %w", err)
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			name, err := url.PathUnescape(strings.TrimPrefix(string(kv.Key), prefix))
			if err != nil {
				return nil, fmt.Errorf("metastore: list share groups: key %q: %w", kv.Key, err)
			}
			m, err := decodeShareGroup(name, kv)
			if err != nil {
				return nil, fmt.Errorf("metastore: list share groups: %w", err)
			}
			out = append(out, m)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return out, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}
