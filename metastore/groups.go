// Consumer groups: committed offsets and group metadata, so that the group
// coordinator of a dead broker can be replaced by another broker that reads
// the group back from etcd and continues it.
//
// # Key layout
//
//	<prefix>/groups/<group>/meta                        GroupMeta as JSON: protocol, generation, leader, members with their protocols and assignments, state, update time
//	<prefix>/groups/<group>/generation                  the generation of the meta, in decimal as plain text (so a txn can compare its value)
//	<prefix>/groups/<group>/offsets/<topic>/<partition> OffsetCommit as JSON: offset, leader epoch, metadata, commit time (partition in decimal)
//	<prefix>/groups/<group>/txn-offsets/...             pending transactional offsets (txnoffsets.go)
//
// <group> and <topic> are url.PathEscape'd: group ids are any string, '/'
// and '%' included, and escaping maps them one to one onto strings without
// '/'. So <prefix>/groups/<group>/ is the prefix of one group's keys and of
// no other group's (group "a" is a/, group "a/b" is a%2Fb/). Times are stored
// in Unix milliseconds, as Kafka keeps them.
//
// # Consistency
//
//   - meta and generation are written together, as a compare-and-swap on the
//     meta key's mod revision (PutGroup), and deleted together. Creating
//     the meta also compares the share group of the id absent
//     (sharegroups.go): a group id names one kind of group.
//   - An offset commit of a group member reads the meta, checks that the
//     member belongs to the stored generation, and writes the offsets in a
//     transaction that compares the meta key's mod revision with the one it
//     read, so a member of an older generation, or one only a deposed
//     coordinator still believes in, cannot overwrite what the current
//     generation committed.
//   - A commit request is one transaction of up to groupMaxTxnOps offsets
//     and groupMaxTxnBytes of keys and values; a larger one is split into
//     several, written in order, each fenced by the generation. Such a commit is NOT atomic: a failure (an error, or
//     a generation change between two transactions) leaves the first
//     transactions' offsets stored.
//   - Expiry deletes a group only if none of its keys changed since it was
//     read (one compare on the mod revisions of the group's whole prefix).

package metastore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	// groupMaxTxnOps is the most offsets written (or deleted) in one
	// transaction: etcd's default --max-txn-ops, which a broker using an
	// external etcd is likely to meet. The embedded etcd and testenv allow
	// 4096, but a commit must not depend on that.
	groupMaxTxnOps = 128
	// groupMaxTxnBytes bounds the keys and values of one commit
	// transaction: etcd refuses requests over 1.5 MiB by default
	// (--max-request-bytes), and offset metadata may be up to 1 MiB
	// (offset.metadata.max.bytes' largest value).
	groupMaxTxnBytes = 1 << 20
	// groupScanPage is the number of keys read per request when scanning
	// all groups (ListGroups, ExpireGroupOffsets).
	groupScanPage = 256
)

// Group states with special meaning here; the coordinator owns the others.
const (
	GroupStateEmpty = "Empty"
	GroupStateDead  = "Dead"
)

var (
	// ErrGroupNotFound means the group has no metadata (GetGroup) or no keys
	// at all (DeleteGroup).
	ErrGroupNotFound = errors.New("metastore: group not found")
	// ErrGenerationMismatch means an offset commit named a generation other
	// than the group's current one (or the group has no generation).
	ErrGenerationMismatch = errors.New("metastore: group generation mismatch")
	// ErrUnknownMember means an offset commit named a member that is not in
	// the group's stored generation.
	ErrUnknownMember = errors.New("metastore: not a member of the group's stored generation")
)

// OffsetCommit is a consumer group's committed position in one partition.
type OffsetCommit struct {
	Topic       string
	Partition   int32
	Offset      int64
	LeaderEpoch int32  // -1 if unknown
	Metadata    string // client-supplied metadata string
	// CommitTime is stored to the millisecond; zero means now on commit.
	CommitTime time.Time
}

// GroupMember is one member of a consumer group as the coordinator knows it.
type GroupMember struct {
	MemberID, InstanceID, ClientID, ClientHost string
	SessionTimeoutMs, RebalanceTimeoutMs       int32
	// Protocols are the member's supported protocols in its preference
	// order.
	Protocols []GroupProtocol
	// Assignment is what the leader assigned to the member in this
	// generation (SyncGroup).
	Assignment []byte
}

// GroupProtocol is a protocol (assignor) a member supports, with its
// metadata for that protocol.
type GroupProtocol struct {
	Name     string
	Metadata []byte
}

