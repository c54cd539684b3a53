package kafkaapi

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/metastore"
)

// Groups is the group coordinator the frontend needs; *group.Coordinator
// implements it.
type Groups interface {
	Join(ctx context.Context, req group.JoinRequest) (group.JoinResult, error)
	Sync(ctx context.Context, req group.SyncRequest) ([]byte, error)
	Heartbeat(ctx context.Context, groupName, memberID string, generation int32) error
	Leave(ctx context.Context, groupName string, memberIDs, instanceIDs []string) []error
	CommitOffsets(ctx context.Context, groupName, memberID string, generation int32, offsets []metastore.OffsetCommit) error
	FetchOffsets(ctx context.Context, groupName string) ([]metastore.OffsetCommit, error)
	Describe(ctx context.Context, groupName string) (group.Description, error)
	List(ctx context.Context) ([]group.Summary, error)
	Delete(ctx context.Context, groupName string) error
	DeleteOffsets(ctx context.Context, groupName, topic string, partitions []int32) error
}

var _ Groups = (*group.Coordinator)(nil)

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func (s *Server) findCoordinator(ctx context.Context, req *kmsg.FindCoordinatorRequest) *kmsg.FindCoordinatorResponse {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	keys := req.CoordinatorKeys
	if req.Version < 4 {
		keys = []string{req.CoordinatorKey}
	}
	for _, key := range keys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key, c.NodeID = key, -1
		switch {
		case req.CoordinatorType != 0:
			c.ErrorCode = kerr.InvalidRequest.Code
			c.ErrorMessage = strPtr("transaction coordinators are not served: transactions are not supported")
		case key == "":
			c.ErrorCode = kerr.InvalidGroupID.Code
		default:
			br := s.core.GroupCoordinator(key)
			host, port, err := hostPort(br.KafkaAddr)
			if br.NodeID < 0 || err != nil {
				c.ErrorCode = kerr.CoordinatorNotAvailable.Code
				break
			}
			c.NodeID, c.Host, c.Port = br.NodeID, host, port
		}
		resp.Coordinators = append(resp.Coordinators, c)
	}
	if req.Version < 4 && len(resp.Coordinators) == 1 {
		c := resp.Coordinators[0]
		resp.ErrorCode, resp.ErrorMessage, resp.NodeID, resp.Host, resp.Port = c.ErrorCode, c.ErrorMessage, c.NodeID, c.Host, c.Port
		resp.Coordinators = nil
	}
	return resp
}

// maxRebalanceWait bounds how long a JoinGroup or SyncGroup may wait,
// whatever the member's rebalance timeout says.
const maxRebalanceWait = 10 * time.Minute

func (s *Server) joinGroup(ctx context.Context, h header, req *kmsg.JoinGroupRequest) *kmsg.JoinGroupResponse {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.Generation = -1
	jr := group.JoinRequest{
		Group: req.Group, MemberID: req.MemberID, InstanceID: deref(req.InstanceID),
		ClientID: h.clientID, ClientHost: h.remoteHost, ProtocolType: req.ProtocolType,
		SessionTimeout:       time.Duration(req.SessionTimeoutMillis) * time.Millisecond,
		RebalanceTimeout:     time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond,
		RequireKnownMemberID: req.Version >= 4,
	}
	if req.Version == 0 {
		jr.RebalanceTimeout = jr.SessionTimeout
	}
	for _, p := range req.Protocols {
		jr.Protocols = append(jr.Protocols, metastore.GroupProtocol{Name: p.Name, Metadata: p.Metadata})
	}
	ctx, cancel := context.WithTimeout(ctx, min(max(jr.RebalanceTimeout, jr.SessionTimeout)+5*time.Second, maxRebalanceWait))
	defer cancel()
	res, err := s.groups.Join(ctx, jr)
	if err != nil {
		resp.ErrorCode = groupCode(err)
		var required *group.MemberIDRequiredError
		if errors.As(err, &required) {
			resp.MemberID = required.MemberID
		} else {
			resp.MemberID = req.MemberID
		}
		return resp
	}
	resp.Generation = res.Generation
	resp.ProtocolType = strPtr(res.ProtocolType)
	protocol := res.Protocol
	resp.Protocol = &protocol
	resp.LeaderID, resp.MemberID = res.Leader, res.MemberID
	for _, m := range res.Members {
		rm := kmsg.NewJoinGroupResponseMember()
		rm.MemberID, rm.InstanceID, rm.ProtocolMetadata = m.MemberID, strPtr(m.InstanceID), m.Metadata
		resp.Members = append(resp.Members, rm)
	}
	return resp
}

