package metastoretest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"time"

	"github.com/strata-broker/strata/metastore"
)

// groupKeys is what etcd's store keeps of a group under its keys: a
// metadata value, a generation (written with the metadata, compared by
// fenced commits) and offsets. A group with none of them does not exist.
type groupKeys struct {
	meta       *metastore.GroupMeta // Revision is the meta's
	generation *int32
	offsets    map[metastore.TopicPartition]metastore.OffsetCommit
	// offsetRevs are the revisions the offsets were written at: a
	// transactional offset replaces only an older one.
	offsetRevs map[metastore.TopicPartition]int64
	// txnOffsets are the pending transactional offsets by producer id.
	txnOffsets map[int64]map[metastore.TopicPartition]pendingOffset
}

func (g *groupKeys) empty() bool {
	return g.meta == nil && g.generation == nil && len(g.offsets) == 0 && len(g.txnOffsets) == 0
}

// bytesOrNil copies b, keeping only a non-empty value, as the JSON etcd's
// store writes does (empty values are omitted and read back as nil).
func bytesOrNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return slices.Clone(b)
}

// copyGroup deep-copies a group's metadata so that the store and its
// callers never share slices.
func copyGroup(g metastore.GroupMeta) metastore.GroupMeta {
	var members []metastore.GroupMember
	for _, m := range g.Members {
		m.Assignment = bytesOrNil(m.Assignment)
		var protocols []metastore.GroupProtocol
		for _, p := range m.Protocols {
			protocols = append(protocols, metastore.GroupProtocol{Name: p.Name, Metadata: bytesOrNil(p.Metadata)})
		}
		m.Protocols = protocols
		members = append(members, m)
	}
	g.Members = members
	if g.Consumer != nil {
		// As etcd's store reads it back: through its JSON, where empty
		// lists and maps are left out.
		raw, err := json.Marshal(g.Consumer)
		if err != nil {
			panic(fmt.Sprintf("metastoretest: encode consumer group: %v", err))
		}
		var c metastore.ConsumerGroupMeta
		if err := json.Unmarshal(raw, &c); err != nil {
			panic(fmt.Sprintf("metastoretest: decode consumer group: %v", err))
		}
		g.Consumer = &c
	}
	return g
}

// msUTC is t as etcd's store reads it back: to the millisecond, in UTC.
func msUTC(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }

