package kafkaapi

import "context"

// AnonymousPrincipal is the principal of a connection that has not
// authenticated, as Kafka names it.
const AnonymousPrincipal = "User:ANONYMOUS"

// client is who sent a request, as authorization and the audit log see
// it. Handlers see the request's context, not its connection, so the
// connection puts it there; only a server with an authorizer does, as
// nothing else reads it.
type client struct {
	principal string // "User:name"; empty means AnonymousPrincipal
	host      string
	api       string
}

type clientKey struct{}

func withClient(ctx context.Context, c *client) context.Context {
	return context.WithValue(ctx, clientKey{}, c)
}

func clientOf(ctx context.Context) *client {
	if c, ok := ctx.Value(clientKey{}).(*client); ok {
		return c
	}
	return &client{}
}

// principalOf is the principal a request acts as; AnonymousPrincipal when
// none was given.
func principalOf(ctx context.Context) string {
	if p := clientOf(ctx).principal; p != "" {
		return p
	}
	return AnonymousPrincipal
}
