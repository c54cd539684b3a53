// Heartbeat (key 12), versions 0-4. Needs the group coordinator.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (s *Server) heartbeatAPI() api {
	return api{key: 12, min: 0, max: 4, amplification: 55, handle: decoded(s.heartbeat), needsGroups: true}
}

func (s *Server) heartbeat(ctx context.Context, req *kmsg.HeartbeatRequest) *kmsg.HeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	resp.ErrorCode = groupCode(s.groups.Heartbeat(ctx, req.Group, req.MemberID, req.Generation))
	return resp
}
