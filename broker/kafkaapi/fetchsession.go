package kafkaapi

import (
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/topicconfig"
)

// Incremental fetch sessions (KIP-227). A fetch with session epoch 0 is a
// full fetch that also asks for a session: the broker remembers its
// partitions and fetch offsets under a random id, and the next fetches
// (same id, epoch 1, 2, ...) send only the partitions whose offset or limit
// changed and the ones to forget. The broker fetches every partition of the
// session and answers only those with something new: records, a moved high
// watermark, last stable offset or log start, a preferred read replica, or
// an error. Epoch -1 closes the session.
//
// Sessions live in memory on the broker that made them, shared by every
// connection of the principal that made them (a client reconnecting keeps
// its session) and by nobody else: another principal naming the id gets
// FETCH_SESSION_ID_NOT_FOUND, as if it did not exist.
const (
	// fetchSessionMaxPartitions bounds the partitions of one session: a
	// full fetch with more gets no session, and an incremental fetch that
	// would grow one past it ends it (the client starts again with a full
	// fetch, which then goes without). With the slot count this bounds the
	// memory of the cache.
	fetchSessionMaxPartitions = 1000
	// fetchSessionCacheMaxPartitions bounds the partitions of all sessions
	// together. Kafka bounds its cache by slots only, which lets clients
	// make it hold slots x 1000 partitions (a million by default); this
	// holds a quarter of that, tens of MB at most (see
	// fetchSessionMaxTopicLen). A full fetch that does not fit gets no
	// session (stale or smaller ones may be evicted for it, as for a slot),
	// and an incremental fetch that would not fit ends its session.
	fetchSessionCacheMaxPartitions = 250_000
	// fetchSessionMaxTopicLen is the longest topic name a session keeps:
	// no topic has a longer one. A fetch naming a longer one goes without
	// a session, so that the names held stay small.
	fetchSessionMaxTopicLen = topicconfig.MaxTopicNameLength
	// fetchSessionEvictionAge is Kafka's
	// min.incremental.fetch.session.eviction.ms: a session unused this long
	// may be evicted for any new one; a more recent one only for a new
	// session with more partitions.
	fetchSessionEvictionAge = 2 * time.Minute
)

// fetchSessionKey names a partition of a session: by topic name for
// fetches up to v12, by topic id from v13 (a session uses one or the
// other, as its first fetch did).
type fetchSessionKey struct {
	topicID   [16]byte
	topic     string
	partition int32
}

// sessionPartition is what a session keeps of a partition: what to fetch,
// and what it last answered, to tell what changed.
type sessionPartition struct {
	key         fetchSessionKey
	fetchOffset int64
	maxBytes    int32
	// currentLeaderEpoch is the leader epoch the client knows (-1: none),
	// which fences the fetch; kept like the offset, since a client sends a
	// partition again when either changes.
	currentLeaderEpoch int32
	// The last answered values; -1 until answered, and the high watermark
	// again after an error, so that the partition is answered once the
	// error is gone.
	highWatermark, lastStableOffset, logStartOffset int64
}

type fetchSession struct {
	id        int32
	principal string
	byID      bool
	// mu guards everything below.
	mu       sync.Mutex
	epoch    int32 // the epoch the next fetch must carry
	parts    map[fetchSessionKey]*sessionPartition
	order    []*sessionPartition // the order partitions are fetched in
	lastUsed time.Time
	// closed is set once the session has left the cache; its partitions
	// are no longer counted, and it takes no more fetches.
	closed bool
}

// fetchSessions is a broker's session cache, bounded by
// max.incremental.fetch.session.cache.slots.
type fetchSessions struct {
	slots     int
	maxParts  int64 // of all sessions together
	now       func() time.Time
	open      prometheus.Gauge
	evictions prometheus.Counter

	// parts counts the partitions of the sessions in the cache. It is
	// atomic, not under mu, because an incremental fetch changes it while
	// holding its session's lock only (the lock order is mu, then a
	// session's).
	parts atomic.Int64

	mu       sync.Mutex
	sessions map[int32]*fetchSession
}

func newFetchSessions(slots int, now func() time.Time, reg prometheus.Registerer) *fetchSessions {
	c := &fetchSessions{
		slots:    slots,
		maxParts: fetchSessionCacheMaxPartitions,
		now:      now,
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "strata_fetch_sessions",
			Help: "Incremental fetch sessions (KIP-227) held by this broker, at most max.incremental.fetch.session.cache.slots.",
		}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_fetch_session_evictions_total",
			Help: "Incremental fetch sessions evicted to make room for a new one.",
		}),
		sessions: make(map[int32]*fetchSession),
	}
	if reg != nil {
		reg.MustRegister(c.open, c.evictions)
	}
	return c
}

// fetchPlan is one fetch's view of its session: the partitions to fetch,
// in order, and whether to answer all of them (a full fetch) or only the
// changed ones.
type fetchPlan struct {
	session   *fetchSession // nil for a fetch without one
	epoch     int32         // the session's epoch after this fetch
	full      bool
	sessionID int32 // for the response
	parts     []sessionPartition
}