func (s *Server) syncGroup(ctx context.Context, req *kmsg.SyncGroupRequest) *kmsg.SyncGroupResponse {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	sr := group.SyncRequest{Group: req.Group, MemberID: req.MemberID, InstanceID: deref(req.InstanceID), Generation: req.Generation}
	if len(req.GroupAssignment) > 0 {
		sr.Assignments = map[string][]byte{}
		for _, a := range req.GroupAssignment {
			sr.Assignments[a.MemberID] = a.MemberAssignment
		}
	}
	ctx, cancel := context.WithTimeout(ctx, maxRebalanceWait)
	defer cancel()
	assignment, err := s.groups.Sync(ctx, sr)
	resp.ErrorCode = groupCode(err)
	resp.ProtocolType, resp.Protocol = req.ProtocolType, req.Protocol
	if assignment == nil {
		assignment = []byte{}
	}
	resp.MemberAssignment = assignment
	return resp
}

func (s *Server) heartbeat(ctx context.Context, req *kmsg.HeartbeatRequest) *kmsg.HeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	resp.ErrorCode = groupCode(s.groups.Heartbeat(ctx, req.Group, req.MemberID, req.Generation))
	return resp
}

func (s *Server) leaveGroup(ctx context.Context, req *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	var ids, instances []string
	if req.Version < 3 {
		ids = []string{req.MemberID}
		instances = []string{""}
	}
	for _, m := range req.Members {
		ids = append(ids, m.MemberID)
		instances = append(instances, deref(m.InstanceID))
	}
	errs := s.groups.Leave(ctx, req.Group, ids, instances)
	if req.Version < 3 {
		resp.ErrorCode = groupCode(errs[0])
		return resp
	}
	for i, m := range req.Members {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID, rm.InstanceID, rm.ErrorCode = m.MemberID, m.InstanceID, groupCode(errs[i])
		resp.Members = append(resp.Members, rm)
		// A request-level error when nothing could be done, as Kafka does
		// for a group it does not know.
		if errors.Is(errs[i], group.ErrNotCoordinator) {
			resp.ErrorCode = rm.ErrorCode
		}
	}
	return resp
}

