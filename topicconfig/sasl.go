package topicconfig

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SASL mechanism names as sasl.enabled.mechanisms lists them (the sasl
// package's, repeated here so that settings are read without it).
const (
	mechanismPlain       = "PLAIN"
	mechanismScramSHA256 = "SCRAM-SHA-256"
	mechanismScramSHA512 = "SCRAM-SHA-512"
	mechanismOAuthBearer = "OAUTHBEARER"
)

// SASL is how SASL listeners authenticate their connections, Kafka's keys.
type SASL struct {
	// EnabledMechanisms (sasl.enabled.mechanisms) are the mechanisms
	// offered in SaslHandshake, in the order listed.
	EnabledMechanisms []string
	// MaxReauth (connections.max.reauth.ms) is how long an authentication
	// lasts before the client must authenticate again on the same
	// connection (KIP-368); zero means for the connection's life.
	MaxReauth time.Duration
	// FailedAuthenticationDelay (connection.failed.authentication.delay.ms)
	// is how long a connection whose authentication failed stays open
	// before it is closed, which slows down password guessing.
	FailedAuthenticationDelay time.Duration
	// MaxReceiveSize (sasl.server.max.receive.size) bounds a frame sent
	// before the connection has authenticated.
	MaxReceiveSize int32
}

// Defaults of the SASL settings. Kafka's default mechanism list is
// GSSAPI, which Strata does not have: the SCRAM mechanisms are the
// default instead, and PLAIN, which sends the password itself, is offered
// only when listed.
const (
	DefaultSASLEnabledMechanisms           = mechanismScramSHA512 + "," + mechanismScramSHA256
	DefaultFailedAuthenticationDelay       = 100 * time.Millisecond
	DefaultSASLServerMaxReceiveSize  int32 = 524288
)

// SASLSettings reads the SASL settings from the broker settings. A bad
// value is an error naming its key.
func SASLSettings(brokerSettings map[string]string) (SASL, error) {
	s := SASL{
		FailedAuthenticationDelay: DefaultFailedAuthenticationDelay,
		MaxReceiveSize:            DefaultSASLServerMaxReceiveSize,
	}
	raw, ok := brokerSettings["sasl.enabled.mechanisms"]
	if !ok {
		raw = DefaultSASLEnabledMechanisms
	}
	for _, m := range strings.Split(raw, ",") {
		m = strings.ToUpper(strings.TrimSpace(m))
		switch m {
		case "":
			continue
		case mechanismPlain, mechanismScramSHA256, mechanismScramSHA512, mechanismOAuthBearer:
		case "GSSAPI":
			return SASL{}, &ValueError{Key: "sasl.enabled.mechanisms", Value: raw, Reason: "GSSAPI (Kerberos) is not supported; use SCRAM-SHA-512, SCRAM-SHA-256, PLAIN or OAUTHBEARER"}
		default:
			return SASL{}, &ValueError{Key: "sasl.enabled.mechanisms", Value: raw, Reason: fmt.Sprintf("unknown mechanism %q; use SCRAM-SHA-512, SCRAM-SHA-256, PLAIN or OAUTHBEARER", m)}
		}
		if !slices.Contains(s.EnabledMechanisms, m) {
			s.EnabledMechanisms = append(s.EnabledMechanisms, m)
		}
	}
	if len(s.EnabledMechanisms) == 0 {
		return SASL{}, &ValueError{Key: "sasl.enabled.mechanisms", Value: raw, Reason: "must list at least one mechanism"}
	}
	readMs := func(key string, set func(time.Duration)) error {
		raw, ok := brokerSettings[key]
		if !ok {
			return nil
		}
		v, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
		if err != nil || v < 0 || v > int64(time.Duration(1<<62)/time.Millisecond) {
			return &ValueError{Key: key, Value: raw, Reason: "must be a number of milliseconds, 0 or more"}
		}
		set(time.Duration(v) * time.Millisecond)
		return nil
	}
	if err := readMs("connections.max.reauth.ms", func(d time.Duration) { s.MaxReauth = d }); err != nil {
		return SASL{}, err
	}
	if err := readMs("connection.failed.authentication.delay.ms", func(d time.Duration) { s.FailedAuthenticationDelay = d }); err != nil {
		return SASL{}, err
	}
	if raw, ok := brokerSettings["sasl.server.max.receive.size"]; ok {
		v, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 32)
		if err != nil || v < 1 {
			return SASL{}, &ValueError{Key: "sasl.server.max.receive.size", Value: raw, Reason: "must be an integer from 1 to 2147483647"}
		}
		s.MaxReceiveSize = int32(v)
	}
	return s, nil
}
