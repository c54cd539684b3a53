package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// Metadata timing.
const (
	// minRefreshInterval spaces metadata requests: during a failover every
	// partition of the old leader fails at once, and one request answers
	// them all.
	minRefreshInterval = 50 * time.Millisecond
	// metadataTimeout bounds one Metadata call to one broker, so that a
	// broker that stopped answering (cut off, not closed) does not hold up
	// the others for long. Brokers answer from memory.
	metadataTimeout = 5 * time.Second
)

// noLeader is the leader of a partition that has none (an election is in
// progress) or that the client does not know.
const noLeader int32 = -1

// bootstrapLeader stands for "the bootstrap broker" when the cluster does not
// serve Metadata (a broker from before replication): that broker hosts every
// partition, so it leads them all. Real node ids are never negative.
const bootstrapLeader int32 = -1 << 31

// metadata is one immutable view of the cluster: brokers and the leaders of
// the topics the client uses. A refresh installs a new one, so readers (the
// producer choosing a leader for every request) take no lock.
type metadata struct {
	// started is when the Metadata request of this view was sent: the view
	// is at least as new as anything that failed before it.
	started time.Time
	// brokers maps node ids to gRPC addresses.
	brokers map[int32]string
	// racks maps node ids to their broker.rack, for those that set one.
	racks  map[int32]string
	topics map[string]*topicMetadata
}

type topicMetadata struct {
	// err is set when the topic does not exist (a codes.NotFound status).
	err error
	// leaders holds each partition's leader by partition number, noLeader
	// for a partition without one; len(leaders) is the partition count.
	leaders []int32
	// epochs holds each partition's leader epoch, beside leaders: a higher
	// epoch with the same leader still means the leadership changed hands
	// in between.
	epochs []int32
	// isr holds each partition's in-sync replicas, beside leaders (nil
	// when not known): the replicas a consumer may read from.
	isr [][]int32
}

func emptyMetadata() *metadata {
	return &metadata{brokers: map[int32]string{}, racks: map[int32]string{}, topics: map[string]*topicMetadata{}}
}

// covers reports whether the view has an answer (the topic, or that it does
// not exist) for each of topics.
func (m *metadata) covers(topics []string) bool {
	for _, t := range topics {
		if m.topics[t] == nil {
			return false
		}
	}
	return true
}

// metaRound is one metadata refresh. Callers join it, adding their topics,
// until it is sent; later ones wait for it and start the next.
type metaRound struct {
	topics map[string]struct{}
	// suspects are the addresses of brokers a caller suspects of having
	// stopped answering: they are asked last, so that a broker that holds
	// calls without answering does not hold up the refresh meant to find
	// its successor for metadataTimeout.
	suspects map[string]bool
	sent     bool
	done     chan struct{} // closed when the round is over
	err      error         // set before done is closed
}

// refreshMetadata makes sure the cached metadata was requested at or after
// since and covers topics, requesting it if need be. Concurrent callers share
// one request, and requests are spaced by minRefreshInterval. A zero since
// accepts any cached view that covers the topics.
func (c *Client) refreshMetadata(ctx context.Context, topics []string, since time.Time) error {
	return c.refresh(ctx, topics, since, noLeader)
}

// refreshMetadataAvoiding is refreshMetadata for a caller that suspects
// node of no longer answering: the request is sent to the other brokers
// first.
func (c *Client) refreshMetadataAvoiding(ctx context.Context, topics []string, since time.Time, node int32) error {
	return c.refresh(ctx, topics, since, node)
}

// refresh is refreshMetadata asking suspect (a node id, noLeader for none)
// last.
func (c *Client) refresh(ctx context.Context, topics []string, since time.Time, suspect int32) error {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return ErrClosed
		}
		if m := c.meta.Load(); !m.started.Before(since) && m.covers(topics) {
			c.mu.Unlock()
			return nil
		}
		r := c.round
		if r == nil {
			r = &metaRound{topics: map[string]struct{}{}, done: make(chan struct{})}
			c.round = r
			c.wg.Add(1)
			go c.runRound(r)
		}
		joined := !r.sent
		if joined {
			for _, t := range topics {
				r.topics[t] = struct{}{}
			}
			if addr, ok := c.meta.Load().brokers[suspect]; ok {
				if r.suspects == nil {
					r.suspects = map[string]bool{}
				}
				r.suspects[addr] = true
			}
		}
		c.mu.Unlock()
		select {
		case <-r.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if joined {
			// The round was sent after this call began and asked for
			// these topics: its outcome is the answer.
			return r.err
		}
	}
}

