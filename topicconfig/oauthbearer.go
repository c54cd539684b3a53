package topicconfig

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/strata-broker/strata/sasl/oauthbearer"
)

// OAUTHBEARER token validation settings: Kafka's KIP-768 keys, and two of
// Strata's in their style.
const (
	// OAuthBearerJWKSURLKey is Kafka's JWKS location; only file:// URLs
	// are read (the file is reloaded when it changes).
	OAuthBearerJWKSURLKey = "sasl.oauthbearer.jwks.endpoint.url"
	// OAuthBearerPublicKeyLocationKey is Strata's: a PEM file with the
	// issuer's single public key (or certificate), for issuers without a
	// JWKS.
	OAuthBearerPublicKeyLocationKey = "sasl.oauthbearer.public.key.location"
	// OAuthBearerUnsecuredKey is Strata's switch for Kafka's unsecured
	// validation (unsigned {"alg":"none"} tokens), which Kafka turns on by
	// leaving the server callback handler unset: here it must be asked for.
	OAuthBearerUnsecuredKey        = "sasl.oauthbearer.unsecured.validation.enable"
	OAuthBearerClockSkewKey        = "sasl.oauthbearer.clock.skew.seconds"
	OAuthBearerExpectedAudienceKey = "sasl.oauthbearer.expected.audience"
	OAuthBearerExpectedIssuerKey   = "sasl.oauthbearer.expected.issuer"
	OAuthBearerSubClaimNameKey     = "sasl.oauthbearer.sub.claim.name"
	OAuthBearerScopeClaimNameKey   = "sasl.oauthbearer.scope.claim.name"
)

// OAuthBearer reads the sasl.oauthbearer.* settings. enabled is false when
// no way to validate tokens is set (no JWKS, no public key, unsecured
// validation off): then OAUTHBEARER cannot be offered.
func OAuthBearer(brokerSettings map[string]string) (cfg oauthbearer.Config, enabled bool, err error) {
	s := brokerSettings
	var errs []error
	bad := func(key, reason string) {
		errs = append(errs, &ValueError{Key: key, Value: s[key], Reason: reason})
	}
	if raw := strings.TrimSpace(s[OAuthBearerJWKSURLKey]); raw != "" {
		path, reason := jwksPath(raw)
		if reason != "" {
			bad(OAuthBearerJWKSURLKey, reason)
		}
		cfg.JWKSFile = path
	}
	cfg.PublicKeyFile = strings.TrimSpace(s[OAuthBearerPublicKeyLocationKey])
	if cfg.JWKSFile != "" && cfg.PublicKeyFile != "" {
		bad(OAuthBearerPublicKeyLocationKey, "cannot be set with "+OAuthBearerJWKSURLKey+"; tokens are verified with one or the other")
	}
	if raw, ok := s[OAuthBearerUnsecuredKey]; ok {
		v, err := strconv.ParseBool(strings.TrimSpace(raw))
		if err != nil {
			bad(OAuthBearerUnsecuredKey, "must be true or false")
		}
		cfg.Unsecured = v
	}
	cfg.ClockSkew = oauthbearer.DefaultClockSkew
	if raw, ok := s[OAuthBearerClockSkewKey]; ok {
		n, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 32)
		if err != nil || n < 0 {
			bad(OAuthBearerClockSkewKey, "must be a whole number of seconds, 0 or more")
		}
		cfg.ClockSkew = time.Duration(n) * time.Second
	}
	for a := range strings.SplitSeq(s[OAuthBearerExpectedAudienceKey], ",") {
		if a = strings.TrimSpace(a); a != "" {
			cfg.ExpectedAudience = append(cfg.ExpectedAudience, a)
		}
	}
	cfg.ExpectedIssuer = strings.TrimSpace(s[OAuthBearerExpectedIssuerKey])
	cfg.SubClaimName, cfg.ScopeClaimName = "sub", "scope"
	for _, c := range []struct {
		key string
		dst *string
	}{{OAuthBearerSubClaimNameKey, &cfg.SubClaimName}, {OAuthBearerScopeClaimNameKey, &cfg.ScopeClaimName}} {
		if raw, ok := s[c.key]; ok {
			if v := strings.TrimSpace(raw); v != "" {
				*c.dst = v
			} else {
				bad(c.key, "must name a claim")
			}
		}
	}
	enabled = cfg.JWKSFile != "" || cfg.PublicKeyFile != "" || cfg.Unsecured
	if !enabled && len(errs) == 0 {
		for _, key := range []string{OAuthBearerClockSkewKey, OAuthBearerExpectedAudienceKey, OAuthBearerExpectedIssuerKey,
			OAuthBearerSubClaimNameKey, OAuthBearerScopeClaimNameKey} {
			if _, ok := s[key]; ok {
				errs = append(errs, fmt.Errorf("%s needs %s, %s or %s=true to validate tokens with",
					key, OAuthBearerJWKSURLKey, OAuthBearerPublicKeyLocationKey, OAuthBearerUnsecuredKey))
				break
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return oauthbearer.Config{}, false, err
	}
	return cfg, enabled, nil
}

// jwksPath reads a JWKS URL: file:///absolute/path (a host, if any, must
// be localhost). It returns the path, or why the URL cannot be used.
func jwksPath(raw string) (path, reason string) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "not a URL: " + err.Error()
	}
	switch strings.ToLower(u.Scheme) {
	case "file":
	case "http", "https":
		return "", "only file:// URLs are supported; fetch the JWKS to a file (it is reloaded when it changes) and name it as file:///path"
	case "":
		return "", "must be a URL (file:///path/to/jwks.json)"
	default:
		return "", "only file:// URLs are supported"
	}
	if u.Host != "" && u.Host != "localhost" {
		return "", "a file URL's host must be empty or localhost"
	}
	if u.Opaque != "" || !filepath.IsAbs(u.Path) {
		return "", "a file URL must hold an absolute path (file:///path/to/jwks.json)"
	}
	return filepath.Clean(u.Path), ""
}
