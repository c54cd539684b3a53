package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/partlog"
	"github.com/strata-broker/strata/record"
)

// ReplicaFetchPartition is one partition of a follower's fetch.
type ReplicaFetchPartition struct {
	Topic     string
	TopicID   string // the follower's incarnation of the topic
	Partition int32
	// CurrentLeaderEpoch is the epoch the follower believes current.
	CurrentLeaderEpoch int32
	// FetchOffset is the follower's log end offset.
	FetchOffset int64
	// LastFetchedEpoch is the epoch of the follower's last batch, -1 if none.
	LastFetchedEpoch int32
	MaxBytes         int32
}

// EpochEndOffset tells a follower where its log stops agreeing with the
// leader's: truncate to EndOffset (or the follower's own end of Epoch, if
// lower).
type EpochEndOffset struct {
	Epoch     int32
	EndOffset int64
}

// ReplicaFetchResult is the leader's answer for one partition.
type ReplicaFetchResult struct {
	Topic          string
	Partition      int32
	HighWatermark  int64
	LogStartOffset int64
	Data           []byte
	Diverging      *EpochEndOffset
	Err            error

	// Buffer, when not nil, is the buffer from ReplicaFetchRequest.Buffers
	// that Data was read into, as FetchResult.Buffer: the caller owns it and
	// may give it back once nothing references Data any more.
	Buffer *[]byte
}

// ReplicaFetchRequest is a follower's fetch from a leader.
type ReplicaFetchRequest struct {
	ReplicaID int32
	// Secret proves the caller is broker ReplicaID: the leader serves the
	// fetch only if it is the secret of that broker's registration.
	Secret     metastore.ReplicaSecret
	MaxWait    time.Duration
	MinBytes   int32
	MaxBytes   int32
	Partitions []ReplicaFetchPartition

	// Buffers, if not nil, supplies the buffers the leader reads partitions
	// into (see ReplicaFetchResult.Buffer), as FetchOptions.Buffers does.
	// Nil: they are allocated and left to the garbage collector.
	Buffers BufferPool

	// Receive, if not nil, is memory a ReplicaClient may receive the
	// leader's response into: it replaces *Receive with a larger buffer
	// when it is too small, and the results' Data then alias it. The caller
	// must be done with those results before it passes the same Receive
	// again. The leader ignores it.
	Receive *[]byte
}

// ReplicaClient carries a broker's calls to the other brokers, at addr: a
// follower's fetch to its leader, and a transaction coordinator's markers
// to partitions' leaders. The gRPC frontend provides it. A partition's
// error in WriteTxnMarkers' results is a *KindError when the leader's
// reason names a kind.
type ReplicaClient interface {
	ReplicaFetch(ctx context.Context, addr string, req ReplicaFetchRequest) ([]ReplicaFetchResult, error)
	WriteTxnMarkers(ctx context.Context, addr string, req WriteTxnMarkersRequest) ([]TxnMarkerResult, error)
}

