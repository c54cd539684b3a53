// Package oauthbearer is the OAUTHBEARER SASL mechanism (RFC 7628) as
// Kafka speaks it (KIP-255), with tokens validated as JWTs (KIP-768): a
// signature by a key of a JWKS (a file, or fetched over HTTPS) or of the
// issuer's public key; exp, nbf, iat, audience and issuer; the principal
// from the sub claim. Kafka's unsecured mode (unsigned tokens, for tests)
// is available behind its own setting. The Validator serves the gRPC
// frontend's bearer tokens too.
//
// The exchange: the client sends its initial response with the token; a
// valid token ends it at once. A refused one is answered with RFC 7628's
// error challenge, {"status":"invalid_token"}, to which the client must
// reply with a single 0x01; the exchange then fails with the reason, which
// Kafka's frontend sends as SASL_AUTHENTICATION_FAILED's message.
package oauthbearer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/strata-broker/strata/sasl"
)

// MaxMessageBytes bounds the client's initial response: a token of
// MaxTokenBytes with room for the GS2 header and extensions. A larger one
// is refused before it is parsed.
const MaxMessageBytes = MaxTokenBytes + 4<<10

// kvSep separates the key/value pairs of the client's response (RFC 7628
// §3.1).
const kvSep = 0x01

// errorChallenge is the server's reply to a refused token (RFC 7628
// §3.2.2), as Kafka sends it.
var errorChallenge = []byte(`{"status":"invalid_token"}`)

// Mechanism is OAUTHBEARER, validating tokens with a Validator.
type Mechanism struct {
	v *Validator
}

// NewMechanism returns the mechanism validating tokens with v.
func NewMechanism(v *Validator) *Mechanism { return &Mechanism{v: v} }

// Name is OAUTHBEARER.
func (m *Mechanism) Name() string { return sasl.OAuthBearer }

// Start begins one exchange.
func (m *Mechanism) Start() sasl.Session { return &Session{v: m.v} }

type state int

const (
	stateInitial state = iota
	stateRefused       // the error challenge is sent; 0x01 is awaited
	stateDone
	stateFailed
)

// Session is one OAUTHBEARER exchange.
type Session struct {
	v       *Validator
	state   state
	refusal error
	token   *Token
	ext     map[string]string
}

// Step takes the client's message. See the package comment for the
// exchange.
func (s *Session) Step(ctx context.Context, in []byte) (out []byte, done bool, err error) {
	switch s.state {
	case stateInitial:
	case stateRefused:
		s.state = stateFailed
		if len(in) != 1 || in[0] != kvSep {
			return nil, false, fmt.Errorf("%w: OAUTHBEARER: the client answered the error challenge with something other than 0x01 (%w)", sasl.ErrAuthentication, s.refusal)
		}
		return nil, false, fmt.Errorf("OAUTHBEARER: %w", s.refusal)
	case stateDone:
		return nil, false, fmt.Errorf("%w: OAUTHBEARER: the exchange is already complete", sasl.ErrAuthentication)
	default:
		return nil, false, fmt.Errorf("%w: OAUTHBEARER: the exchange has failed", sasl.ErrAuthentication)
	}
	s.state = stateFailed
	msg, err := ParseClientResponse(in)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", sasl.ErrAuthentication, err)
	}
	t, err := s.v.validate(ctx, msg.Token)
	if err != nil {
		if !errors.Is(err, sasl.ErrAuthentication) {
			return nil, false, fmt.Errorf("OAUTHBEARER: validating the token: %w", err)
		}
		s.state, s.refusal = stateRefused, err
		return bytes.Clone(errorChallenge), false, nil
	}
	// RFC 7628 §3.1 lets the client name an authorization identity; as in
	// Kafka, it must be the token's own principal name.
	if msg.AuthzID != "" && msg.AuthzID != t.Subject {
		return nil, false, fmt.Errorf("%w: OAUTHBEARER: the client asked for authorization id %q, which is not the token's principal %q",
			sasl.ErrAuthentication, msg.AuthzID, t.Subject)
	}
	s.state, s.token, s.ext = stateDone, t, msg.Extensions
	return nil, true, nil
}

// Principal is "User:<sub>" once the exchange is done.
func (s *Session) Principal() string {
	if s.state != stateDone {
		return ""
	}
	return s.token.Principal()
}

// Expiry is the token's exp once the exchange is done.
func (s *Session) Expiry() time.Time {
	if s.state != stateDone {
		return time.Time{}
	}
	return s.token.Expiry
}

