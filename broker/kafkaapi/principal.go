package kafkaapi

import "context"

// AnonymousPrincipal is the principal of a connection that has not
// authenticated, as Kafka names it.
const AnonymousPrincipal = "User:ANONYMOUS"

type principalKey struct{}

// withPrincipal gives handlers the principal of the connection a request
// came on: handlers see the request's context, not its connection.
func withPrincipal(ctx context.Context, principal string) context.Context {
	return context.WithValue(ctx, principalKey{}, principal)
}

// principalOf is the principal a request acts as; AnonymousPrincipal when
// none was given.
func principalOf(ctx context.Context) string {
	if p, ok := ctx.Value(principalKey{}).(string); ok {
		return p
	}
	return AnonymousPrincipal
}
