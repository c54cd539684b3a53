package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// Reason returns Kafka's name for a failure the broker reported: the Reason
// of a *PartitionError, or of the PartitionError detail group calls attach
// to their status. It is "" when there is none.
func Reason(err error) string {
	var perr *PartitionError
	if errors.As(err, &perr) {
		return perr.Reason
	}
	if st, ok := status.FromError(err); ok {
		for _, d := range st.Details() {
			if pe, ok := d.(*stratav1.PartitionError); ok {
				return pe.GetReason()
			}
		}
	}
	return ""
}

// groupRetriable reports whether a group call is worth trying again on the
// coordinator found anew.
func groupRetriable(err error) bool {
	switch Reason(err) {
	case ReasonNotCoordinator, ReasonCoordinatorNotAvailable:
		return true
	}
	return brokerUnreachable(err)
}

// FindCoordinator names the broker that coordinates group (any broker
// answers).
func (c *Client) FindCoordinator(ctx context.Context, group string) (*stratav1.BrokerInfo, error) {
	var resp *stratav1.FindCoordinatorResponse
	err := c.anyBroker(ctx, func(ctx context.Context, api stratav1.StrataClient) error {
		var err error
		resp, err = api.FindCoordinator(ctx, &stratav1.FindCoordinatorRequest{Group: group})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("find coordinator of group %q: %w", group, err)
	}
	if resp.GetCoordinator().GetGrpcAddr() == "" {
		return nil, status.Errorf(codes.Unavailable, "find coordinator of group %q: the coordinator has no gRPC address", group)
	}
	return resp.GetCoordinator(), nil
}

// coordinatorAPI returns the API of group's coordinator.
func (c *Client) coordinatorAPI(ctx context.Context, group string) (stratav1.StrataClient, error) {
	info, err := c.FindCoordinator(ctx, group)
	if err != nil {
		return nil, err
	}
	conn, err := c.connFor(info.GetGrpcAddr())
	if err != nil {
		return nil, err
	}
	return stratav1.NewStrataClient(conn), nil
}

// groupCall runs call on group's coordinator. While the answer is that the
// broker does not coordinate the group or cannot be reached, it finds the
// coordinator again and retries, for up to the client's retry timeout.
func (c *Client) groupCall(ctx context.Context, group string, call func(context.Context, stratav1.StrataClient) error) error {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		api, err := c.coordinatorAPI(ctx, group)
		if err == nil {
			err = call(ctx, api)
		}
		if err == nil || ctx.Err() != nil || !groupRetriable(err) {
			return err
		}
		if time.Since(start) >= c.retryTimeout {
			return fmt.Errorf("gave up after %v: %w", c.retryTimeout, err)
		}
		if err := sleepCtx(ctx, retryDelay(DefaultRetryBackoff, DefaultRetryBackoffMax, attempt, nil)); err != nil {
			return err
		}
	}
}

// CommitOffsets stores a group's offsets (the next offset to consume) as the
// member memberID of generation; with memberID "" (generation ignored) only
// while the group has no members.
func (c *Client) CommitOffsets(ctx context.Context, group, memberID string, generation int32, offsets []*stratav1.GroupOffset) error {
	err := c.groupCall(ctx, group, func(ctx context.Context, api stratav1.StrataClient) error {
		_, err := api.CommitOffsets(ctx, &stratav1.CommitOffsetsRequest{Group: group, MemberId: memberID, Generation: generation, Offsets: offsets})
		return err
	})
	if err != nil {
		return fmt.Errorf("commit offsets of group %q: %w", group, err)
	}
	return nil
}