// nextEpoch follows epoch, wrapping past MaxInt32 to 1 (0 and -1 mean
// full fetches).
func nextEpoch(epoch int32) int32 {
	if epoch == math.MaxInt32 {
		return 1
	}
	return epoch + 1
}

// plan applies a fetch request to the session cache. A non-zero error code
// answers the whole fetch. Requested partitions are given in request
// order, keyed by name (v12-) or id (v13+).
func (c *fetchSessions) plan(principal string, req *kmsg.FetchRequest, requested []sessionPartition) (fetchPlan, int16) {
	byID := req.Version >= 13
	if req.Version < 7 {
		return fetchPlan{full: true, parts: requested}, 0
	}
	switch req.SessionEpoch {
	case -1, 0:
		// A full fetch; it ends the session it names (the client has
		// dropped it), and epoch 0 asks for a new one.
		if req.SessionID != 0 {
			c.close(principal, req.SessionID)
		}
		p := fetchPlan{full: true, parts: requested}
		if req.SessionEpoch == 0 && c.slots > 0 && len(requested) <= fetchSessionMaxPartitions && cacheable(requested) {
			if s := c.create(principal, byID, requested); s != nil {
				p.session, p.sessionID, p.epoch = s, s.id, s.epoch
			}
		}
		return p, 0
	}
	c.mu.Lock()
	s := c.sessions[req.SessionID]
	c.mu.Unlock()
	if s == nil || s.principal != principal {
		return fetchPlan{}, kerr.FetchSessionIDNotFound.Code
	}
	p, code, tooLarge := s.apply(req, byID, requested, c.now(), &c.parts, c.maxParts)
	if tooLarge {
		c.close(principal, s.id)
	}
	return p, code
}

// cacheable tells whether a session may keep these partitions: no topic
// name longer than any topic's.
func cacheable(parts []sessionPartition) bool {
	for i := range parts {
		if len(parts[i].key.topic) > fetchSessionMaxTopicLen {
			return false
		}
	}
	return true
}

// apply applies an incremental fetch to the session; tooLarge means it
// would grow past fetchSessionMaxPartitions, or the cache's partitions
// (counted in total) past maxTotal, or keep a name longer than a topic's,
// and the session is to end.
func (s *fetchSession) apply(req *kmsg.FetchRequest, byID bool, requested []sessionPartition, now time.Time, total *atomic.Int64, maxTotal int64) (p fetchPlan, code int16, tooLarge bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		// Evicted or closed since the cache handed it out.
		return fetchPlan{}, kerr.FetchSessionIDNotFound.Code, false
	}
	if req.SessionEpoch != s.epoch {
		return fetchPlan{}, kerr.InvalidFetchSessionEpoch.Code, false
	}
	if s.byID != byID {
		return fetchPlan{}, kerr.FetchSessionTopicIDError.Code, false
	}
	if !cacheable(requested) {
		return fetchPlan{}, kerr.FetchSessionIDNotFound.Code, true
	}
	before := len(s.parts)
	for _, t := range req.ForgottenTopics {
		for _, part := range t.Partitions {
			k := fetchSessionKey{partition: part}
			if byID {
				k.topicID = t.TopicID
			} else {
				k.topic = t.Topic
			}
			if sp := s.parts[k]; sp != nil {
				delete(s.parts, k)
				sp.key.partition = -1 // marks it gone from order
			}
		}
	}
	for _, r := range requested {
		if sp := s.parts[r.key]; sp != nil {
			sp.fetchOffset, sp.maxBytes, sp.currentLeaderEpoch = r.fetchOffset, r.maxBytes, r.currentLeaderEpoch
			continue
		}
		if len(s.parts) >= fetchSessionMaxPartitions {
			total.Add(int64(len(s.parts) - before))
			return fetchPlan{}, kerr.FetchSessionIDNotFound.Code, true
		}
		sp := r
		s.parts[r.key] = &sp
		s.order = append(s.order, &sp)
	}
	if grown := int64(len(s.parts) - before); total.Add(grown) > maxTotal && grown > 0 {
		// The session ends (tooLarge), which uncounts what it holds now.
		return fetchPlan{}, kerr.FetchSessionIDNotFound.Code, true
	}
	kept := s.order[:0]
	for _, sp := range s.order {
		if sp.key.partition >= 0 {
			kept = append(kept, sp)
		}
	}
	clear(s.order[len(kept):])
	s.order = kept
	s.epoch = nextEpoch(s.epoch)
	s.lastUsed = now
	p = fetchPlan{session: s, epoch: s.epoch, sessionID: s.id, parts: make([]sessionPartition, len(s.order))}
	for i, sp := range s.order {
		p.parts[i] = *sp
	}
	return p, 0, false
}