// ReplicaFetch serves a follower: it checks the caller is the broker it
// claims (req.Secret against that broker's registration; otherwise it
// answers ErrClusterAuthorizationFailed having changed nothing), then for
// each partition it checks this broker leads it at the follower's epoch, checks the follower's log agrees with its
// own (by leader epoch), records how far the follower has come (which may
// advance the high watermark or let it join the ISR) and returns the batches
// from the follower's log end on, waiting up to MaxWait for new ones.
//
// With req.Buffers, the results' buffers are the caller's (see
// ReplicaFetchResult.Buffer); after an error none is left to the caller.
func (b *Broker) ReplicaFetch(ctx context.Context, req ReplicaFetchRequest) ([]ReplicaFetchResult, error) {
	// Before anything else: a fetch records the follower's progress, which
	// moves the high watermark and the ISR, so a caller that is not the
	// follower must not reach any of it.
	if !b.cluster.replicaSecretMatches(ctx, req.ReplicaID, req.Secret) {
		return nil, fmt.Errorf("%w: replica fetch claiming to be broker %d without its registration's secret",
			ErrClusterAuthorizationFailed, req.ReplicaID)
	}
	if len(req.Partitions) == 0 {
		return nil, fmt.Errorf("%w: replica fetch names no partitions", ErrInvalidRequest)
	}
	maxBytes := int(req.MaxBytes)
	if maxBytes <= 0 || maxBytes > maxFetchBytes {
		maxBytes = maxFetchBytes
	}
	results := make([]ReplicaFetchResult, len(req.Partitions))
	recorded := make([]bool, len(req.Partitions))
	// served holds the partitions answered as leader, to record the high
	// watermark each response tells the follower (rack-aware brokers only).
	served := make([]*Partition, len(req.Partitions))
	answer := func() []ReplicaFetchResult {
		for i, p := range served {
			if p != nil && results[i].Err == nil {
				p.sentHW(req.ReplicaID, results[i].HighWatermark)
			}
		}
		return results
	}
	var wake chan struct{}
	var hosted []*Partition
	var deadline <-chan time.Time
	for {
		total := 0
		budget := maxBytes
		hwNews := false
		// throttleWait is how soon a replica the throttle held back in this
		// round may be served: the poll must not outlast it.
		var throttleWait time.Duration
		for i, fp := range req.Partitions {
			served[i] = nil
			res := &results[i]
			if res.Buffer != nil {
				// Read in an earlier round of the long poll and seen by
				// nobody outside: reusable at once.
				req.Buffers.Put(res.Buffer)
			}
			*res = ReplicaFetchResult{Topic: fp.Topic, Partition: fp.Partition}
			p, err := b.hosted.partition(fp.Topic, fp.Partition)
			if err != nil {
				res.Err = err
				continue
			}
			if !recorded[i] {
				if div, err := b.checkDivergence(p, fp); err != nil || div != nil {
					res.Err, res.Diverging = err, div
					res.HighWatermark, res.LogStartOffset = p.HighWatermark(), p.log.LogStartOffset()
					continue
				}
				join, err := p.followerFetched(req.ReplicaID, fp.CurrentLeaderEpoch, fp.FetchOffset, b.now())
				if err != nil {
					res.Err = err
					continue
				}
				recorded[i] = true
				if join {
					// In the background: an etcd round trip here would hold
					// this follower's fetches of every partition.
					id := req.ReplicaID
					b.background(func(ctx context.Context) {
						b.isr.change(ctx, p, func(isr []int32) []int32 { return append(isr, id) }, "expand", []int32{id}, id)
					})
				}
			}
			res.HighWatermark, res.LogStartOffset = p.HighWatermark(), p.log.LogStartOffset()
			if err := p.checkLeader(); err != nil {
				res.Err = err
				continue
			}
			if b.rackAware {
				// hwSent is read only to tell followers of a new high
				// watermark early, which only rack-aware brokers do.
				served[i] = p
			}
			// Only where consumers are sent to followers: each answer costs
			// the follower a round trip, which raised sequential acks=all
			// latency by half on a two-core machine.
			hwNews = hwNews || b.rackAware && p.hwNewsFor(req.ReplicaID, res.HighWatermark)
			limit := int(fp.MaxBytes)
			if limit <= 0 || limit > budget {
				limit = budget
			}
			if limit <= 0 || fp.FetchOffset >= p.LogEndOffset() {
				continue
			}
			throttled := b.throttle.leader != nil && p.catchingUp(req.ReplicaID)
			if throttled {
				n, wait := b.throttle.allow(throttleLeader, b.throttle.leader)
				if n == 0 {
					if throttleWait == 0 || wait < throttleWait {
						throttleWait = wait
					}
					continue
				}
				limit = min(limit, n)
			}
			rr, buf, err := readLog(p.log, fp.FetchOffset, limit, p.LogEndOffset(), req.Buffers)
			if err != nil {
				b.offline.check(p, err)
				res.Err = fmt.Errorf("replica fetch %s-%d at %d: %w", fp.Topic, fp.Partition, fp.FetchOffset, err)
				continue
			}
			if throttled {
				b.throttle.took(throttleLeader, b.throttle.leader, len(rr.Data))
			}
			res.Data, res.Buffer = rr.Data, buf
			total += len(rr.Data)
			budget -= len(rr.Data)
		}
		// An error or a divergence is answered at once: the follower acts on
		// it (backs off, truncates) rather than wait out the poll. So is a
		// high watermark the follower has not been sent, with follower
		// fetching on (see hwSent).
		if total >= int(max(req.MinBytes, 1)) || req.MaxWait <= 0 || anyProblem(results) || hwNews {
			return answer(), nil
		}
		if wake == nil {
			wake = make(chan struct{}, 1)
			hosted = b.hosted.registerReplica(req.Partitions, wake)
			defer func() { unregister(hosted, wake) }()
			timer := time.NewTimer(req.MaxWait)
			defer timer.Stop()
			deadline = timer.C
			continue
		}
		var unthrottled <-chan time.Time
		if throttleWait > 0 {
			// Never stopped: since Go 1.23 an unreferenced timer is collected.
			unthrottled = time.NewTimer(throttleWait).C
		}
		select {
		case <-wake:
		case <-unthrottled:
		case <-deadline:
			return answer(), nil
		case <-b.draining:
			return answer(), nil
		case <-ctx.Done():
			for _, res := range results {
				if res.Buffer != nil { // never handed out
					req.Buffers.Put(res.Buffer)
				}
			}
			return nil, ctx.Err()
		}
	}
}