// FetchOffsets returns a group's committed offsets of the given topics (all
// when none is named), sorted by topic and partition.
func (c *Client) FetchOffsets(ctx context.Context, group string, topics ...string) ([]*stratav1.GroupOffset, error) {
	var resp *stratav1.FetchOffsetsResponse
	err := c.groupCall(ctx, group, func(ctx context.Context, api stratav1.StrataClient) error {
		var err error
		resp, err = api.FetchOffsets(ctx, &stratav1.FetchOffsetsRequest{Group: group, Topics: topics})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("fetch offsets of group %q: %w", group, err)
	}
	offs := resp.GetOffsets()
	sort.Slice(offs, func(i, j int) bool {
		if offs[i].GetTopic() != offs[j].GetTopic() {
			return offs[i].GetTopic() < offs[j].GetTopic()
		}
		return offs[i].GetPartition() < offs[j].GetPartition()
	})
	return offs, nil
}

// ListGroups returns every group of the cluster, sorted by name: each broker
// lists the groups it coordinates, so every broker of the metadata is asked.
func (c *Client) ListGroups(ctx context.Context) ([]*stratav1.GroupSummary, error) {
	md, err := c.Metadata(ctx)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	byName := map[string]*stratav1.GroupSummary{}
	for _, br := range md.GetBrokers() {
		conn, err := c.connFor(br.GetGrpcAddr())
		if err != nil {
			return nil, fmt.Errorf("list groups: %w", err)
		}
		resp, err := stratav1.NewStrataClient(conn).ListGroups(ctx, &stratav1.ListGroupsRequest{})
		if err != nil {
			return nil, fmt.Errorf("list groups of broker %d: %w", br.GetNodeId(), err)
		}
		for _, g := range resp.GetGroups() {
			// A group that moved between two answers is listed by both;
			// its coordinator's answer wins.
			if prev := byName[g.GetGroup()]; prev == nil || g.GetCoordinator() == br.GetNodeId() {
				byName[g.GetGroup()] = g
			}
		}
	}
	out := make([]*stratav1.GroupSummary, 0, len(byName))
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		out = append(out, byName[name])
	}
	return out, nil
}

