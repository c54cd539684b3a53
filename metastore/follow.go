package metastore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// kv is one key's new value; a nil Value means the key was deleted.
type kv struct {
	Key     string
	Value   []byte
	Rev     int64 // mod revision
	Created int64 // create revision
}

// followPrefix calls fn with every key under prefix (snapshot=true), then
// with each batch of changes, until ctx ends. When the watch breaks it lists
// the prefix again and calls fn with a new snapshot, which replaces all that
// came before. It blocks; fn runs on the caller's goroutine.
func (s *Store) followPrefix(ctx context.Context, prefix string, fn func(snapshot bool, changes []kv)) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.client.Ctx(), cancel)
	defer stop()
	backoff := watchMinBackoff
	for ctx.Err() == nil {
		resp, err := s.client.Get(ctx, prefix, clientv3.WithPrefix())
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.logger.Warn("listing failed, retrying", "prefix", prefix, "err", err, "backoff", backoff)
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, watchMaxBackoff)
			continue
		}
		snap := make([]kv, len(resp.Kvs))
		for i, e := range resp.Kvs {
			snap[i] = kv{Key: string(e.Key), Value: e.Value, Rev: e.ModRevision, Created: e.CreateRevision}
		}
		fn(true, snap)
		progressed, err := s.watchChanges(ctx, prefix, resp.Header.Revision+1, fn)
		if ctx.Err() != nil {
			return
		}
		s.logger.Warn("watch broke, listing again", "prefix", prefix, "err", err)
		if progressed {
			backoff = watchMinBackoff
		} else if !sleep(ctx, backoff) {
			return
		} else {
			backoff = min(2*backoff, watchMaxBackoff)
		}
	}
}

func (s *Store) watchChanges(ctx context.Context, prefix string, from int64, fn func(bool, []kv)) (bool, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	progressed := false
	for resp := range s.client.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(from)) {
		if err := resp.Err(); err != nil {
			return progressed, err
		}
		progressed = true
		changes := make([]kv, 0, len(resp.Events))
		for _, ev := range resp.Events {
			c := kv{Key: string(ev.Kv.Key), Rev: ev.Kv.ModRevision, Created: ev.Kv.CreateRevision}
			if ev.Type == clientv3.EventTypePut {
				c.Value = ev.Kv.Value
			}
			changes = append(changes, c)
		}
		if len(changes) > 0 {
			fn(false, changes)
		}
	}
	return progressed, errors.New("watch channel closed")
}

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// PartitionsUpdate is one delivery of FollowPartitions. A snapshot holds
// every partition state and replaces what the consumer held; otherwise States
// changed and Deleted are gone.
type PartitionsUpdate struct {
	Snapshot bool
	States   []PartitionState
	Deleted  []TopicPartition
}

// FollowPartitions calls fn with the state of every partition of every topic,
// then with every change, until ctx ends (see followPrefix). Undecodable
// states are logged and skipped.
func (s *Store) FollowPartitions(ctx context.Context, fn func(PartitionsUpdate)) {
	root := s.prefix + "/partitions/"
	s.followPrefix(ctx, root, func(snapshot bool, changes []kv) {
		u := PartitionsUpdate{Snapshot: snapshot}
		for _, c := range changes {
			topic, p, ok := parsePartitionKey(strings.TrimPrefix(c.Key, root))
			if !ok {
				continue
			}
			if c.Value == nil {
				u.Deleted = append(u.Deleted, TopicPartition{Topic: topic, Partition: p})
				continue
			}
			st, err := decodePartition(c.Value, c.Rev)
			if err != nil {
				s.logger.Error("skipping undecodable partition state", "key", c.Key, "err", err)
				continue
			}
			u.States = append(u.States, st)
		}
		fn(u)
	})
}

func parsePartitionKey(rest string) (string, int32, bool) {
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 {
		return "", 0, false
	}
	p, err := strconv.ParseInt(rest[i+1:], 10, 32)
	if err != nil || p < 0 {
		return "", 0, false
	}
	return rest[:i], int32(p), true
}

// FollowBrokers calls fn with the live brokers, sorted by node id, now and
// after every change, until ctx ends.
func (s *Store) FollowBrokers(ctx context.Context, fn func([]BrokerInfo)) {
	live := map[string]BrokerInfo{}
	s.followPrefix(ctx, s.brokersPrefix(), func(snapshot bool, changes []kv) {
		if snapshot {
			clear(live)
		}
		for _, c := range changes {
			if c.Value == nil {
				delete(live, c.Key)
				continue
			}
			b, err := decodeBroker(c.Value, c.Created)
			if err != nil {
				s.logger.Error("skipping undecodable broker registration", "key", c.Key, "err", err)
				continue
			}
			live[c.Key] = b
		}
		out := slices.Collect(maps.Values(live))
		slices.SortFunc(out, func(a, b BrokerInfo) int { return int(a.NodeID) - int(b.NodeID) })
		fn(out)
	})
}

// ErrNotController is returned by a controller term's operations after it
// ended.
var ErrNotController = errors.New("metastore: no longer the controller")

func (s *Store) controllerKey() string { return s.prefix + "/controller" }

// Controller returns the node id of the elected controller, or -1.
func (s *Store) Controller(ctx context.Context) (int32, error) {
	resp, err := s.client.Get(ctx, s.controllerKey()+"/", clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(1))
	if err != nil {
		return -1, fmt.Errorf("metastore: controller: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return -1, nil
	}
	id, err := strconv.ParseInt(string(resp.Kvs[0].Value), 10, 32)
	if err != nil {
		return -1, fmt.Errorf("metastore: controller: bad value %q", resp.Kvs[0].Value)
	}
	return int32(id), nil
}

// followDecoded follows the values under prefix, decoded one by one (a
// value that does not decode counts as absent), and calls fn with all of
// them, in sorted's order, now and after every change, until ctx ends.
func followDecoded[T any](ctx context.Context, s *Store, prefix string, decode func(key string, value []byte) (T, error), sorted func([]T), fn func([]T)) {
	current := map[string]T{}
	s.followPrefix(ctx, prefix, func(snapshot bool, changes []kv) {
		if snapshot {
			clear(current)
		}
		for _, c := range changes {
			if c.Value == nil {
				delete(current, c.Key)
				continue
			}
			v, err := decode(c.Key, c.Value)
			if err != nil {
				delete(current, c.Key)
				continue
			}
			current[c.Key] = v
		}
		out := slices.Collect(maps.Values(current))
		sorted(out)
		fn(out)
	})
}
