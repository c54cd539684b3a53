package metastore

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
)

// ReplicaSecret is the random secret a broker registers with: a leader
// serves replica fetches only to a caller presenting the secret registered
// under the replica id it claims, so nobody without read access to etcd can
// act as a follower. Every registration gets a new one.
//
// It prints, logs and marshals as "[redacted]", so that a BrokerInfo (or a
// request carrying one) can be logged or encoded without leaking it; the
// value itself is only had by converting it to a string.
type ReplicaSecret string

// redacted is what a ReplicaSecret shows in place of itself.
const redacted = "[redacted]"

// replicaSecretBytes is the secret's length before encoding: 256 bits, as
// much as a guess has to find.
const replicaSecretBytes = 32

// NewReplicaSecret returns a fresh random secret.
func NewReplicaSecret() (ReplicaSecret, error) {
	b := make([]byte, replicaSecretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("replica secret: %w", err)
	}
	return ReplicaSecret(base64.RawURLEncoding.EncodeToString(b)), nil
}

// Matches reports, in constant time, whether got is this secret. An empty
// secret (a registration without one) matches nothing.
func (s ReplicaSecret) Matches(got string) bool {
	if s == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(s), []byte(got)) == 1
}

// String implements fmt.Stringer.
func (s ReplicaSecret) String() string { return redacted }

// GoString implements fmt.GoStringer (%#v).
func (s ReplicaSecret) GoString() string { return redacted }

// Format implements fmt.Formatter, so that every verb (%s, %v, %q, %x)
// shows the redaction.
func (s ReplicaSecret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// LogValue implements slog.LogValuer.
func (s ReplicaSecret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText implements encoding.TextMarshaler (and so JSON).
func (s ReplicaSecret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
