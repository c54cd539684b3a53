package sharepartition

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/partlog"
)

// Share session epochs (KIP-932): 0 opens a session, -1 closes it, any
// other is the epoch the broker expects next.
const (
	InitialEpoch int32 = 0
	FinalEpoch   int32 = -1
)

// FetchRequest is a ShareFetch as the manager takes it: partitions named
// (the frontend resolved topic ids).
type FetchRequest struct {
	Group, Member string
	Epoch         int32
	// Conn names the client connection the request came on (0: none). A
	// session belongs to the connection that opened it and ends when that
	// connection closes (ConnectionClosed).
	Conn uint64
	// Partitions are added to the session and fetched, with those already
	// in it; Forget are removed from it.
	Partitions []metastore.TopicPartition
	Forget     []metastore.TopicPartition
	// Acks are the acknowledgements piggybacked on the fetch.
	Acks map[metastore.TopicPartition][]AckBatch
	// RenewOnly (ShareFetch's IsRenewAck) applies Acks and fetches
	// nothing: the client renews locks and takes no records.
	RenewOnly bool
	// Fetch bounds.
	MaxWait            time.Duration
	MinBytes, MaxBytes int32
	MaxRecords         int
	PartitionMaxBytes  int32
}

// PartitionResult is one partition's answer.
type PartitionResult struct {
	metastore.TopicPartition
	// Err is the partition's fetch error; AckErr its acknowledgements'.
	Err, AckErr error
	// Acked is set when the request acknowledged records of the partition.
	Acked    bool
	Records  []byte
	Acquired []AcquiredRange
}

// session looks up or opens the member's share session for epoch, and
// returns it with the next epoch set. m.mu is held.
func (m *Manager) sessionLocked(group, member string, epoch int32, now time.Time) (*session, error) {
	s, _, err := m.openSessionLocked(group, member, epoch, 0, now)
	return s, err
}

// openSessionLocked is sessionLocked that also returns the partitions of
// the session that epoch 0 replaced, whose records the member held under
// it (the client dropped them with the old session). m.mu is held.
func (m *Manager) openSessionLocked(group, member string, epoch int32, conn uint64, now time.Time) (*session, []metastore.TopicPartition, error) {
	var replaced []metastore.TopicPartition
	k := sessionKey{group, member}
	s := m.sessions[k]
	switch {
	case epoch == InitialEpoch:
		if s == nil && len(m.sessions) >= m.cfg.Settings.MaxShareSessions {
			m.evictIdleLocked(now)
			if len(m.sessions) >= m.cfg.Settings.MaxShareSessions {
				return nil, nil, fmt.Errorf("%w: %d sessions (group.share.max.share.sessions)", ErrShareSessionLimitReached, len(m.sessions))
			}
		}
		if s != nil {
			for tp := range s.parts {
				replaced = append(replaced, tp)
			}
			m.deleteSessionLocked(k)
		}
		s = &session{parts: map[metastore.TopicPartition]struct{}{}, conn: conn}
		m.sessions[k] = s
		if conn != 0 {
			if m.byConn[conn] == nil {
				m.byConn[conn] = map[sessionKey]struct{}{}
			}
			m.byConn[conn][k] = struct{}{}
		}
	case s == nil:
		return nil, nil, fmt.Errorf("%w: group %q member %q", ErrShareSessionNotFound, group, member)
	case epoch != FinalEpoch && epoch != s.epoch:
		return nil, nil, fmt.Errorf("%w: got %d, expected %d", ErrInvalidShareSessionEpoch, epoch, s.epoch)
	}
	s.lastUsed = now
	if epoch != FinalEpoch {
		s.epoch = nextEpoch(epoch)
	}
	return s, replaced, nil
}

func nextEpoch(e int32) int32 {
	if e == math.MaxInt32 {
		return 1
	}
	return e + 1
}