// GroupMeta is the state of a group that a coordinator needs to continue it.
type GroupMeta struct {
	Group        string
	ProtocolType string // "consumer" for Kafka consumers, or ""
	Protocol     string // the chosen assignor
	Generation   int32
	Leader       string // member id
	Members      []GroupMember
	State        string // "Empty", "Stable", ...
	// UpdatedAt is stored to the millisecond; zero means now on PutGroup.
	UpdatedAt time.Time
	// Revision is the etcd mod revision of the meta key, filled on read; 0
	// for a group listed without a meta key.
	Revision int64
	// Consumer is the state of a group of the consumer protocol (KIP-848),
	// nil for a classic group. Its group epoch is stored as Generation.
	Consumer *ConsumerGroupMeta
}

// GroupTypeConsumer is the type of a group of the consumer protocol, as
// ListGroups v5 names it; the others are "classic".
const (
	GroupTypeClassic  = "classic"
	GroupTypeConsumer = "consumer"
)

// Type is the group's type as ListGroups v5 names it.
func (g GroupMeta) Type() string {
	if g.Consumer != nil {
		return GroupTypeConsumer
	}
	return GroupTypeClassic
}

// ConsumerGroupMeta is what a coordinator of a consumer-protocol group needs
// to continue it: the epochs, the assignor and each member's subscription,
// epoch and partitions, so that members carry on without rejoining.
type ConsumerGroupMeta struct {
	AssignmentEpoch int32  `json:"ae"`
	Assignor        string `json:"as,omitempty"`
	// MetadataHash identifies the subscribed topics and their partition
	// counts the target assignment was computed from.
	MetadataHash uint64 `json:"mh,omitempty"`
	// Members, sorted by member id.
	Members []ConsumerMember `json:"m,omitempty"`
}

// ConsumerMember is one member of a consumer-protocol group. Partitions are
// keyed by topic id (UUID string).
type ConsumerMember struct {
	MemberID           string   `json:"id"`
	InstanceID         string   `json:"iid,omitempty"`
	RackID             string   `json:"rack,omitempty"`
	ClientID           string   `json:"cid,omitempty"`
	ClientHost         string   `json:"host,omitempty"`
	MemberEpoch        int32    `json:"e"`
	PreviousEpoch      int32    `json:"pe"`
	State              string   `json:"s,omitempty"`
	RebalanceTimeoutMs int32    `json:"rt"`
	SubscribedTopics   []string `json:"st,omitempty"`
	SubscribedRegex    string   `json:"sr,omitempty"`
	ServerAssignor     string   `json:"sa,omitempty"`
	// Assigned are the partitions the member owns; Revoking those it must
	// give up before others get them; Target what the target assignment
	// gives it.
	Assigned map[string][]int32 `json:"a,omitempty"`
	Revoking map[string][]int32 `json:"r,omitempty"`
	Target   map[string][]int32 `json:"t,omitempty"`
}

// offsetValue is the JSON stored at <prefix>/groups/<group>/offsets/<topic>/<partition>.
type offsetValue struct {
	Offset      int64  `json:"o"`
	LeaderEpoch int32  `json:"e"`
	Metadata    string `json:"m,omitempty"`
	CommitTime  int64  `json:"t"` // Unix ms
}

// groupValue is the JSON stored at <prefix>/groups/<group>/meta.
type groupValue struct {
	ProtocolType string        `json:"pt,omitempty"`
	Protocol     string        `json:"p,omitempty"`
	Generation   int32         `json:"g"`
	Leader       string        `json:"l,omitempty"`
	Members      []memberValue `json:"m,omitempty"`
	State        string        `json:"s"`
	UpdatedAt    int64         `json:"u"` // Unix ms
	// Consumer: a consumer-protocol group's state; absent for classic.
	Consumer *ConsumerGroupMeta `json:"c,omitempty"`
}

type memberValue struct {
	MemberID           string          `json:"id"`
	InstanceID         string          `json:"iid,omitempty"`
	ClientID           string          `json:"cid,omitempty"`
	ClientHost         string          `json:"host,omitempty"`
	SessionTimeoutMs   int32           `json:"st"`
	RebalanceTimeoutMs int32           `json:"rt"`
	Protocols          []protocolValue `json:"p,omitempty"`
	Assignment         []byte          `json:"a,omitempty"`
}

type protocolValue struct {
	Name     string `json:"n"`
	Metadata []byte `json:"m,omitempty"`
}

func (g GroupMeta) value() groupValue {
	v := groupValue{
		ProtocolType: g.ProtocolType,
		Protocol:     g.Protocol,
		Generation:   g.Generation,
		Leader:       g.Leader,
		State:        g.State,
		UpdatedAt:    g.UpdatedAt.UnixMilli(),
		Consumer:     g.Consumer,
	}
	for _, m := range g.Members {
		mv := memberValue{
			MemberID:           m.MemberID,
			InstanceID:         m.InstanceID,
			ClientID:           m.ClientID,
			ClientHost:         m.ClientHost,
			SessionTimeoutMs:   m.SessionTimeoutMs,
			RebalanceTimeoutMs: m.RebalanceTimeoutMs,
			Assignment:         m.Assignment,
		}
		for _, p := range m.Protocols {
			mv.Protocols = append(mv.Protocols, protocolValue(p))
		}
		v.Members = append(v.Members, mv)
	}
	return v
}