// CommitOffsets is metastore.Store.CommitOffsets, fenced by the stored
// meta's members and generation. Here a commit is always atomic, however
// many offsets it has.
func (s *Store) CommitOffsets(ctx context.Context, group, memberID string, generation int32, offsets []metastore.OffsetCommit) error {
	if err := metastore.CheckGroupName(group); err != nil {
		return fmt.Errorf("metastore: commit offsets of group %q: %w", group, err)
	}
	now := time.Now()
	for _, o := range offsets {
		if o.Topic == "" || o.Partition < 0 {
			return fmt.Errorf("metastore: commit offsets of group %q: bad partition %q-%d", group, o.Topic, o.Partition)
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("metastore: commit offsets of group %q: %w", group, err)
	}
	if len(offsets) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[group]
	if _, ok := s.shareGroups[group]; ok && generation < 0 {
		return fmt.Errorf("metastore: commit offsets of group %q: %w", group, metastore.ErrGroupTypeConflict)
	}
	if generation >= 0 {
		if g == nil || g.meta == nil {
			return fmt.Errorf("metastore: commit offsets of group %q: generation %d, stored generation none: %w",
				group, generation, metastore.ErrGenerationMismatch)
		}
		if err := g.meta.CheckCommit(memberID, generation); err != nil {
			return fmt.Errorf("metastore: commit offsets of group %q: %w", group, err)
		}
	}
	if g == nil {
		g = &groupKeys{}
		s.groups[group] = g
	}
	rev := s.write()
	for _, o := range offsets {
		if o.CommitTime.IsZero() {
			o.CommitTime = now
		}
		o.CommitTime = msUTC(o.CommitTime)
		g.setOffset(o, rev)
	}
	return nil
}

// FetchOffsets is metastore.Store.FetchOffsets: sorted by topic and
// partition, empty if the group has none.
func (s *Store) FetchOffsets(ctx context.Context, group string) ([]metastore.OffsetCommit, error) {
	if err := metastore.CheckGroupName(group); err != nil {
		return nil, fmt.Errorf("metastore: fetch offsets of group %q: %w", group, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("metastore: fetch offsets of group %q: %w", group, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []metastore.OffsetCommit{}
	if g := s.groups[group]; g != nil {
		out = slices.AppendSeq(out, maps.Values(g.offsets))
	}
	slices.SortFunc(out, func(a, b metastore.OffsetCommit) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return out, nil
}

// DeleteOffsets is metastore.Store.DeleteOffsets.
func (s *Store) DeleteOffsets(ctx context.Context, group string, topic string, partitions []int32) error {
	if err := metastore.CheckGroupName(group); err != nil {
		return fmt.Errorf("metastore: delete offsets of group %q: %w", group, err)
	}
	if topic == "" {
		return fmt.Errorf("metastore: delete offsets of group %q: empty topic name", group)
	}
	if slices.ContainsFunc(partitions, func(p int32) bool { return p < 0 }) {
		return fmt.Errorf("metastore: delete offsets of group %q topic %q: bad partition %d", group, topic, slices.Min(partitions))
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("metastore: delete offsets of group %q topic %q: %w", group, topic, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[group]
	if g == nil {
		return nil
	}
	match := func(tp metastore.TopicPartition) bool {
		return tp.Topic == topic && (len(partitions) == 0 || slices.Contains(partitions, tp.Partition))
	}
	for tp := range g.offsets {
		if match(tp) {
			delete(g.offsets, tp)
			delete(g.offsetRevs, tp)
		}
	}
	for pid, pending := range g.txnOffsets {
		maps.DeleteFunc(pending, func(tp metastore.TopicPartition, _ pendingOffset) bool { return match(tp) })
		if len(pending) == 0 {
			delete(g.txnOffsets, pid)
		}
	}
	s.write()
	if g.empty() {
		delete(s.groups, group)
	}
	return nil
}

// GetGroup is metastore.Store.GetGroup: ErrGroupNotFound without metadata.
func (s *Store) GetGroup(ctx context.Context, group string) (metastore.GroupMeta, error) {
	if err := metastore.CheckGroupName(group); err != nil {
		return metastore.GroupMeta{}, fmt.Errorf("metastore: get group %q: %w", group, err)
	}
	if err := ctx.Err(); err != nil {
		return metastore.GroupMeta{}, fmt.Errorf("metastore: get group %q: %w", group, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[group]
	if g == nil || g.meta == nil {
		return metastore.GroupMeta{}, fmt.Errorf("metastore: get group %q: %w", group, metastore.ErrGroupNotFound)
	}
	return copyGroup(*g.meta), nil
}

// PutGroup is metastore.Store.PutGroup: a compare-and-swap on the metadata's
// revision (0: there must be none), returning ErrConflict with the current
// metadata when it moved.
func (s *Store) PutGroup(ctx context.Context, meta metastore.GroupMeta, prevRevision int64) (metastore.GroupMeta, error) {
	group := meta.Group
	if err := metastore.CheckGroupName(group); err != nil {
		return metastore.GroupMeta{}, fmt.Errorf("metastore: put group %q: %w", group, err)
	}
	if meta.Generation < 0 {
		return metastore.GroupMeta{}, fmt.Errorf("metastore: put group %q: negative generation %d", group, meta.Generation)
	}
	if prevRevision < 0 {
		return metastore.GroupMeta{}, fmt.Errorf("metastore: put group %q: negative revision %d", group, prevRevision)
	}
	if err := ctx.Err(); err != nil {
		return metastore.GroupMeta{}, fmt.Errorf("metastore: put group %q: %w", group, err)
	}
	if meta.UpdatedAt.IsZero() {
		meta.UpdatedAt = time.Now()
	}
	meta.UpdatedAt = msUTC(meta.UpdatedAt)
	if err := metastore.CheckGroupSize(meta); err != nil {
		return metastore.GroupMeta{}, fmt.Errorf("metastore: put group %q: %w", group, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[group]
	var curRev int64
	if g != nil && g.meta != nil {
		curRev = g.meta.Revision
	}
	if curRev != prevRevision {
		current := metastore.GroupMeta{Group: group}
		if g != nil && g.meta != nil {
			current = copyGroup(*g.meta)
		}
		return current, fmt.Errorf("metastore: put group %q: revision %d is stale (now %d): %w",
			group, prevRevision, current.Revision, metastore.ErrConflict)
	}
	if _, ok := s.shareGroups[group]; ok && prevRevision == 0 {
		return metastore.GroupMeta{Group: group}, fmt.Errorf("metastore: put group %q: %w", group, metastore.ErrGroupTypeConflict)
	}
	if g == nil {
		g = &groupKeys{}
		s.groups[group] = g
	}
	meta.Revision = s.write()
	keep := copyGroup(meta)
	gen := meta.Generation
	g.meta, g.generation = &keep, &gen
	return copyGroup(keep), nil
}

// DeleteGroup is metastore.Store.DeleteGroup: ErrGroupNotFound if the
// group has nothing stored.
func (s *Store) DeleteGroup(ctx context.Context, group string) error {
	if err := metastore.CheckGroupName(group); err != nil {
		return fmt.Errorf("metastore: delete group %q: %w", group, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("metastore: delete group %q: %w", group, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.groups[group]; !ok {
		return fmt.Errorf("metastore: delete group %q: %w", group, metastore.ErrGroupNotFound)
	}
	s.write()
	delete(s.groups, group)
	return nil
}

// ListGroups is metastore.Store.ListGroups: every group with metadata,
// generation or offsets, sorted by name; one without metadata is "Empty"
// with Revision 0.
func (s *Store) ListGroups(ctx context.Context) ([]metastore.GroupMeta, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("metastore: list groups: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []metastore.GroupMeta
	for _, name := range slices.Sorted(maps.Keys(s.groups)) {
		g := s.groups[name]
		switch {
		case g.meta != nil:
			out = append(out, copyGroup(*g.meta))
		case g.generation != nil:
			out = append(out, metastore.GroupMeta{Group: name, State: metastore.GroupStateEmpty, Generation: *g.generation})
		default:
			out = append(out, metastore.GroupMeta{Group: name, State: metastore.GroupStateEmpty})
		}
	}
	return out, nil
}

// scanPage is the etcd store's page of keys when it scans groups: a scan
// with a key budget stops at the end of a page, and so does this one.
const scanPage = 256

// ScanGroupOffsets is metastore.Store.ScanGroupOffsets: groups in the
// order of their keys (the escaped group id), counting keys as etcd's
// store does (state, generation, each offset) and stopping where its pages
// would.
func (s *Store) ScanGroupOffsets(ctx context.Context, maxKeys int, fn func(metastore.GroupOffsets)) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("metastore: scan group offsets: %w", err)
	}
	s.mu.Lock()
	names := slices.SortedFunc(maps.Keys(s.groups), func(a, b string) int {
		return cmp.Compare(url.PathEscape(a)+"/", url.PathEscape(b)+"/")
	})
	var out []metastore.GroupOffsets
	total, read, complete := 0, 0, true
	for _, name := range names {
		g := s.groups[name]
		total += len(g.offsets) + g.pendingKeys()
		if g.meta != nil {
			total++
		}
		if g.generation != nil {
			total++
		}
	}
	for _, name := range names {
		g := s.groups[name]
		keys := len(g.offsets) + g.pendingKeys()
		if g.meta != nil {
			keys++
		}
		if g.generation != nil {
			keys++
		}
		// The page boundaries this group's keys cross, in order: past one
		// with the budget spent and keys left, the scan stops.
		stop := false
		for end := (read/scanPage + 1) * scanPage; end <= read+keys && end < total; end += scanPage {
			if maxKeys > 0 && end >= maxKeys {
				stop = true
				break
			}
		}
		if stop {
			complete = false
			break
		}
		read += keys
		o := metastore.GroupOffsets{Group: name}
		if g.meta != nil {
			o.Members = len(g.meta.Members)
		}
		for _, oc := range g.offsets {
			o.Offsets = append(o.Offsets, oc)
		}
		slices.SortFunc(o.Offsets, func(a, b metastore.OffsetCommit) int {
			return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
		})
		out = append(out, o)
	}
	s.mu.Unlock()
	for _, o := range out {
		fn(o)
	}
	return complete, nil
}

// ExpireGroupOffsets is metastore.Store.ExpireGroupOffsets: groups without
// members whose newest commit and metadata update are at least retention
// before now lose everything they have stored.
func (s *Store) ExpireGroupOffsets(ctx context.Context, now time.Time, retention time.Duration) ([]string, error) {
	if retention <= 0 {
		return nil, fmt.Errorf("metastore: expire group offsets: retention %v is not positive", retention)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("metastore: expire group offsets: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var expired []string
	for _, name := range slices.Sorted(maps.Keys(s.groups)) {
		g := s.groups[name]
		if len(g.txnOffsets) > 0 {
			continue
		}
		var newest time.Time
		if g.meta != nil {
			if g.meta.State != metastore.GroupStateEmpty && g.meta.State != metastore.GroupStateDead {
				continue
			}
			newest = g.meta.UpdatedAt
		}
		for _, o := range g.offsets {
			if o.CommitTime.After(newest) {
				newest = o.CommitTime
			}
		}
		if now.Sub(newest) < retention {
			continue
		}
		s.write()
		delete(s.groups, name)
		expired = append(expired, name)
	}
	return expired, nil
}
