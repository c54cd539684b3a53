// ListGroups (key 16), versions 0-5. Needs the group coordinator.
//
// The state filter (v4) and the type filter (v5: "classic", "consumer",
// "share") match case-insensitively, as Kafka's do. Share groups are listed
// with protocol type and group type "share".

package kafkaapi

import (
	"context"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker/sharegroup"
)

func (s *Server) listGroupsAPI() api {
	return api{key: 16, min: 0, max: 5, amplification: 55, handle: decoded(s.listGroups), needsGroups: true,
		auth: checkedInHandler()}
}

func (s *Server) listGroups(ctx context.Context, req *kmsg.ListGroupsRequest) *kmsg.ListGroupsResponse {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	groups, err := s.groups.List(ctx)
	if err != nil {
		resp.ErrorCode = groupCode(err)
		return resp
	}
	// Describe on the cluster lists every group; without it, the groups
	// the principal may describe.
	all := s.authorizedQuietly(ctx, acl.OpDescribe, acl.ResourceCluster, acl.ClusterName)
	for _, g := range groups {
		if !all && !s.authorizedQuietly(ctx, acl.OpDescribe, acl.ResourceGroup, g.Group) {
			continue
		}
		if len(req.StatesFilter) > 0 && !slices.ContainsFunc(req.StatesFilter, func(v string) bool { return strings.EqualFold(v, g.State) }) {
			continue
		}
		if len(req.TypesFilter) > 0 && !slices.ContainsFunc(req.TypesFilter, func(v string) bool { return strings.EqualFold(v, g.Type) }) {
			continue
		}
		rg := kmsg.NewListGroupsResponseGroup()
		rg.Group, rg.ProtocolType, rg.GroupState, rg.GroupType = g.Group, g.ProtocolType, g.State, g.Type
		resp.Groups = append(resp.Groups, rg)
	}
	s.listShareGroups(ctx, req, resp, all)
	return resp
}

// listShareGroups adds the share groups to resp, with the same filters.
func (s *Server) listShareGroups(ctx context.Context, req *kmsg.ListGroupsRequest, resp *kmsg.ListGroupsResponse, all bool) {
	if s.shareGroups == nil || resp.ErrorCode != 0 ||
		len(req.TypesFilter) > 0 && !slices.ContainsFunc(req.TypesFilter, func(v string) bool { return strings.EqualFold(v, "share") }) {
		return
	}
	groups, err := s.shareGroups.List(ctx)
	if err != nil {
		resp.ErrorCode = shareGroupCode(err)
		return
	}
	for _, g := range groups {
		state := sharegroup.State(g)
		if !all && !s.authorizedQuietly(ctx, acl.OpDescribe, acl.ResourceGroup, g.Group) ||
			len(req.StatesFilter) > 0 && !slices.ContainsFunc(req.StatesFilter, func(v string) bool { return strings.EqualFold(v, state) }) {
			continue
		}
		rg := kmsg.NewListGroupsResponseGroup()
		rg.Group, rg.ProtocolType, rg.GroupState, rg.GroupType = g.Group, "share", state, "share"
		resp.Groups = append(resp.Groups, rg)
	}
}
