// SyncGroup (key 14), versions 0-5. Needs the group coordinator.
//
// The protocol type and name are echoed back (v5). The wait for the
// leader's assignment never exceeds maxRebalanceWait.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker/group"
)

func (s *Server) syncGroupAPI() api {
	return api{key: 14, min: 0, max: 5, amplification: 115, handle: decoded(s.syncGroup), needsGroups: true,
		auth: checkedInHandler()}
}

func (s *Server) syncGroup(ctx context.Context, req *kmsg.SyncGroupRequest) *kmsg.SyncGroupResponse {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	if !s.authorized(ctx, acl.OpRead, acl.ResourceGroup, req.Group) {
		resp.ErrorCode, resp.MemberAssignment = kerr.GroupAuthorizationFailed.Code, []byte{}
		return resp
	}
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
