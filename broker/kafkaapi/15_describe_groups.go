// DescribeGroups (key 15), versions 0-5. Needs the group coordinator.
//
// A group of the consumer protocol (KIP-848) is not described: it is
// answered Dead with GROUP_ID_NOT_FOUND, as Kafka answers it (the client
// describes it with ConsumerGroupDescribe). Authorized operations are not
// computed. Member metadata and assignments
// are sent as empty, never null, bytes.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
)

func (s *Server) describeGroupsAPI() api {
	return api{key: 15, min: 0, max: 5, amplification: 525, handle: decoded(s.describeGroups), needsGroups: true,
		auth: checkedInHandler()}
}

func (s *Server) describeGroups(ctx context.Context, req *kmsg.DescribeGroupsRequest) *kmsg.DescribeGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, name := range req.Groups {
		rg := kmsg.NewDescribeGroupsResponseGroup()
		rg.Group = name
		rg.AuthorizedOperations = -2147483648
		if !s.authorized(ctx, acl.OpDescribe, acl.ResourceGroup, name) {
			rg.ErrorCode = kerr.GroupAuthorizationFailed.Code
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		d, err := s.groups.Describe(ctx, name)
		if err != nil {
			rg.ErrorCode, rg.State = groupCode(err), d.State
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		rg.State, rg.ProtocolType, rg.Protocol = d.State, d.ProtocolType, d.Protocol
		for _, m := range d.Members {
			rm := kmsg.NewDescribeGroupsResponseGroupMember()
			rm.MemberID, rm.InstanceID, rm.ClientID, rm.ClientHost = m.MemberID, strPtr(m.InstanceID), m.ClientID, m.ClientHost
			rm.ProtocolMetadata, rm.MemberAssignment = nonNil(m.Metadata), nonNil(m.Assignment)
			rg.Members = append(rg.Members, rm)
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
