package client

import (
	"context"
	"encoding/base64"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// WithBasicAuth authenticates every call as user with password (the
// user's SCRAM credentials on the brokers), sent in the call metadata as
// "authorization: Basic ...". gRPC refuses to send it over a connection
// without TLS (see WithTransportCredentials), and brokers refuse it there.
func WithBasicAuth(user, password string) Option {
	cred := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	return WithDialOptions(grpc.WithPerRPCCredentials(authorization("Basic " + cred)))
}

// WithBearerToken authenticates every call with an OAuth bearer token,
// sent in the call metadata as "authorization: Bearer ...", over TLS only.
func WithBearerToken(token string) Option {
	return WithDialOptions(grpc.WithPerRPCCredentials(authorization("Bearer " + token)))
}

// authorization is per-call credentials requiring transport security.
type authorization string

var _ credentials.PerRPCCredentials = authorization("")

func (a authorization) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": string(a)}, nil
}

func (authorization) RequireTransportSecurity() bool { return true }

// String leaves the credential out of anything that prints the option.
func (authorization) String() string { return "authorization [redacted]" }
