package grpcapi

// Consumer groups over gRPC. The unary calls translate onto the broker's
// group coordinator (broker/group); ConsumeGroup makes the handler the
// group member on the client's behalf: it joins with protocol type "strata"
// and the "range" assignor, assigns partitions when it leads (server-side
// assignment, so clients need no assignor), heartbeats while the stream
// lives and streams each new assignment to the client.
//
// Member metadata and assignments use the encodings of Kafka's consumer
// protocol (kmsg.ConsumerMemberMetadata, kmsg.ConsumerMemberAssignment), so
// DescribeGroup decodes Strata's groups and Kafka consumers' groups alike.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/strata-broker/strata/acl"
	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/broker/errcode"
	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/metastore"
)

// Group protocol names of gRPC members.
const (
	// ProtocolType is the protocol type of groups of gRPC consumers; Kafka
	// consumers use "consumer", so the two cannot share a group.
	ProtocolType = "strata"
	// RangeAssignor is the only assignor: each topic's partitions are cut
	// into contiguous ranges, one per subscribed member in member id order.
	RangeAssignor = "range"
	// kafkaConsumerProtocolType is the protocol type of Kafka consumers.
	kafkaConsumerProtocolType = "consumer"
)

const (
	// defaultSessionTimeout applies when a ConsumeGroup client gives none.
	defaultSessionTimeout = 10 * time.Second
	// maxHeartbeatInterval caps the member's heartbeats to the coordinator.
	// They are calls within this process (a lock and a map lookup), and the
	// heartbeat is how a member learns of a rebalance, so the members of a
	// rebalancing group wait at most this long for each other.
	maxHeartbeatInterval = time.Second
	// leaveTimeout bounds the Leave made when a stream ends.
	leaveTimeout = 5 * time.Second
)

// groupStatus maps a coordinator error to a gRPC status carrying Kafka's
// name for it as a PartitionError detail (the reason a client acts on).
// Other errors, gRPC statuses among them, go as statusError leaves them.
func groupStatus(err error) error {
	if err == nil {
		return nil
	}
	k := broker.Classify(err)
	if _, ok := status.FromError(err); ok && !k.IsGroup() {
		return err
	}
	c := errcode.For(k)
	// A group error without a reason (MEMBER_ID_REQUIRED) has nothing for
	// the detail to say.
	if !k.IsGroup() || c.Reason == stratav1.ErrorReason_ERROR_REASON_UNSPECIFIED {
		return statusError(err)
	}
	st := status.New(c.GRPC, err.Error())
	if d, derr := st.WithDetails(&stratav1.PartitionError{Code: int32(c.GRPC), Message: err.Error(), Reason: c.ReasonName()}); derr == nil {
		st = d
	}
	return st.Err()
}

func (s *Server) FindCoordinator(_ context.Context, req *stratav1.FindCoordinatorRequest) (*stratav1.FindCoordinatorResponse, error) {
	if req.GetGroup() == "" {
		return nil, groupStatus(group.ErrInvalidGroupID)
	}
	br := s.b.GroupCoordinator(req.GetGroup())
	if br.NodeID < 0 {
		return nil, groupStatus(fmt.Errorf("%w: no live broker is known", group.ErrCoordinatorNotAvailable))
	}
	return &stratav1.FindCoordinatorResponse{Coordinator: &stratav1.BrokerInfo{
		NodeId: br.NodeID, GrpcAddr: br.GRPCAddr, KafkaAddr: br.KafkaAddr, HttpAddr: br.HTTPAddr,
	}}, nil
}

func (s *Server) CommitOffsets(ctx context.Context, req *stratav1.CommitOffsetsRequest) (*stratav1.CommitOffsetsResponse, error) {
	offs, err := s.groupOffsets(req.GetOffsets(), "")
	if err != nil {
		return nil, err
	}
	gen := req.GetGeneration()
	if req.GetMemberId() == "" {
		gen = -1
	}
	if err := s.b.Groups().CommitOffsets(ctx, req.GetGroup(), req.GetMemberId(), gen, offs); err != nil {
		return nil, groupStatus(err)
	}
	return &stratav1.CommitOffsetsResponse{}, nil
}