// DescribeGroup returns a group's state and members with their assigned
// partitions; a group the cluster does not know is in state "Dead".
func (c *Client) DescribeGroup(ctx context.Context, group string) (*stratav1.DescribeGroupResponse, error) {
	var resp *stratav1.DescribeGroupResponse
	err := c.groupCall(ctx, group, func(ctx context.Context, api stratav1.StrataClient) error {
		var err error
		resp, err = api.DescribeGroup(ctx, &stratav1.DescribeGroupRequest{Group: group})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("describe group %q: %w", group, err)
	}
	return resp, nil
}

// DeleteGroup deletes a group without members, with its offsets.
func (c *Client) DeleteGroup(ctx context.Context, group string) error {
	err := c.groupCall(ctx, group, func(ctx context.Context, api stratav1.StrataClient) error {
		_, err := api.DeleteGroup(ctx, &stratav1.DeleteGroupRequest{Group: group})
		return err
	})
	if err != nil {
		return fmt.Errorf("delete group %q: %w", group, err)
	}
	return nil
}

// OffsetSpec says where ResolveOffsets puts a partition: ToEarliest,
// ToLatest, ToOffset or ToTime.
type OffsetSpec struct {
	kind   int8
	offset int64
	time   time.Time
}

const (
	specEarliest int8 = iota
	specLatest
	specOffset
	specTime
)

// ToEarliest is each partition's log start offset.
func ToEarliest() OffsetSpec { return OffsetSpec{kind: specEarliest} }

// ToLatest is each partition's high watermark.
func ToLatest() OffsetSpec { return OffsetSpec{kind: specLatest} }

// ToOffset is offset n, brought into each partition's range of offsets as
// Kafka's tools do (below the log start: the log start; above the high
// watermark: the high watermark).
func ToOffset(n int64) OffsetSpec { return OffsetSpec{kind: specOffset, offset: n} }

// ToTime is the first offset whose timestamp is at or after t, or the high
// watermark when there is none.
func ToTime(t time.Time) OffsetSpec { return OffsetSpec{kind: specTime, time: t} }

// ResolveOffsets turns spec into an offset for each of the partitions of
// topic (all when nil).
func (c *Client) ResolveOffsets(ctx context.Context, topic string, partitions []int32, spec OffsetSpec) (map[int32]int64, error) {
	if partitions == nil {
		n, err := c.partitionCount(ctx, topic, false)
		if err != nil {
			return nil, fmt.Errorf("resolve offsets of topic %q: %w", topic, err)
		}
		for p := range n {
			partitions = append(partitions, p)
		}
	}
	switch spec.kind {
	case specEarliest:
		return c.ListOffsets(ctx, topic, partitions, OffsetEarliest)
	case specLatest:
		return c.ListOffsets(ctx, topic, partitions, OffsetLatest)
	}
	latest, err := c.ListOffsets(ctx, topic, partitions, OffsetLatest)
	if err != nil {
		return nil, err
	}
	if spec.kind == specTime {
		found, err := c.ListOffsets(ctx, topic, partitions, spec.time.UnixMilli())
		if err != nil {
			return nil, err
		}
		for p, off := range found {
			if off >= 0 {
				latest[p] = off
			}
		}
		return latest, nil
	}
	earliest, err := c.ListOffsets(ctx, topic, partitions, OffsetEarliest)
	if err != nil {
		return nil, err
	}
	out := make(map[int32]int64, len(partitions))
	for _, p := range partitions {
		out[p] = min(max(spec.offset, earliest[p]), latest[p])
	}
	return out, nil
}

// ResetOffsets sets a group's committed offsets of topic's partitions, as
// Kafka's AlterConsumerGroupOffsets: refused (codes.FailedPrecondition,
// ReasonNonEmptyGroup) while the group has members.
func (c *Client) ResetOffsets(ctx context.Context, group, topic string, offsets map[int32]int64) error {
	req := &stratav1.ResetOffsetsRequest{Group: group, Topic: topic}
	for _, p := range slices.Sorted(maps.Keys(offsets)) {
		req.Offsets = append(req.Offsets, &stratav1.GroupOffset{Topic: topic, Partition: p, Offset: offsets[p]})
	}
	err := c.groupCall(ctx, group, func(ctx context.Context, api stratav1.StrataClient) error {
		_, err := api.ResetOffsets(ctx, req)
		return err
	})
	if err != nil {
		return fmt.Errorf("reset offsets of group %q topic %q: %w", group, topic, err)
	}
	return nil
}

// Group consumer defaults.
const (
	// DefaultAutoCommitInterval is Kafka's auto.commit.interval.ms.
	DefaultAutoCommitInterval = 5 * time.Second
	// DefaultGroupSessionTimeout is how long the group keeps a member whose
	// broker stopped hearing from it.
	DefaultGroupSessionTimeout = 10 * time.Second
	// closeCommitTimeout bounds the commit made by Close.
	closeCommitTimeout = 5 * time.Second
)

// GroupConsumerOptions configures a GroupConsumer.
type GroupConsumerOptions struct {
	Group string
	Topic string
	// ClientID names the member in descriptions of the group.
	ClientID string
	// SessionTimeout: a member whose heartbeats stop for this long is
	// dropped from the group (default DefaultGroupSessionTimeout).
	SessionTimeout time.Duration
	// Start applies to assigned partitions without a committed offset.
	Start StartFrom
	// AutoCommitInterval: the positions of the records Poll returned are
	// committed by Poll every interval and by Close (default
	// DefaultAutoCommitInterval). Negative: only Commit commits.
	AutoCommitInterval time.Duration
	// ReadCommitted reads committed records only, as ConsumerOptions's.
	ReadCommitted bool
	// Logger gets commit and membership failures that are retried (debug
	// level); the client's logger by default.
	Logger interface {
		Debug(msg string, args ...any)
	}
}

// Assignment is a group member's share of the partitions in one generation.
type Assignment struct {
	Generation int32 // -1: not a member (yet, or any more)
	MemberID   string
	Partitions []int32
}

// GroupConsumer consumes a topic as a member of a consumer group: the
// broker assigns it partitions (a share of the topic among the group's
// members, see the ConsumeGroup RPC), and it resumes each partition from the
// group's committed offset. It follows the topic, as a Consumer with Follow.
//
// Membership runs in the background from NewGroupConsumer to Close: on a
// new assignment the next Poll drops the partitions it lost (their
// uncommitted positions are lost with them: delivery is at least once) and
// starts on the new ones. When the coordinator moves or its broker is lost,
// the consumer stops reading, finds the coordinator again and joins anew.
//
// Poll, PollRecords, Commit and Close are for one goroutine at a time;
// Assignment may be called from any.
type GroupConsumer struct {
	c    *Client
	opts GroupConsumerOptions
	log  interface{ Debug(string, ...any) }

	cancel context.CancelFunc
	done   chan struct{}
	// leaving is closed by Close: the membership ends its stream and waits
	// for the broker to take the member out before it stops.
	leaving chan struct{}

	mu      sync.Mutex
	latest  *Assignment
	changed chan struct{} // closed when latest or fatal changes
	fatal   error

	// Owned by the polling goroutine.
	cur        *Assignment
	cons       *Consumer
	buf        []Record
	committed  map[int32]int64
	lastCommit time.Time
	closed     bool
}

// NewGroupConsumer joins opts.Group and returns its consumer; the
// membership runs until Close.
func NewGroupConsumer(c *Client, opts GroupConsumerOptions) (*GroupConsumer, error) {
	if opts.Group == "" {
		return nil, errors.New("group consumer: no group")
	}
	if opts.Topic == "" {
		return nil, errors.New("group consumer: no topic")
	}
	if opts.SessionTimeout <= 0 {
		opts.SessionTimeout = DefaultGroupSessionTimeout
	}
	if opts.AutoCommitInterval == 0 {
		opts.AutoCommitInterval = DefaultAutoCommitInterval
	}
	g := &GroupConsumer{c: c, opts: opts, log: opts.Logger, changed: make(chan struct{}), done: make(chan struct{}),
		leaving: make(chan struct{}), lastCommit: time.Now()}
	if g.log == nil {
		g.log = c.logger
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	go func() {
		defer close(g.done)
		g.membership(ctx)
	}()
	return g, nil
}

// Assignment returns the latest assignment the broker sent (Generation -1
// before the first).
func (g *GroupConsumer) Assignment() Assignment {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.latest == nil {
		return Assignment{Generation: -1}
	}
	a := *g.latest
	a.Partitions = slices.Clone(a.Partitions)
	return a
}

func (g *GroupConsumer) publish(a *Assignment, fatal error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if a != nil {
		g.latest = a
	}
	if fatal != nil {
		g.fatal = fatal
	}
	close(g.changed)
	g.changed = make(chan struct{})
}

func (g *GroupConsumer) state() (*Assignment, chan struct{}, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.latest, g.changed, g.fatal
}

// membership keeps the consumer in the group until ctx ends: one
// ConsumeGroup stream at a time, found again after failures.
func (g *GroupConsumer) membership(ctx context.Context) {
	for attempt := 1; ; attempt++ {
		member, err := g.session(ctx)
		if ctx.Err() != nil || g.isLeaving() {
			return
		}
		if member {
			// The membership is gone with the stream: stop reading until
			// a new one is assigned partitions.
			g.publish(&Assignment{Generation: -1}, nil)
			attempt = 1
		}
		if err != nil && !groupRetriable(err) && !errors.Is(err, io.EOF) && status.Code(err) != codes.Aborted {
			g.publish(nil, fmt.Errorf("group consumer of group %q: %w", g.opts.Group, err))
			return
		}
		g.log.Debug("group consumer: membership lost; joining again", "group", g.opts.Group, "err", err)
		if sleepCtx(ctx, retryDelay(DefaultRetryBackoff, 2*time.Second, attempt, nil)) != nil || g.isLeaving() {
			return
		}
	}
}

// session runs one ConsumeGroup stream on the coordinator until it fails;
// member reports whether an assignment was received.
func (g *GroupConsumer) session(ctx context.Context) (member bool, err error) {
	api, err := g.c.coordinatorAPI(ctx, g.opts.Group)
	if err != nil {
		return false, err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := api.ConsumeGroup(sctx)
	if err != nil {
		return false, err
	}
	if err := stream.Send(&stratav1.ConsumeGroupRequest{
		Group: g.opts.Group, Topics: []string{g.opts.Topic}, ClientId: g.opts.ClientID,
		SessionTimeoutMs: int32(g.opts.SessionTimeout / time.Millisecond),
	}); err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		t := time.NewTicker(g.opts.SessionTimeout / 3)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-g.leaving:
				// Ending the stream is leaving the group: the broker takes
				// the member out, then ends the stream, which Recv sees.
				// Sent from here, the only goroutine that sends.
				_ = stream.CloseSend()
				return
			case <-t.C:
			}
			if stream.Send(&stratav1.ConsumeGroupRequest{}) != nil {
				return
			}
		}
	})
	for {
		resp, err := stream.Recv()
		if err != nil {
			return member, err
		}
		member = true
		a := &Assignment{Generation: resp.GetGeneration(), MemberID: resp.GetMemberId()}
		for _, tp := range resp.GetPartitions() {
			if tp.GetTopic() == g.opts.Topic {
				a.Partitions = append(a.Partitions, tp.GetPartitions()...)
			}
		}
		slices.Sort(a.Partitions)
		g.publish(a, nil)
	}
}

