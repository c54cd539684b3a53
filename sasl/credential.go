package sasl

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"fmt"
	"hash"
)

// Kafka's bounds on a SCRAM credential's iteration count
// (ScramMechanism.minIterations, maxIterations): fewer makes a stolen
// credential cheap to brute-force, more makes every login costly.
const (
	MinIterations = 4096
	MaxIterations = 16384
)

// saltBytes is the length of the salts this package makes, Kafka's too.
const saltBytes = 32

// ScramCredential is what the broker keeps of a user's password for one
// SCRAM mechanism (RFC 5802 section 3): enough to check a proof and to
// prove itself, not enough to log in as the user.
// Its JSON form is how the metastore keeps it.
type ScramCredential struct {
	Mechanism  string `json:"mechanism"` // ScramSHA256 or ScramSHA512
	Salt       []byte `json:"salt"`
	Iterations int    `json:"iterations"`
	StoredKey  []byte `json:"stored_key"`
	ServerKey  []byte `json:"server_key"`
}

// CredentialStore finds users' SCRAM credentials. A user without a
// credential for the mechanism is found=false, not an error: an error means
// the store could not be asked.
type CredentialStore interface {
	ScramCredential(ctx context.Context, user, mechanism string) (cred ScramCredential, found bool, err error)
}

// ScramHash is the hash a SCRAM mechanism is named after; false for a
// name that is not a SCRAM mechanism.
func ScramHash(mechanism string) (func() hash.Hash, bool) {
	switch mechanism {
	case ScramSHA256:
		return sha256.New, true
	case ScramSHA512:
		return sha512.New, true
	}
	return nil, false
}

// SaltPassword is RFC 5802's SaltedPassword, Hi(password, salt, i): what
// a client sends in AlterUserScramCredentials instead of the password.
func SaltPassword(mechanism, password string, salt []byte, iterations int) ([]byte, error) {
	h, ok := ScramHash(mechanism)
	if !ok {
		return nil, fmt.Errorf("sasl: %q is not a SCRAM mechanism", mechanism)
	}
	out, err := pbkdf2.Key(h, password, salt, iterations, h().Size())
	if err != nil {
		return nil, fmt.Errorf("sasl: salt password: %w", err)
	}
	return out, nil
}

// NewSalt returns a random salt of Kafka's length.
func NewSalt() []byte {
	b := make([]byte, saltBytes)
	rand.Read(b) // never fails (crypto/rand)
	return b
}

// CredentialFromSalted derives the stored credential from a salted
// password, as a broker does on AlterUserScramCredentials.
func CredentialFromSalted(mechanism string, salt, saltedPassword []byte, iterations int) (ScramCredential, error) {
	h, ok := ScramHash(mechanism)
	if !ok {
		return ScramCredential{}, fmt.Errorf("sasl: %q is not a SCRAM mechanism", mechanism)
	}
	clientKey := hmacOf(h, saltedPassword, []byte("Client Key"))
	return ScramCredential{
		Mechanism:  mechanism,
		Salt:       salt,
		Iterations: iterations,
		StoredKey:  hashOf(h, clientKey),
		ServerKey:  hmacOf(h, saltedPassword, []byte("Server Key")),
	}, nil
}

// NewScramCredential salts password with a new random salt.
func NewScramCredential(mechanism, password string, iterations int) (ScramCredential, error) {
	salt := NewSalt()
	salted, err := SaltPassword(mechanism, password, salt, iterations)
	if err != nil {
		return ScramCredential{}, err
	}
	return CredentialFromSalted(mechanism, salt, salted, iterations)
}

// Matches reports, in constant time, whether password is the one the
// credential was made from.
func (c ScramCredential) Matches(password string) bool {
	salted, err := SaltPassword(c.Mechanism, password, c.Salt, c.Iterations)
	if err != nil {
		return false
	}
	d, err := CredentialFromSalted(c.Mechanism, c.Salt, salted, c.Iterations)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(d.StoredKey, c.StoredKey) == 1
}

// VerifyPassword checks a user's password against the user's SCRAM
// credentials, the only record of passwords the broker has: the strongest
// mechanism the user has one for decides. It returns the principal
// ("User:name"); a refusal wraps ErrAuthentication and does not say
// whether the user exists.
func VerifyPassword(ctx context.Context, store CredentialStore, user, password string) (string, error) {
	for _, m := range []string{ScramSHA512, ScramSHA256} {
		c, found, err := store.ScramCredential(ctx, user, m)
		if err != nil {
			return "", fmt.Errorf("sasl: look up credentials: %w", err)
		}
		if !found {
			continue
		}
		if c.Matches(password) {
			return UserPrincipal(user), nil
		}
		return "", errInvalidCredentials
	}
	// An unknown user costs what a known one does, so that the time of
	// the answer does not tell them apart.
	unknownUser.Matches(password)
	return "", errInvalidCredentials
}

// errInvalidCredentials is the one refusal of a user name or password, so
// that the client cannot tell an unknown user from a wrong password.
var errInvalidCredentials = fmt.Errorf("%w: invalid credentials", ErrAuthentication)

// unknownUser is checked against when the user has no credential.
var unknownUser = ScramCredential{Mechanism: ScramSHA512, Salt: make([]byte, saltBytes), Iterations: MinIterations, StoredKey: make([]byte, sha512.Size)}

// UserPrincipal is the principal of a user who authenticated with SASL,
// as Kafka's default principal builder names it.
func UserPrincipal(user string) string { return "User:" + user }

func hmacOf(h func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(h, key)
	m.Write(msg)
	return m.Sum(nil)
}

func hashOf(h func() hash.Hash, b []byte) []byte {
	d := h()
	d.Write(b)
	return d.Sum(nil)
}