// groupOffsets checks offsets to commit against the topics the broker
// knows; topic fills in an empty topic.
func (s *Server) groupOffsets(in []*stratav1.GroupOffset, topic string) ([]metastore.OffsetCommit, error) {
	out := make([]metastore.OffsetCommit, 0, len(in))
	for _, o := range in {
		t := o.GetTopic()
		if t == "" {
			t = topic
		}
		if topic != "" && t != topic {
			return nil, status.Errorf(codes.InvalidArgument, "offset of topic %q in a request for topic %q", t, topic)
		}
		n, err := s.b.PartitionCount(t)
		if err != nil {
			return nil, statusError(err)
		}
		if o.GetPartition() < 0 || o.GetPartition() >= n {
			return nil, status.Errorf(codes.NotFound, "topic %q has no partition %d (it has %d)", t, o.GetPartition(), n)
		}
		if o.GetOffset() < 0 {
			return nil, status.Errorf(codes.InvalidArgument, "%s-%d: negative offset %d", t, o.GetPartition(), o.GetOffset())
		}
		epoch := o.GetLeaderEpoch()
		if epoch == 0 {
			epoch = -1
		}
		out = append(out, metastore.OffsetCommit{Topic: t, Partition: o.GetPartition(), Offset: o.GetOffset(), LeaderEpoch: epoch, Metadata: o.GetMetadata()})
	}
	return out, nil
}

func (s *Server) FetchOffsets(ctx context.Context, req *stratav1.FetchOffsetsRequest) (*stratav1.FetchOffsetsResponse, error) {
	offs, err := s.b.Groups().FetchOffsets(ctx, req.GetGroup())
	if err != nil {
		return nil, groupStatus(err)
	}
	resp := &stratav1.FetchOffsetsResponse{}
	// Offsets of topics the caller may not describe are left out, as
	// Kafka's OffsetFetch does.
	describable := map[string]bool{}
	for _, o := range offs {
		if len(req.GetTopics()) > 0 && !slices.Contains(req.GetTopics(), o.Topic) {
			continue
		}
		ok, seen := describable[o.Topic]
		if !seen {
			ok = s.mayDescribe(ctx, stratav1.Strata_FetchOffsets_FullMethodName, acl.ResourceTopic, o.Topic)
			describable[o.Topic] = ok
		}
		if !ok {
			continue
		}
		resp.Offsets = append(resp.Offsets, &stratav1.GroupOffset{
			Topic: o.Topic, Partition: o.Partition, Offset: o.Offset, LeaderEpoch: o.LeaderEpoch,
			Metadata: o.Metadata, CommitTimeMs: o.CommitTime.UnixMilli(),
		})
	}
	return resp, nil
}

func (s *Server) ListGroups(ctx context.Context, _ *stratav1.ListGroupsRequest) (*stratav1.ListGroupsResponse, error) {
	groups, err := s.b.Groups().List(ctx)
	if err != nil {
		return nil, groupStatus(err)
	}
	resp := &stratav1.ListGroupsResponse{}
	// Describe on the cluster shows every group; otherwise only those the
	// caller may describe, as Kafka's ListGroups.
	all := s.mayDescribe(ctx, stratav1.Strata_ListGroups_FullMethodName, acl.ResourceCluster, acl.ClusterName)
	for _, g := range groups {
		if !all && !s.mayDescribe(ctx, stratav1.Strata_ListGroups_FullMethodName, acl.ResourceGroup, g.Group) {
			continue
		}
		resp.Groups = append(resp.Groups, &stratav1.GroupSummary{
			Group: g.Group, ProtocolType: g.ProtocolType, State: g.State,
			Coordinator: s.b.GroupCoordinator(g.Group).NodeID, Type: g.Type,
		})
	}
	share, err := s.shareGroupSummaries(ctx, all)
	if err != nil {
		return nil, err
	}
	resp.Groups = append(resp.Groups, share...)
	return resp, nil
}

