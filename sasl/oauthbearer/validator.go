package oauthbearer

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-broker/strata/internal/filereload"
	"github.com/strata-broker/strata/sasl"
)

// MaxTokenBytes bounds a token: a larger one is refused before it is
// decoded. Real access tokens are a few KiB at most.
const MaxTokenBytes = 64 << 10

// DefaultClockSkew is Kafka's sasl.oauthbearer.clock.skew.seconds default.
const DefaultClockSkew = 30 * time.Second

// KeyCheckInterval is how often, at most, a key file in use is checked for
// a change.
const KeyCheckInterval = 5 * time.Second

// Config is how tokens are validated: Kafka's sasl.oauthbearer.* broker
// settings (topicconfig.OAuthBearer reads them). At most one key source,
// JWKSFile, JWKSURL or PublicKeyFile, verifies signed tokens; Unsecured
// also accepts unsigned ones.
type Config struct {
	// JWKSFile is a JSON Web Key Set; a token's kid picks its key.
	JWKSFile string
	// JWKSURL is a JSON Web Key Set fetched over HTTP(S), again every
	// JWKSRefresh and when a token names a kid it lacks.
	JWKSURL string
	// JWKSRefresh, JWKSRetryBackoff and JWKSRetryBackoffMax are Kafka's
	// sasl.oauthbearer.jwks.endpoint.{refresh,retry.backoff,retry.backoff.max}.ms
	// (zero: Kafka's defaults).
	JWKSRefresh, JWKSRetryBackoff, JWKSRetryBackoffMax time.Duration
	// PublicKeyFile is the issuer's single public key, PEM.
	PublicKeyFile string
	// Unsecured accepts tokens with {"alg":"none"} and no signature
	// (Kafka's unsecured validation, for tests only); their claims are
	// checked all the same.
	Unsecured bool
	// ClockSkew is allowed on exp, nbf and iat.
	ClockSkew time.Duration
	// ExpectedAudience, when set, must share an entry with the token's aud.
	ExpectedAudience []string
	// ExpectedIssuer, when set, must equal the token's iss.
	ExpectedIssuer string
	// SubClaimName names the claim holding the principal (default "sub").
	SubClaimName string
	// ScopeClaimName names the claim holding the scope (default "scope").
	ScopeClaimName string
}

// Options are a Validator's dependencies.
type Options struct {
	Logger *slog.Logger
	// Registerer receives the validation metrics; nil registers none.
	Registerer prometheus.Registerer
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// KeyCheckInterval overrides KeyCheckInterval (for tests).
	KeyCheckInterval time.Duration
	// HTTPClient fetches a JWKSURL (nil: a client with the system's
	// roots).
	HTTPClient *http.Client
}

// Token is what a valid token says.
type Token struct {
	// Subject is the principal's name, from the configured claim.
	Subject string
	// Expiry is the token's exp.
	Expiry time.Time
	// Scope is the token's scope claim: a space-separated string or a list.
	Scope []string
}

// Principal is the Kafka principal the token authenticates.
func (t *Token) Principal() string { return "User:" + t.Subject }

// Reasons a token is refused, the label values of the refusal metric.
const (
	ReasonMalformed    = "malformed"
	ReasonAlgorithm    = "algorithm"
	ReasonKey          = "unknown_key"
	ReasonSignature    = "signature"
	ReasonExpired      = "expired"
	ReasonNotYetValid  = "not_yet_valid"
	ReasonAudience     = "audience"
	ReasonIssuer       = "issuer"
	ReasonClaims       = "claims"
	ReasonTooLarge     = "too_large"
	outcomeAccepted    = "accepted"
	metricOutcomeLabel = "outcome"
)

var allReasons = []string{ReasonMalformed, ReasonAlgorithm, ReasonKey, ReasonSignature, ReasonExpired,
	ReasonNotYetValid, ReasonAudience, ReasonIssuer, ReasonClaims, ReasonTooLarge}

// TokenError is a refused token. It wraps sasl.ErrAuthentication; its
// message names what was wrong (never the token) and is meant for the
// client.
type TokenError struct {
	Reason string // one of the Reason constants
	Detail string
}

