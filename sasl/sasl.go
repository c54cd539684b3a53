// Package sasl holds the SASL mechanisms a broker authenticates clients
// with, as Kafka names and speaks them: PLAIN, SCRAM-SHA-256,
// SCRAM-SHA-512 and OAUTHBEARER. A mechanism knows nothing of the
// transport: the Kafka frontend carries its messages in SaslAuthenticate
// requests (or raw frames, SaslHandshake v0), the gRPC frontend in call
// metadata.
package sasl

import (
	"context"
	"errors"
	"time"
)

// Mechanism names, as clients send them in SaslHandshake.
const (
	Plain       = "PLAIN"
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
	OAuthBearer = "OAUTHBEARER"
)

// ErrAuthentication is wrapped by every error that means the client's
// credentials were refused (Kafka's SASL_AUTHENTICATION_FAILED), as
// opposed to the broker failing to check them (its store is down). Its
// message is safe to send to the client: it never holds a secret.
var ErrAuthentication = errors.New("authentication failed")

// Mechanism starts authentication exchanges of one kind.
type Mechanism interface {
	// Name is the mechanism's name as clients ask for it.
	Name() string
	// Start begins one exchange, for one connection.
	Start() Session
}

// Session is one exchange between a client and the broker. It is used by
// one goroutine.
type Session interface {
	// Step takes the client's next message and returns the broker's reply.
	// done is true once the client is authenticated; an error ends the
	// exchange (and the connection).
	Step(ctx context.Context, in []byte) (out []byte, done bool, err error)
	// Principal is who the client authenticated as, "User:name"; only
	// valid once Step reported done.
	Principal() string
	// Expiry is when the authentication stops being valid on its own (an
	// OAUTHBEARER token's exp); zero if it does not. The broker holds the
	// session to the earlier of this and connections.max.reauth.ms.
	Expiry() time.Time
}
