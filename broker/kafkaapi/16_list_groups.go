// ListGroups (key 16), versions 0-5. Needs the group coordinator.
//
// The state filter (v4) and the type filter (v5: "classic", "consumer")
// match case-insensitively, as Kafka's do.

package kafkaapi

import (
	"context"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
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
	return resp
}
