package sasl

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"time"
)

// ScramMechanism is the server side of SCRAM-SHA-256 or SCRAM-SHA-512 (RFC 5802,
// RFC 7677) as Kafka speaks it: no channel binding, credentials from a
// CredentialStore.
type ScramMechanism struct {
	mechanism string
	h         func() hash.Hash
	store     CredentialStore
	// fakeKey makes the salt of a user without a credential: the exchange
	// goes on with it and fails at the proof, so that a client cannot
	// tell an unknown user from a wrong password, nor probe salts.
	fakeKey []byte
	nonce   func() string
}

// NewScram returns the SCRAM mechanism of that name (ScramSHA256 or
// ScramSHA512), checking proofs against store.
func NewScram(mechanism string, store CredentialStore) (*ScramMechanism, error) {
	h, ok := ScramHash(mechanism)
	if !ok {
		return nil, fmt.Errorf("sasl: %q is not a SCRAM mechanism", mechanism)
	}
	key := make([]byte, 32)
	rand.Read(key) // never fails (crypto/rand)
	return &ScramMechanism{mechanism: mechanism, h: h, store: store, fakeKey: key, nonce: rand.Text}, nil
}

// Name is the mechanism's name.
func (s *ScramMechanism) Name() string { return s.mechanism }

// Start begins one exchange.
func (s *ScramMechanism) Start() Session { return &scramSession{m: s} }

// The exchange's states.
const (
	scramFirst = iota
	scramFinal
	scramDone
	scramFailed
)

// maxScramMessage bounds a client's message: a name, a nonce and a proof
// fit in far less.
const maxScramMessage = 4096

type scramSession struct {
	m     *ScramMechanism
	state int
	user  string
	cred  ScramCredential
	known bool // the user has a credential; cred is a fake otherwise
	// gs2Header, clientFirstBare and serverFirst are what the client's
	// final message is checked against and the proof is computed over.
	gs2Header       string
	clientFirstBare string
	serverFirst     string
	nonce           string
}

func (s *scramSession) Principal() string { return UserPrincipal(s.user) }

func (s *scramSession) Expiry() time.Time { return time.Time{} }

// Step answers the client's first message with the salt and iterations,
// and its final one with the server's signature.
func (s *scramSession) Step(ctx context.Context, in []byte) ([]byte, bool, error) {
	if len(in) > maxScramMessage {
		s.state = scramFailed
		return nil, false, fmt.Errorf("%w: SCRAM message of %d bytes is too long", ErrAuthentication, len(in))
	}
	var out []byte
	var err error
	switch s.state {
	case scramFirst:
		out, err = s.first(ctx, string(in))
		if err == nil {
			s.state = scramFinal
			return out, false, nil
		}
	case scramFinal:
		out, err = s.final(string(in))
		if err == nil {
			s.state = scramDone
			return out, true, nil
		}
	default:
		err = fmt.Errorf("%w: SCRAM exchange already ended", ErrAuthentication)
	}
	s.state = scramFailed
	return nil, false, err
}