func (e *TokenError) Error() string {
	return "invalid_token: " + e.Detail
}

func (e *TokenError) Unwrap() error { return sasl.ErrAuthentication }

func refuse(reason, format string, args ...any) *TokenError {
	return &TokenError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// signedAlgs are the JWS algorithms a key verifies: RSA PKCS#1 v1.5, RSA
// PSS and ECDSA. HMAC is not among them: a shared secret would let every
// party holding it mint tokens.
var signedAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}

// Validator checks bearer tokens. It is safe for concurrent use; key files
// are reloaded by the calls that use them, so it owns no goroutine.
type Validator struct {
	cfg     Config
	keys    keySource // nil in unsecured-only mode
	now     func() time.Time
	parser  *jwt.Parser
	results *prometheus.CounterVec
}

// keySource gives the keys that may verify a token naming kid ("" when
// it names none).
type keySource interface {
	keys(ctx context.Context, kid string) (*keySet, error)
}

// fileKeys are the keys of a JWKS or PEM file.
type fileKeys struct{ f *filereload.File[*keySet] }

func (f fileKeys) keys(context.Context, string) (*keySet, error) { return f.f.Get(), nil }

// NewValidator loads cfg's keys (fetching a JWKSURL under ctx) and returns
// a Validator. With cfg.Unsecured it logs a warning: unsigned tokens prove
// nothing.
func NewValidator(ctx context.Context, cfg Config, opts Options) (*Validator, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.KeyCheckInterval == 0 {
		opts.KeyCheckInterval = KeyCheckInterval
	}
	if cfg.SubClaimName == "" {
		cfg.SubClaimName = "sub"
	}
	if cfg.ScopeClaimName == "" {
		cfg.ScopeClaimName = "scope"
	}
	if cfg.ClockSkew < 0 {
		return nil, fmt.Errorf("oauthbearer: negative clock skew %v", cfg.ClockSkew)
	}
	v := &Validator{cfg: cfg, now: opts.Now}
	// Claims are checked by validateClaims, against the injected clock and
	// with reasons a client can act on.
	v.parser = jwt.NewParser(jwt.WithoutClaimsValidation(), jwt.WithJSONNumber())
	reload := filereload.Options{Logger: opts.Logger, Interval: opts.KeyCheckInterval, MaxBytes: MaxKeyFileBytes, Now: opts.Now}
	sources := 0
	for _, s := range []string{cfg.JWKSFile, cfg.JWKSURL, cfg.PublicKeyFile} {
		if s != "" {
			sources++
		}
	}
	switch {
	case sources > 1:
		return nil, errors.New("oauthbearer: more than one of a JWKS file, a JWKS URL and a public key file are set; use one")
	case cfg.JWKSFile != "":
		reload.What = "JWKS file"
		f, err := filereload.Load(cfg.JWKSFile, parseJWKS, reload)
		if err != nil {
			return nil, fmt.Errorf("oauthbearer: JWKS: %w", err)
		}
		v.keys = fileKeys{f}
	case cfg.JWKSURL != "":
		e := &jwksEndpoint{url: cfg.JWKSURL, client: opts.HTTPClient, refresh: cfg.JWKSRefresh,
			backoff: cfg.JWKSRetryBackoff, backoffMax: cfg.JWKSRetryBackoffMax, now: opts.Now, logger: opts.Logger}
		if e.client == nil {
			e.client = &http.Client{Timeout: jwksFetchTimeout}
		}
		if e.refresh <= 0 {
			e.refresh = DefaultJWKSRefresh
		}
		if e.backoff <= 0 {
			e.backoff = DefaultJWKSRetryBackoff
		}
		if e.backoffMax <= 0 {
			e.backoffMax = DefaultJWKSRetryBackoffMax
		}
		if err := loadJWKSEndpoint(ctx, e); err != nil {
			return nil, fmt.Errorf("oauthbearer: JWKS: %w", err)
		}
		v.keys = e
	case cfg.PublicKeyFile != "":
		reload.What = "OAUTHBEARER public key file"
		f, err := filereload.Load(cfg.PublicKeyFile, parsePublicKeyPEM, reload)
		if err != nil {
			return nil, fmt.Errorf("oauthbearer: public key: %w", err)
		}
		v.keys = fileKeys{f}
	case !cfg.Unsecured:
		return nil, errors.New("oauthbearer: no key to verify tokens with (a JWKS or a public key file), and unsecured validation is off")
	}
	if cfg.Unsecured {
		opts.Logger.Warn("OAUTHBEARER unsecured validation is on: unsigned tokens ({\"alg\":\"none\"}) are accepted, so any client can claim any principal; for tests only")
	}
	v.results = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strata_oauthbearer_validations_total",
		Help: "Bearer tokens checked, by outcome: accepted, or the reason one was refused.",
	}, []string{metricOutcomeLabel})
	for _, r := range append([]string{outcomeAccepted}, allReasons...) {
		v.results.WithLabelValues(r)
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(v.results); err != nil {
			return nil, fmt.Errorf("oauthbearer: metrics: %w", err)
		}
	}
	return v, nil
}

