// ListGroups (key 16), versions 0-4. Needs the group coordinator.
//
// The state filter (v4) matches case-insensitively. Every group is a
// classic group.

package kafkaapi

import (
	"context"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (s *Server) listGroupsAPI() api {
	return api{key: 16, min: 0, max: 4, amplification: 55, handle: decoded(s.listGroups), needsGroups: true}
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
