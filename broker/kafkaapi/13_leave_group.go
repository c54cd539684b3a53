// LeaveGroup (key 13), versions 0-5. Needs the group coordinator.
//
// From v3 several members (static ones by instance id, KIP-345) leave in
// one request, each with its own error; NOT_COORDINATOR is also raised to
// the request, as Kafka does.

package kafkaapi

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker/group"
)

func (s *Server) leaveGroupAPI() api {
	return api{key: 13, min: 0, max: 5, amplification: 160, handle: decoded(s.leaveGroup), needsGroups: true,
		auth: checkedInHandler()}
}

func (s *Server) leaveGroup(ctx context.Context, req *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	if !s.authorized(ctx, acl.OpRead, acl.ResourceGroup, req.Group) {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp
	}
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
