// DescribeUserScramCredentials (key 50), version 0. It is flexible.
// Describes the named users' SCRAM credentials (mechanism and iterations,
// never the secrets), or every user's when none is named. A user named
// twice is DUPLICATE_RESOURCE, one without credentials RESOURCE_NOT_FOUND,
// each in its own result, as in Kafka.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
)

func (s *Server) describeUserScramCredentialsAPI() api {
	return api{key: 50, min: 0, max: 0, amplification: 200, handle: decoded(s.describeUserScramCredentials),
		auth: onCluster(acl.OpDescribe)}
}

func (s *Server) describeUserScramCredentials(ctx context.Context, req *kmsg.DescribeUserSCRAMCredentialsRequest) *kmsg.DescribeUserSCRAMCredentialsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeUserSCRAMCredentialsResponse)
	users := make([]string, len(req.Users))
	for i, u := range req.Users {
		users[i] = u.Name
	}
	ctx, cancel := timeoutCtx(ctx, 0)
	defer cancel()
	described, err := s.core.DescribeUserScramCredentials(ctx, users)
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = userCode(err), errorMessage(err)
		return resp
	}
	for _, d := range described {
		r := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		r.User = d.User
		if d.Err != nil {
			r.ErrorCode, r.ErrorMessage = userCode(d.Err), errorMessage(d.Err)
		}
		for _, c := range d.Credentials {
			info := kmsg.NewDescribeUserSCRAMCredentialsResponseResultCredentialInfo()
			info.Mechanism, info.Iterations = scramMechanismType(c.Mechanism), int32(c.Iterations)
			r.CredentialInfos = append(r.CredentialInfos, info)
		}
		resp.Results = append(resp.Results, r)
	}
	return resp
}