func decodeGroup(group string, kv *mvccpb.KeyValue) (GroupMeta, error) {
	var v groupValue
	if err := json.Unmarshal(kv.Value, &v); err != nil {
		return GroupMeta{}, fmt.Errorf("key %q: decode group: %w", kv.Key, err)
	}
	g := GroupMeta{
		Group:        group,
		ProtocolType: v.ProtocolType,
		Protocol:     v.Protocol,
		Generation:   v.Generation,
		Leader:       v.Leader,
		State:        v.State,
		UpdatedAt:    time.UnixMilli(v.UpdatedAt).UTC(),
		Revision:     kv.ModRevision,
		Consumer:     v.Consumer,
	}
	for _, mv := range v.Members {
		m := GroupMember{
			MemberID:           mv.MemberID,
			InstanceID:         mv.InstanceID,
			ClientID:           mv.ClientID,
			ClientHost:         mv.ClientHost,
			SessionTimeoutMs:   mv.SessionTimeoutMs,
			RebalanceTimeoutMs: mv.RebalanceTimeoutMs,
			Assignment:         mv.Assignment,
		}
		for _, p := range mv.Protocols {
			m.Protocols = append(m.Protocols, GroupProtocol(p))
		}
		g.Members = append(g.Members, m)
	}
	return g, nil
}

func decodeGeneration(kv *mvccpb.KeyValue) (int32, error) {
	gen, err := strconv.ParseInt(string(kv.Value), 10, 32)
	if err != nil || gen < 0 {
		return 0, fmt.Errorf("key %q holds %q, not a generation", kv.Key, kv.Value)
	}
	return int32(gen), nil
}

func (s *Store) groupsPrefix() string { return s.prefix + "/groups/" }

// groupPrefix is the prefix of all of group's keys and of no other group's.
func (s *Store) groupPrefix(group string) string {
	return s.groupsPrefix() + url.PathEscape(group) + "/"
}

func (s *Store) groupMetaKey(group string) string { return s.groupPrefix(group) + "meta" }

func (s *Store) groupGenerationKey(group string) string {
	return s.groupPrefix(group) + "generation"
}

func (s *Store) groupOffsetsPrefix(group string) string { return s.groupPrefix(group) + "offsets/" }

func (s *Store) groupTopicOffsetsPrefix(group, topic string) string {
	return s.groupOffsetsPrefix(group) + url.PathEscape(topic) + "/"
}

func (s *Store) groupOffsetKey(group, topic string, partition int32) string {
	return s.groupTopicOffsetsPrefix(group, topic) + strconv.FormatInt(int64(partition), 10)
}

// MaxGroupIDBytes is the longest group id: what the int16 length of the
// older Kafka group APIs can carry, so that every version can name every
// group.
const MaxGroupIDBytes = 1<<15 - 1

// CheckGroupName refuses the empty group id (Kafka answers INVALID_GROUP_ID
// for it) and one longer than MaxGroupIDBytes; any other string is stored
// escaped.
func CheckGroupName(group string) error {
	if group == "" {
		return errors.New("empty group id")
	}
	if len(group) > MaxGroupIDBytes {
		return fmt.Errorf("group id of %d bytes, longer than %d", len(group), MaxGroupIDBytes)
	}
	return nil
}

// decodeOffset decodes the offset stored at kv, whose key is under
// offsetsPrefix (<topic>/<partition> follows it).
func decodeOffset(offsetsPrefix string, kv *mvccpb.KeyValue) (OffsetCommit, error) {
	rest, ok := strings.CutPrefix(string(kv.Key), offsetsPrefix)
	escTopic, part, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 {
		return OffsetCommit{}, fmt.Errorf("key %q is not an offset key", kv.Key)
	}
	topic, err := url.PathUnescape(escTopic)
	if err != nil || topic == "" {
		return OffsetCommit{}, fmt.Errorf("key %q: bad topic %q", kv.Key, escTopic)
	}
	p, err := strconv.ParseInt(part, 10, 32)
	if err != nil || p < 0 {
		return OffsetCommit{}, fmt.Errorf("key %q: bad partition %q", kv.Key, part)
	}
	var v offsetValue
	if err := json.Unmarshal(kv.Value, &v); err != nil {
		return OffsetCommit{}, fmt.Errorf("key %q: decode offset: %w", kv.Key, err)
	}
	return OffsetCommit{
		Topic:       topic,
		Partition:   int32(p),
		Offset:      v.Offset,
		LeaderEpoch: v.LeaderEpoch,
		Metadata:    v.Metadata,
		CommitTime:  time.UnixMilli(v.CommitTime).UTC(),
	}, nil
}