func (s *Server) DescribeGroup(ctx context.Context, req *stratav1.DescribeGroupRequest) (*stratav1.DescribeGroupResponse, error) {
	d, err := s.b.Groups().Describe(ctx, req.GetGroup())
	if errors.Is(err, group.ErrGroupIDNotFound) {
		// Not a classic group: perhaps one of the consumer protocol.
		if cd, cerr := s.b.Groups().DescribeConsumerGroup(ctx, req.GetGroup()); cerr == nil {
			return s.describeConsumerGroup(cd), nil
		}
	}
	if err != nil {
		return nil, groupStatus(err)
	}
	if d.State == group.StateDead {
		if share, ok, err := s.describeShareGroup(ctx, req.GetGroup()); ok || err != nil {
			return share, err
		}
	}
	resp := &stratav1.DescribeGroupResponse{
		Group: d.Group, State: d.State, ProtocolType: d.ProtocolType, Protocol: d.Protocol,
		Generation: d.Generation, Coordinator: s.b.GroupCoordinator(d.Group).NodeID, Type: metastore.GroupTypeClassic,
	}
	for _, m := range d.Members {
		gm := &stratav1.GroupMember{MemberId: m.MemberID, InstanceId: m.InstanceID, ClientId: m.ClientID, ClientHost: m.ClientHost}
		if d.ProtocolType == ProtocolType || d.ProtocolType == kafkaConsumerProtocolType {
			// An assignment that does not decode (a custom Kafka assignor
			// with its own format) is left out rather than failing the
			// description.
			gm.Assignment, _ = decodeAssignment(m.Assignment)
		}
		resp.Members = append(resp.Members, gm)
	}
	return resp, nil
}

// describeConsumerGroup is DescribeGroup's answer for a group of the
// consumer protocol (KIP-848): its group epoch as the generation, its
// assignor as the protocol, and each member's epoch, partitions and target.
func (s *Server) describeConsumerGroup(d group.ConsumerDescription) *stratav1.DescribeGroupResponse {
	resp := &stratav1.DescribeGroupResponse{
		Group: d.Group, State: d.State, ProtocolType: kafkaConsumerProtocolType, Protocol: d.Assignor,
		Generation: d.Epoch, AssignmentEpoch: d.AssignmentEpoch, Type: metastore.GroupTypeConsumer,
		Coordinator: s.b.GroupCoordinator(d.Group).NodeID,
	}
	named := func(a map[string][]int32) []*stratav1.TopicPartitions {
		var out []*stratav1.TopicPartitions
		for _, id := range slices.Sorted(maps.Keys(a)) {
			// A topic deleted since is shown by its id.
			out = append(out, &stratav1.TopicPartitions{Topic: cmp.Or(d.TopicNames[id], id), Partitions: a[id]})
		}
		return out
	}
	for _, m := range d.Members {
		resp.Members = append(resp.Members, &stratav1.GroupMember{
			MemberId: m.MemberID, InstanceId: m.InstanceID, ClientId: m.ClientID, ClientHost: m.ClientHost,
			MemberEpoch: m.MemberEpoch, Assignment: named(m.Assignment), TargetAssignment: named(m.TargetAssignment),
		})
	}
	return resp
}

func (s *Server) DeleteGroup(ctx context.Context, req *stratav1.DeleteGroupRequest) (*stratav1.DeleteGroupResponse, error) {
	if err := s.b.Groups().Delete(ctx, req.GetGroup()); err != nil {
		return nil, groupStatus(err)
	}
	return &stratav1.DeleteGroupResponse{}, nil
}

func (s *Server) ResetOffsets(ctx context.Context, req *stratav1.ResetOffsetsRequest) (*stratav1.ResetOffsetsResponse, error) {
	if req.GetTopic() == "" {
		return nil, status.Error(codes.InvalidArgument, "reset offsets: topic is required")
	}
	offs, err := s.groupOffsets(req.GetOffsets(), req.GetTopic())
	if err != nil {
		return nil, err
	}
	gs := s.b.Groups()
	d, err := gs.Describe(ctx, req.GetGroup())
	if err != nil {
		return nil, groupStatus(err)
	}
	if len(d.Members) > 0 {
		return nil, groupStatus(fmt.Errorf("%w: group %q has %d active members; stop them before resetting its offsets", group.ErrGroupNotEmpty, req.GetGroup(), len(d.Members)))
	}
	// A commit from outside the group: the coordinator refuses it too if a
	// member joined since the check above.
	if err := gs.CommitOffsets(ctx, req.GetGroup(), "", -1, offs); err != nil {
		if errors.Is(err, group.ErrIllegalGeneration) {
			err = fmt.Errorf("%w: %v", group.ErrGroupNotEmpty, err)
		}
		return nil, groupStatus(err)
	}
	return &stratav1.ResetOffsetsResponse{}, nil
}

