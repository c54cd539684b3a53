// AlterUserScramCredentials (key 51), version 0. It is flexible.
// Deletes and upserts users' SCRAM credentials; an upsertion carries the
// salt and salted password, never the password. Each user is answered on
// its own, with Kafka's codes: RESOURCE_NOT_FOUND (deleting a credential
// that does not exist), DUPLICATE_RESOURCE (a user's mechanism altered
// twice), UNSUPPORTED_SASL_MECHANISM, UNACCEPTABLE_CREDENTIAL (an empty
// name or salt, iterations outside 4096-16384).

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker"
)

func (s *Server) alterUserScramCredentialsAPI() api {
	return api{key: 51, min: 0, max: 0, amplification: 170, handle: decoded(s.alterUserScramCredentials),
		auth: onCluster(acl.OpAlter, func(r kmsg.Request) kmsg.Response {
			// Refused, every user the request names gets the error once,
			// as Kafka answers.
			req := r.(*kmsg.AlterUserSCRAMCredentialsRequest)
			resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
			seen := map[string]bool{}
			add := func(user string) {
				if seen[user] {
					return
				}
				seen[user] = true
				res := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
				res.User = user
				res.ErrorCode, res.ErrorMessage = kerr.ClusterAuthorizationFailed.Code, strPtr(kerr.ClusterAuthorizationFailed.Description)
				resp.Results = append(resp.Results, res)
			}
			for _, d := range req.Deletions {
				add(d.Name)
			}
			for _, u := range req.Upsertions {
				add(u.Name)
			}
			return resp
		})}
}

func (s *Server) alterUserScramCredentials(ctx context.Context, req *kmsg.AlterUserSCRAMCredentialsRequest) *kmsg.AlterUserSCRAMCredentialsResponse {
	resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
	deletions := make([]broker.ScramDeletion, len(req.Deletions))
	for i, d := range req.Deletions {
		deletions[i] = broker.ScramDeletion{User: d.Name, Mechanism: scramMechanismName(d.Mechanism)}
	}
	upsertions := make([]broker.ScramUpsertion, len(req.Upsertions))
	for i, u := range req.Upsertions {
		upsertions[i] = broker.ScramUpsertion{
			User:           u.Name,
			Mechanism:      scramMechanismName(u.Mechanism),
			Iterations:     int(u.Iterations),
			Salt:           u.Salt,
			SaltedPassword: u.SaltedPassword,
		}
	}
	ctx, cancel := timeoutCtx(ctx, 0)
	defer cancel()
	for _, r := range s.core.AlterUserScramCredentials(ctx, deletions, upsertions) {
		res := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		res.User = r.User
		if r.Err != nil {
			res.ErrorCode, res.ErrorMessage = userCode(r.Err), errorMessage(r.Err)
		}
		resp.Results = append(resp.Results, res)
	}
	return resp
}