func compareOffsets(a, b OffsetCommit) int {
	return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
}

// CommitOffsets stores group's committed offsets, with their leader epochs,
// metadata and commit times (zero CommitTime: now). When a partition is
// listed twice the later entry wins.
//
// With generation >= 0 the write is fenced by the stored group, as Kafka
// fences it: memberID must be a member of the stored meta (else
// ErrUnknownMember) and generation its generation (else
// ErrGenerationMismatch; a group without meta never matches), and nothing of
// that transaction is stored otherwise. The check and the write are one: the
// transaction compares the meta's mod revision with the one checked. With
// generation < 0 there is no check; that is for admin tools and for Kafka's
// commits by consumers without a group membership, which Kafka accepts only
// while the group is empty — that check is the coordinator's. Such a commit
// fails with ErrGroupTypeConflict if a share group has the group's id.
//
// Up to groupMaxTxnOps (128) offsets, and groupMaxTxnBytes (1 MiB) of keys
// and values, are written in one transaction. A larger request is split
// into transactions of that size, written one after the other, each fenced; it is then not atomic: if a later transaction fails,
// the earlier ones' offsets stay committed (the error says how many).
func (s *Store) CommitOffsets(ctx context.Context, group, memberID string, generation int32, offsets []OffsetCommit) error {
	if err := CheckGroupName(group); err != nil {
		return fmt.Errorf("metastore: commit offsets of group %q: %w", group, err)
	}
	puts, err := s.offsetPuts(group, offsets, func(topic string, partition int32) string {
		return s.groupOffsetKey(group, topic, partition)
	})
	if err != nil {
		return fmt.Errorf("metastore: commit offsets of group %q: %w", group, err)
	}

	metaKey := s.groupMetaKey(group)
	// The meta as last read: the fence compares its revision. The first read
	// may be served by the local etcd member (the compare catches a stale
	// one); after a failed compare it is read again, linearizably.
	var metaRev int64
	readMeta := func(opts ...clientv3.OpOption) error {
		resp, err := s.client.Get(ctx, metaKey, opts...)
		if err != nil {
			return err
		}
		var kv *mvccpb.KeyValue
		if len(resp.Kvs) > 0 {
			kv = resp.Kvs[0]
		}
		metaRev, err = checkCommitFence(group, kv, memberID, generation)
		return err
	}
	if generation >= 0 {
		if err := readMeta(clientv3.WithSerializable()); err != nil {
			return fmt.Errorf("metastore: commit offsets of group %q: %w", group, err)
		}
	}
	for done, retries := 0, 0; done < len(puts); {
		chunk := offsetChunk(puts[done:])
		ops := make([]clientv3.Op, len(chunk))
		for i, p := range chunk {
			ops[i] = clientv3.OpPut(p.key, p.val)
		}
		var fence []clientv3.Cmp
		if generation >= 0 {
			fence = append(fence, clientv3.Compare(clientv3.ModRevision(metaKey), "=", metaRev))
		} else {
			// A commit from outside any group creates the group's keys:
			// not under a share group's id (a member's commit is fenced
			// by the meta, which a share group's id never has).
			fence = append(fence, clientv3.Compare(clientv3.CreateRevision(s.shareGroupKey(group)), "=", 0))
		}
		resp, err := s.client.Txn(ctx).If(fence...).Then(ops...).Commit()
		if err != nil {
			if errors.Is(err, rpctypes.ErrTooManyOps) {
				err = fmt.Errorf("etcd's --max-txn-ops is below %d: %w", groupMaxTxnOps, err)
			}
			return fmt.Errorf("metastore: commit offsets of group %q: %s%w", group, partly(done, len(puts)), err)
		}
		if !resp.Succeeded && generation < 0 {
			return fmt.Errorf("metastore: commit offsets of group %q: %s%w", group, partly(done, len(puts)), ErrGroupTypeConflict)
		}
		if !resp.Succeeded {
			// The meta changed since it was checked (a rebalance, or a
			// stale local read): check the new one. The meta changes a few
			// times per rebalance, so a bounded number of retries suffices.
			retries++
			if retries > commitFenceRetries {
				return fmt.Errorf("metastore: commit offsets of group %q: %sthe group's state kept changing: %w",
					group, partly(done, len(puts)), ErrGenerationMismatch)
			}
			if err := readMeta(); err != nil {
				return fmt.Errorf("metastore: commit offsets of group %q: %s%w", group, partly(done, len(puts)), err)
			}
			continue
		}
		done += len(chunk)
	}
	return nil
}

// commitFenceRetries bounds how often a fenced commit checks a group meta
// that changed under it before giving up.
const commitFenceRetries = 5