// Token is the validated token once the exchange is done, nil before.
func (s *Session) Token() *Token {
	if s.state != stateDone {
		return nil
	}
	return s.token
}

// Extensions are the client's SASL extensions (KIP-342), accepted without
// meaning here as Kafka's default validators accept them.
func (s *Session) Extensions() map[string]string { return s.ext }

// ClientResponse is the client's initial response, parsed.
type ClientResponse struct {
	// AuthzID is the GS2 header's a= authorization identity, unescaped;
	// empty when absent.
	AuthzID string
	// Token is the bearer token of auth=Bearer <token>.
	Token string
	// Extensions are the other key/value pairs.
	Extensions map[string]string
}

// ParseClientResponse parses RFC 7628's client initial response:
//
//	n,[a=authzid],\x01auth=Bearer <token>\x01[key=value\x01]...\x01
//
// with Kafka's rules: no channel binding, keys of letters only, values of
// printable ASCII, space and tab, CR and LF, a token of base64url characters
// and dots.
func ParseClientResponse(in []byte) (*ClientResponse, error) {
	if len(in) > MaxMessageBytes {
		return nil, fmt.Errorf("invalid OAUTHBEARER client first message: %d bytes, more than the %d allowed", len(in), MaxMessageBytes)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("invalid OAUTHBEARER client first message: "+format, args...)
	}
	msg := string(in)
	// GS2 header: a channel-binding flag, an optional authzid, a comma.
	flag, rest, ok := strings.Cut(msg, ",")
	if !ok {
		return nil, bad("no GS2 header")
	}
	switch {
	case flag == "n":
	case flag == "y" || strings.HasPrefix(flag, "p="):
		return nil, bad("channel binding (%q) is not supported", flag)
	default:
		return nil, bad("GS2 header must start with n, not %q", flag)
	}
	authz, rest, ok := strings.Cut(rest, ",")
	if !ok {
		return nil, bad("GS2 header not ended by a comma")
	}
	var r ClientResponse
	if authz != "" {
		name, ok := strings.CutPrefix(authz, "a=")
		if !ok {
			return nil, bad("GS2 header holds %q where a=authzid or nothing belongs", authz)
		}
		id, err := unescapeSASLName(name)
		if err != nil {
			return nil, bad("authzid: %v", err)
		}
		r.AuthzID = id
	}
	// Then \x01, key=value pairs each ended by \x01, and a final \x01.
	body, ok := strings.CutPrefix(rest, string(rune(kvSep)))
	if !ok {
		return nil, bad("no 0x01 after the GS2 header")
	}
	body, ok = strings.CutSuffix(body, string(rune(kvSep))+string(rune(kvSep)))
	if !ok {
		return nil, bad("not ended by 0x01 0x01")
	}
	var auth string
	var haveAuth bool
	for pair := range strings.SplitSeq(body, string(rune(kvSep))) {
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, bad("a key/value pair without '='")
		}
		if !validKey(k) {
			return nil, bad("key %q: keys are letters only", k)
		}
		if !validValue(v) {
			return nil, bad("the value of %q is empty or holds a character other than printable ASCII, space, tab, CR or LF", k)
		}
		if k == "auth" {
			if haveAuth {
				return nil, bad("auth given twice")
			}
			auth, haveAuth = v, true
			continue
		}
		if _, dup := r.Extensions[k]; dup {
			return nil, bad("extension %q given twice", k)
		}
		if r.Extensions == nil {
			r.Extensions = map[string]string{}
		}
		r.Extensions[k] = v
	}
	if !haveAuth {
		return nil, bad("no auth")
	}
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, bad("auth must be \"Bearer <token>\"")
	}
	token = strings.TrimLeft(token, " ")
	if !validToken(token) {
		return nil, bad("the token is empty or holds a character other than letters, digits, '-', '_' and '.'")
	}
	r.Token = token
	return &r, nil
}

// unescapeSASLName decodes RFC 5801's saslname: '=' and ',' travel as =3D
// and =2C, and are otherwise not allowed.
func unescapeSASLName(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty")
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '=':
			switch {
			case strings.HasPrefix(s[i:], "=2C"):
				b.WriteByte(',')
			case strings.HasPrefix(s[i:], "=3D"):
				b.WriteByte('=')
			default:
				return "", errors.New("'=' not followed by 2C or 3D")
			}
			i += 2
		case c == 0 || c > 0x7F:
			return "", errors.New("not printable ASCII")
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func validKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

func validValue(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !(0x21 <= c && c <= 0x7E || c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			return false
		}
	}
	return true
}

func validToken(t string) bool {
	if t == "" {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