// evictIdleLocked drops sessions unused for a while (their consumer is
// gone; Kafka ties a session to its connection). Their records are left
// to their lock expiry. m.mu is held.
func (m *Manager) evictIdleLocked(now time.Time) {
	for k, s := range m.sessions {
		if now.Sub(s.lastUsed) > sessionIdleEviction {
			m.deleteSessionLocked(k)
		}
	}
}

// deleteSessionLocked forgets session k, and that its connection opened
// it. m.mu is held.
func (m *Manager) deleteSessionLocked(k sessionKey) {
	s := m.sessions[k]
	if s == nil {
		return
	}
	delete(m.sessions, k)
	if set := m.byConn[s.conn]; set != nil {
		delete(set, k)
		if len(set) == 0 {
			delete(m.byConn, s.conn)
		}
	}
}

// ConnectionClosed ends the share sessions opened on connection conn and
// releases the records their members hold, as Kafka does when a share
// session's connection closes: the client can no longer acknowledge them,
// so they go to other members now rather than at their lock expiry.
func (m *Manager) ConnectionClosed(ctx context.Context, conn uint64) {
	type ended struct {
		sessionKey
		parts []metastore.TopicPartition
	}
	var all []ended
	m.mu.Lock()
	for k := range m.byConn[conn] {
		e := ended{sessionKey: k}
		for tp := range m.sessions[k].parts {
			e.parts = append(e.parts, tp)
		}
		all = append(all, e)
		m.deleteSessionLocked(k)
	}
	m.mu.Unlock()
	for _, e := range all {
		m.releaseMember(ctx, e.group, e.member, e.parts)
	}
}

// closeSession ends a session and releases what its member holds on its
// partitions, as Kafka does when a share session closes.
// A session the member has replaced since (epoch 0, whose opening released
// the old session's records) is already gone: the new one is left alone.
func (m *Manager) closeSession(ctx context.Context, s *session, group, member string, parts []metastore.TopicPartition) {
	k := sessionKey{group, member}
	m.mu.Lock()
	current := m.sessions[k] == s
	if current {
		m.deleteSessionLocked(k)
	}
	m.mu.Unlock()
	if current {
		m.releaseMember(ctx, group, member, parts)
	}
}

func (m *Manager) releaseMember(ctx context.Context, group, member string, parts []metastore.TopicPartition) {
	released := false
	for _, tp := range parts {
		m.mu.Lock()
		sp := m.parts[partKey{group, tp.Topic, tp.Partition}]
		m.mu.Unlock()
		if sp == nil {
			continue
		}
		sp.mu.Lock()
		r := !sp.gone && sp.loaded && sp.p.ReleaseMember(member)
		var version uint64
		if r {
			version = sp.p.Version()
		}
		sp.mu.Unlock()
		if r {
			released = true
			if err := m.persist(ctx, sp, version); err != nil {
				m.cfg.Logger.Warn("persist share partition after release", "group", group, "topic", tp.Topic, "partition", tp.Partition, "err", err)
			}
		}
	}
	if released {
		m.wake()
	}
}

// acknowledge applies a partition's acknowledgements and persists them.
func (m *Manager) acknowledge(ctx context.Context, group, member string, tp metastore.TopicPartition, acks []AckBatch) error {
	sp, err := m.loadedPartition(group, tp)
	if err != nil {
		return err
	}
	sp.mu.Lock()
	if sp.gone || !sp.loaded {
		sp.mu.Unlock()
		return fmt.Errorf("share partition %s/%s-%d reloaded: %w", group, tp.Topic, tp.Partition, ErrInvalidRecordState)
	}
	now := m.cfg.Now()
	sp.p.Expire(now)
	start := sp.p.StartOffset()
	ackErr := sp.p.Acknowledge(member, acks, now)
	version := sp.p.Version()
	// Released records, and room made in the window, are what a waiting
	// fetch may take.
	released := sp.p.StartOffset() != start || slices.ContainsFunc(acks, func(b AckBatch) bool { return slices.Contains(b.Types, AckRelease) })
	sp.mu.Unlock()
	if err := m.persist(ctx, sp, version); err != nil {
		return err
	}
	if released {
		m.wake()
	}
	return ackErr
}