// Poll returns the next records of the assigned partitions, waiting until
// there are some or ctx ends. The records' positions are what Commit (and
// the automatic commits) store.
func (g *GroupConsumer) Poll(ctx context.Context) ([]Record, error) {
	return g.PollRecords(ctx, 0)
}

// PollRecords is Poll returning at most max records (0: no limit); the rest
// wait for the next poll and are not committed before.
func (g *GroupConsumer) PollRecords(ctx context.Context, max int) ([]Record, error) {
	if g.closed {
		return nil, ErrClosed
	}
	for {
		latest, changed, fatal := g.state()
		if fatal != nil {
			return nil, fatal
		}
		g.maybeAutoCommit(ctx)
		if latest != g.cur {
			if err := g.reassign(ctx, latest); err != nil {
				return nil, err
			}
		}
		if len(g.buf) > 0 {
			n := len(g.buf)
			if max > 0 {
				n = min(n, max)
			}
			out := g.buf[:n:n]
			g.buf = g.buf[n:]
			return out, nil
		}
		if g.cons == nil {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-changed:
			}
			continue
		}
		pctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-changed:
				cancel()
			case <-pctx.Done():
			}
		}()
		recs, err := g.cons.Poll(pctx)
		reassigned := pctx.Err() != nil && ctx.Err() == nil
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if reassigned {
				continue
			}
			return nil, err
		}
		g.buf = recs
	}
}

