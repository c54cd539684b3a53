package metastoretest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/sasl"
)

// Store is an in-memory metastore. Like etcd it numbers every write with a
// cluster-wide revision, which is what Topic.Revision, PartitionState.Revision,
// BrokerInfo.Epoch, DeletedTopic.Revision and GroupMeta.Revision hold, and it
// keeps the history of topic, partition and broker changes so that watches
// and follows can start from any revision. Unlike etcd it never compacts
// that history and never breaks a watch, so resyncs never happen.
//
// It is safe for concurrent use. Watches and follows end with their
// context; nothing else runs in the background.
type Store struct {
	mu  sync.Mutex
	rev int64
	// changed is closed and replaced on every write: watchers, follows and
	// campaigns wait on it rather than poll.
	changed chan struct{}
	// history holds every change to topics, partition states and broker
	// registrations, in revision order; entries are never modified.
	history []change

	topics  map[string]metastore.Topic
	states  map[metastore.TopicPartition]metastore.PartitionState
	deleted map[string]metastore.DeletedTopic
	brokers map[int32]*Registration
	groups  map[string]*groupKeys
	txns    map[string]metastore.TransactionMeta
	// shareGroups and groupConfigs are sharegroups.go's.
	shareGroups  map[string]metastore.ShareGroupMeta
	groupConfigs map[string]groupConfigs
	acls         map[acl.Binding]bool
	scram        map[scramKey]sasl.ScramCredential
	shares       map[shareKey]metastore.ShareState
	nextPID      int64
	clusterID    string
	// candidates are the controller election's campaigners in the order
	// they joined; the first is the controller.
	candidates []*ControllerTerm
}

// New returns an empty Store.
func New() *Store {
	return &Store{
		changed: make(chan struct{}),
		topics:  map[string]metastore.Topic{},
		states:  map[metastore.TopicPartition]metastore.PartitionState{},
		deleted: map[string]metastore.DeletedTopic{},
		brokers: map[int32]*Registration{},
		groups:  map[string]*groupKeys{},
		txns:    map[string]metastore.TransactionMeta{},

		shareGroups:  map[string]metastore.ShareGroupMeta{},
		groupConfigs: map[string]groupConfigs{},
		acls:         map[acl.Binding]bool{},
		scram:        map[scramKey]sasl.ScramCredential{},
		shares:       map[shareKey]metastore.ShareState{},
		nextPID:      metastore.FirstProducerID,
	}
}

type changeKind int

const (
	topicChange changeKind = iota + 1
	partitionChange
	brokerChange
	aclChange
	scramChange
)

// change is one key's new value in history; gone means it was deleted.
type change struct {
	rev    int64
	kind   changeKind
	gone   bool
	topic  metastore.Topic               // topicChange; only Name when gone
	state  metastore.PartitionState      // partitionChange; only Topic and Partition when gone
	broker metastore.BrokerInfo          // brokerChange; only NodeID when gone
	acl    acl.Binding                   // aclChange
	scram  metastore.UserScramCredential // scramChange; only User and Mechanism when gone
}

// write starts a write: it returns the revision the write is recorded at.
// Call it with s.mu held, then record the changes and call wake.
func (s *Store) write() int64 {
	s.rev++
	return s.rev
}

// record appends changes made at the current revision to the history.
func (s *Store) record(cs ...change) {
	for _, c := range cs {
		c.rev = s.rev
		s.history = append(s.history, c)
	}
}

// wake tells every waiter that something changed. Call it with s.mu held.
func (s *Store) wake() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// historyAfter is the index of the first change after revision rev.
func (s *Store) historyAfter(rev int64) int {
	return sort.Search(len(s.history), func(i int) bool { return s.history[i].rev > rev })
}