// checkCommitFence checks a member's commit against the stored meta kv (nil:
// none) and returns the meta's revision for the transaction to compare.
func checkCommitFence(group string, kv *mvccpb.KeyValue, memberID string, generation int32) (int64, error) {
	if kv == nil {
		return 0, fmt.Errorf("generation %d, stored generation none: %w", generation, ErrGenerationMismatch)
	}
	meta, err := decodeGroup(group, kv)
	if err != nil {
		return 0, err
	}
	return meta.Revision, meta.CheckCommit(memberID, generation)
}

// CheckCommit is the fence of a member's offset commit, as Kafka orders it:
// the member must be in the stored generation, and name that generation. A
// member of a consumer-protocol group names its member epoch instead.
func (g GroupMeta) CheckCommit(memberID string, generation int32) error {
	if g.Consumer != nil {
		i := slices.IndexFunc(g.Consumer.Members, func(m ConsumerMember) bool { return m.MemberID == memberID })
		if i < 0 {
			return fmt.Errorf("member %q is not in consumer group %q: %w", memberID, g.Group, ErrUnknownMember)
		}
		if e := g.Consumer.Members[i].MemberEpoch; e != generation {
			return fmt.Errorf("member epoch %d, stored member epoch %d: %w", generation, e, ErrGenerationMismatch)
		}
		return nil
	}
	if !slices.ContainsFunc(g.Members, func(m GroupMember) bool { return m.MemberID == memberID }) {
		return fmt.Errorf("member %q, stored generation %d has members %d: %w", memberID, g.Generation, len(g.Members), ErrUnknownMember)
	}
	if g.Generation != generation {
		return fmt.Errorf("generation %d, stored generation %d: %w", generation, g.Generation, ErrGenerationMismatch)
	}
	return nil
}

// partly describes a split commit that failed after storing done of n.
func partly(done, n int) string {
	if done == 0 {
		return ""
	}
	return fmt.Sprintf("stored %d of %d offsets, then: ", done, n)
}

// FetchOffsets returns all of group's committed offsets sorted by topic and
// partition; none (not an error) if the group has none.
func (s *Store) FetchOffsets(ctx context.Context, group string) ([]OffsetCommit, error) {
	if err := CheckGroupName(group); err != nil {
		return nil, fmt.Errorf("metastore: fetch offsets of group %q: %w", group, err)
	}
	prefix := s.groupOffsetsPrefix(group)
	resp, err := s.client.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("metastore: fetch offsets of group %q: %w", group, err)
	}
	offsets := make([]OffsetCommit, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		o, err := decodeOffset(prefix, kv)
		if err != nil {
			return nil, fmt.Errorf("metastore: fetch offsets of group %q: %w", group, err)
		}
		offsets = append(offsets, o)
	}
	slices.SortFunc(offsets, compareOffsets)
	return offsets, nil
}

// DeleteOffsets deletes group's committed offsets of the given partitions of
// topic, or of all its partitions if partitions is empty, in one transaction
// (split like CommitOffsets, and then not atomic, above groupMaxTxnOps
// partitions), with the partitions' pending transactional offsets.
// Partitions without an offset are ignored. Whether the group
// may lose them (Kafka: only if no member consumes the topic) is the
// coordinator's decision.
func (s *Store) DeleteOffsets(ctx context.Context, group string, topic string, partitions []int32) error {
	if err := CheckGroupName(group); err != nil {
		return fmt.Errorf("metastore: delete offsets of group %q: %w", group, err)
	}
	if topic == "" {
		return fmt.Errorf("metastore: delete offsets of group %q: empty topic name", group)
	}
	partitions = slices.Compact(slices.Sorted(slices.Values(partitions)))
	if len(partitions) > 0 && partitions[0] < 0 {
		return fmt.Errorf("metastore: delete offsets of group %q topic %q: bad partition %d", group, topic, partitions[0])
	}
	// Pending transactional offsets of the partitions go with them, as in
	// Kafka: a transaction committing later gives them back.
	pending, err := s.deletePendingOps(ctx, group, topic, partitions)
	if err != nil {
		return fmt.Errorf("metastore: delete offsets of group %q topic %q: %w", group, topic, err)
	}
	var ops []clientv3.Op
	if len(partitions) == 0 {
		ops = append(ops, clientv3.OpDelete(s.groupTopicOffsetsPrefix(group, topic), clientv3.WithPrefix()))
	}
	for _, p := range partitions {
		ops = append(ops, clientv3.OpDelete(s.groupOffsetKey(group, topic, p)))
	}
	ops = append(ops, pending...)
	for chunk := range slices.Chunk(ops, groupMaxTxnOps) {
		if _, err := s.client.Txn(ctx).Then(chunk...).Commit(); err != nil {
			return fmt.Errorf("metastore: delete offsets of group %q topic %q: %w", group, topic, err)
		}
	}
	return nil
}

