package topicconfig

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-broker/strata/sasl/oauthbearer"
)

func TestOAuthBearer(t *testing.T) {
	cfg, enabled, err := OAuthBearer(map[string]string{})
	if err != nil || enabled {
		t.Fatalf("no settings: %+v, %v, %v; want disabled", cfg, enabled, err)
	}
	cfg, enabled, err = OAuthBearer(map[string]string{
		"sasl.oauthbearer.jwks.endpoint.url":  " file:///etc/strata/jwks.json ",
		"sasl.oauthbearer.clock.skew.seconds": "5",
		"sasl.oauthbearer.expected.audience":  "strata, kafka ,",
		"sasl.oauthbearer.expected.issuer":    "https://issuer.example",
		"sasl.oauthbearer.sub.claim.name":     "client_id",
	})
	if err != nil || !enabled {
		t.Fatalf("OAuthBearer = %v, %v", enabled, err)
	}
	want := oauthbearer.Config{JWKSFile: "/etc/strata/jwks.json", ClockSkew: 5 * time.Second,
		ExpectedAudience: []string{"strata", "kafka"}, ExpectedIssuer: "https://issuer.example",
		SubClaimName: "client_id", ScopeClaimName: "scope"}
	if cfg.JWKSFile != want.JWKSFile || cfg.ClockSkew != want.ClockSkew || !slices.Equal(cfg.ExpectedAudience, want.ExpectedAudience) ||
		cfg.ExpectedIssuer != want.ExpectedIssuer || cfg.SubClaimName != want.SubClaimName || cfg.ScopeClaimName != want.ScopeClaimName || cfg.Unsecured {
		t.Fatalf("OAuthBearer = %+v, want %+v", cfg, want)
	}
	cfg, enabled, err = OAuthBearer(map[string]string{"sasl.oauthbearer.unsecured.validation.enable": "true"})
	if err != nil || !enabled || !cfg.Unsecured || cfg.ClockSkew != 30*time.Second || cfg.SubClaimName != "sub" {
		t.Fatalf("unsecured: %+v, %v, %v; want enabled with Kafka's defaults", cfg, enabled, err)
	}
	cfg, enabled, err = OAuthBearer(map[string]string{
		"sasl.oauthbearer.jwks.endpoint.url":        "https://idp.example/.well-known/jwks.json",
		"sasl.oauthbearer.jwks.endpoint.refresh.ms": "60000",
	})
	if err != nil || !enabled || cfg.JWKSURL != "https://idp.example/.well-known/jwks.json" || cfg.JWKSFile != "" ||
		cfg.JWKSRefresh != time.Minute || cfg.JWKSRetryBackoff != 100*time.Millisecond || cfg.JWKSRetryBackoffMax != 10*time.Second {
		t.Fatalf("https JWKS: %+v, %v, %v", cfg, enabled, err)
	}
	cfg, enabled, err = OAuthBearer(map[string]string{"sasl.oauthbearer.public.key.location": "/etc/strata/issuer.pem"})
	if err != nil || !enabled || cfg.PublicKeyFile != "/etc/strata/issuer.pem" {
		t.Fatalf("public key: %+v, %v, %v", cfg, enabled, err)
	}
}

func TestOAuthBearerRefusals(t *testing.T) {
	for _, tc := range []struct {
		settings map[string]string
		want     string
	}{
		{map[string]string{"sasl.oauthbearer.jwks.endpoint.url": "https:///jwks"}, "needs a host"},
		{map[string]string{"sasl.oauthbearer.jwks.endpoint.url": "https://idp/jwks", "sasl.oauthbearer.jwks.endpoint.refresh.ms": "0"}, "from 1 to a day"},
		{map[string]string{"sasl.oauthbearer.jwks.endpoint.url": "https://idp/jwks", "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms": "500",
			"sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms": "100"}, "must not be less than"},
		{map[string]string{"sasl.oauthbearer.jwks.endpoint.url": "/etc/jwks.json"}, "must be a URL"},
		{map[string]string{"sasl.oauthbearer.jwks.endpoint.url": "file:jwks.json"}, "absolute path"},
		{map[string]string{"sasl.oauthbearer.jwks.endpoint.url": "file://idp/jwks.json"}, "host must be empty or localhost"},
		{map[string]string{"sasl.oauthbearer.jwks.endpoint.url": "ftp://idp/jwks.json"}, "must be an https, http or file URL"},
		{map[string]string{"sasl.oauthbearer.jwks.endpoint.url": "file:///a", "sasl.oauthbearer.public.key.location": "/b"}, "cannot be set with"},
		{map[string]string{"sasl.oauthbearer.unsecured.validation.enable": "yes"}, "must be true or false"},
		{map[string]string{"sasl.oauthbearer.unsecured.validation.enable": "true", "sasl.oauthbearer.clock.skew.seconds": "-1"}, "0 or more"},
		{map[string]string{"sasl.oauthbearer.unsecured.validation.enable": "true", "sasl.oauthbearer.sub.claim.name": " "}, "must name a claim"},
		{map[string]string{"sasl.oauthbearer.expected.issuer": "https://issuer.example"}, "needs sasl.oauthbearer.jwks.endpoint.url"},
	} {
		_, enabled, err := OAuthBearer(tc.settings)
		if err == nil || enabled || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("OAuthBearer(%v) = %v, %v; want an error with %q", tc.settings, enabled, err, tc.want)
		}
		var ve *ValueError
		if strings.HasPrefix(tc.want, "needs sasl.") == errors.As(err, &ve) {
			t.Errorf("OAuthBearer(%v): %v, want a *ValueError for a bad value", tc.settings, err)
		}
	}
	if err := CheckBrokerKeys(map[string]string{"sasl.oauthbearer.jwks.endpoint.url": "file:///a", "sasl.oauthbearer.unsecured.validation.enable": "false"}); err != nil {
		t.Fatalf("CheckBrokerKeys: %v", err)
	}
}