// loadedPartition returns group's share partition of tp if this broker
// leads tp and has it loaded under the current leader epoch. One not
// loaded has no records acquired, so acknowledgements of it are refused
// without reading or claiming its state: a client cannot make the broker
// write state by acknowledging partitions it never fetched.
func (m *Manager) loadedPartition(group string, tp metastore.TopicPartition) (*sharePart, error) {
	k := partKey{group, tp.Topic, tp.Partition}
	epoch, topicID, err := m.cfg.Core.ShareLeader(tp.Topic, tp.Partition)
	if err != nil {
		m.drop(k)
		return nil, err
	}
	m.mu.Lock()
	sp := m.parts[k]
	m.mu.Unlock()
	if sp == nil || sp.leaderEp != epoch || sp.topicID != topicID {
		return nil, fmt.Errorf("share partition %s/%s-%d: no records acquired here: %w", group, tp.Topic, tp.Partition, ErrInvalidRecordState)
	}
	return sp, nil
}

// Acknowledge answers a ShareAcknowledge: the acknowledgements of member's
// session, which epoch -1 closes afterwards. Epoch 0 is refused: there is
// nothing to acknowledge without a session.
func (m *Manager) Acknowledge(ctx context.Context, group, member string, epoch int32, acks map[metastore.TopicPartition][]AckBatch) (map[metastore.TopicPartition]error, error) {
	if epoch == InitialEpoch {
		return nil, fmt.Errorf("%w: acknowledgements need a session", ErrInvalidShareSessionEpoch)
	}
	m.mu.Lock()
	s, err := m.sessionLocked(group, member, epoch, m.cfg.Now())
	var parts []metastore.TopicPartition
	if err == nil && epoch == FinalEpoch {
		for tp := range s.parts {
			parts = append(parts, tp)
		}
	}
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out := make(map[metastore.TopicPartition]error, len(acks))
	for tp, batches := range acks {
		out[tp] = m.acknowledge(ctx, group, member, tp, batches)
	}
	if epoch == FinalEpoch {
		m.closeSession(ctx, s, group, member, parts)
	}
	return out, nil
}

// Fetch answers a ShareFetch: session, then acknowledgements, then records
// acquired for the member from the session's partitions, waiting up to
// MaxWait for some.
func (m *Manager) Fetch(ctx context.Context, req FetchRequest) ([]PartitionResult, error) {
	if req.Epoch == InitialEpoch && len(req.Acks) > 0 {
		return nil, fmt.Errorf("%w: acknowledgements in a request opening a session", ErrInvalidShareSessionEpoch)
	}
	now := m.cfg.Now()
	m.mu.Lock()
	s, replaced, err := m.openSessionLocked(req.Group, req.Member, req.Epoch, req.Conn, now)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	var added []metastore.TopicPartition
	for _, tp := range req.Partitions {
		if _, ok := s.parts[tp]; !ok {
			if len(s.parts) >= maxSessionPartitions {
				break
			}
			s.parts[tp] = struct{}{}
			added = append(added, tp)
		}
	}
	for _, tp := range req.Forget {
		delete(s.parts, tp)
	}
	var fetchParts, sessionParts []metastore.TopicPartition
	for tp := range s.parts {
		sessionParts = append(sessionParts, tp)
	}
	if req.Epoch != FinalEpoch {
		fetchParts = slices.Clone(sessionParts)
	}
	m.mu.Unlock()
	slices.SortFunc(fetchParts, func(a, b metastore.TopicPartition) int {
		if a.Topic != b.Topic {
			if a.Topic < b.Topic {
				return -1
			}
			return 1
		}
		return int(a.Partition - b.Partition)
	})
	if len(replaced) > 0 {
		m.releaseMember(ctx, req.Group, req.Member, replaced)
	}
	// Records of forgotten partitions stay with the member until
	// acknowledged (the client may still send a ShareAcknowledge for them)
	// or their locks expire.

	results := map[metastore.TopicPartition]*PartitionResult{}
	res := func(tp metastore.TopicPartition) *PartitionResult {
		r := results[tp]
		if r == nil {
			r = &PartitionResult{TopicPartition: tp}
			results[tp] = r
		}
		return r
	}
	for tp, batches := range req.Acks {
		r := res(tp)
		r.Acked, r.AckErr = true, m.acknowledge(ctx, req.Group, req.Member, tp, batches)
	}
	if req.Epoch == FinalEpoch {
		m.closeSession(ctx, s, req.Group, req.Member, sessionParts)
		return collect(results), nil
	}
	if req.RenewOnly {
		return collect(results), nil
	}
	// Partitions new to the session are checked against the persisted
	// state: an admin may have set it since this broker loaded it.
	for _, tp := range added {
		if _, err := m.partition(ctx, req.Group, tp, true); err != nil {
			res(tp).Err = err
		}
	}
	m.fetchRecords(ctx, req, fetchParts, res)
	return collect(results), nil
}

