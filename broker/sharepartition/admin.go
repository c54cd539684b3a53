package sharepartition

import (
	"context"
	"errors"
	"fmt"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/metastore"
)

// Members tells whether a share group exists and whether it has members
// (the share-group coordinator knows). The offsets of a group with members
// cannot be altered or deleted, as in Kafka; a group that does not exist
// gets no share-partition state.
type Members interface {
	ShareGroupEmpty(ctx context.Context, group string) (bool, error)
	ShareGroupExists(ctx context.Context, group string) (bool, error)
}

// ErrGroupNotFound refuses a fetch that would start a share partition for
// a group that is not a share group (Kafka's GROUP_ID_NOT_FOUND): only the
// groups that members joined get state in the metastore.
var ErrGroupNotFound = errors.New("share group not found")

// ErrGroupNotEmpty refuses altering or deleting the offsets of a share
// group with members (Kafka's NON_EMPTY_GROUP).
var ErrGroupNotEmpty = errors.New("share group is not empty")

// Offset is a share partition's start offset as DescribeShareGroupOffsets
// reports it.
type Offset struct {
	metastore.TopicPartition
	TopicID string
	// StartOffset is the SPSO, -1 when the group has no state for the
	// partition.
	StartOffset int64
	LeaderEpoch int32
	// Lag is the records not yet done with, -1 when unknown (the
	// partition's high watermark is not known here).
	Lag int64
	Err error
}

// SetMembers gives the manager the share-group membership (nil: every
// group is taken to be empty).
func (m *Manager) SetMembers(members Members) {
	m.mu.Lock()
	m.members = members
	m.mu.Unlock()
}

func (m *Manager) checkEmpty(ctx context.Context, group string) error {
	m.mu.Lock()
	members := m.members
	m.mu.Unlock()
	if members == nil {
		return nil
	}
	empty, err := members.ShareGroupEmpty(ctx, group)
	if err != nil {
		return fmt.Errorf("share group %q membership: %w", group, err)
	}
	if !empty {
		return fmt.Errorf("share group %q: %w", group, ErrGroupNotEmpty)
	}
	return nil
}

func (m *Manager) topicIDs(ctx context.Context) (map[string]metastore.Topic, error) {
	topics, err := m.cfg.Core.ListTopics(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]metastore.Topic, len(topics))
	for _, t := range topics {
		out[t.Name] = t
	}
	return out, nil
}

// DescribeOffsets reports group's start offsets of parts, or of every
// partition it has state for when parts is nil.
func (m *Manager) DescribeOffsets(ctx context.Context, group string, parts []metastore.TopicPartition) ([]Offset, error) {
	states, err := m.cfg.Store.ListShareStates(ctx, group)
	if err != nil {
		return nil, err
	}
	topics, err := m.topicIDs(ctx)
	if err != nil {
		return nil, err
	}
	byTP := map[metastore.TopicPartition]metastore.ShareState{}
	for _, st := range states {
		t, ok := topics[st.Topic]
		if !ok || (st.TopicID != "" && st.TopicID != t.ID) {
			continue // of a deleted topic
		}
		tp := metastore.TopicPartition{Topic: st.Topic, Partition: st.Partition}
		byTP[tp] = st
	}
	if parts == nil {
		for _, st := range states {
			tp := metastore.TopicPartition{Topic: st.Topic, Partition: st.Partition}
			if _, ok := byTP[tp]; ok {
				parts = append(parts, tp)
			}
		}
	}
	out := make([]Offset, 0, len(parts))
	for _, tp := range parts {
		o := Offset{TopicPartition: tp, StartOffset: -1, LeaderEpoch: -1, Lag: -1}
		t, ok := topics[tp.Topic]
		switch {
		case !ok || tp.Partition < 0 || tp.Partition >= t.Partitions:
			o.Err = fmt.Errorf("%s-%d: %w", tp.Topic, tp.Partition, broker.ErrUnknownTopicOrPartition)
		default:
			o.TopicID = t.ID
			if st, ok := byTP[tp]; ok {
				o.StartOffset, o.LeaderEpoch = st.StartOffset, st.LeaderEpoch
				o.Lag = m.lag(st)
			}
		}
		out = append(out, o)
	}
	return out, nil
}