// Validate checks a bearer token (a JWS compact serialization) and returns
// the principal it authenticates ("User:<sub>") and when it expires. A
// refused token's error is a *TokenError wrapping sasl.ErrAuthentication.
func (v *Validator) Validate(ctx context.Context, token string) (principal string, expiry time.Time, err error) {
	t, err := v.validate(ctx, token)
	if err != nil {
		return "", time.Time{}, err
	}
	return t.Principal(), t.Expiry, nil
}

func (v *Validator) validate(ctx context.Context, token string) (*Token, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t, err := v.check(ctx, token)
	if te := (*TokenError)(nil); errors.As(err, &te) {
		v.results.WithLabelValues(te.Reason).Inc()
	} else if err == nil {
		v.results.WithLabelValues(outcomeAccepted).Inc()
	}
	return t, err
}

func (v *Validator) check(ctx context.Context, token string) (*Token, error) {
	if len(token) > MaxTokenBytes {
		return nil, refuse(ReasonTooLarge, "token of %d bytes, more than the %d allowed", len(token), MaxTokenBytes)
	}
	claims := jwt.MapClaims{}
	var keyErr error
	_, err := v.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		k, err := v.keyFor(ctx, t)
		keyErr = err
		return k, err
	})
	switch {
	case keyErr != nil:
		return nil, keyErr
	case errors.Is(err, jwt.ErrTokenMalformed):
		return nil, refuse(ReasonMalformed, "malformed token: %v", errors.Unwrap(err))
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// The parser knows no such algorithm.
		return nil, refuse(ReasonAlgorithm, "unsupported algorithm (%s)", strings.Join(signedAlgs, ", "))
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return nil, refuse(ReasonSignature, "bad signature")
	case err != nil:
		return nil, refuse(ReasonMalformed, "malformed token: %v", err)
	}
	return v.validateClaims(claims)
}

// keyFor picks the key that must have signed t, refusing (with a
// *TokenError) algorithms and keys that may not.
func (v *Validator) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	alg, _ := t.Header["alg"].(string)
	if alg == jwt.SigningMethodNone.Alg() {
		if !v.cfg.Unsecured {
			return nil, refuse(ReasonAlgorithm, `unsigned token ("alg":"none") refused: unsecured validation is off`)
		}
		return jwt.UnsafeAllowNoneSignatureType, nil
	}
	if !slices.Contains(signedAlgs, alg) {
		return nil, refuse(ReasonAlgorithm, "algorithm %q not accepted (%s)", alg, strings.Join(signedAlgs, ", "))
	}
	if v.keys == nil {
		return nil, refuse(ReasonKey, "signed token, but no key is configured to verify it (only unsecured tokens are accepted)")
	}
	kid, _ := t.Header["kid"].(string)
	set, err := v.keys.keys(ctx, kid)
	if err != nil {
		return nil, fmt.Errorf("oauthbearer: keys: %w", err)
	}
	var fits []key
	for _, k := range set.keys {
		if (kid == "" || k.kid == kid) && keyFitsAlg(k, alg) {
			fits = append(fits, k)
		}
	}
	switch {
	case len(fits) == 1:
		return fits[0].pub, nil
	case kid != "" && len(fits) == 0:
		return nil, refuse(ReasonKey, "no key with kid %q for %s", kid, alg)
	case len(fits) == 0:
		return nil, refuse(ReasonKey, "no key for %s", alg)
	default:
		// Several keys share the kid, or the token names none: trying each
		// would let one token cost a signature check per key.
		return nil, refuse(ReasonKey, "%d keys fit %s and kid %q; the token must name one by kid", len(fits), alg, kid)
	}
}

