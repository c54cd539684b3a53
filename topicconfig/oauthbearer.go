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
	// OAuthBearerJWKSURLKey is Kafka's JWKS location: an http(s) URL
	// (fetched again every refresh.ms and on an unknown kid) or a file://
	// URL (read again when the file changes).
	OAuthBearerJWKSURLKey             = "sasl.oauthbearer.jwks.endpoint.url"
	OAuthBearerJWKSRefreshKey         = "sasl.oauthbearer.jwks.endpoint.refresh.ms"
	OAuthBearerJWKSRetryBackoffKey    = "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms"
	OAuthBearerJWKSRetryBackoffMaxKey = "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms"
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
		file, reason := jwksLocation(raw)
		switch {
		case reason != "":
			bad(OAuthBearerJWKSURLKey, reason)
		case file != "":
			cfg.JWKSFile = file
		default:
			cfg.JWKSURL = raw
		}
	}
	cfg.JWKSRefresh, cfg.JWKSRetryBackoff, cfg.JWKSRetryBackoffMax =
		oauthbearer.DefaultJWKSRefresh, oauthbearer.DefaultJWKSRetryBackoff, oauthbearer.DefaultJWKSRetryBackoffMax
	for _, d := range []struct {
		key string
		dst *time.Duration
	}{
		{OAuthBearerJWKSRefreshKey, &cfg.JWKSRefresh},
		{OAuthBearerJWKSRetryBackoffKey, &cfg.JWKSRetryBackoff},
		{OAuthBearerJWKSRetryBackoffMaxKey, &cfg.JWKSRetryBackoffMax},
	} {
		if raw, ok := s[d.key]; ok {
			n, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
			if err != nil || n <= 0 || n > int64(24*time.Hour/time.Millisecond) {
				bad(d.key, "must be a number of milliseconds, from 1 to a day")
				continue
			}
			*d.dst = time.Duration(n) * time.Millisecond
		}
	}
	if cfg.JWKSRetryBackoffMax < cfg.JWKSRetryBackoff {
		bad(OAuthBearerJWKSRetryBackoffMaxKey, "must not be less than "+OAuthBearerJWKSRetryBackoffKey)
	}
	cfg.PublicKeyFile = strings.TrimSpace(s[OAuthBearerPublicKeyLocationKey])
	if (cfg.JWKSFile != "" || cfg.JWKSURL != "") && cfg.PublicKeyFile != "" {
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
	enabled = cfg.JWKSFile != "" || cfg.JWKSURL != "" || cfg.PublicKeyFile != "" || cfg.Unsecured
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

// jwksLocation reads a JWKS URL: http(s)://host/path, or
// file:///absolute/path (a host, if any, must be localhost). It returns
// the file's path for a file URL, or why the URL cannot be used.
func jwksLocation(raw string) (file, reason string) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "not a URL: " + err.Error()
	}
	switch strings.ToLower(u.Scheme) {
	case "file":
	case "http", "https":
		if u.Host == "" {
			return "", "an http(s) URL needs a host"
		}
		return "", ""
	case "":
		return "", "must be a URL (https://issuer/jwks or file:///path/to/jwks.json)"
	default:
		return "", "must be an https, http or file URL"
	}
	if u.Host != "" && u.Host != "localhost" {
		return "", "a file URL's host must be empty or localhost"
	}
	if u.Opaque != "" || !filepath.IsAbs(u.Path) {
		return "", "a file URL must hold an absolute path (file:///path/to/jwks.json)"
	}
	return filepath.Clean(u.Path), ""
}