// create makes a session of parts, evicting one if the cache is full and
// one may go; nil if there is no room.
func (c *fetchSessions) create(principal string, byID bool, parts []sessionPartition) *fetchSession {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.sessions) >= c.slots && !c.evictLocked(now, len(parts)) {
		return nil
	}
	for c.parts.Load()+int64(len(parts)) > c.maxParts {
		if !c.evictLocked(now, len(parts)) {
			return nil
		}
	}
	s := &fetchSession{principal: principal, byID: byID, epoch: 1, lastUsed: now,
		parts: make(map[fetchSessionKey]*sessionPartition, len(parts))}
	for _, r := range parts {
		if sp := s.parts[r.key]; sp != nil {
			// Named twice: the last one counts, as for a later fetch.
			sp.fetchOffset, sp.maxBytes, sp.currentLeaderEpoch = r.fetchOffset, r.maxBytes, r.currentLeaderEpoch
			continue
		}
		sp := r
		s.parts[r.key] = &sp
		s.order = append(s.order, &sp)
	}
	for {
		// Random, so that an id cannot be guessed from another's.
		id := rand.Int32N(math.MaxInt32) + 1
		if c.sessions[id] == nil {
			s.id = id
			break
		}
	}
	c.sessions[s.id] = s
	c.parts.Add(int64(len(s.parts)))
	c.open.Set(float64(len(c.sessions)))
	return s
}

// evictLocked makes room for a new session of size partitions, as Kafka
// does: the least recently used session idle for fetchSessionEvictionAge
// goes first; failing that, the smallest session (the least recently used
// of those) if the new one is larger. Lock c.mu should be held.
func (c *fetchSessions) evictLocked(now time.Time, size int) bool {
	var stale, smallest *fetchSession
	var staleUsed, smallestUsed time.Time
	var smallestSize int
	for _, s := range c.sessions {
		s.mu.Lock()
		used, n := s.lastUsed, len(s.parts)
		s.mu.Unlock()
		if now.Sub(used) >= fetchSessionEvictionAge && (stale == nil || used.Before(staleUsed)) {
			stale, staleUsed = s, used
		}
		if smallest == nil || n < smallestSize || (n == smallestSize && used.Before(smallestUsed)) {
			smallest, smallestSize, smallestUsed = s, n, used
		}
	}
	victim := stale
	if victim == nil && smallest != nil && size > smallestSize {
		victim = smallest
	}
	if victim == nil {
		return false
	}
	c.removeLocked(victim)
	c.evictions.Inc()
	return true
}

// removeLocked takes s out of the cache and uncounts its partitions. Lock
// c.mu should be held.
func (c *fetchSessions) removeLocked(s *fetchSession) {
	delete(c.sessions, s.id)
	s.mu.Lock()
	s.closed = true
	c.parts.Add(-int64(len(s.parts)))
	s.mu.Unlock()
	c.open.Set(float64(len(c.sessions)))
}

// close ends the principal's session id, if there is one.
func (c *fetchSessions) close(principal string, id int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.sessions[id]; s != nil && s.principal == principal {
		c.removeLocked(s)
	}
}

// answered records what a fetch of the plan answered for partition i and
// tells whether an incremental fetch includes it. Kafka's rule: records,
// a changed high watermark, last stable offset or log start, a preferred
// read replica, or an error.
func (p *fetchPlan) answered(i int, rp *kmsg.FetchResponseTopicPartition) bool {
	sp := &p.parts[i]
	must := p.full || len(rp.RecordBatches) > 0 || rp.PreferredReadReplica >= 0 || rp.ErrorCode != 0 ||
		rp.HighWatermark != sp.highWatermark || rp.LastStableOffset != sp.lastStableOffset ||
		rp.LogStartOffset != sp.logStartOffset
	sp.highWatermark, sp.lastStableOffset, sp.logStartOffset = rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset
	if rp.ErrorCode != 0 {
		sp.highWatermark = -1
	}
	return must
}

// finish stores what the fetch answered in its session, unless a later
// fetch has moved the session on (a client sending one session's fetches
// concurrently). The partitions answered with records go to the end of the
// fetch order, so that under max_bytes the others get their turn, as in
// Kafka.
func (p *fetchPlan) finish(withRecords []bool) {
	s := p.session
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.epoch != p.epoch {
		return
	}
	moved := make([]*sessionPartition, 0, len(s.order))
	var last []*sessionPartition
	for i := range p.parts {
		sp := s.parts[p.parts[i].key]
		if sp == nil {
			continue
		}
		sp.highWatermark, sp.lastStableOffset, sp.logStartOffset = p.parts[i].highWatermark, p.parts[i].lastStableOffset, p.parts[i].logStartOffset
		if !p.full && withRecords[i] {
			last = append(last, sp)
		} else {
			moved = append(moved, sp)
		}
	}
	if len(moved)+len(last) == len(s.order) {
		s.order = append(moved, last...)
	}
}