func anyProblem(results []ReplicaFetchResult) bool {
	for i := range results {
		if results[i].Err != nil || results[i].Diverging != nil {
			return true
		}
	}
	return false
}

// checkDivergence compares the follower's last epoch with this log: if the
// leader's log ends that epoch before the follower's log end, the follower
// holds batches the leader never had (written as an old leader and never
// committed) and must truncate.
func (b *Broker) checkDivergence(p *Partition, fp ReplicaFetchPartition) (*EpochEndOffset, error) {
	if !p.sameTopic(fp.TopicID) {
		return nil, fmt.Errorf("%s-%d: topic id %s is not this broker's %s: %w", p.Topic, p.Index, fp.TopicID, p.topicID, ErrUnknownTopicOrPartition)
	}
	if err := p.checkLeader(); err != nil {
		return nil, err
	}
	if fp.FetchOffset < p.log.LogStartOffset() {
		return nil, &partlog.OffsetOutOfRangeError{Offset: fp.FetchOffset, Start: p.log.LogStartOffset(), End: p.LogEndOffset()}
	}
	if fp.LastFetchedEpoch < 0 {
		if fp.FetchOffset > p.LogEndOffset() {
			return &EpochEndOffset{Epoch: partlog.UndefinedEpoch, EndOffset: p.LogEndOffset()}, nil
		}
		return nil, nil
	}
	epoch, end := p.log.EndOffsetForEpoch(fp.LastFetchedEpoch)
	if epoch != fp.LastFetchedEpoch || end < fp.FetchOffset {
		return &EpochEndOffset{Epoch: epoch, EndOffset: end}, nil
	}
	return nil, nil
}

// fetcherManager runs one replica fetcher per leader this broker follows,
// each fetching all of that leader's partitions in one request, as Kafka's
// replica fetcher threads do.
type fetcherManager struct {
	b        *Broker
	mu       sync.Mutex
	fetchers map[int32]*fetcher
	// stopped are fetchers cancelled because they had nothing left to
	// fetch; close waits for them.
	stopped []*fetcher
	closed  bool
}

