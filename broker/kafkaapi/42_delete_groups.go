// DeleteGroups (key 42), versions 0-2. Needs the group coordinator.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (s *Server) deleteGroupsAPI() api {
	return api{key: 42, min: 0, max: 2, amplification: 160, handle: decoded(s.deleteGroups), needsGroups: true}
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