func collect(results map[metastore.TopicPartition]*PartitionResult) []PartitionResult {
	out := make([]PartitionResult, 0, len(results))
	for _, r := range results {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b PartitionResult) int {
		if a.Topic != b.Topic {
			if a.Topic < b.Topic {
				return -1
			}
			return 1
		}
		return int(a.Partition - b.Partition)
	})
	return out
}

// fetchRecords reads the partitions and acquires records for the member
// until some are acquired, a partition fails, or MaxWait passes.
func (m *Manager) fetchRecords(ctx context.Context, req FetchRequest, parts []metastore.TopicPartition, res func(metastore.TopicPartition) *PartitionResult) {
	maxRecords := req.MaxRecords
	if maxRecords <= 0 {
		maxRecords = 500
	}
	deadline := m.cfg.Now().Add(req.MaxWait)
	// Group configs changed since a partition was loaded apply from now on.
	cfg, _, iso := m.groupConfig(ctx, req.Group)
	// stalled holds the partitions whose last read returned records of
	// which none could be taken (beyond the window): read again only once
	// their state changed, else the wait would be a busy loop.
	stalled := map[*sharePart]stall{}
	for {
		changed := m.changedCh()
		now := m.cfg.Now()
		var reads []broker.FetchPartition
		var sps []*sharePart
		var nextExpiry time.Time
		failed := false
		for _, tp := range parts {
			if r := res(tp); r.Err != nil {
				failed = true
				continue
			}
			sp, err := m.partition(ctx, req.Group, tp, false)
			if err != nil {
				res(tp).Err = err
				failed = true
				continue
			}
			sp.mu.Lock()
			if sp.gone {
				sp.mu.Unlock()
				continue
			}
			sp.p.SetConfig(cfg)
			if next := sp.p.Expire(now); !next.IsZero() && (nextExpiry.IsZero() || next.Before(nextExpiry)) {
				nextExpiry = next
			}
			off, ok := sp.p.NextFetchOffset()
			dirty, version := sp.p.Dirty(), sp.p.Version()
			sp.mu.Unlock()
			if st, was := stalled[sp]; was && st == (stall{off, version}) {
				ok = false
			}
			if dirty {
				// Expired locks archived records: persisted before they
				// are handed out again.
				if err := m.persist(ctx, sp, version); err != nil {
					res(tp).Err = err
					failed = true
					continue
				}
			}
			if ok {
				reads = append(reads, broker.FetchPartition{Topic: tp.Topic, Partition: tp.Partition, Offset: off, MaxBytes: req.PartitionMaxBytes})
				sps = append(sps, sp)
			}
		}
		if failed {
			// Answer the failures at once, with what the other
			// partitions have now.
			deadline = now
		}
		wait := deadline.Sub(now)
		if !nextExpiry.IsZero() {
			wait = min(wait, nextExpiry.Sub(now))
		}
		wait = max(wait, 0)
		acquired := false
		if len(reads) > 0 {
			waitCtx, cancel := context.WithCancel(ctx)
			// Released or expired records end the wait; the goroutine
			// ends with waitCtx, cancelled below.
			go func() {
				select {
				case <-changed:
					cancel()
				case <-waitCtx.Done():
				}
			}()
			results, err := m.cfg.Core.Fetch(waitCtx, reads, broker.FetchOptions{
				MaxBytes: req.MaxBytes, MinBytes: max(req.MinBytes, 1), MaxWait: wait,
				IsolationLevel: iso, DropAborted: iso == broker.ReadCommitted,
			})
			woken := waitCtx.Err() != nil
			cancel()
			switch {
			case err != nil && ctx.Err() != nil:
				return
			case err != nil && !woken:
				for _, fp := range reads {
					res(metastore.TopicPartition{Topic: fp.Topic, Partition: fp.Partition}).Err = err
				}
				return
			}
			for i, fr := range results {
				tp := metastore.TopicPartition{Topic: reads[i].Topic, Partition: reads[i].Partition}
				n, err := m.acquire(ctx, req, sps[i], reads[i].Offset, &fr, res(tp), &maxRecords)
				if n == 0 && err == nil && fr.Err == nil && len(fr.Data) > 0 {
					sps[i].mu.Lock()
					stalled[sps[i]] = stall{reads[i].Offset, sps[i].p.Version()}
					sps[i].mu.Unlock()
				}
				fr.Release()
				if err != nil {
					// Answered now; the other partitions keep what
					// they acquired.
					res(tp).Err = err
					failed = true
				}
				acquired = acquired || n > 0
			}
		} else if wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-changed:
			case <-timer.C:
			case <-ctx.Done():
			}
			timer.Stop()
		}
		if acquired || failed || maxRecords <= 0 || !m.cfg.Now().Before(deadline) || ctx.Err() != nil {
			return
		}
	}
}

