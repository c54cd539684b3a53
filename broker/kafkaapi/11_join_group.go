// JoinGroup (key 11), versions 0-9. Needs the group coordinator.
//
// From v4 a new member first gets MEMBER_ID_REQUIRED with its id and joins
// again with it (KIP-394). v0 has no rebalance timeout: the session timeout
// stands in. The wait for the rebalance is bounded by the member's own
// timeouts and never exceeds maxRebalanceWait. The member's client id and
// host, shown by DescribeGroups, come from the request header and the
// connection.

package kafkaapi

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/metastore"
)

func (s *Server) joinGroupAPI() api {
	return api{key: 11, min: 0, max: 9, amplification: 125, needsGroups: true, auth: checkedInHandler(),
		// The member's client id and host come from the request header.
		handle: func(ctx context.Context, h header, req kmsg.Request) kmsg.Response {
			return s.joinGroup(ctx, h, req.(*kmsg.JoinGroupRequest))
		}}
}

func (s *Server) joinGroup(ctx context.Context, h header, req *kmsg.JoinGroupRequest) *kmsg.JoinGroupResponse {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.Generation = -1
	if !s.authorized(ctx, acl.OpRead, acl.ResourceGroup, req.Group) {
		resp.ErrorCode, resp.MemberID = kerr.GroupAuthorizationFailed.Code, req.MemberID
		return resp
	}
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
