// Heartbeat (key 12), versions 0-4. Needs the group coordinator.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
)

func (s *Server) heartbeatAPI() api {
	return api{key: 12, min: 0, max: 4, amplification: 55, handle: decoded(s.heartbeat), needsGroups: true,
		auth: checkedInHandler()}
}

func (s *Server) heartbeat(ctx context.Context, req *kmsg.HeartbeatRequest) *kmsg.HeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	if !s.authorized(ctx, acl.OpRead, acl.ResourceGroup, req.Group) {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp
	}
	resp.ErrorCode = groupCode(s.groups.Heartbeat(ctx, req.Group, req.MemberID, req.Generation))
	return resp
}