// runRound waits out minRefreshInterval since the previous round, sends the
// round's Metadata request and installs the result.
func (c *Client) runRound(r *metaRound) {
	defer c.wg.Done()
	c.mu.Lock()
	wait := time.Until(c.lastRound.Add(minRefreshInterval))
	c.mu.Unlock()
	if wait > 0 {
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-c.ctx.Done():
			timer.Stop()
		}
	}

	c.mu.Lock()
	r.sent = true
	// Keep every topic in use fresh, not only the ones asked for: one
	// request serves all of them.
	old := c.meta.Load()
	for t, tm := range old.topics {
		if tm.err == nil {
			r.topics[t] = struct{}{}
		}
	}
	topics := slices.Sorted(maps.Keys(r.topics))
	suspects := r.suspects
	c.mu.Unlock()

	started := time.Now()
	m, err := c.fetchMetadata(c.ctx, topics, suspects)
	if err == nil {
		m.started = started
	}

	c.mu.Lock()
	var stale []*grpc.ClientConn
	if err == nil {
		c.meta.Store(m)
		stale = c.pruneConnsLocked(m)
	} else {
		r.err = fmt.Errorf("refresh metadata: %w", err)
	}
	c.mu.Unlock()
	// Connections to brokers that left are closed before the round is
	// over (outside the lock): whoever waited for the refresh finds them
	// gone.
	for _, conn := range stale {
		_ = conn.Close()
	}
	if err != nil {
		c.logger.Debug("metadata refresh failed", "topics", topics, "err", err)
	}

	c.mu.Lock()
	c.lastRound = time.Now()
	c.round = nil
	close(r.done)
	c.mu.Unlock()
}