// reassign moves the consumer to assignment a: it keeps reading partitions
// it keeps (committing their positions for the new generation) and starts
// the new ones from the group's committed offsets.
func (g *GroupConsumer) reassign(ctx context.Context, a *Assignment) error {
	prev := g.cur
	g.cur = a
	if prev != nil && g.cons != nil && slices.Equal(prev.Partitions, a.Partitions) && a.Generation >= 0 {
		return nil // same partitions, new generation: nothing moves
	}
	kept := map[int32]int64{}
	if g.cons != nil {
		pos := g.positions()
		for _, p := range a.Partitions {
			if off, ok := pos[p]; ok {
				kept[p] = off
			}
		}
		g.cons.Close()
		g.cons, g.buf = nil, nil
	}
	g.committed = map[int32]int64{}
	if a == nil || len(a.Partitions) == 0 {
		return nil
	}
	offs, err := g.c.FetchOffsets(ctx, g.opts.Group, g.opts.Topic)
	if err != nil {
		g.cur = prev // try again on the next poll
		return err
	}
	start := map[int32]int64{}
	for _, o := range offs {
		if slices.Contains(a.Partitions, o.GetPartition()) {
			start[o.GetPartition()] = o.GetOffset()
			g.committed[o.GetPartition()] = o.GetOffset()
		}
	}
	maps.Copy(start, kept)
	cons, err := NewConsumer(g.c, ConsumerOptions{Topic: g.opts.Topic, Partitions: a.Partitions, Start: g.opts.Start, Offsets: start, Follow: true,
		ReadCommitted: g.opts.ReadCommitted})
	if err != nil {
		return err
	}
	g.cons = cons
	if len(kept) > 0 && g.opts.AutoCommitInterval > 0 {
		if err := g.Commit(ctx); err != nil {
			g.log.Debug("group consumer: commit after rebalance failed", "group", g.opts.Group, "err", err)
		}
	}
	return nil
}