type fetcher struct {
	m      *fetcherManager
	leader int32
	mu     sync.Mutex
	// parts maps each partition to when it may be fetched again (backoff
	// after an error). These times are on the real clock, not the broker's
	// (Config.Now): they only pace this loop's real timers, and on a test's
	// frozen clock a partition that backed off once would never be fetched
	// again.
	parts map[*Partition]time.Time
	// cancelCall interrupts the fetch in flight; nil between fetches.
	cancelCall context.CancelFunc
	kick       chan struct{}
	cancel     context.CancelFunc
	done       chan struct{}
}

func newFetcherManager(b *Broker) *fetcherManager {
	return &fetcherManager{b: b, fetchers: map[int32]*fetcher{}}
}

// assign makes p fetched from leader (and from no other broker).
func (m *fetcherManager) assign(p *Partition, leader int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.assignLocked(p, leader)
}

func (m *fetcherManager) assignLocked(p *Partition, leader int32) {
	if m.closed {
		return
	}
	for id, f := range m.fetchers {
		if id != leader {
			m.removeLocked(id, f, p)
		}
	}
	f := m.fetchers[leader]
	if f == nil {
		ctx, cancel := context.WithCancel(context.Background())
		f = &fetcher{m: m, leader: leader, parts: map[*Partition]time.Time{}, kick: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
		m.fetchers[leader] = f
		go f.run(ctx)
	}
	f.add(p)
}

// sync assigns p to the fetcher of its leader if this broker follows it,
// and to none otherwise, judged under the manager's lock from p's current
// state.
func (m *fetcherManager) sync(p *Partition) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, r := p.State()
	if r == roleFollower {
		m.assignLocked(p, st.Leader)
		return
	}
	for id, f := range m.fetchers {
		m.removeLocked(id, f, p)
	}
}

// remove stops fetching p.
func (m *fetcherManager) remove(p *Partition) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, f := range m.fetchers {
		m.removeLocked(id, f, p)
	}
}

// removeLocked takes p from f, and stops f once it fetches nothing: a leader
// this broker no longer follows needs no goroutine. mu must be held.
func (m *fetcherManager) removeLocked(id int32, f *fetcher, p *Partition) {
	if f.remove(p) == 0 {
		f.cancel()
		delete(m.fetchers, id)
		m.stopped = append(slices.DeleteFunc(m.stopped, (*fetcher).exited), f)
	}
}

// brokersChanged wakes fetchers waiting for a leader's address.
func (m *fetcherManager) brokersChanged() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, f := range m.fetchers {
		f.poke()
	}
}

// close stops every fetcher and waits for them.
func (m *fetcherManager) close() {
	m.mu.Lock()
	m.closed = true
	fs := m.stopped
	for _, f := range m.fetchers {
		fs = append(fs, f)
	}
	m.fetchers = map[int32]*fetcher{}
	m.stopped = nil
	m.mu.Unlock()
	for _, f := range fs {
		f.cancel()
	}
	for _, f := range fs {
		<-f.done
	}
}

// add starts fetching p. A long poll in flight without p is cut short:
// until p's first fetch reaches the leader, the leader's high watermark for p
// cannot move, and acks=all producers would wait out the poll.
func (f *fetcher) add(p *Partition) {
	f.mu.Lock()
	_, had := f.parts[p]
	if !had {
		f.parts[p] = time.Time{}
	}
	cancel := f.cancelCall
	f.mu.Unlock()
	if !had && cancel != nil {
		cancel()
	}
	f.poke()
}

// setCall records how to interrupt the fetch in flight (nil: none is).
func (f *fetcher) setCall(cancel context.CancelFunc) {
	f.mu.Lock()
	f.cancelCall = cancel
	f.mu.Unlock()
}

func (f *fetcher) exited() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// remove stops fetching p and returns how many partitions f still fetches.
func (f *fetcher) remove(p *Partition) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.parts, p)
	return len(f.parts)
}

