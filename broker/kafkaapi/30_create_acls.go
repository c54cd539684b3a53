// CreateAcls (key 30), versions 0-3.
// v1 adds the pattern type; v2 is flexible. Each creation is answered on its own: an invalid binding is
// INVALID_REQUEST with Kafka's reason, and does not stop the valid ones.
// Without an authorizer every creation is SECURITY_DISABLED, as in Kafka.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker"
)

func (s *Server) createACLsAPI() api {
	return api{key: 30, min: 0, max: 3, amplification: 120, handle: decoded(s.createACLs),
		auth: onCluster(acl.OpAlter, func(r kmsg.Request) kmsg.Response {
			req := r.(*kmsg.CreateACLsRequest)
			resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
			for range req.Creations {
				res := kmsg.NewCreateACLsResponseResult()
				res.ErrorCode, res.ErrorMessage = kerr.ClusterAuthorizationFailed.Code, strPtr(kerr.ClusterAuthorizationFailed.Description)
				resp.Results = append(resp.Results, res)
			}
			return resp
		})}
}

func (s *Server) createACLs(ctx context.Context, req *kmsg.CreateACLsRequest) *kmsg.CreateACLsResponse {
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	results := make([]kmsg.CreateACLsResponseResult, len(req.Creations))
	var valid []acl.Binding
	var validAt []int
	for i, c := range req.Creations {
		results[i] = kmsg.NewCreateACLsResponseResult()
		b := acl.Binding{
			ResourceType: acl.ResourceType(c.ResourceType),
			ResourceName: c.ResourceName,
			PatternType:  aclPatternType(req.Version, int8(c.ResourcePatternType)),
			Principal:    c.Principal,
			Host:         c.Host,
			Operation:    acl.Operation(c.Operation),
			Permission:   acl.Permission(c.PermissionType),
		}
		if !s.core.ACLsEnabled() {
			results[i].ErrorCode, results[i].ErrorMessage = aclCode(broker.ErrSecurityDisabled), errorMessage(broker.ErrSecurityDisabled)
			continue
		}
		if err := b.Validate(); err != nil {
			results[i].ErrorCode, results[i].ErrorMessage = aclCode(err), errorMessage(err)
			continue
		}
		valid = append(valid, b)
		validAt = append(validAt, i)
	}
	if len(valid) > 0 {
		if err := s.core.CreateACLs(ctx, valid); err != nil {
			for _, i := range validAt {
				results[i].ErrorCode, results[i].ErrorMessage = aclCode(err), errorMessage(err)
			}
		}
	}
	resp.Results = results
	return resp
}