// MaxGroupBytes bounds a group's stored meta: it is one etcd value (etcd
// refuses requests over 1.5 MiB by default), rewritten at every change, and
// its members' subscriptions and protocol metadata are what clients send.
const MaxGroupBytes = 1 << 20

// ErrGroupTooLarge refuses a group meta longer than MaxGroupBytes encoded;
// nothing is written.
var ErrGroupTooLarge = errors.New("metastore: group state too large")

// CheckGroupSize refuses a group meta longer than MaxGroupBytes encoded
// (for stores other than etcd that keep PutGroup's contract).
func CheckGroupSize(meta GroupMeta) error {
	b, err := json.Marshal(meta.value())
	if err != nil {
		return err
	}
	if len(b) > MaxGroupBytes {
		return fmt.Errorf("%w: %d bytes encoded, at most %d", ErrGroupTooLarge, len(b), MaxGroupBytes)
	}
	return nil
}

// GetGroup reads group's metadata; ErrGroupNotFound if it has none (it may
// still have offsets).
func (s *Store) GetGroup(ctx context.Context, group string) (GroupMeta, error) {
	if err := CheckGroupName(group); err != nil {
		return GroupMeta{}, fmt.Errorf("metastore: get group %q: %w", group, err)
	}
	resp, err := s.client.Get(ctx, s.groupMetaKey(group))
	if err != nil {
		return GroupMeta{}, fmt.Errorf("metastore: get group %q: %w", group, err)
	}
	if len(resp.Kvs) == 0 {
		return GroupMeta{}, fmt.Errorf("metastore: get group %q: %w", group, ErrGroupNotFound)
	}
	g, err := decodeGroup(group, resp.Kvs[0])
	if err != nil {
		return GroupMeta{}, fmt.Errorf("metastore: get group %q: %w", group, err)
	}
	return g, nil
}

// PutGroup stores meta and its generation (read by ListGroups for a group
// whose meta is gone) in one transaction, if the meta key's mod revision is still prevRevision
// (0: the group must have no meta yet). It returns meta as stored, with its
// new Revision (and UpdatedAt, if zero, set to now). If the revision moved it
// returns ErrConflict together with the current meta, whose Revision is 0 if
// the group has no meta any more, so the caller can retry without a read.
// Creating a group (prevRevision 0) fails with ErrGroupTypeConflict while a
// share group has its id; a meta longer than MaxGroupBytes encoded fails
// with ErrGroupTooLarge, unwritten.
func (s *Store) PutGroup(ctx context.Context, meta GroupMeta, prevRevision int64) (GroupMeta, error) {
	group := meta.Group
	if err := CheckGroupName(group); err != nil {
		return GroupMeta{}, fmt.Errorf("metastore: put group %q: %w", group, err)
	}
	if meta.Generation < 0 {
		return GroupMeta{}, fmt.Errorf("metastore: put group %q: negative generation %d", group, meta.Generation)
	}
	if prevRevision < 0 {
		return GroupMeta{}, fmt.Errorf("metastore: put group %q: negative revision %d", group, prevRevision)
	}
	if meta.UpdatedAt.IsZero() {
		meta.UpdatedAt = time.Now()
	}
	meta.UpdatedAt = time.UnixMilli(meta.UpdatedAt.UnixMilli()).UTC() // as it reads back
	val, err := encode(meta.value())
	if err != nil {
		return GroupMeta{}, fmt.Errorf("metastore: put group %q: %w", group, err)
	}
	if len(val) > MaxGroupBytes {
		return GroupMeta{}, fmt.Errorf("metastore: put group %q: %w: %d bytes encoded, at most %d", group, ErrGroupTooLarge, len(val), MaxGroupBytes)
	}
	key := s.groupMetaKey(group)
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", prevRevision)}
	if prevRevision == 0 {
		// A group id names one kind of group: the group is created only
		// while no share group has the id (PutShareGroup compares the
		// other way).
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(s.shareGroupKey(group)), "=", 0))
	}
	resp, err := s.client.Txn(ctx).
		If(cmps...).
		Then(
			clientv3.OpPut(key, val),
			clientv3.OpPut(s.groupGenerationKey(group), strconv.FormatInt(int64(meta.Generation), 10)),
		).
		Else(clientv3.OpGet(key), clientv3.OpGet(s.shareGroupKey(group), clientv3.WithCountOnly())).
		Commit()
	if err != nil {
		return GroupMeta{}, fmt.Errorf("metastore: put group %q: %w", group, err)
	}
	if resp.Succeeded {
		meta.Revision = resp.Header.Revision
		return meta, nil
	}
	current := GroupMeta{Group: group}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		if current, err = decodeGroup(group, kvs[0]); err != nil {
			return GroupMeta{}, fmt.Errorf("metastore: put group %q: revision %d is stale: %w", group, prevRevision, err)
		}
	}
	if current.Revision == prevRevision && resp.Responses[1].GetResponseRange().Count > 0 {
		return current, fmt.Errorf("metastore: put group %q: %w", group, ErrGroupTypeConflict)
	}
	return current, fmt.Errorf("metastore: put group %q: revision %d is stale (now %d): %w",
		group, prevRevision, current.Revision, ErrConflict)
}