func (f *fetcher) poke() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// Replica fetch settings, as Kafka's replica.fetch.* defaults.
const (
	replicaFetchMaxWait   = 500 * time.Millisecond
	replicaFetchMaxBytes  = 10 << 20
	replicaFetchPartBytes = 1 << 20
	replicaBackoffMin     = 50 * time.Millisecond
	replicaBackoffMax     = time.Second
	// replicaPartitionBackoff is the pause after a partition error, usually
	// a leader that has not applied the newest partition state yet (a new
	// topic, a failover): short, since acks=all waits on the follower.
	replicaPartitionBackoff = 50 * time.Millisecond
)

// maxKeptReceive bounds the receive buffer a fetcher keeps between fetches:
// room for a whole response of replicaFetchMaxBytes, not for the rare
// response swollen by a first batch larger than that.
const maxKeptReceive = 2 * replicaFetchMaxBytes

func (f *fetcher) run(ctx context.Context) {
	defer close(f.done)
	b := f.m.b
	backoff := replicaBackoffMin
	// Responses are received into recv, which the next fetch reuses: every
	// result aliasing it is handled (its batches written to the log, which
	// keeps no reference) before that.
	var recv []byte
	for ctx.Err() == nil {
		if cap(recv) > maxKeptReceive {
			recv = nil
		}
		req, parts, throttled, wait := f.request()
		req.Receive = &recv
		if wait > 0 {
			// A partition backing off must not wait for this poll to end.
			req.MaxWait = min(req.MaxWait, wait)
		}
		addr, known := b.cluster.brokerAddr(f.leader)
		if len(parts) == 0 || !known {
			if wait <= 0 || !known {
				wait = replicaBackoffMax
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
			case <-f.kick:
			case <-t.C:
			}
			t.Stop()
			continue
		}
		callCtx, cancelCall := context.WithCancel(ctx)
		f.setCall(cancelCall)
		results, err := b.cfg.Replicas.ReplicaFetch(callCtx, addr, req)
		f.setCall(nil)
		interrupted := callCtx.Err() != nil
		cancelCall()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if interrupted {
				continue // a partition was added: fetch again with it at once
			}
			b.logger.Debug("replica fetch failed", "leader", f.leader, "addr", addr, "err", err, "backoff", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			backoff = min(2*backoff, replicaBackoffMax)
			continue
		}
		backoff = replicaBackoffMin
		for i := range results {
			if i < len(throttled) && throttled[i] {
				b.throttle.took(throttleFollower, b.throttle.follower, len(results[i].Data))
			}
			if i < len(parts) {
				f.handle(parts[i], &req.Partitions[i], &results[i])
			}
		}
	}
}

// request builds the next fetch from the partitions not backing off; wait is
// how long until the earliest backing-off one may go again. throttled marks
// the partitions fetched under the follower throttle: those whose ISR this
// broker is not in, asking together for no more than the throttle allows
// now, and left out while it allows nothing.
func (f *fetcher) request() (req ReplicaFetchRequest, parts []*Partition, throttled []bool, wait time.Duration) {
	now := time.Now()
	b := f.m.b
	req = ReplicaFetchRequest{ReplicaID: b.cfg.NodeID, Secret: b.replicaSecret(), MaxWait: replicaFetchMaxWait, MinBytes: 1, MaxBytes: replicaFetchMaxBytes}
	allowance, allowanceKnown := 0, false
	f.mu.Lock()
	defer f.mu.Unlock()
	for p, notBefore := range f.parts {
		if now.Before(notBefore) {
			if d := notBefore.Sub(now); wait == 0 || d < wait {
				wait = d
			}
			continue
		}
		epoch, ok := p.followerEpoch(f.leader)
		if !ok {
			continue
		}
		maxBytes := replicaFetchPartBytes
		throttle := b.throttle.follower != nil && p.catchingUp(p.self)
		if throttle {
			if !allowanceKnown {
				var d time.Duration
				allowance, d = b.throttle.allow(throttleFollower, b.throttle.follower)
				allowanceKnown = true
				if d > 0 && (wait == 0 || d < wait) {
					wait = d
				}
			}
			if allowance <= 0 {
				continue // fetched once the throttle allows (wait, or the next request)
			}
			maxBytes = min(maxBytes, allowance)
			allowance -= maxBytes
		}
		parts = append(parts, p)
		throttled = append(throttled, throttle)
		req.Partitions = append(req.Partitions, ReplicaFetchPartition{
			Topic: p.Topic, TopicID: p.topicID, Partition: p.Index, CurrentLeaderEpoch: epoch,
			FetchOffset: p.LogEndOffset(), LastFetchedEpoch: p.log.LatestEpoch(), MaxBytes: int32(maxBytes),
		})
	}
	return req, parts, throttled, wait
}