// lag is the records from the SPSO to the high watermark not yet done
// with, when this broker leads the partition (else -1).
func (m *Manager) lag(st metastore.ShareState) int64 {
	hw, _, _, err := m.cfg.Core.ListOffset(st.Topic, st.Partition, broker.LatestTimestamp, broker.ReadUncommitted)
	if err != nil {
		return -1
	}
	lag := hw - st.StartOffset
	for _, b := range st.Batches {
		if b.State != int8(Available) && b.FirstOffset < hw {
			lag -= min(b.LastOffset, hw-1) - b.FirstOffset + 1
		}
	}
	return max(lag, 0)
}

// AlterOffsets sets group's start offsets (the group must have no
// members): each partition's state starts again there, with a new state
// epoch. Leaders holding the old state find it changed when it is next
// used and load it again.
func (m *Manager) AlterOffsets(ctx context.Context, group string, offsets map[metastore.TopicPartition]int64) (map[metastore.TopicPartition]error, error) {
	if err := m.checkEmpty(ctx, group); err != nil {
		return nil, err
	}
	topics, err := m.topicIDs(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[metastore.TopicPartition]error, len(offsets))
	for tp, off := range offsets {
		t, ok := topics[tp.Topic]
		switch {
		case !ok || tp.Partition < 0 || tp.Partition >= t.Partitions:
			out[tp] = fmt.Errorf("%s-%d: %w", tp.Topic, tp.Partition, broker.ErrUnknownTopicOrPartition)
		case off < 0:
			out[tp] = fmt.Errorf("%w: start offset %d", broker.ErrInvalidRequest, off)
		default:
			out[tp] = m.setStart(ctx, group, tp, t.ID, off)
		}
	}
	return out, nil
}

func (m *Manager) setStart(ctx context.Context, group string, tp metastore.TopicPartition, topicID string, off int64) error {
	for range 3 {
		cur, err := m.cfg.Store.GetShareState(ctx, group, tp.Topic, tp.Partition)
		if err != nil && !errors.Is(err, metastore.ErrShareStateNotFound) {
			return err
		}
		next := metastore.ShareState{
			Group: group, Topic: tp.Topic, Partition: tp.Partition, TopicID: topicID,
			StateEpoch: cur.StateEpoch + 1, LeaderEpoch: cur.LeaderEpoch, StartOffset: off,
		}
		if _, err = m.cfg.Store.PutShareState(ctx, next, cur.Revision); !errors.Is(err, metastore.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("share state %s/%s-%d keeps changing: %w", group, tp.Topic, tp.Partition, broker.ErrLeaderNotAvailable)
}

// DeleteOffsets deletes group's state of topics (the group must have no
// members); the group starts them again from share.auto.offset.reset.
func (m *Manager) DeleteOffsets(ctx context.Context, group string, topicNames []string) (map[string]error, error) {
	if err := m.checkEmpty(ctx, group); err != nil {
		return nil, err
	}
	topics, err := m.topicIDs(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]error, len(topicNames))
	for _, name := range topicNames {
		if _, ok := topics[name]; !ok {
			out[name] = fmt.Errorf("%s: %w", name, broker.ErrUnknownTopicOrPartition)
			continue
		}
		_, out[name] = m.cfg.Store.DeleteShareStates(ctx, group, name)
	}
	return out, nil
}

// DeleteGroup deletes every share state of group (DeleteGroups of a share
// group).
func (m *Manager) DeleteGroup(ctx context.Context, group string) error {
	_, err := m.cfg.Store.DeleteShareStates(ctx, group, "")
	return err
}