// positions are the offsets to commit: after the last record returned of
// each partition, or its start position when none was.
func (g *GroupConsumer) positions() map[int32]int64 {
	if g.cons == nil {
		return nil
	}
	pos := g.cons.Positions()
	// Records not yet returned are not consumed: a partition's position is
	// its first buffered record.
	for i := len(g.buf) - 1; i >= 0; i-- {
		pos[g.buf[i].Partition] = g.buf[i].Offset
	}
	return pos
}

// Commit stores the positions of the records returned so far, for the
// partitions whose position moved since the last commit. It fails with
// ReasonRebalanceInProgress, ReasonIllegalGeneration or
// ReasonUnknownMemberID when the assignment it commits for has ended.
func (g *GroupConsumer) Commit(ctx context.Context) error {
	a := g.cur
	if a == nil || a.Generation < 0 || g.cons == nil {
		return nil
	}
	pos := g.positions()
	var offs []*stratav1.GroupOffset
	for _, p := range slices.Sorted(maps.Keys(pos)) {
		if off, ok := g.committed[p]; !ok || off != pos[p] {
			offs = append(offs, &stratav1.GroupOffset{Topic: g.opts.Topic, Partition: p, Offset: pos[p]})
		}
	}
	g.lastCommit = time.Now()
	if len(offs) == 0 {
		return nil
	}
	if err := g.c.CommitOffsets(ctx, g.opts.Group, a.MemberID, a.Generation, offs); err != nil {
		return err
	}
	for _, o := range offs {
		g.committed[o.GetPartition()] = o.GetOffset()
	}
	return nil
}

func (g *GroupConsumer) maybeAutoCommit(ctx context.Context) {
	if g.opts.AutoCommitInterval <= 0 || time.Since(g.lastCommit) < g.opts.AutoCommitInterval {
		return
	}
	if err := g.Commit(ctx); err != nil && ctx.Err() == nil {
		g.log.Debug("group consumer: automatic commit failed", "group", g.opts.Group, "err", err)
	}
}

// Close commits the positions (with automatic commits), stops reading and
// leaves the group. It does not close the Client.
func (g *GroupConsumer) Close() error {
	if g.closed {
		return nil
	}
	g.closed = true
	var err error
	if g.opts.AutoCommitInterval > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), closeCommitTimeout)
		err = g.Commit(ctx)
		cancel()
	}
	if g.cons != nil {
		g.cons.Close()
	}
	// Leave as Kafka's consumers do on close, so the group rebalances at
	// once and tools see the member gone when Close returns; a broker that
	// does not answer in time loses the member by its session timeout.
	close(g.leaving)
	select {
	case <-g.done:
	case <-time.After(closeLeaveTimeout):
	}
	g.cancel()
	<-g.done
	return err
}

// closeLeaveTimeout bounds how long Close waits for the broker to take the
// member out of the group.
const closeLeaveTimeout = 5 * time.Second

func (g *GroupConsumer) isLeaving() bool {
	select {
	case <-g.leaving:
		return true
	default:
		return false
	}
}
