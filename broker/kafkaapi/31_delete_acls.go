// DeleteAcls (key 31), versions 0-3.
// v1 adds the pattern type; v2 is flexible. Each filter's result lists the bindings it deleted; a binding
// two filters match is listed under the first. A filter with an unknown
// field is INVALID_REQUEST and deletes nothing; without an authorizer every
// filter is SECURITY_DISABLED.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker"
)

func (s *Server) deleteACLsAPI() api {
	return api{key: 31, min: 0, max: 3, amplification: 120, handle: decoded(s.deleteACLs),
		auth: onCluster(acl.OpAlter, func(r kmsg.Request) kmsg.Response {
			req := r.(*kmsg.DeleteACLsRequest)
			resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
			for range req.Filters {
				res := kmsg.NewDeleteACLsResponseResult()
				res.ErrorCode, res.ErrorMessage = kerr.ClusterAuthorizationFailed.Code, strPtr(kerr.ClusterAuthorizationFailed.Description)
				resp.Results = append(resp.Results, res)
			}
			return resp
		})}
}

func (s *Server) deleteACLs(ctx context.Context, req *kmsg.DeleteACLsRequest) *kmsg.DeleteACLsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	results := make([]kmsg.DeleteACLsResponseResult, len(req.Filters))
	var valid []acl.Filter
	var validAt []int
	for i, rf := range req.Filters {
		results[i] = kmsg.NewDeleteACLsResponseResult()
		if !s.core.ACLsEnabled() {
			results[i].ErrorCode, results[i].ErrorMessage = aclCode(broker.ErrSecurityDisabled), errorMessage(broker.ErrSecurityDisabled)
			continue
		}
		f := acl.Filter{
			ResourceType: acl.ResourceType(rf.ResourceType),
			ResourceName: rf.ResourceName,
			PatternType:  aclPatternType(req.Version, int8(rf.ResourcePatternType)),
			Principal:    rf.Principal,
			Host:         rf.Host,
			Operation:    acl.Operation(rf.Operation),
			Permission:   acl.Permission(rf.PermissionType),
		}
		if err := f.Validate(); err != nil {
			results[i].ErrorCode, results[i].ErrorMessage = aclCode(err), errorMessage(err)
			continue
		}
		valid = append(valid, f)
		validAt = append(validAt, i)
	}
	if len(valid) > 0 {
		deleted, err := s.core.DeleteACLs(ctx, valid)
		for j, i := range validAt {
			if err != nil {
				results[i].ErrorCode, results[i].ErrorMessage = aclCode(err), errorMessage(err)
				continue
			}
			for _, b := range deleted[j] {
				m := kmsg.NewDeleteACLsResponseResultMatchingACL()
				m.ResourceType = kmsg.ACLResourceType(b.ResourceType)
				m.ResourceName = b.ResourceName
				m.ResourcePatternType = kmsg.ACLResourcePatternType(b.PatternType)
				m.Principal, m.Host = b.Principal, b.Host
				m.Operation, m.PermissionType = kmsg.ACLOperation(b.Operation), kmsg.ACLPermissionType(b.Permission)
				results[i].MatchingACLs = append(results[i].MatchingACLs, m)
			}
		}
	}
	resp.Results = results
	return resp
}