// ConsumeGroup serves one member of a group: see the proto.
func (s *Server) ConsumeGroup(stream grpc.BidiStreamingServer[stratav1.ConsumeGroupRequest, stratav1.ConsumeGroupResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	if len(first.GetTopics()) == 0 {
		return status.Error(codes.InvalidArgument, "consume group: no topics")
	}
	session := time.Duration(first.GetSessionTimeoutMs()) * time.Millisecond
	if session <= 0 {
		session = defaultSessionTimeout
	}
	topics := slices.Compact(slices.Sorted(slices.Values(first.GetTopics())))
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Topics = topics
	m := &streamMember{
		s: s, stream: stream, group: first.GetGroup(), clientID: first.GetClientId(),
		session:  session,
		metadata: meta.AppendTo(nil),
	}
	if p, ok := peer.FromContext(stream.Context()); ok && p.Addr != nil {
		m.host = p.Addr.String()
		if h, _, err := net.SplitHostPort(m.host); err == nil {
			m.host = h
		}
	}
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	m.lastHeard.Store(time.Now().UnixNano())
	go func() {
		for {
			if _, err := stream.Recv(); err != nil {
				cancel(errStreamEnded)
				return
			}
			m.lastHeard.Store(time.Now().UnixNano())
		}
	}()
	defer m.leave()
	err = m.run(ctx)
	if errors.Is(context.Cause(ctx), errStreamEnded) {
		return nil
	}
	return err
}

var errStreamEnded = errors.New("the client ended the stream")

// streamMember is the group member a ConsumeGroup stream stands for.
type streamMember struct {
	s        *Server
	stream   grpc.BidiStreamingServer[stratav1.ConsumeGroupRequest, stratav1.ConsumeGroupResponse]
	group    string
	clientID string
	host     string
	session  time.Duration
	metadata []byte

	memberID   string
	generation int32
	// lastHeard is when the client last sent a message (Unix ns).
	lastHeard atomic.Int64
}

// run joins, syncs and heartbeats until the stream ends or a failure
// the client must see.
func (m *streamMember) run(ctx context.Context) error {
	gs := m.s.b.Groups()
	for {
		res, err := gs.Join(ctx, group.JoinRequest{
			Group: m.group, MemberID: m.memberID, ClientID: m.clientID, ClientHost: m.host,
			ProtocolType:   ProtocolType,
			Protocols:      []metastore.GroupProtocol{{Name: RangeAssignor, Metadata: m.metadata}},
			SessionTimeout: m.session, RebalanceTimeout: m.session,
			// The member id comes back first (MEMBER_ID_REQUIRED), so that a
			// stream ending during its first join still leaves the group.
			RequireKnownMemberID: true,
		})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if m.rejoinAfter(err) {
				continue
			}
			return groupStatus(err)
		}
		m.memberID, m.generation = res.MemberID, res.Generation
		sync := group.SyncRequest{Group: m.group, MemberID: m.memberID, Generation: m.generation}
		if res.Leader == res.MemberID {
			sync.Assignments = m.s.assignRange(res.Members)
		}
		raw, err := gs.Sync(ctx, sync)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if m.rejoinAfter(err) {
				continue
			}
			return groupStatus(err)
		}
		parts, err := decodeAssignment(raw)
		if err != nil {
			return status.Errorf(codes.Internal, "consume group %q: the leader's assignment does not decode: %v", m.group, err)
		}
		if err := m.stream.Send(&stratav1.ConsumeGroupResponse{
			Generation: m.generation, MemberId: m.memberID, Partitions: parts, LeaderId: res.Leader,
		}); err != nil {
			return err
		}
		if err := m.heartbeat(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if m.rejoinAfter(err) {
				continue
			}
			return groupStatus(err)
		}
	}
}

