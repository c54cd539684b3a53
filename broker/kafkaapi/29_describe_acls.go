// DescribeAcls (key 29), versions 0-3.
// v1 adds the pattern type; v2 is flexible. The bindings the filter matches, grouped by resource pattern
// as Kafka groups them. A filter with an unknown field is INVALID_REQUEST;
// without an authorizer the answer is SECURITY_DISABLED.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker"
)

func (s *Server) describeACLsAPI() api {
	return api{key: 29, min: 0, max: 3, amplification: 120, handle: decoded(s.describeACLs),
		auth: onCluster(acl.OpDescribe)}
}

func (s *Server) describeACLs(ctx context.Context, req *kmsg.DescribeACLsRequest) *kmsg.DescribeACLsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeACLsResponse)
	if !s.core.ACLsEnabled() {
		resp.ErrorCode, resp.ErrorMessage = aclCode(broker.ErrSecurityDisabled), errorMessage(broker.ErrSecurityDisabled)
		return resp
	}
	f := acl.Filter{
		ResourceType: acl.ResourceType(req.ResourceType),
		ResourceName: req.ResourceName,
		PatternType:  aclPatternType(req.Version, int8(req.ResourcePatternType)),
		Principal:    req.Principal,
		Host:         req.Host,
		Operation:    acl.Operation(req.Operation),
		Permission:   acl.Permission(req.PermissionType),
	}
	if err := f.Validate(); err != nil {
		resp.ErrorCode, resp.ErrorMessage = aclCode(err), errorMessage(err)
		return resp
	}
	bindings, err := s.core.DescribeACLs(ctx, f)
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = aclCode(err), errorMessage(err)
		return resp
	}
	// Sorted by resource, so one resource's bindings are adjacent.
	for _, b := range bindings {
		n := len(resp.Resources)
		if n == 0 || resp.Resources[n-1].ResourceType != kmsg.ACLResourceType(b.ResourceType) ||
			resp.Resources[n-1].ResourceName != b.ResourceName ||
			resp.Resources[n-1].ResourcePatternType != kmsg.ACLResourcePatternType(b.PatternType) {
			r := kmsg.NewDescribeACLsResponseResource()
			r.ResourceType = kmsg.ACLResourceType(b.ResourceType)
			r.ResourceName = b.ResourceName
			r.ResourcePatternType = kmsg.ACLResourcePatternType(b.PatternType)
			resp.Resources = append(resp.Resources, r)
			n++
		}
		a := kmsg.NewDescribeACLsResponseResourceACL()
		a.Principal, a.Host = b.Principal, b.Host
		a.Operation, a.PermissionType = kmsg.ACLOperation(b.Operation), kmsg.ACLPermissionType(b.Permission)
		resp.Resources[n-1].ACLs = append(resp.Resources[n-1].ACLs, a)
	}
	return resp
}
