package topicconfig

import (
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/strata-broker/strata/internal/tlsconf"
)

// Security protocols of a Kafka listener (Kafka's SecurityProtocol).
const (
	ProtocolPlaintext     = "PLAINTEXT"
	ProtocolSSL           = "SSL"
	ProtocolSASLPlaintext = "SASL_PLAINTEXT"
	ProtocolSASLSSL       = "SASL_SSL"
)

// ProtocolUsesTLS reports whether a listener of the protocol speaks TLS
// (with the ssl.* keys).
func ProtocolUsesTLS(protocol string) bool {
	return protocol == ProtocolSSL || protocol == ProtocolSASLSSL
}

// ProtocolUsesSASL reports whether a listener of the protocol serves a
// connection only once it has authenticated with SASL.
func ProtocolUsesSASL(protocol string) bool {
	return protocol == ProtocolSASLPlaintext || protocol == ProtocolSASLSSL
}

// ParseKafkaListener reads a Kafka listener address in the form of one
// entry of Kafka's `listeners`, PROTOCOL://host:port (PLAINTEXT, SSL,
// SASL_PLAINTEXT or SASL_SSL), or a bare host:port, which is PLAINTEXT. As in Kafka without
// listener.security.protocol.map, the listener's name is its protocol.
func ParseKafkaListener(s string) (protocol, addr string, err error) {
	name, rest, ok := strings.Cut(s, "://")
	if !ok {
		return ProtocolPlaintext, s, nil
	}
	switch p := strings.ToUpper(name); p {
	case ProtocolPlaintext, ProtocolSSL, ProtocolSASLPlaintext, ProtocolSASLSSL:
		return p, rest, nil
	}
	return "", "", fmt.Errorf("listener %q: unknown security protocol %q (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)", s, name)
}

// SSL is a listener's TLS settings, Kafka's ssl.* keys. Only PEM files are
// read: ssl.keystore.location is one file with the private key
// (unencrypted) and the certificate chain, ssl.truststore.location a file
// of CA certificates.
type SSL struct {
	KeystoreLocation   string
	TruststoreLocation string
	ClientAuth         tls.ClientAuthType
	// PrincipalMapper is ssl.principal.mapping.rules: how a client
	// certificate's subject becomes its principal's name.
	PrincipalMapper *tlsconf.PrincipalMapper
}

// Enabled reports whether a key store is configured.
func (s SSL) Enabled() bool { return s.KeystoreLocation != "" }

// unsupportedSSLKeys are Kafka ssl.* keys with no effect here: each is
// refused rather than ignored, since ignoring one would weaken or break
// what its author asked for.
var unsupportedSSLKeys = map[string]string{
	"ssl.keystore.certificate.chain": "inline PEM is not supported; put the key and chain in the file ssl.keystore.location names",
	"ssl.keystore.key":               "inline PEM is not supported; put the key and chain in the file ssl.keystore.location names",
	"ssl.truststore.certificates":    "inline PEM is not supported; use ssl.truststore.location",
	"ssl.key.password":               "encrypted private keys are not supported",
	"ssl.keystore.password":          "only PEM key stores (no password) are supported",
	"ssl.truststore.password":        "only PEM trust stores (no password) are supported",
}

// KafkaSSL reads the Kafka listener's TLS settings (ssl.*).
func KafkaSSL(brokerSettings map[string]string) (SSL, error) {
	return readSSL(brokerSettings, "")
}

// GRPCSSL reads the gRPC listener's TLS settings: the same keys as the
// Kafka listener's with the prefix grpc. (grpc.ssl.keystore.location,
// ...), as Kafka prefixes a listener's own settings with its name.
func GRPCSSL(brokerSettings map[string]string) (SSL, error) {
	return readSSL(brokerSettings, "grpc.")
}

func readSSL(settings map[string]string, prefix string) (SSL, error) {
	var s SSL
	var errs []error
	bad := func(key, reason string) {
		errs = append(errs, &ValueError{Key: prefix + key, Value: settings[prefix+key], Reason: reason})
	}
	for _, key := range slices.Sorted(maps.Keys(unsupportedSSLKeys)) {
		if _, ok := settings[prefix+key]; ok {
			bad(key, unsupportedSSLKeys[key])
		}
	}
	for _, key := range []string{"ssl.keystore.type", "ssl.truststore.type"} {
		if v, ok := settings[prefix+key]; ok && !strings.EqualFold(strings.TrimSpace(v), "PEM") {
			bad(key, "only PEM is supported")
		}
	}
	s.KeystoreLocation = strings.TrimSpace(settings[prefix+"ssl.keystore.location"])
	s.TruststoreLocation = strings.TrimSpace(settings[prefix+"ssl.truststore.location"])
	switch v := strings.TrimSpace(settings[prefix+"ssl.client.auth"]); v {
	case "", "none":
	case "requested":
		s.ClientAuth = tls.VerifyClientCertIfGiven
	case "required":
		s.ClientAuth = tls.RequireAndVerifyClientCert
	default:
		bad("ssl.client.auth", "must be none, requested or required")
	}
	if m, err := tlsconf.ParsePrincipalMappingRules(settings[prefix+"ssl.principal.mapping.rules"]); err != nil {
		bad("ssl.principal.mapping.rules", err.Error())
	} else {
		s.PrincipalMapper = m
	}
	if s.ClientAuth != tls.NoClientCert && s.TruststoreLocation == "" {
		bad("ssl.client.auth", "needs "+prefix+"ssl.truststore.location to verify client certificates against")
	}
	if !s.Enabled() && (s.TruststoreLocation != "" || s.ClientAuth != tls.NoClientCert) {
		errs = append(errs, fmt.Errorf("%sssl.truststore.location and %sssl.client.auth need %sssl.keystore.location", prefix, prefix, prefix))
	}
	if err := errors.Join(errs...); err != nil {
		return SSL{}, err
	}
	return s, nil
}