// stall is where a share partition's read found nothing to take: its
// fetch offset and state version.
type stall struct {
	offset  int64
	version uint64
}

// acquire hands the member records of one partition's read.
func (m *Manager) acquire(ctx context.Context, req FetchRequest, sp *sharePart, offset int64, fr *broker.FetchResult, r *PartitionResult, maxRecords *int) (int, error) {
	var oor *partlog.OffsetOutOfRangeError
	switch {
	case errors.As(fr.Err, &oor) && offset < oor.Start:
		// Retention deleted records the group had not finished: their
		// state goes with them.
		sp.mu.Lock()
		var version uint64
		if !sp.gone {
			sp.p.MoveStart(oor.Start)
			version = sp.p.Version()
		}
		sp.mu.Unlock()
		return 0, m.persist(ctx, sp, version)
	case fr.Err != nil:
		return 0, fr.Err
	}
	data := fr.Data
	if len(data) == 0 {
		return 0, nil
	}
	batches, ends := parseBatches(data)
	sp.mu.Lock()
	if sp.gone {
		sp.mu.Unlock()
		return 0, nil
	}
	got := sp.p.Acquire(req.Member, batches, *maxRecords, m.cfg.Now())
	version := sp.p.Version()
	sp.mu.Unlock()
	if err := m.persist(ctx, sp, version); err != nil {
		// Gaps archived while acquiring could not be written: the
		// records stay acquired and are handed out; the state is
		// written with the next change.
		m.cfg.Logger.Warn("persist share partition after acquisition", "group", req.Group, "topic", fr.Topic, "partition", fr.Partition, "err", err)
	}
	if len(got) == 0 {
		return 0, nil
	}
	n := 0
	for _, a := range got {
		n += int(a.LastOffset - a.FirstOffset + 1)
	}
	*maxRecords -= n
	// Send the batches from the first holding an acquired record to the
	// last: the client keeps only the acquired offsets.
	first, last := got[0].FirstOffset, got[len(got)-1].LastOffset
	from, to := 0, 0
	for i, b := range batches {
		if b.LastOffset < first {
			from = ends[i]
		}
		if b.BaseOffset <= last {
			to = ends[i]
		}
	}
	r.Records = append(r.Records, data[from:to]...)
	r.Acquired = append(r.Acquired, got...)
	return n, nil
}