// first reads client-first-message: gs2-header client-first-message-bare,
// "n,[a=authzid],n=user,r=nonce[,extensions]".
func (s *scramSession) first(ctx context.Context, msg string) ([]byte, error) {
	cbind, rest, ok := strings.Cut(msg, ",")
	if !ok {
		return nil, malformed("client-first-message has no GS2 header")
	}
	switch {
	case cbind == "n", cbind == "y":
	case strings.HasPrefix(cbind, "p="):
		return nil, fmt.Errorf("%w: SCRAM channel binding is not supported", ErrAuthentication)
	default:
		return nil, malformed("bad channel binding flag")
	}
	authzid, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return nil, malformed("client-first-message has no GS2 header")
	}
	s.gs2Header = cbind + "," + authzid + ","
	s.clientFirstBare = bare
	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") {
		return nil, malformed("client-first-message-bare must start n=...,r=...")
	}
	user, err := decodeSaslName(attrs[0][2:])
	if err != nil {
		return nil, err
	}
	if user == "" {
		return nil, malformed("empty user name")
	}
	if authzid != "" {
		a, ok := strings.CutPrefix(authzid, "a=")
		if !ok {
			return nil, malformed("bad authzid")
		}
		if a, err = decodeSaslName(a); err != nil {
			return nil, err
		}
		if a != user {
			return nil, fmt.Errorf("%w: authorization id must be empty or the user name", ErrAuthentication)
		}
	}
	clientNonce := attrs[1][2:]
	if clientNonce == "" || !printable(clientNonce) {
		return nil, malformed("bad client nonce")
	}
	// Further attributes are extensions (Kafka's tokenauth); none is used.
	cred, found, err := s.m.store.ScramCredential(ctx, user, s.m.mechanism)
	if err != nil {
		// Not ErrAuthentication: the broker failed, not the client.
		return nil, fmt.Errorf("sasl: look up credentials: %w", err)
	}
	if !found {
		cred = ScramCredential{
			Mechanism:  s.m.mechanism,
			Salt:       hmacOf(s.m.h, s.m.fakeKey, []byte(user)),
			Iterations: MinIterations,
		}
	}
	s.user, s.cred, s.known = user, cred, found
	s.nonce = clientNonce + s.m.nonce()
	s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(cred.Salt) + ",i=" + strconv.Itoa(cred.Iterations)
	return []byte(s.serverFirst), nil
}

// final reads client-final-message, "c=binding,r=nonce,p=proof", checks
// the proof and returns server-final-message, "v=signature".
func (s *scramSession) final(msg string) ([]byte, error) {
	withoutProof, proofAttr, ok := cutLast(msg, ",p=")
	if !ok {
		return nil, malformed("client-final-message has no proof")
	}
	attrs := strings.Split(withoutProof, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "c=") || !strings.HasPrefix(attrs[1], "r=") {
		return nil, malformed("client-final-message must start c=...,r=...")
	}
	binding, err := base64.StdEncoding.DecodeString(attrs[0][2:])
	if err != nil || string(binding) != s.gs2Header {
		return nil, malformed("channel binding does not match the GS2 header")
	}
	// The nonce must end with the one the server sent, as Kafka checks it:
	// librdkafka sends its own nonce before the whole of the server's.
	if r := attrs[1][2:]; len(r) < len(s.nonce) || subtle.ConstantTimeCompare([]byte(r[len(r)-len(s.nonce):]), []byte(s.nonce)) != 1 {
		return nil, malformed("nonce does not match")
	}
	proof, err := base64.StdEncoding.DecodeString(proofAttr)
	if err != nil {
		return nil, malformed("proof is not base64")
	}
	authMessage := []byte(s.clientFirstBare + "," + s.serverFirst + "," + withoutProof)
	h := s.m.h
	size := h().Size()
	// Computed whether or not the user is known, so that the time taken
	// says nothing of it.
	storedKey := s.cred.StoredKey
	if !s.known || len(storedKey) != size {
		storedKey = make([]byte, size)
	}
	signature := hmacOf(h, storedKey, authMessage)
	clientKey := make([]byte, size)
	if len(proof) == size {
		subtle.XORBytes(clientKey, proof, signature)
	}
	ok = subtle.ConstantTimeCompare(hashOf(h, clientKey), storedKey) == 1
	if !ok || !s.known || len(proof) != size {
		return nil, errInvalidCredentials
	}
	return []byte("v=" + base64.StdEncoding.EncodeToString(hmacOf(h, s.cred.ServerKey, authMessage))), nil
}

// decodeSaslName undoes RFC 5802's escaping of ',' and '=' in a name.
func decodeSaslName(s string) (string, error) {
	if !strings.Contains(s, "=") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", malformed("bad escape in a name")
		}
		i += 2
	}
	return b.String(), nil
}

// printable reports whether s is RFC 5802's printable: ASCII 0x21-0x7e
// without ','.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

func malformed(what string) error {
	return fmt.Errorf("%w: malformed SCRAM message: %s", ErrAuthentication, what)
}