// keyFitsAlg reports whether k may verify alg: the key's type and curve
// match, and the JWK names no other algorithm.
func keyFitsAlg(k key, alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch p := k.pub.(type) {
	case *rsa.PublicKey:
		return alg[0] == 'R' || alg[0] == 'P'
	case *ecdsa.PublicKey:
		want := map[string]string{"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}[alg]
		return want != "" && p.Curve.Params().Name == want
	}
	return false
}

func (v *Validator) validateClaims(c jwt.MapClaims) (*Token, error) {
	now := v.now()
	skew := v.cfg.ClockSkew
	exp, err := c.GetExpirationTime()
	if err != nil {
		return nil, refuse(ReasonClaims, "exp: %v", err)
	}
	if exp == nil {
		return nil, refuse(ReasonClaims, "no exp claim")
	}
	if !now.Before(exp.Add(skew)) {
		return nil, refuse(ReasonExpired, "token expired at %s (clock skew allowed %v)", exp.UTC().Format(time.RFC3339), skew)
	}
	nbf, err := c.GetNotBefore()
	if err != nil {
		return nil, refuse(ReasonClaims, "nbf: %v", err)
	}
	if nbf != nil && now.Add(skew).Before(nbf.Time) {
		return nil, refuse(ReasonNotYetValid, "token not valid before %s (clock skew allowed %v)", nbf.UTC().Format(time.RFC3339), skew)
	}
	iat, err := c.GetIssuedAt()
	if err != nil {
		return nil, refuse(ReasonClaims, "iat: %v", err)
	}
	if iat != nil && now.Add(skew).Before(iat.Time) {
		return nil, refuse(ReasonNotYetValid, "token issued in the future, at %s (clock skew allowed %v)", iat.UTC().Format(time.RFC3339), skew)
	}
	if iat != nil && exp.Before(iat.Time) {
		return nil, refuse(ReasonClaims, "exp before iat")
	}
	if len(v.cfg.ExpectedAudience) > 0 {
		aud, err := c.GetAudience()
		if err != nil {
			return nil, refuse(ReasonClaims, "aud: %v", err)
		}
		if !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(v.cfg.ExpectedAudience, a) }) {
			return nil, refuse(ReasonAudience, "audience %q is not one expected", []string(aud))
		}
	}
	if v.cfg.ExpectedIssuer != "" {
		iss, err := c.GetIssuer()
		if err != nil {
			return nil, refuse(ReasonClaims, "iss: %v", err)
		}
		if iss != v.cfg.ExpectedIssuer {
			return nil, refuse(ReasonIssuer, "issuer %q is not the one expected", iss)
		}
	}
	sub, ok := c[v.cfg.SubClaimName].(string)
	if !ok || strings.TrimSpace(sub) == "" {
		return nil, refuse(ReasonClaims, "no %s claim naming the principal", v.cfg.SubClaimName)
	}
	scope, err := scopeOf(c[v.cfg.ScopeClaimName])
	if err != nil {
		return nil, refuse(ReasonClaims, "%s claim: %v", v.cfg.ScopeClaimName, err)
	}
	return &Token{Subject: sub, Expiry: exp.Time, Scope: scope}, nil
}

// scopeOf reads a scope claim: a space-separated string (RFC 8693 §4.2)
// or a list of strings, as Kafka accepts both.
func scopeOf(v any) ([]string, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		return strings.Fields(v), nil
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, errors.New("a list holding something other than strings")
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, errors.New("neither a string nor a list of strings")
}