// tail calls fn with the changes of kind from history index pos on, one
// call per revision, until ctx ends or fn returns false.
func (s *Store) tail(ctx context.Context, pos int, kind changeKind, fn func([]change) bool) {
	for {
		s.mu.Lock()
		// The entries are never modified, so they can be read unlocked.
		pending := s.history[pos:]
		wake := s.changed
		s.mu.Unlock()
		pos += len(pending)
		for len(pending) > 0 {
			n := 1
			for n < len(pending) && pending[n].rev == pending[0].rev {
				n++
			}
			var batch []change
			for _, c := range pending[:n] {
				if c.kind == kind {
					batch = append(batch, c)
				}
			}
			pending = pending[n:]
			if len(batch) == 0 {
				continue
			}
			if ctx.Err() != nil || !fn(batch) {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		}
	}
}

// Topics

// alterAttempts bounds AlterTopicConfigs' retries, as in *metastore.Store.
const alterAttempts = 5

// stored is t as the store keeps it: no caller-owned maps, and only what
// *metastore.Store persists.
func stored(t metastore.Topic) metastore.Topic {
	t.Configs = maps.Clone(t.Configs)
	if t.Configs == nil {
		t.Configs = map[string]string{}
	}
	t.CreatedAt = t.CreatedAt.Round(0)
	t.InitialLeaderEpochs = nil
	t.PartitionLimit = 0
	return t
}

// readTopic is a stored topic as handed out, so that callers cannot modify
// the store's copy.
func readTopic(t metastore.Topic) metastore.Topic {
	t.Configs = maps.Clone(t.Configs)
	return t
}

// ids copies a replica list, never nil: etcd's store reads an empty one
// back as empty, not nil.
func ids(s []int32) []int32 {
	if s == nil {
		return []int32{}
	}
	return slices.Clone(s)
}

// readState is a state as handed out, sharing nothing with the store's.
func readState(st metastore.PartitionState) metastore.PartitionState {
	st.Replicas, st.ISR = ids(st.Replicas), ids(st.ISR)
	if st.Lost != nil {
		st.Lost = slices.Clone(st.Lost)
	}
	return st
}

// CreateTopic is metastore.Store.CreateTopic.
func (s *Store) CreateTopic(ctx context.Context, t metastore.Topic, assignments [][]int32) (metastore.Topic, error) {
	if err := metastore.ValidateNewTopic(&t, assignments); err != nil {
		return metastore.Topic{}, fmt.Errorf("metastore: create topic %q: %w", t.Name, err)
	}
	if t.ID == "" {
		id, err := metastore.NewTopicID()
		if err != nil {
			return metastore.Topic{}, fmt.Errorf("metastore: create topic %q: %w", t.Name, err)
		}
		t.ID = id
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = time.Now().UTC()
	}
	if err := ctx.Err(); err != nil {
		return metastore.Topic{}, fmt.Errorf("metastore: create topic %q: %w", t.Name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.deleted[t.ID]; ok {
		return metastore.Topic{}, fmt.Errorf("metastore: create topic %q with id %s: %w", t.Name, t.ID, metastore.ErrTopicDeletionPending)
	}
	if _, ok := s.topics[t.Name]; ok {
		return metastore.Topic{}, fmt.Errorf("metastore: create topic %q: %w", t.Name, metastore.ErrTopicExists)
	}
	if err := metastore.CheckPartitionLimit(t.PartitionLimit, s.sortedTopics(), len(assignments)); err != nil {
		return metastore.Topic{}, fmt.Errorf("metastore: create topic %q: %w", t.Name, err)
	}
	t.PartitionLimit = 0
	t.Revision = s.write()
	keep := stored(t)
	s.topics[t.Name] = keep
	s.record(change{kind: topicChange, topic: keep})
	for p, replicas := range assignments {
		st := metastore.PartitionState{
			Topic:     t.Name,
			TopicID:   t.ID,
			Partition: int32(p),
			Leader:    replicas[0],
			Replicas:  ids(replicas),
			ISR:       ids(replicas),
			Revision:  t.Revision,
		}
		if p < len(t.InitialLeaderEpochs) {
			st.LeaderEpoch = t.InitialLeaderEpochs[p]
		}
		s.states[metastore.TopicPartition{Topic: t.Name, Partition: int32(p)}] = st
		s.record(change{kind: partitionChange, state: st})
	}
	s.wake()
	t.Configs = maps.Clone(keep.Configs)
	return t, nil
}

// DeleteTopic is metastore.Store.DeleteTopic: the topic, its partition
// states and the record of its pending deletion change in one revision.
func (s *Store) DeleteTopic(ctx context.Context, name string) error {
	if err := metastore.CheckTopicName(name); err != nil {
		return fmt.Errorf("metastore: delete topic %q: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("metastore: delete topic %q: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.topics[name]
	if !ok {
		return fmt.Errorf("metastore: delete topic %q: %w", name, metastore.ErrTopicNotFound)
	}
	rev := s.write()
	delete(s.topics, name)
	s.record(change{kind: topicChange, gone: true, topic: metastore.Topic{Name: name}})
	var gone []metastore.TopicPartition
	for tp := range s.states {
		if tp.Topic == name {
			gone = append(gone, tp)
		}
	}
	slices.SortFunc(gone, func(a, b metastore.TopicPartition) int { return cmp.Compare(a.Partition, b.Partition) })
	for _, tp := range gone {
		delete(s.states, tp)
		s.record(change{kind: partitionChange, gone: true, state: metastore.PartitionState{Topic: tp.Topic, Partition: tp.Partition}})
	}
	s.deleted[t.ID] = metastore.DeletedTopic{
		Name:      name,
		ID:        t.ID,
		DeletedAt: time.Now().UTC(),
		Tiered:    strings.EqualFold(t.Configs["remote.storage.enable"], "true"),
		Revision:  rev,
	}
	s.wake()
	return nil
}

// GetTopic is metastore.Store.GetTopic.
func (s *Store) GetTopic(ctx context.Context, name string) (metastore.Topic, error) {
	if err := metastore.CheckTopicName(name); err != nil {
		return metastore.Topic{}, fmt.Errorf("metastore: get topic %q: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return metastore.Topic{}, fmt.Errorf("metastore: get topic %q: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.topics[name]
	if !ok {
		return metastore.Topic{}, fmt.Errorf("metastore: get topic %q: %w", name, metastore.ErrTopicNotFound)
	}
	return readTopic(t), nil
}

// ListTopics is metastore.Store.ListTopics: the topics sorted by name and
// the revision they were read at.
func (s *Store) ListTopics(ctx context.Context) ([]metastore.Topic, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("metastore: list topics: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sortedTopics(), s.rev, nil
}

func (s *Store) sortedTopics() []metastore.Topic {
	out := make([]metastore.Topic, 0, len(s.topics))
	for _, name := range slices.Sorted(maps.Keys(s.topics)) {
		out = append(out, readTopic(s.topics[name]))
	}
	return out
}

// AlterTopicConfigs is metastore.Store.AlterTopicConfigs: validate runs
// without the store locked (it may read the store), and a topic changed
// meanwhile is read again, a few times before ErrConflict.
func (s *Store) AlterTopicConfigs(ctx context.Context, name string, set map[string]string, del []string, validate func(map[string]string) error) (metastore.Topic, error) {
	for _, k := range del {
		if _, ok := set[k]; ok {
			return metastore.Topic{}, fmt.Errorf("metastore: alter topic %q configs: key %q both set and deleted", name, k)
		}
	}
	for range alterAttempts {
		t, err := s.GetTopic(ctx, name)
		if err != nil {
			return metastore.Topic{}, fmt.Errorf("metastore: alter topic %q configs: %w", name, errors.Unwrap(err))
		}
		merged := maps.Clone(t.Configs)
		maps.Copy(merged, set)
		for _, k := range del {
			delete(merged, k)
		}
		if validate != nil {
			if err := validate(maps.Clone(merged)); err != nil {
				return metastore.Topic{}, err
			}
		}
		if maps.Equal(merged, t.Configs) {
			return t, nil
		}
		s.mu.Lock()
		if cur, ok := s.topics[name]; !ok || cur.Revision != t.Revision {
			s.mu.Unlock()
			continue
		}
		t.Configs = merged
		t.Revision = s.write()
		s.topics[name] = t
		s.record(change{kind: topicChange, topic: t})
		s.wake()
		s.mu.Unlock()
		return readTopic(t), nil
	}
	return metastore.Topic{}, fmt.Errorf("metastore: alter topic %q configs: %d attempts: %w", name, alterAttempts, metastore.ErrConflict)
}

// AddPartitions is metastore.Store.AddPartitions: ErrConflict unless the
// topic is still at t.Revision.
func (s *Store) AddPartitions(ctx context.Context, t metastore.Topic, assignments [][]int32) (metastore.Topic, error) {
	if err := metastore.ValidateAddPartitions(t, assignments); err != nil {
		return metastore.Topic{}, fmt.Errorf("metastore: add partitions to %q: %w", t.Name, err)
	}
	if err := ctx.Err(); err != nil {
		return metastore.Topic{}, fmt.Errorf("metastore: add partitions to %q: %w", t.Name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.topics[t.Name]
	if !ok {
		return metastore.Topic{}, fmt.Errorf("metastore: add partitions to %q: %w", t.Name, metastore.ErrTopicNotFound)
	}
	if cur.Revision != t.Revision {
		return metastore.Topic{}, fmt.Errorf("metastore: add partitions to %q: revision %d is stale: %w", t.Name, t.Revision, metastore.ErrConflict)
	}
	if err := metastore.CheckPartitionLimit(t.PartitionLimit, s.sortedTopics(), len(assignments)); err != nil {
		return metastore.Topic{}, fmt.Errorf("metastore: add partitions to %q: %w", t.Name, err)
	}
	next := t
	next.PartitionLimit = 0
	next.Partitions = t.Partitions + int32(len(assignments))
	next.Revision = s.write()
	keep := stored(next)
	s.topics[t.Name] = keep
	s.record(change{kind: topicChange, topic: keep})
	for i, replicas := range assignments {
		p := t.Partitions + int32(i)
		st := metastore.PartitionState{
			Topic:     t.Name,
			TopicID:   t.ID,
			Partition: p,
			Leader:    replicas[0],
			Replicas:  ids(replicas),
			ISR:       ids(replicas),
			Revision:  next.Revision,
		}
		s.states[metastore.TopicPartition{Topic: t.Name, Partition: p}] = st
		s.record(change{kind: partitionChange, state: st})
	}
	s.wake()
	return next, nil
}

// WatchTopics is metastore.Store.WatchTopics: every topic as a resync
// TopicPut, then every change, until ctx ends; then the channel closes.
func (s *Store) WatchTopics(ctx context.Context) <-chan metastore.TopicEvent {
	s.mu.Lock()
	topics, pos := s.sortedTopics(), len(s.history)
	s.mu.Unlock()
	return s.watchTopics(ctx, topics, pos)
}

// WatchTopicsSince is metastore.Store.WatchTopicsSince: every change after
// revision rev. known matters to etcd's store only when its watch breaks,
// which never happens here.
func (s *Store) WatchTopicsSince(ctx context.Context, known []metastore.Topic, rev int64) <-chan metastore.TopicEvent {
	s.mu.Lock()
	pos := s.historyAfter(rev)
	s.mu.Unlock()
	return s.watchTopics(ctx, nil, pos)
}

func (s *Store) watchTopics(ctx context.Context, listed []metastore.Topic, pos int) <-chan metastore.TopicEvent {
	out := make(chan metastore.TopicEvent)
	send := func(ev metastore.TopicEvent) bool {
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	go func() {
		defer close(out)
		for _, t := range listed {
			if !send(metastore.TopicEvent{Type: metastore.TopicPut, Topic: t, Resync: true}) {
				return
			}
		}
		s.tail(ctx, pos, topicChange, func(batch []change) bool {
			for _, c := range batch {
				ev := metastore.TopicEvent{Type: metastore.TopicPut, Topic: readTopic(c.topic)}
				if c.gone {
					ev = metastore.TopicEvent{Type: metastore.TopicDeleted, Topic: metastore.Topic{Name: c.topic.Name}}
				}
				if !send(ev) {
					return false
				}
			}
			return true
		})
	}()
	return out
}

// Partition states

// PartitionStates is metastore.Store.PartitionStates.
func (s *Store) PartitionStates(ctx context.Context, topic string) ([]metastore.PartitionState, error) {
	if err := metastore.CheckTopicName(topic); err != nil {
		return nil, fmt.Errorf("metastore: partition states of %q: %w", topic, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("metastore: partition states of %q: %w", topic, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.topics[topic]; !ok {
		return nil, fmt.Errorf("metastore: partition states of %q: %w", topic, metastore.ErrTopicNotFound)
	}
	var out []metastore.PartitionState
	for tp, st := range s.states {
		if tp.Topic == topic {
			out = append(out, readState(st))
		}
	}
	slices.SortFunc(out, func(a, b metastore.PartitionState) int { return cmp.Compare(a.Partition, b.Partition) })
	return out, nil
}

// CompareAndSwapPartitionState is metastore.Store.CompareAndSwapPartitionState.
func (s *Store) CompareAndSwapPartitionState(ctx context.Context, old, next metastore.PartitionState) (metastore.PartitionState, error) {
	return s.casPartition(ctx, old, next, nil)
}

// casPartition swaps if the state is still at old.Revision and, with a
// term, while the term lasts (else ErrNotController).
func (s *Store) casPartition(ctx context.Context, old, next metastore.PartitionState, term *ControllerTerm) (metastore.PartitionState, error) {
	if err := metastore.ValidatePartitionUpdate(old, next); err != nil {
		return metastore.PartitionState{}, fmt.Errorf("metastore: update partition %s-%d: %w", old.Topic, old.Partition, err)
	}
	if err := ctx.Err(); err != nil {
		return metastore.PartitionState{}, fmt.Errorf("metastore: update partition %s-%d: %w", old.Topic, old.Partition, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tp := metastore.TopicPartition{Topic: old.Topic, Partition: old.Partition}
	cur, ok := s.states[tp]
	if !ok {
		return metastore.PartitionState{}, fmt.Errorf("metastore: update partition %s-%d: %w", old.Topic, old.Partition, metastore.ErrTopicNotFound)
	}
	if cur.Revision != old.Revision {
		return readState(cur), fmt.Errorf("metastore: update partition %s-%d: revision %d is stale (now %d): %w",
			old.Topic, old.Partition, old.Revision, cur.Revision, metastore.ErrConflict)
	}
	if term != nil && !slices.Contains(s.candidates, term) {
		return readState(cur), fmt.Errorf("metastore: update partition %s-%d: %w", old.Topic, old.Partition, metastore.ErrNotController)
	}
	next = readState(next.PruneLost())
	next.Revision = s.write()
	s.states[tp] = next
	s.record(change{kind: partitionChange, state: next})
	s.wake()
	return readState(next), nil
}

// FollowPartitions is metastore.Store.FollowPartitions: a snapshot of every
// partition state, then the changes of each write, on the caller's
// goroutine until ctx ends.
func (s *Store) FollowPartitions(ctx context.Context, fn func(metastore.PartitionsUpdate)) {
	s.mu.Lock()
	snap := metastore.PartitionsUpdate{Snapshot: true}
	for _, st := range s.states {
		snap.States = append(snap.States, readState(st))
	}
	pos := len(s.history)
	s.mu.Unlock()
	slices.SortFunc(snap.States, func(a, b metastore.PartitionState) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	if ctx.Err() != nil {
		return
	}
	fn(snap)
	s.tail(ctx, pos, partitionChange, func(batch []change) bool {
		var u metastore.PartitionsUpdate
		for _, c := range batch {
			if c.gone {
				u.Deleted = append(u.Deleted, metastore.TopicPartition{Topic: c.state.Topic, Partition: c.state.Partition})
			} else {
				u.States = append(u.States, readState(c.state))
			}
		}
		fn(u)
		return true
	})
}

// Deleted topics

// DeletedTopics is metastore.Store.DeletedTopics: oldest deletion first.
func (s *Store) DeletedTopics(ctx context.Context) ([]metastore.DeletedTopic, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("metastore: list deleted topics: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Collect(maps.Values(s.deleted))
	slices.SortFunc(out, func(a, b metastore.DeletedTopic) int { return cmp.Compare(a.Revision, b.Revision) })
	if out == nil {
		out = []metastore.DeletedTopic{}
	}
	return out, nil
}

// DeletedTopic is metastore.Store.DeletedTopic.
func (s *Store) DeletedTopic(ctx context.Context, id string) (metastore.DeletedTopic, bool, error) {
	if err := ctx.Err(); err != nil {
		return metastore.DeletedTopic{}, false, fmt.Errorf("metastore: get deleted topic %s: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.deleted[id]
	return d, ok, nil
}

// FinishTopicDeletion is metastore.Store.FinishTopicDeletion: ErrConflict if
// the record changed since d was read; a record already gone is no error.
func (s *Store) FinishTopicDeletion(ctx context.Context, d metastore.DeletedTopic) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("metastore: finish deletion of topic %q (%s): %w", d.Name, d.ID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.deleted[d.ID]
	if !ok {
		return nil
	}
	if cur.Revision != d.Revision {
		return fmt.Errorf("metastore: finish deletion of topic %q (%s): %w", d.Name, d.ID, metastore.ErrConflict)
	}
	s.write()
	delete(s.deleted, d.ID)
	s.wake()
	return nil
}