// rejoinAfter reports whether err asks the member to join again, and
// forgets its member id if the coordinator did.
func (m *streamMember) rejoinAfter(err error) bool {
	var required *group.MemberIDRequiredError
	switch {
	case errors.As(err, &required):
		m.memberID = required.MemberID
		return true
	case errors.Is(err, group.ErrRebalanceInProgress), errors.Is(err, group.ErrIllegalGeneration):
		return true
	case errors.Is(err, group.ErrUnknownMemberID):
		m.memberID = ""
		return true
	}
	return false
}

// heartbeat keeps the membership alive until the coordinator asks for a
// rebalance (the error it returns), the client goes silent for a session
// timeout, or ctx ends.
func (m *streamMember) heartbeat(ctx context.Context) error {
	interval := min(m.session/3, maxHeartbeatInterval)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if m.s.b.Draining() {
			return status.Error(codes.Unavailable, "broker is shutting down")
		}
		if silent := time.Since(time.Unix(0, m.lastHeard.Load())); silent > m.session {
			return status.Errorf(codes.DeadlineExceeded, "consume group %q: no heartbeat from the client for %v (session timeout %v)", m.group, silent.Round(time.Millisecond), m.session)
		}
		if err := m.s.b.Groups().Heartbeat(ctx, m.group, m.memberID, m.generation); err != nil {
			return err
		}
	}
}

// leave takes the member out of the group, so the others rebalance at once
// rather than after its session timeout.
func (m *streamMember) leave() {
	if m.memberID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	m.s.b.Groups().Leave(ctx, m.group, []string{m.memberID}, nil)
}

// assignRange is the leader's assignment: for each topic any member
// subscribes to, its partitions in contiguous ranges over the subscribed
// members in member id order, the first ones taking one more when the
// count does not divide. Topics the broker does not know get no partitions.
func (s *Server) assignRange(members []group.JoinedMember) map[string][]byte {
	subscribers := map[string][]string{}
	for _, jm := range members {
		var md kmsg.ConsumerMemberMetadata
		if err := md.ReadFrom(jm.Metadata); err != nil {
			continue
		}
		for _, t := range slices.Compact(slices.Sorted(slices.Values(md.Topics))) {
			subscribers[t] = append(subscribers[t], jm.MemberID)
		}
	}
	plans := map[string]*kmsg.ConsumerMemberAssignment{}
	for _, jm := range members {
		a := kmsg.NewConsumerMemberAssignment()
		plans[jm.MemberID] = &a
	}
	for _, t := range slices.Sorted(maps.Keys(subscribers)) {
		n, err := s.b.PartitionCount(t)
		if err != nil {
			continue
		}
		ids := subscribers[t]
		slices.Sort(ids)
		per, extra := int(n)/len(ids), int(n)%len(ids)
		next := int32(0)
		for i, id := range ids {
			count := per
			if i < extra {
				count++
			}
			if count == 0 {
				continue
			}
			at := kmsg.NewConsumerMemberAssignmentTopic()
			at.Topic = t
			for range count {
				at.Partitions = append(at.Partitions, next)
				next++
			}
			plans[id].Topics = append(plans[id].Topics, at)
		}
	}
	out := make(map[string][]byte, len(plans))
	for id, a := range plans {
		out[id] = a.AppendTo(nil)
	}
	return out
}

// decodeAssignment decodes a consumer protocol assignment; empty bytes are
// no partitions.
func decodeAssignment(raw []byte) ([]*stratav1.TopicPartitions, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var a kmsg.ConsumerMemberAssignment
	if err := a.ReadFrom(raw); err != nil {
		return nil, err
	}
	out := make([]*stratav1.TopicPartitions, 0, len(a.Topics))
	for _, t := range a.Topics {
		out = append(out, &stratav1.TopicPartitions{Topic: t.Topic, Partitions: slices.Sorted(slices.Values(t.Partitions))})
	}
	slices.SortFunc(out, func(a, b *stratav1.TopicPartitions) int { return cmp.Compare(a.Topic, b.Topic) })
	return out, nil
}
