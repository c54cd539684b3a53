// DeleteGroups (key 42), versions 0-2. Needs the group coordinator.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
)

func (s *Server) deleteGroupsAPI() api {
	return api{key: 42, min: 0, max: 2, amplification: 160, handle: decoded(s.deleteGroups), needsGroups: true,
		auth: checkedInHandler()}
}

func (s *Server) deleteGroups(ctx context.Context, req *kmsg.DeleteGroupsRequest) *kmsg.DeleteGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, name := range req.Groups {
		rg := kmsg.NewDeleteGroupsResponseGroup()
		rg.Group = name
		if !s.authorized(ctx, acl.OpDelete, acl.ResourceGroup, name) {
			rg.ErrorCode = kerr.GroupAuthorizationFailed.Code
		} else if err := s.groups.Delete(ctx, name); err != nil {
			rg.ErrorCode = groupCode(err)
			if req.Version >= 3 {
				rg.ErrorMessage = errorMessage(err)
			}
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}