// fetchMetadata asks the brokers in turn (see candidates), the suspects
// last, until one answers. A broker without the Metadata call
// (codes.Unimplemented) is taken to lead every partition.
func (c *Client) fetchMetadata(ctx context.Context, topics []string, suspects map[string]bool) (*metadata, error) {
	addrs := c.candidates()
	if len(suspects) > 0 {
		slices.SortStableFunc(addrs, func(a, b string) int {
			switch {
			case suspects[a] == suspects[b]:
				return 0
			case suspects[a]:
				return 1
			}
			return -1
		})
	}
	var lastErr error
	for _, addr := range addrs {
		conn, err := c.connFor(addr)
		if err != nil {
			return nil, err
		}
		api := stratav1.NewStrataClient(conn)
		callCtx, cancel := context.WithTimeout(ctx, metadataTimeout)
		resp, err := api.Metadata(callCtx, &stratav1.MetadataRequest{Topics: topics})
		if status.Code(err) == codes.Unimplemented {
			var m *metadata
			m, err = c.describeAll(callCtx, api, addr, topics)
			cancel()
			if err == nil {
				c.setPreferred(addr)
				return m, nil
			}
		} else {
			cancel()
			if err == nil {
				c.setPreferred(addr)
				return newMetadata(resp, topics), nil
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !brokerUnreachable(err) {
			return nil, fmt.Errorf("metadata from %s: %w", addr, err)
		}
		lastErr = fmt.Errorf("metadata from %s: %w", addr, err)
	}
	if lastErr == nil {
		lastErr = status.Error(codes.Unavailable, "no broker to ask for metadata")
	}
	return nil, lastErr
}

// newMetadata builds a view from a Metadata response. A requested topic the
// response leaves out is taken as missing, so that nobody waits for it.
func newMetadata(resp *stratav1.MetadataResponse, requested []string) *metadata {
	m := emptyMetadata()
	for _, b := range resp.GetBrokers() {
		m.brokers[b.GetNodeId()] = b.GetGrpcAddr()
		if r := b.GetRack(); r != "" {
			m.racks[b.GetNodeId()] = r
		}
	}
	for _, t := range resp.GetTopics() {
		tm := &topicMetadata{}
		if pe := t.GetError(); pe != nil && codes.Code(pe.GetCode()) != codes.OK {
			tm.err = topicError(t.GetName(), pe)
		} else {
			n := 0
			for _, p := range t.GetPartitions() {
				n = max(n, int(p.GetPartition())+1)
			}
			tm.leaders = make([]int32, n)
			tm.epochs = make([]int32, n)
			tm.isr = make([][]int32, n)
			for i := range tm.leaders {
				tm.leaders[i] = noLeader
			}
			for _, p := range t.GetPartitions() {
				if p.GetPartition() >= 0 {
					tm.leaders[p.GetPartition()] = p.GetLeader()
					tm.epochs[p.GetPartition()] = p.GetLeaderEpoch()
					tm.isr[p.GetPartition()] = p.GetIsr()
				}
			}
		}
		m.topics[t.GetName()] = tm
	}
	for _, t := range requested {
		if m.topics[t] == nil {
			m.topics[t] = &topicMetadata{err: status.Errorf(codes.NotFound, "topic %q: not in the metadata response", t)}
		}
	}
	return m
}

// topicError is the status error of a topic the metadata says is missing.
func topicError(topic string, pe *stratav1.PartitionError) error {
	msg := pe.GetMessage()
	if r := pe.GetReason(); r != "" {
		msg = r + ": " + msg
	}
	return status.Errorf(codes.Code(pe.GetCode()), "topic %q: %s", topic, msg)
}

// describeAll builds a view for a broker that does not serve Metadata: it
// hosts every partition, so it leads them; DescribeTopic gives the counts.
func (c *Client) describeAll(ctx context.Context, api stratav1.StrataClient, addr string, topics []string) (*metadata, error) {
	m := emptyMetadata()
	m.brokers[bootstrapLeader] = addr
	for _, t := range topics {
		resp, err := api.DescribeTopic(ctx, &stratav1.DescribeTopicRequest{Name: t})
		if status.Code(err) == codes.NotFound {
			m.topics[t] = &topicMetadata{err: fmt.Errorf("describe topic %q: %w", t, err)}
			continue
		}
		if err != nil {
			return nil, err
		}
		n := len(resp.GetTopic().GetPartitions())
		tm := &topicMetadata{leaders: make([]int32, n), epochs: make([]int32, n)}
		for i := range tm.leaders {
			tm.leaders[i] = bootstrapLeader
		}
		m.topics[t] = tm
	}
	return m, nil
}

// forgetTopic drops a topic from the cached metadata, so that its next use
// asks the cluster (after it was deleted or created by this client).
func (c *Client) forgetTopic(topic string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.meta.Load()
	if old.topics[topic] == nil {
		return
	}
	m := &metadata{started: old.started, brokers: old.brokers, topics: maps.Clone(old.topics)}
	delete(m.topics, topic)
	c.meta.Store(m)
}

// partitionCount returns the topic's partition count from the cached
// metadata, asking the cluster when the topic is not cached (or is cached as
// missing) or refresh is set.
func (c *Client) partitionCount(ctx context.Context, topic string, refresh bool) (int32, error) {
	tm := c.meta.Load().topics[topic]
	if refresh || tm == nil || tm.err != nil {
		var since time.Time
		if refresh || tm != nil {
			since = time.Now()
		}
		if err := c.refreshMetadata(ctx, []string{topic}, since); err != nil {
			return 0, err
		}
		tm = c.meta.Load().topics[topic]
	}
	if tm == nil {
		return 0, status.Errorf(codes.Unavailable, "topic %q: no metadata", topic)
	}
	if tm.err != nil {
		return 0, tm.err
	}
	if len(tm.leaders) == 0 {
		return 0, fmt.Errorf("topic %q has no partitions", topic)
	}
	return int32(len(tm.leaders)), nil
}

// leaderOf returns the node leading the partition in the cached metadata, or
// noLeader.
func (c *Client) leaderOf(topic string, partition int32) int32 {
	leader, _ := c.leaderEpochOf(topic, partition)
	return leader
}

// leaderEpochOf returns the node leading the partition in the cached
// metadata (noLeader when none does) and its leader epoch.
func (c *Client) leaderEpochOf(topic string, partition int32) (leader, epoch int32) {
	tm := c.meta.Load().topics[topic]
	if tm == nil || partition < 0 || int(partition) >= len(tm.leaders) {
		return noLeader, 0
	}
	return tm.leaders[partition], tm.epochs[partition]
}

// readReplicaOf returns the replica a consumer in rack reads a partition
// from, and the partition's leader epoch: the leader, unless the leader is
// in another rack and an in-sync replica of the cached metadata is in rack
// (the lowest node id of them), as a Kafka leader with Kafka's
// RackAwareReplicaSelector would choose, less the log end offsets only the
// leader knows. With rack empty, or no leader, it is leaderEpochOf.
func (c *Client) readReplicaOf(topic string, partition int32, rack string) (node, epoch int32) {
	m := c.meta.Load()
	leader, epoch := c.leaderEpochOf(topic, partition)
	tm := m.topics[topic]
	if rack == "" || leader == noLeader || leader == bootstrapLeader || m.racks[leader] == rack ||
		tm == nil || int(partition) >= len(tm.isr) || partition < 0 {
		return leader, epoch
	}
	node = leader
	for _, id := range tm.isr[partition] {
		// Only live brokers have a rack in the view.
		if m.racks[id] == rack && (node == leader || id < node) {
			node = id
		}
	}
	return node, epoch
}

// readSource is the leader source of a consumer's calls: the replica it
// reads each partition from takes the leader's place, so a watched call is
// abandoned when that replica is no longer the one to read from.
type readSource struct {
	c    *Client
	rack string
}

func (s readSource) leaderEpochOf(topic string, partition int32) (int32, int32) {
	return s.c.readReplicaOf(topic, partition, s.rack)
}

func (s readSource) refreshMetadataAvoiding(ctx context.Context, topics []string, since time.Time, node int32) error {
	return s.c.refreshMetadataAvoiding(ctx, topics, since, node)
}

// checkPartition returns a codes.NotFound error when the cached metadata
// says the partition does not exist; nil when it exists or is not cached.
func (c *Client) checkPartition(topic string, partition int32) error {
	tm := c.meta.Load().topics[topic]
	switch {
	case tm == nil:
		return nil
	case tm.err != nil:
		return tm.err
	case partition < 0 || int(partition) >= len(tm.leaders):
		return status.Errorf(codes.NotFound, "topic %q has %d partitions, no partition %d", topic, len(tm.leaders), partition)
	}
	return nil
}

// nodeConn returns the connection to a broker of the cached metadata.
func (c *Client) nodeConn(node int32) (*grpc.ClientConn, error) {
	addr, ok := c.meta.Load().brokers[node]
	if !ok {
		return nil, status.Errorf(codes.Unavailable, "broker %d is not in the cluster metadata", node)
	}
	return c.connFor(addr)
}

// connFor returns the connection to addr, dialling it on first use.
func (c *Client) connFor(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if conn := c.conns[addr]; conn != nil {
		return conn, nil
	}
	conn, err := grpc.NewClient(addr, c.dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	conn.Connect()
	c.conns[addr] = conn
	return conn, nil
}

// pruneConnsLocked removes the connections to brokers that left the
// metadata, keeping the bootstrap servers', and returns them for closing.
// Calls in flight on them fail with codes.Canceled, which callers retry.
// Lock should be held.
func (c *Client) pruneConnsLocked(m *metadata) []*grpc.ClientConn {
	live := make(map[string]bool, len(m.brokers)+len(c.bootstrap))
	for _, a := range m.brokers {
		live[a] = true
	}
	for _, a := range c.bootstrap {
		live[a] = true
	}
	var stale []*grpc.ClientConn
	for addr, conn := range c.conns {
		if !live[addr] {
			stale = append(stale, conn)
			delete(c.conns, addr)
			c.logger.Debug("closing connection to a broker that left the cluster metadata", "addr", addr)
		}
	}
	return stale
}

// candidates lists the addresses to try for a call any broker can answer:
// the one that answered last, the bootstrap servers, then the other known
// brokers by node id.
func (c *Client) candidates() []string {
	c.mu.Lock()
	preferred := c.preferred
	c.mu.Unlock()
	m := c.meta.Load()
	out := make([]string, 0, 1+len(c.bootstrap)+len(m.brokers))
	seen := map[string]bool{}
	add := func(a string) {
		if a != "" && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	add(preferred)
	for _, a := range c.bootstrap {
		add(a)
	}
	ids := slices.Collect(maps.Keys(m.brokers))
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		add(m.brokers[id])
	}
	return out
}

func (c *Client) setPreferred(addr string) {
	c.mu.Lock()
	c.preferred = addr
	c.mu.Unlock()
}

// anyBroker runs call against the brokers in turn (see candidates) until one
// is reachable: a call that fails with codes.Unavailable moves on to the
// next. The error is the last broker's.
func (c *Client) anyBroker(ctx context.Context, call func(context.Context, stratav1.StrataClient) error) error {
	var lastErr error
	for _, addr := range c.candidates() {
		conn, err := c.connFor(addr)
		if err != nil {
			return err
		}
		err = call(ctx, stratav1.NewStrataClient(conn))
		if err == nil {
			c.setPreferred(addr)
			return nil
		}
		if ctx.Err() != nil || status.Code(err) != codes.Unavailable {
			return err
		}
		lastErr = err
	}
	if lastErr == nil {
		lastErr = errors.New("no broker address")
	}
	return lastErr
}