func (f *fetcher) backoff(p *Partition, d time.Duration) {
	f.mu.Lock()
	if _, ok := f.parts[p]; ok {
		f.parts[p] = time.Now().Add(d)
	}
	f.mu.Unlock()
}

// handle applies the leader's answer for one partition: truncate on
// divergence, append the batches, adopt the high watermark. A storage
// failure of the log on the way takes the partition offline, once the role
// is no longer held.
func (f *fetcher) handle(p *Partition, sent *ReplicaFetchPartition, res *ReplicaFetchResult) {
	if err := f.apply(p, sent, res); err != nil {
		f.m.b.offline.check(p, err)
	}
}

// apply is handle with the partition's role held; it returns the failure of
// a write to the log, after logging it and backing off.
func (f *fetcher) apply(p *Partition, sent *ReplicaFetchPartition, res *ReplicaFetchResult) error {
	b := f.m.b
	p.roleMu.RLock()
	defer p.roleMu.RUnlock()
	if epoch, ok := p.followerEpoch(f.leader); !ok || epoch != sent.CurrentLeaderEpoch {
		return nil // the role changed while the fetch was out
	}
	switch {
	case res.Err != nil && f.behindLeaderStart(sent, res):
		// Everything this replica holds was deleted on the leader: start
		// over, empty, at the leader's log start (Kafka's
		// truncateFullyAndStartAt).
		b.logger.Info("replica is behind the leader's log start; starting over there", "topic", p.Topic, "partition", p.Index,
			"leader", f.leader, "log_end", p.LogEndOffset(), "leader_log_start", res.LogStartOffset)
		if err := p.log.TruncateFullyAndStartAt(res.LogStartOffset); err != nil {
			b.logger.Error("replica truncation failed", "topic", p.Topic, "partition", p.Index, "err", err)
			f.backoff(p, replicaBackoffMax)
			return err
		}
		if err := p.rebuildProducerState(); err != nil {
			b.logger.Warn("producer state rebuilt from part of the log tail", "topic", p.Topic, "partition", p.Index, "err", err)
		}
		p.setFollowerHW(res.LogStartOffset)
	case res.Err != nil:
		// Not the leader (yet or any more), or an epoch mismatch: wait for
		// the metastore to tell us more, and try again after a while.
		b.logger.Debug("replica fetch partition error", "topic", p.Topic, "partition", p.Index, "leader", f.leader, "err", res.Err)
		f.backoff(p, replicaPartitionBackoff)
	case res.Diverging != nil:
		d := res.Diverging
		target := d.EndOffset
		if _, own := p.log.EndOffsetForEpoch(d.Epoch); own < target {
			target = own
		}
		b.logger.Info("truncating diverged replica", "topic", p.Topic, "partition", p.Index,
			"leader", f.leader, "leader_epoch_end", d, "from", p.LogEndOffset(), "to", target)
		truncate := p.log.TruncateTo
		if target < p.log.LogStartOffset() {
			// Diverged below what this replica still serves (after an
			// unclean election): nothing it holds can be kept.
			truncate = p.log.TruncateFullyAndStartAt
		}
		if err := truncate(target); err != nil {
			b.logger.Error("replica truncation failed", "topic", p.Topic, "partition", p.Index, "err", err)
			f.backoff(p, replicaBackoffMax)
			return err
		}
		if err := p.rebuildProducerState(); err != nil {
			b.logger.Warn("producer state rebuilt from part of the log tail", "topic", p.Topic, "partition", p.Index, "err", err)
		}
		p.setFollowerHW(p.hw.Load())
	case len(res.Data) > 0:
		if err := f.alignEmptyStart(p, res.Data); err != nil {
			b.logger.Error("replica truncation failed", "topic", p.Topic, "partition", p.Index, "err", err)
			f.backoff(p, replicaBackoffMax)
			return err
		}
		data, err := f.trim(p, res.Data)
		if err != nil {
			b.logger.Error("replica data does not continue the log", "topic", p.Topic, "partition", p.Index, "err", err)
			f.backoff(p, replicaBackoffMax)
			return err
		}
		if len(data) > 0 {
			if err := p.appendReplicated(data); err != nil {
				b.logger.Error("replica append failed", "topic", p.Topic, "partition", p.Index, "err", err)
				f.backoff(p, replicaBackoffMax)
				return err
			}
		}
		// Wakes this follower's consumers (KIP-392) when the high watermark
		// moves, and with it the last stable offset: a replicated marker
		// alone does not move it.
		p.setFollowerHW(res.HighWatermark)
		f.followLogStart(p, res.LogStartOffset)
	default:
		p.setFollowerHW(res.HighWatermark)
		f.followLogStart(p, res.LogStartOffset)
	}
	return nil
}