// DeleteGroup deletes group's meta, generation and all its offsets, pending
// transactional ones included (as Kafka deletes them), in one request; ErrGroupNotFound if it had no keys. Whether the group may be
// deleted (Kafka: only if empty) is the coordinator's decision.
func (s *Store) DeleteGroup(ctx context.Context, group string) error {
	if err := CheckGroupName(group); err != nil {
		return fmt.Errorf("metastore: delete group %q: %w", group, err)
	}
	resp, err := s.client.Delete(ctx, s.groupPrefix(group), clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("metastore: delete group %q: %w", group, err)
	}
	if resp.Deleted == 0 {
		return fmt.Errorf("metastore: delete group %q: %w", group, ErrGroupNotFound)
	}
	return nil
}

// ListGroups returns every group that has metadata or offsets, sorted by
// name and read at one revision. A group with offsets but no metadata comes
// back with State "Empty", the generation of its generation key or 0, and
// Revision 0. It reads all group keys, offsets included, in pages.
func (s *Store) ListGroups(ctx context.Context) ([]GroupMeta, error) {
	var groups []GroupMeta
	_, _, err := s.scanGroups(ctx, 0, func(g groupKeys) error {
		var meta GroupMeta
		var err error
		switch {
		case g.meta != nil:
			meta, err = decodeGroup(g.name, g.meta)
		case g.generation != nil:
			meta = GroupMeta{Group: g.name, State: GroupStateEmpty}
			meta.Generation, err = decodeGeneration(g.generation)
		default:
			meta = GroupMeta{Group: g.name, State: GroupStateEmpty}
		}
		if err != nil {
			return err
		}
		groups = append(groups, meta)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("metastore: list groups: %w", err)
	}
	slices.SortFunc(groups, func(a, b GroupMeta) int { return cmp.Compare(a.Group, b.Group) })
	return groups, nil
}

// GroupOffsets is one group as ScanGroupOffsets reads it: its committed
// offsets, and how many members its stored state names.
type GroupOffsets struct {
	Group   string
	Members int // 0 without stored state
	Offsets []OffsetCommit
}

// ScanGroupOffsets reads every group's state and offsets in pages, at one
// revision, and calls fn with each group in the order of its keys (the
// escaped group id). It stops once it has read maxKeys keys (> 0) and more
// remain, leaving out the group it was reading, and then reports that it
// did not see every group. It is one paged read, however many groups there
// are: for what looks at every group periodically (the lag metric).
func (s *Store) ScanGroupOffsets(ctx context.Context, maxKeys int, fn func(GroupOffsets)) (complete bool, err error) {
	_, complete, err = s.scanGroups(ctx, maxKeys, func(g groupKeys) error {
		out := GroupOffsets{Group: g.name}
		if g.meta != nil {
			meta, err := decodeGroup(g.name, g.meta)
			if err != nil {
				return err
			}
			out.Members = len(meta.Members)
			if meta.Consumer != nil {
				out.Members = len(meta.Consumer.Members)
			}
		}
		prefix := s.groupOffsetsPrefix(g.name)
		for _, kv := range g.offsets {
			o, err := decodeOffset(prefix, kv)
			if err != nil {
				return fmt.Errorf("group %q: %w", g.name, err)
			}
			out.Offsets = append(out.Offsets, o)
		}
		slices.SortFunc(out.Offsets, compareOffsets)
		fn(out)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("metastore: scan group offsets: %w", err)
	}
	return complete, nil
}

// ExpireGroupOffsets applies Kafka's offsets.retention.minutes: a group
// without members (no metadata, or State "Empty" or "Dead") and without
// pending transactional offsets, whose newest offset commit and metadata
// update are at least retention before now, loses all its keys: offsets,
// metadata and generation. Groups with members are never expired here
// (Kafka starts their retention when they become empty, which PutGroup's
// UpdatedAt records).
//
// Each group is deleted in its own transaction, and only if none of its keys
// changed since the scan read it, so a commit or a join racing with expiry
// wins. It returns the expired groups sorted by name. A group whose keys
// cannot be decoded is left alone; the errors for them are returned, joined,
// together with the groups that did expire.
func (s *Store) ExpireGroupOffsets(ctx context.Context, now time.Time, retention time.Duration) (expired []string, err error) {
	if retention <= 0 {
		return nil, fmt.Errorf("metastore: expire group offsets: retention %v is not positive", retention)
	}
	var candidates []string
	var errs []error
	rev, _, err := s.scanGroups(ctx, 0, func(g groupKeys) error {
		ok, err := s.groupExpired(g, now, retention)
		if err != nil {
			errs = append(errs, err)
		} else if ok {
			candidates = append(candidates, g.name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("metastore: expire group offsets: %w", err)
	}
	for _, group := range candidates {
		deleted, err := s.deleteGroupUnchangedSince(ctx, group, rev)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !deleted {
			s.logger.Debug("group changed during offset expiry, kept", "group", group)
			continue
		}
		s.logger.Info("expired offsets of empty group", "group", group, "retention", retention)
		expired = append(expired, group)
	}
	slices.Sort(expired)
	if err := errors.Join(errs...); err != nil {
		return expired, fmt.Errorf("metastore: expire group offsets: %w", err)
	}
	return expired, nil
}

// groupExpired tells whether g, as scanned, is a group without members whose
// newest commit and metadata update are at least retention before now.
func (s *Store) groupExpired(g groupKeys, now time.Time, retention time.Duration) (bool, error) {
	if g.pending > 0 {
		// An open transaction still commits offsets for it: Kafka keeps
		// such a group too.
		return false, nil
	}
	var newest time.Time
	if g.meta != nil {
		meta, err := decodeGroup(g.name, g.meta)
		if err != nil {
			return false, fmt.Errorf("group %q: %w", g.name, err)
		}
		if meta.State != GroupStateEmpty && meta.State != GroupStateDead {
			return false, nil
		}
		newest = meta.UpdatedAt
	}
	prefix := s.groupOffsetsPrefix(g.name)
	for _, kv := range g.offsets {
		o, err := decodeOffset(prefix, kv)
		if err != nil {
			return false, fmt.Errorf("group %q: %w", g.name, err)
		}
		if o.CommitTime.After(newest) {
			newest = o.CommitTime
		}
	}
	return now.Sub(newest) >= retention, nil
}

// deleteGroupUnchangedSince deletes all of group's keys if none of them was
// written after revision rev (a key created since counts as written).
func (s *Store) deleteGroupUnchangedSince(ctx context.Context, group string, rev int64) (bool, error) {
	prefix := s.groupPrefix(group)
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(prefix), "<", rev+1).WithPrefix()).
		Then(clientv3.OpDelete(prefix, clientv3.WithPrefix())).
		Commit()
	if err != nil {
		return false, fmt.Errorf("delete group %q: %w", group, err)
	}
	return resp.Succeeded, nil
}

// groupKeys are one group's keys as read by scanGroups.
type groupKeys struct {
	name       string
	meta       *mvccpb.KeyValue // nil if absent
	generation *mvccpb.KeyValue // nil if absent
	offsets    []*mvccpb.KeyValue
	pending    int // pending transactional offsets
}

// scanGroups reads every key under <prefix>/groups/ in pages, all at one
// revision (returned), and calls fn once per group with all of its keys, in
// key order. Keys of unknown kinds under a group are ignored (a later
// version may add some). It stops at the first error, fn's included; a key
// that is not a group key is an error naming it. With maxKeys > 0 it stops
// once it has read that many keys and more remain, without calling fn for
// the group it was reading, and reports that it did not see every group.
func (s *Store) scanGroups(ctx context.Context, maxKeys int, fn func(groupKeys) error) (rev int64, complete bool, err error) {
	groupsPrefix := s.groupsPrefix()
	start, end := groupsPrefix, clientv3.GetPrefixRangeEnd(groupsPrefix)
	var cur *groupKeys
	curEsc := ""
	read := 0
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(groupScanPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.client.Get(ctx, start, opts...)
		if err != nil {
			return 0, false, err
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			rest := strings.TrimPrefix(string(kv.Key), groupsPrefix)
			esc, kind, ok := strings.Cut(rest, "/")
			if cur == nil || esc != curEsc {
				if cur != nil {
					if err := fn(*cur); err != nil {
						return 0, false, err
					}
				}
				name, err := url.PathUnescape(esc)
				// A non-canonical escape would name a group whose keys
				// are not under groupPrefix(name).
				if !ok || err != nil || name == "" || url.PathEscape(name) != esc {
					return 0, false, fmt.Errorf("key %q is not a group key", kv.Key)
				}
				cur, curEsc = &groupKeys{name: name}, esc
			}
			switch {
			case kind == "meta":
				cur.meta = kv
			case kind == "generation":
				cur.generation = kv
			case strings.HasPrefix(kind, "offsets/"):
				cur.offsets = append(cur.offsets, kv)
			case strings.HasPrefix(kind, "txn-offsets/"):
				cur.pending++
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		if read += len(resp.Kvs); maxKeys > 0 && read >= maxKeys {
			return rev, false, nil
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	if cur != nil {
		if err := fn(*cur); err != nil {
			return 0, false, err
		}
	}
	return rev, true, nil
}
