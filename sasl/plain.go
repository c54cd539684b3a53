package sasl

import (
	"bytes"
	"context"
	"fmt"
	"time"
)

// PlainMechanism is the server side of PLAIN (RFC 4616). Passwords are checked
// against the users' SCRAM credentials (VerifyPassword): the broker keeps
// no other record of them. PLAIN sends the password itself, so it belongs
// on TLS listeners only, and a broker offers it only when
// sasl.enabled.mechanisms lists it.
type PlainMechanism struct {
	store CredentialStore
}

// NewPlain returns the PLAIN mechanism, checking passwords against store.
func NewPlain(store CredentialStore) *PlainMechanism { return &PlainMechanism{store: store} }

// Name is the mechanism's name.
func (p *PlainMechanism) Name() string { return Plain }

// Start begins one exchange.
func (p *PlainMechanism) Start() Session { return &plainSession{p: p} }

// maxPlainMessage bounds the one message: RFC 4616 allows 255 bytes per
// field.
const maxPlainMessage = 3*255 + 2

type plainSession struct {
	p         *PlainMechanism
	used      bool
	principal string
}

func (s *plainSession) Principal() string { return s.principal }

func (s *plainSession) Expiry() time.Time { return time.Time{} }

// Step takes the one message, authzid NUL authcid NUL passwd.
func (s *plainSession) Step(ctx context.Context, in []byte) ([]byte, bool, error) {
	if s.used {
		return nil, false, fmt.Errorf("%w: PLAIN takes one message", ErrAuthentication)
	}
	s.used = true
	if len(in) > maxPlainMessage {
		return nil, false, fmt.Errorf("%w: PLAIN message of %d bytes is too long", ErrAuthentication, len(in))
	}
	parts := bytes.Split(in, []byte{0})
	if len(parts) != 3 {
		return nil, false, fmt.Errorf("%w: PLAIN message must be authzid NUL authcid NUL password", ErrAuthentication)
	}
	authzid, user, password := string(parts[0]), string(parts[1]), string(parts[2])
	if user == "" || password == "" {
		return nil, false, fmt.Errorf("%w: PLAIN user name and password must not be empty", ErrAuthentication)
	}
	if authzid != "" && authzid != user {
		return nil, false, fmt.Errorf("%w: authorization id must be empty or the user name", ErrAuthentication)
	}
	principal, err := VerifyPassword(ctx, s.p.store, user, password)
	if err != nil {
		return nil, false, err
	}
	s.principal = principal
	return []byte{}, true, nil
}