func (s *Server) offsetCommit(ctx context.Context, req *kmsg.OffsetCommitRequest) *kmsg.OffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	var offsets []metastore.OffsetCommit
	now := time.Now()
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			oc := metastore.OffsetCommit{Topic: t.Topic, Partition: p.Partition, Offset: p.Offset, LeaderEpoch: -1, Metadata: deref(p.Metadata), CommitTime: now}
			if req.Version >= 6 {
				oc.LeaderEpoch = p.LeaderEpoch
			}
			if req.Version == 1 && p.Timestamp > 0 {
				oc.CommitTime = time.UnixMilli(p.Timestamp)
			}
			offsets = append(offsets, oc)
		}
	}
	generation, member := req.Generation, req.MemberID
	if req.Version == 0 {
		generation, member = -1, ""
	}
	code := groupCode(s.groups.CommitOffsets(ctx, req.Group, member, generation, offsets))
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (s *Server) offsetFetch(ctx context.Context, req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	committed, err := s.groups.FetchOffsets(ctx, req.Group)
	if err != nil {
		code := groupCode(err)
		if req.Version >= 2 {
			resp.ErrorCode = code
			return resp
		}
		// v0-v1 have no request-level error: every partition carries it.
		for _, t := range req.Topics {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset, rp.ErrorCode = p, -1, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	type tp struct {
		topic     string
		partition int32
	}
	byTP := make(map[tp]metastore.OffsetCommit, len(committed))
	for _, oc := range committed {
		byTP[tp{oc.Topic, oc.Partition}] = oc
	}
	answer := func(topic string, partition int32) kmsg.OffsetFetchResponseTopicPartition {
		rp := kmsg.NewOffsetFetchResponseTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch = partition, -1, -1
		if oc, ok := byTP[tp{topic, partition}]; ok {
			rp.Offset, rp.LeaderEpoch = oc.Offset, oc.LeaderEpoch
			md := oc.Metadata
			rp.Metadata = &md
		} else {
			empty := ""
			rp.Metadata = &empty
		}
		return rp
	}
	if req.Topics == nil && req.Version >= 2 {
		// Null topics: everything the group committed.
		var cur *kmsg.OffsetFetchResponseTopic
		for _, oc := range committed {
			if cur == nil || cur.Topic != oc.Topic {
				resp.Topics = append(resp.Topics, kmsg.NewOffsetFetchResponseTopic())
				cur = &resp.Topics[len(resp.Topics)-1]
				cur.Topic = oc.Topic
			}
			cur.Partitions = append(cur.Partitions, answer(oc.Topic, oc.Partition))
		}
		return resp
	}
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetFetchResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rt.Partitions = append(rt.Partitions, answer(t.Topic, p))
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (s *Server) describeGroups(ctx context.Context, req *kmsg.DescribeGroupsRequest) *kmsg.DescribeGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, name := range req.Groups {
		rg := kmsg.NewDescribeGroupsResponseGroup()
		rg.Group = name
		rg.AuthorizedOperations = -2147483648
		d, err := s.groups.Describe(ctx, name)
		if err != nil {
			rg.ErrorCode = groupCode(err)
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		rg.State, rg.ProtocolType, rg.Protocol = d.State, d.ProtocolType, d.Protocol
		for _, m := range d.Members {
			rm := kmsg.NewDescribeGroupsResponseGroupMember()
			rm.MemberID, rm.InstanceID, rm.ClientID, rm.ClientHost = m.MemberID, strPtr(m.InstanceID), m.ClientID, m.ClientHost
			rm.ProtocolMetadata, rm.MemberAssignment = nonNil(m.Metadata), nonNil(m.Assignment)
			rg.Members = append(rg.Members, rm)
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func (s *Server) listGroups(ctx context.Context, req *kmsg.ListGroupsRequest) *kmsg.ListGroupsResponse {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	groups, err := s.groups.List(ctx)
	if err != nil {
		resp.ErrorCode = groupCode(err)
		return resp
	}
	for _, g := range groups {
		if len(req.StatesFilter) > 0 && !slices.ContainsFunc(req.StatesFilter, func(v string) bool { return strings.EqualFold(v, g.State) }) {
			continue
		}
		if len(req.TypesFilter) > 0 && !slices.ContainsFunc(req.TypesFilter, func(v string) bool { return strings.EqualFold(v, "classic") }) {
			continue
		}
		rg := kmsg.NewListGroupsResponseGroup()
		rg.Group, rg.ProtocolType, rg.GroupState, rg.GroupType = g.Group, g.ProtocolType, g.State, "classic"
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}

func (s *Server) deleteGroups(ctx context.Context, req *kmsg.DeleteGroupsRequest) *kmsg.DeleteGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, name := range req.Groups {
		rg := kmsg.NewDeleteGroupsResponseGroup()
		rg.Group = name
		if err := s.groups.Delete(ctx, name); err != nil {
			rg.ErrorCode = groupCode(err)
			if req.Version >= 3 {
				rg.ErrorMessage = errorMessage(err)
			}
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}

func (s *Server) offsetDelete(ctx context.Context, req *kmsg.OffsetDeleteRequest) *kmsg.OffsetDeleteResponse {
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	for _, t := range req.Topics {
		var parts []int32
		for _, p := range t.Partitions {
			parts = append(parts, p.Partition)
		}
		err := s.groups.DeleteOffsets(ctx, req.Group, t.Topic, parts)
		if err != nil && !errors.Is(err, group.ErrGroupSubscribedToTopic) {
			resp.ErrorCode = groupCode(err)
			return resp
		}
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, groupCode(err)
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