// alignEmptyStart restarts an empty log that starts inside the first batch
// the leader sent (the leader's log start was moved into the middle of a
// batch, and this replica started over there) at that batch's base offset,
// as Kafka's followers do: batches are never split. The log start moves
// back up to the leader's once the batch is appended.
func (f *fetcher) alignEmptyStart(p *Partition, data []byte) error {
	leo := p.LogEndOffset()
	if leo != p.log.LogStartOffset() {
		return nil
	}
	h, err := record.ParseHeader(data)
	if err != nil || h.BaseOffset >= leo || h.NextOffset() <= leo {
		return nil // trim judges it
	}
	return p.log.TruncateFullyAndStartAt(h.BaseOffset)
}

// behindLeaderStart reports whether the leader refused the fetch because it
// starts below the leader's log start.
func (f *fetcher) behindLeaderStart(sent *ReplicaFetchPartition, res *ReplicaFetchResult) bool {
	var oor *partlog.OffsetOutOfRangeError
	return errors.As(res.Err, &oor) && res.LogStartOffset > sent.FetchOffset
}

// followLogStart moves this replica's log start up to the leader's, after
// records were deleted there, but not past its own high watermark: what lies
// above it may still be truncated to match the leader, which a log start
// above it would forbid.
func (f *fetcher) followLogStart(p *Partition, leaderStart int64) {
	target := min(leaderStart, p.HighWatermark())
	if target <= p.log.LogStartOffset() {
		return
	}
	if err := p.log.AdvanceLogStart(target); err != nil {
		f.m.b.logger.Error("replica cannot follow the leader's log start", "topic", p.Topic, "partition", p.Index,
			"leader_log_start", leaderStart, "target", target, "err", err)
	}
}

// trim drops whole batches below the log end (a read may start at the batch
// holding the fetch offset); a batch straddling the log end is an error.
func (f *fetcher) trim(p *Partition, data []byte) ([]byte, error) {
	leo := p.LogEndOffset()
	for len(data) > 0 {
		h, err := record.ParseHeader(data)
		if err != nil {
			return nil, err
		}
		if h.BaseOffset >= leo {
			return data, nil
		}
		if h.NextOffset() > leo {
			return nil, fmt.Errorf("batch %d..%d straddles the log end %d: %w", h.BaseOffset, h.NextOffset()-1, leo, partlog.ErrOffsetMismatch)
		}
		data = data[h.Size():]
	}
	return data, nil
}
