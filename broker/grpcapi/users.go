package grpcapi

import (
	"context"
	"errors"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/broker"
)

// AlterUserScramCredentials deletes and upserts users' SCRAM credentials;
// each user is answered on its own, as by Kafka's API.
func (s *Server) AlterUserScramCredentials(ctx context.Context, req *stratav1.AlterUserScramCredentialsRequest) (*stratav1.AlterUserScramCredentialsResponse, error) {
	// The ACL check goes here: Alter on the Cluster.
	var deletions []broker.ScramDeletion
	for _, d := range req.GetDeletions() {
		deletions = append(deletions, broker.ScramDeletion{User: d.GetUser(), Mechanism: d.GetMechanism()})
	}
	var upsertions []broker.ScramUpsertion
	for _, u := range req.GetUpsertions() {
		upsertions = append(upsertions, broker.ScramUpsertion{
			User:           u.GetUser(),
			Mechanism:      u.GetMechanism(),
			Iterations:     int(u.GetIterations()),
			Salt:           u.GetSalt(),
			SaltedPassword: u.GetSaltedPassword(),
		})
	}
	resp := &stratav1.AlterUserScramCredentialsResponse{}
	for _, r := range s.b.AlterUserScramCredentials(ctx, deletions, upsertions) {
		res := &stratav1.UserScramResult{User: r.User}
		if r.Err != nil {
			res.Error, res.ErrorMessage = userErrorName(r.Err), r.Err.Error()
		}
		resp.Results = append(resp.Results, res)
	}
	return resp, nil
}

// DescribeUserScramCredentials describes the named users' credentials, or
// every user's.
func (s *Server) DescribeUserScramCredentials(ctx context.Context, req *stratav1.DescribeUserScramCredentialsRequest) (*stratav1.DescribeUserScramCredentialsResponse, error) {
	// The ACL check goes here: Describe on the Cluster.
	described, err := s.b.DescribeUserScramCredentials(ctx, req.GetUsers())
	if err != nil {
		return nil, statusError(err)
	}
	resp := &stratav1.DescribeUserScramCredentialsResponse{}
	for _, d := range described {
		u := &stratav1.UserScramCredentials{User: d.User}
		if d.Err != nil {
			u.Error, u.ErrorMessage = userErrorName(d.Err), d.Err.Error()
		}
		for _, c := range d.Credentials {
			u.Credentials = append(u.Credentials, &stratav1.ScramCredentialInfo{Mechanism: c.Mechanism, Iterations: int32(c.Iterations)})
		}
		resp.Users = append(resp.Users, u)
	}
	return resp, nil
}

// userErrorName is Kafka's name for a user credential refusal.
func userErrorName(err error) string {
	switch {
	case errors.Is(err, broker.ErrResourceNotFound):
		return "RESOURCE_NOT_FOUND"
	case errors.Is(err, broker.ErrDuplicateResource):
		return "DUPLICATE_RESOURCE"
	case errors.Is(err, broker.ErrUnsupportedSaslMechanism):
		return "UNSUPPORTED_SASL_MECHANISM"
	case errors.Is(err, broker.ErrUnacceptableCredential):
		return "UNACCEPTABLE_CREDENTIAL"
	}
	return "UNKNOWN_SERVER_ERROR"
}
