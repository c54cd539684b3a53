package metastore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Backoff between attempts to re-list topics after the watch broke.
const (
	watchMinBackoff = 100 * time.Millisecond
	watchMaxBackoff = 5 * time.Second
)

// TopicEventType says what happened to a topic.
type TopicEventType int

const (
	// TopicPut: the topic was created or changed (or is listed in a resync).
	TopicPut TopicEventType = iota + 1
	// TopicDeleted: the topic is gone.
	TopicDeleted
)

func (t TopicEventType) String() string {
	switch t {
	case TopicPut:
		return "put"
	case TopicDeleted:
		return "deleted"
	default:
		return fmt.Sprintf("TopicEventType(%d)", int(t))
	}
}

// TopicEvent is one change seen by WatchTopics.
type TopicEvent struct {
	Type TopicEventType
	// Topic is the new state for TopicPut; for TopicDeleted only Name is set.
	Topic Topic
	// Resync marks events that come from listing all topics (at the start,
	// and again after the watch broke) rather than from a single change.
	Resync bool
}

// WatchTopics sends every topic as a TopicPut event, then every change from
// the revision of that listing on, in etcd's order, until ctx is cancelled;
// then it closes the channel. The goroutine it starts is owned by ctx.
//
// If the watch breaks (etcd compacted the revisions it needed, the member
// lost its leader, the connection failed), it lists the topics again and
// sends a resync: a TopicPut for every topic, and a TopicDeleted for every
// topic it had reported that no longer exists. So a consumer that applies
// each event in order holds exactly the stored topics after every resync,
// without having to understand Resync. While etcd is unreachable it keeps
// retrying with backoff. It also stops if the Store's client is closed.
//
// Events are unbuffered: a consumer that stops reading holds the watch.
func (s *Store) WatchTopics(ctx context.Context) <-chan TopicEvent {
	return s.watchTopics(ctx, nil, 0)
}

// WatchTopicsSince is WatchTopics for a consumer that already holds known,
// the topics listed by ListTopics at revision rev: it skips the first listing
// and sends every change after rev, so nothing that happens between the
// listing and the watch is missed.
func (s *Store) WatchTopicsSince(ctx context.Context, known []Topic, rev int64) <-chan TopicEvent {
	names := make([]string, len(known))
	for i, t := range known {
		names[i] = t.Name
	}
	return s.watchTopics(ctx, names, rev+1)
}

// watchTopics starts the watch; with fromRev > 0 it skips the first listing
// and assumes the consumer already holds the topics in known as of
// fromRev-1 (tests use it to start behind a compaction).
func (s *Store) watchTopics(ctx context.Context, known []string, fromRev int64) <-chan TopicEvent {
	out := make(chan TopicEvent)
	w := &topicWatcher{s: s, out: out, known: make(map[string]struct{}, len(known))}
	for _, name := range known {
		w.known[name] = struct{}{}
	}
	go func() {
		defer close(out)
		// Closing the client ends the watch at once, even mid-request.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(s.client.Ctx(), cancel)
		defer stop()
		w.run(ctx, fromRev)
	}()
	return out
}

type topicWatcher struct {
	s     *Store
	out   chan<- TopicEvent
	known map[string]struct{} // topics the consumer holds
}

func (w *topicWatcher) run(ctx context.Context, rev int64) {
	backoff := watchMinBackoff
	for {
		if rev == 0 {
			listRev, err := w.resync(ctx)
			if err != nil {
				if w.stopped(ctx) {
					return
				}
				w.s.logger.Warn("topic watch: listing topics failed, retrying", "err", err, "backoff", backoff)
				if !sleep(ctx, backoff) {
					return
				}
				backoff = min(2*backoff, watchMaxBackoff)
				continue
			}
			rev = listRev + 1
		}
		progressed, err := w.watch(ctx, rev)
		if w.stopped(ctx) {
			return
		}
		w.s.logger.Warn("topic watch broke, re-listing topics", "err", err, "from_revision", rev)
		rev = 0
		if progressed {
			backoff = watchMinBackoff
		} else {
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, watchMaxBackoff)
		}
	}
}

// stopped reports whether the watch should end: ctx is done or the client
// was closed.
func (w *topicWatcher) stopped(ctx context.Context) bool {
	return ctx.Err() != nil || w.s.client.Ctx().Err() != nil
}

// resync lists all topics, sends them, and sends deletes for known topics
// that are gone. It returns the revision of the listing.
func (w *topicWatcher) resync(ctx context.Context) (int64, error) {
	topics, rev, err := w.s.ListTopics(ctx)
	if err != nil {
		return 0, err
	}
	seen := make(map[string]struct{}, len(topics))
	for _, t := range topics {
		seen[t.Name] = struct{}{}
		if !w.send(ctx, TopicEvent{Type: TopicPut, Topic: t, Resync: true}) {
			return 0, ctx.Err()
		}
	}
	var gone []string
	for name := range w.known {
		if _, ok := seen[name]; !ok {
			gone = append(gone, name)
		}
	}
	slices.Sort(gone)
	for _, name := range gone {
		if !w.send(ctx, TopicEvent{Type: TopicDeleted, Topic: Topic{Name: name}, Resync: true}) {
			return 0, ctx.Err()
		}
	}
	w.known = seen
	return rev, nil
}

// watch forwards changes from revision from on until the watch breaks,
// returning why and whether any response arrived.
func (w *topicWatcher) watch(ctx context.Context, from int64) (progressed bool, err error) {
	// Without WithRequireLeader a member cut off from its cluster would keep
	// the watch open and silent.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	prefix := w.s.topicsPrefix()
	for resp := range w.s.client.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(from)) {
		if err := resp.Err(); err != nil {
			return progressed, err
		}
		progressed = true
		for _, ev := range resp.Events {
			name := strings.TrimPrefix(string(ev.Kv.Key), prefix)
			if CheckTopicName(name) != nil {
				continue // not a topic key
			}
			var out TopicEvent
			switch ev.Type {
			case clientv3.EventTypePut:
				t, err := decodeTopic(ev.Kv.Value, ev.Kv.ModRevision)
				if err != nil {
					w.s.logger.Error("topic watch: skipping undecodable topic", "topic", name, "revision", ev.Kv.ModRevision, "err", err)
					continue
				}
				t.Name = name
				w.known[name] = struct{}{}
				out = TopicEvent{Type: TopicPut, Topic: t}
			case clientv3.EventTypeDelete:
				delete(w.known, name)
				out = TopicEvent{Type: TopicDeleted, Topic: Topic{Name: name}}
			default:
				continue
			}
			if !w.send(ctx, out) {
				return progressed, ctx.Err()
			}
		}
	}
	return progressed, errors.New("watch channel closed")
}

func (w *topicWatcher) send(ctx context.Context, ev TopicEvent) bool {
	select {
	case w.out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
