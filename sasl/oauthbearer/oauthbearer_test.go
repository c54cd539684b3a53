package oauthbearer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/sasl/oauth"

	"github.com/strata-broker/strata/sasl"
)

// now is the clock every test validator runs on.
var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testKey is a signing key and the kid it is published under.
type testKey struct {
	kid    string
	priv   crypto.Signer
	method jwt.SigningMethod
}

var (
	rsaOnce   sync.Once
	rsaKeys   [2]*rsa.PrivateKey
	rsaKeyErr error
)

// rsaKey returns one of two RSA keys generated once per test binary: a
// 2048-bit key takes long enough under -race to be worth sharing.
func rsaKey(t *testing.T, i int) *rsa.PrivateKey {
	t.Helper()
	rsaOnce.Do(func() {
		for j := range rsaKeys {
			if rsaKeys[j], rsaKeyErr = rsa.GenerateKey(rand.Reader, 2048); rsaKeyErr != nil {
				return
			}
		}
	})
	if rsaKeyErr != nil {
		t.Fatal(rsaKeyErr)
	}
	return rsaKeys[i]
}

func ecKey(t *testing.T, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func jwkOf(t *testing.T, k testKey) map[string]string {
	t.Helper()
	switch p := k.priv.Public().(type) {
	case *rsa.PublicKey:
		return map[string]string{"kty": "RSA", "kid": k.kid, "use": "sig", "n": b64(p.N.Bytes()), "e": "AQAB"}
	case *ecdsa.PublicKey:
		size := (p.Curve.Params().BitSize + 7) / 8
		enc, err := p.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		return map[string]string{"kty": "EC", "kid": k.kid, "crv": p.Curve.Params().Name,
			"x": b64(enc[1 : 1+size]), "y": b64(enc[1+size:])}
	}
	t.Fatalf("key of type %T", k.priv)
	return nil
}

// writeJWKS writes keys as a JWKS file whose modification time is mtime.
func writeJWKS(t *testing.T, path string, mtime time.Time, keys ...testKey) {
	t.Helper()
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	for _, k := range keys {
		set.Keys = append(set.Keys, jwkOf(t, k))
	}
	data, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func sign(t *testing.T, k testKey, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(k.method, claims)
	if k.kid != "" {
		tok.Header["kid"] = k.kid
	}
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func unsigned(claims string) string {
	return b64([]byte(`{"alg":"none"}`)) + "." + b64([]byte(claims)) + "."
}

// claims are valid claims for alice, changed by the given settings.
func claims(kv ...any) jwt.MapClaims {
	c := jwt.MapClaims{"sub": "alice", "exp": now.Add(time.Hour).Unix(), "iat": now.Add(-time.Minute).Unix(),
		"iss": "https://issuer.example", "aud": "strata"}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
		} else {
			c[kv[i].(string)] = kv[i+1]
		}
	}
	return c
}

func newValidator(t *testing.T, cfg Config, reg prometheus.Registerer) *Validator {
	t.Helper()
	if cfg.ClockSkew == 0 {
		cfg.ClockSkew = DefaultClockSkew
	}
	v, err := NewValidator(context.Background(), cfg, Options{Now: func() time.Time { return now }, KeyCheckInterval: -1, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

type fixture struct {
	rs, rs2, ec256, ec384 testKey
	jwks                  string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	f := fixture{
		rs:    testKey{kid: "rsa-1", priv: rsaKey(t, 0), method: jwt.SigningMethodRS256},
		rs2:   testKey{kid: "rsa-2", priv: rsaKey(t, 1), method: jwt.SigningMethodRS256},
		ec256: testKey{kid: "ec-256", priv: ecKey(t, elliptic.P256()), method: jwt.SigningMethodES256},
		ec384: testKey{kid: "ec-384", priv: ecKey(t, elliptic.P384()), method: jwt.SigningMethodES384},
		jwks:  filepath.Join(t.TempDir(), "jwks.json"),
	}
	writeJWKS(t, f.jwks, time.Now().Add(-time.Minute), f.rs, f.ec256, f.ec384)
	return f
}

func TestValidTokensAccepted(t *testing.T) {
	f := newFixture(t)
	v := newValidator(t, Config{JWKSFile: f.jwks, ExpectedAudience: []string{"other", "strata"}, ExpectedIssuer: "https://issuer.example"}, nil)
	with := func(k testKey, m jwt.SigningMethod) testKey { k.method = m; return k }
	for _, k := range []testKey{
		f.rs,
		with(f.rs, jwt.SigningMethodRS384),
		with(f.rs, jwt.SigningMethodRS512),
		with(f.rs, jwt.SigningMethodPS256),
		with(f.rs, jwt.SigningMethodPS384),
		with(f.rs, jwt.SigningMethodPS512),
		f.ec256,
		f.ec384,
	} {
		t.Run(k.method.Alg(), func(t *testing.T) {
			exp := now.Add(42 * time.Minute)
			principal, expiry, err := v.Validate(context.Background(), sign(t, k, claims("exp", exp.Unix())))
			if err != nil {
				t.Fatal(err)
			}
			if principal != "User:alice" || !expiry.Equal(exp) {
				t.Fatalf("Validate = %q, %v; want User:alice, %v", principal, expiry, exp)
			}
		})
	}
	if got := testutil.ToFloat64(v.results.WithLabelValues("accepted")); got != 8 {
		t.Fatalf("accepted tokens counted: %v, want 8", got)
	}
}

func TestES512(t *testing.T) {
	k := testKey{kid: "ec-521", priv: ecKey(t, elliptic.P521()), method: jwt.SigningMethodES512}
	path := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, path, time.Now(), k)
	v := newValidator(t, Config{JWKSFile: path}, nil)
	if _, _, err := v.Validate(context.Background(), sign(t, k, claims())); err != nil {
		t.Fatal(err)
	}
}

func TestPublicKeyFile(t *testing.T) {
	for _, priv := range []crypto.Signer{rsaKey(t, 0), ecKey(t, elliptic.P256())} {
		der, err := x509.MarshalPKIXPublicKey(priv.Public())
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "issuer.pem")
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		v := newValidator(t, Config{PublicKeyFile: path}, nil)
		method := jwt.SigningMethod(jwt.SigningMethodRS256)
		if _, ok := priv.(*ecdsa.PrivateKey); ok {
			method = jwt.SigningMethodES256
		}
		// A public key file needs no kid.
		principal, _, err := v.Validate(context.Background(), sign(t, testKey{priv: priv, method: method}, claims()))
		if err != nil || principal != "User:alice" {
			t.Fatalf("%s: Validate = %q, %v", method.Alg(), principal, err)
		}
	}
}

func TestRefusedTokens(t *testing.T) {
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	v := newValidator(t, Config{JWKSFile: f.jwks, ExpectedAudience: []string{"strata"}, ExpectedIssuer: "https://issuer.example"}, reg)
	forged := f.rs2
	forged.kid = f.rs.kid // signed by another key under the published kid
	hs := testKey{kid: f.rs.kid, method: jwt.SigningMethodHS256}
	hsToken := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims())
		tok.Header["kid"] = hs.kid
		s, err := tok.SignedString([]byte("a shared secret"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()
	tamper := func(tok string) string {
		parts := strings.Split(tok, ".")
		parts[1] = b64([]byte(`{"sub":"mallory","exp":99999999999}`))
		return strings.Join(parts, ".")
	}
	for _, tc := range []struct {
		name   string
		token  string
		reason string
		want   string
	}{
		{"expired", sign(t, f.rs, claims("exp", now.Add(-time.Minute).Unix())), ReasonExpired, "token expired at"},
		{"not yet valid", sign(t, f.rs, claims("nbf", now.Add(time.Minute).Unix())), ReasonNotYetValid, "not valid before"},
		{"issued in the future", sign(t, f.rs, claims("iat", now.Add(time.Minute).Unix())), ReasonNotYetValid, "issued in the future"},
		{"wrong audience", sign(t, f.rs, claims("aud", []string{"kafka", "other"})), ReasonAudience, `audience ["kafka" "other"] is not one expected`},
		{"no audience", sign(t, f.rs, claims("aud", nil)), ReasonAudience, "audience"},
		{"wrong issuer", sign(t, f.rs, claims("iss", "https://evil.example")), ReasonIssuer, `issuer "https://evil.example" is not the one expected`},
		{"unknown kid", sign(t, testKey{kid: "nope", priv: f.rs.priv, method: jwt.SigningMethodRS256}, claims()), ReasonKey, `no key with kid "nope"`},
		{"kid of another key type", sign(t, testKey{kid: f.ec256.kid, priv: f.rs.priv, method: jwt.SigningMethodRS256}, claims()), ReasonKey, `no key with kid "ec-256" for RS256`},
		{"bad signature", sign(t, forged, claims()), ReasonSignature, "bad signature"},
		{"tampered claims", tamper(sign(t, f.rs, claims())), ReasonSignature, "bad signature"},
		{"alg none, unsecured off", unsigned(`{"sub":"admin","exp":99999999999}`), ReasonAlgorithm, "unsecured validation is off"},
		{"HS256", hsToken, ReasonAlgorithm, `algorithm "HS256" not accepted`},
		{"unknown alg", b64([]byte(`{"alg":"XX1"}`)) + "." + b64([]byte(`{}`)) + ".c2ln", ReasonAlgorithm, "unsupported algorithm"},
		{"no exp", sign(t, f.rs, claims("exp", nil)), ReasonClaims, "no exp claim"},
		{"exp not a number", sign(t, f.rs, claims("exp", "tomorrow")), ReasonClaims, "exp:"},
		{"no sub", sign(t, f.rs, claims("sub", nil)), ReasonClaims, "no sub claim"},
		{"scope not a string", sign(t, f.rs, claims("scope", 7)), ReasonClaims, "scope claim"},
		{"two segments", "abc.def", ReasonMalformed, "malformed token"},
		{"not base64", "a$b.c.d", ReasonMalformed, "malformed token"},
		{"too large", strings.Repeat("a", MaxTokenBytes+1), ReasonTooLarge, "more than the 65536 allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(v.results.WithLabelValues(tc.reason))
			principal, _, err := v.Validate(context.Background(), tc.token)
			if err == nil {
				t.Fatalf("Validate accepted it as %q", principal)
			}
			var te *TokenError
			if !errors.As(err, &te) || !errors.Is(err, sasl.ErrAuthentication) {
				t.Fatalf("err = %v (%T), want a *TokenError wrapping sasl.ErrAuthentication", err, err)
			}
			if te.Reason != tc.reason || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "invalid_token: ") {
				t.Fatalf("err = %q (reason %s), want reason %s and %q", err, te.Reason, tc.reason, tc.want)
			}
			if got := testutil.ToFloat64(v.results.WithLabelValues(tc.reason)); got != before+1 {
				t.Fatalf("refusals counted for %s: %v, want %v", tc.reason, got, before+1)
			}
		})
	}
	if n, err := testutil.GatherAndCount(reg, "strata_oauthbearer_validations_total"); err != nil || n != 11 {
		t.Fatalf("registered series: %d, %v; want 11 (accepted and each reason)", n, err)
	}
}

func TestClockSkew(t *testing.T) {
	f := newFixture(t)
	v := newValidator(t, Config{JWKSFile: f.jwks, ClockSkew: time.Minute}, nil)
	ok := []jwt.MapClaims{
		claims("exp", now.Add(-59*time.Second).Unix()),
		claims("nbf", now.Add(59*time.Second).Unix()),
		claims("iat", now.Add(59*time.Second).Unix()),
	}
	for _, c := range ok {
		if _, _, err := v.Validate(context.Background(), sign(t, f.rs, c)); err != nil {
			t.Errorf("%v: %v, want accepted within the skew", c, err)
		}
	}
	if _, _, err := v.Validate(context.Background(), sign(t, f.rs, claims("exp", now.Add(-61*time.Second).Unix()))); err == nil {
		t.Error("a token expired for longer than the skew was accepted")
	}
}

func TestClaimNames(t *testing.T) {
	f := newFixture(t)
	v := newValidator(t, Config{JWKSFile: f.jwks, SubClaimName: "client_id", ScopeClaimName: "scp"}, nil)
	s := NewMechanism(v).Start().(*Session)
	tok := sign(t, f.rs, claims("client_id", "svc-orders", "scp", []string{"kafka.read", "kafka.write"}))
	if _, done, err := s.Step(context.Background(), clientResponse("", tok)); err != nil || !done {
		t.Fatalf("Step = %v, %v", done, err)
	}
	if s.Principal() != "User:svc-orders" || strings.Join(s.Token().Scope, " ") != "kafka.read kafka.write" {
		t.Fatalf("principal %q, scope %q", s.Principal(), s.Token().Scope)
	}
	// A space-separated scope string, RFC 8693's form.
	v = newValidator(t, Config{JWKSFile: f.jwks}, nil)
	tk, err := v.validate(context.Background(), sign(t, f.rs, claims("scope", "a b  c")))
	if err != nil || strings.Join(tk.Scope, ",") != "a,b,c" {
		t.Fatalf("scope %q, %v", tk.Scope, err)
	}
}

func TestUnknownKidAcceptedAfterJWKSChanges(t *testing.T) {
	f := newFixture(t)
	v := newValidator(t, Config{JWKSFile: f.jwks}, nil)
	tok := sign(t, f.rs2, claims())
	var te *TokenError
	if _, _, err := v.Validate(context.Background(), tok); !errors.As(err, &te) || te.Reason != ReasonKey {
		t.Fatalf("before the JWKS names rsa-2: %v, want an unknown key", err)
	}
	// The issuer rotates: rsa-1 goes, rsa-2 comes.
	writeJWKS(t, f.jwks, time.Now(), f.rs2, f.ec256)
	if _, _, err := v.Validate(context.Background(), tok); err != nil {
		t.Fatalf("after the JWKS names rsa-2: %v", err)
	}
	if _, _, err := v.Validate(context.Background(), sign(t, f.rs, claims())); !errors.As(err, &te) || te.Reason != ReasonKey {
		t.Fatalf("rsa-1 after it left the JWKS: %v, want an unknown key", err)
	}
	// A broken file keeps the keys loaded.
	if err := os.WriteFile(f.jwks, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := v.Validate(context.Background(), tok); err != nil {
		t.Fatalf("after the JWKS broke: %v, want the loaded keys kept", err)
	}
}

func TestNewValidatorRefusals(t *testing.T) {
	dir := t.TempDir()
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weakJWKS := filepath.Join(dir, "weak.json")
	writeJWKS(t, weakJWKS, time.Now(), testKey{kid: "w", priv: weak})
	hmacJWKS := filepath.Join(dir, "hmac.json")
	if err := os.WriteFile(hmacJWKS, []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.json")
	if err := os.WriteFile(big, make([]byte, MaxKeyFileBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no key to verify tokens with"},
		{Config{JWKSFile: weakJWKS}, "RSA key of 1024 bits"},
		{Config{JWKSFile: hmacJWKS}, `key type "oct"`},
		{Config{JWKSFile: big}, "more than the"},
		{Config{JWKSFile: filepath.Join(dir, "missing")}, "no such file"},
		{Config{JWKSFile: weakJWKS, PublicKeyFile: weakJWKS}, "use one"},
		{Config{JWKSURL: "http://127.0.0.1:1/jwks"}, "connection refused"},
		{Config{PublicKeyFile: hmacJWKS}, "no PEM PUBLIC KEY"},
	} {
		if _, err := NewValidator(context.Background(), tc.cfg, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewValidator(%+v) = %v, want an error with %q", tc.cfg, err, tc.want)
		}
	}
}

func TestUnsecuredModeWarnsAtStart(t *testing.T) {
	var logs strings.Builder
	if _, err := NewValidator(context.Background(), Config{Unsecured: true}, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "unsecured validation is on") {
		t.Fatalf("log: %q, want a warning", logs.String())
	}
}

// clientResponse is the initial response Kafka's client sends.
func clientResponse(authzid, token string, ext ...string) []byte {
	s := "n,"
	if authzid != "" {
		s += "a=" + authzid
	}
	s += ",\x01auth=Bearer " + token + "\x01"
	for _, e := range ext {
		s += e + "\x01"
	}
	return []byte(s + "\x01")
}

func TestInvalidTokenChallenge(t *testing.T) {
	f := newFixture(t)
	v := newValidator(t, Config{JWKSFile: f.jwks}, nil)
	s := NewMechanism(v).Start()
	out, done, err := s.Step(context.Background(), clientResponse("", sign(t, f.rs, claims("exp", now.Add(-time.Hour).Unix()))))
	if err != nil || done || string(out) != `{"status":"invalid_token"}` {
		t.Fatalf("first Step = %q, %v, %v; want the invalid_token challenge", out, done, err)
	}
	out, done, err = s.Step(context.Background(), []byte{1})
	if err == nil || done || out != nil {
		t.Fatalf("Step(0x01) = %q, %v, %v; want the failure", out, done, err)
	}
	if !errors.Is(err, sasl.ErrAuthentication) || !strings.Contains(err.Error(), "invalid_token") || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("err = %v, want sasl.ErrAuthentication with invalid_token and the reason", err)
	}
	if s.Principal() != "" || !s.Expiry().IsZero() {
		t.Fatalf("a failed session has principal %q, expiry %v", s.Principal(), s.Expiry())
	}
	// Anything but 0x01 after the challenge fails too.
	s = NewMechanism(v).Start()
	if out, _, _ := s.Step(context.Background(), clientResponse("", "a.b.c")); string(out) != `{"status":"invalid_token"}` {
		t.Fatalf("malformed token: %q, want the challenge", out)
	}
	if _, _, err := s.Step(context.Background(), clientResponse("", "a.b.c")); !errors.Is(err, sasl.ErrAuthentication) {
		t.Fatalf("second response after the challenge: %v", err)
	}
}

func TestSessionAccepted(t *testing.T) {
	f := newFixture(t)
	v := newValidator(t, Config{JWKSFile: f.jwks}, nil)
	exp := now.Add(10 * time.Minute)
	tok := sign(t, f.ec256, claims("exp", exp.Unix()))
	s := NewMechanism(v).Start().(*Session)
	out, done, err := s.Step(context.Background(), clientResponse("alice", tok, "traceId=abc 123"))
	if err != nil || !done || len(out) != 0 {
		t.Fatalf("Step = %q, %v, %v", out, done, err)
	}
	if s.Principal() != "User:alice" || !s.Expiry().Equal(exp) || s.Extensions()["traceId"] != "abc 123" {
		t.Fatalf("principal %q, expiry %v, extensions %v", s.Principal(), s.Expiry(), s.Extensions())
	}
	if _, _, err := s.Step(context.Background(), clientResponse("", tok)); !errors.Is(err, sasl.ErrAuthentication) {
		t.Fatalf("Step after done: %v, want a refusal", err)
	}
	// An authzid that is not the token's subject is refused.
	s = NewMechanism(v).Start().(*Session)
	if _, _, err := s.Step(context.Background(), clientResponse("bob", tok)); !errors.Is(err, sasl.ErrAuthentication) || !strings.Contains(err.Error(), `authorization id "bob"`) {
		t.Fatalf("authzid bob with alice's token: %v", err)
	}
}

func TestMalformedClientResponse(t *testing.T) {
	const tok = "eyJh.eyJz.c2ln"
	for _, tc := range []struct {
		name string
		in   string
		want string
	}{
		{"empty", "", "no GS2 header"},
		{"channel binding y", "y,,\x01auth=Bearer " + tok + "\x01\x01", "channel binding"},
		{"channel binding p", "p=tls-unique,,\x01auth=Bearer " + tok + "\x01\x01", "channel binding"},
		{"bad flag", "x,,\x01auth=Bearer " + tok + "\x01\x01", "must start with n"},
		{"no second comma", "n,a=bob\x01auth=Bearer " + tok + "\x01\x01", "not ended by a comma"},
		{"not a=", "n,b=bob,\x01auth=Bearer " + tok + "\x01\x01", "a=authzid"},
		{"bad escape", "n,a=b=ob,\x01auth=Bearer " + tok + "\x01\x01", "'=' not followed by 2C or 3D"},
		{"empty authzid", "n,a=,\x01auth=Bearer " + tok + "\x01\x01", "authzid: empty"},
		{"no 0x01", "n,,auth=Bearer " + tok + "\x01\x01", "no 0x01 after the GS2 header"},
		{"no final 0x01", "n,,\x01auth=Bearer " + tok + "\x01", "not ended by 0x01 0x01"},
		{"no auth", "n,,\x01foo=bar\x01\x01", "no auth"},
		{"auth twice", "n,,\x01auth=Bearer " + tok + "\x01auth=Bearer " + tok + "\x01\x01", "auth given twice"},
		{"pair without =", "n,,\x01auth=Bearer " + tok + "\x01junk\x01\x01", "without '='"},
		{"bad key", "n,,\x01auth=Bearer " + tok + "\x01k1=v\x01\x01", `key "k1"`},
		{"empty value", "n,,\x01auth=Bearer " + tok + "\x01k=\x01\x01", "is empty or holds"},
		{"value with NUL", "n,,\x01auth=Bearer " + tok + "\x01k=a\x00b\x01\x01", "is empty or holds"},
		{"extension twice", "n,,\x01auth=Bearer " + tok + "\x01k=a\x01k=b\x01\x01", `extension "k" given twice`},
		{"basic scheme", "n,,\x01auth=Basic " + tok + "\x01\x01", `"Bearer <token>"`},
		{"no token", "n,,\x01auth=Bearer\x01\x01", `"Bearer <token>"`},
		{"bad token chars", "n,,\x01auth=Bearer a+b/c\x01\x01", "the token is empty or holds"},
		{"too large", "n,,\x01auth=Bearer " + strings.Repeat("a", MaxMessageBytes) + "\x01\x01", "more than the"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseClientResponse([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "invalid OAUTHBEARER client first message: ") {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// Through a session, the failure is an authentication failure.
	s := NewMechanism(newValidator(t, Config{Unsecured: true}, nil)).Start()
	if _, _, err := s.Step(context.Background(), []byte("y,,\x01\x01")); !errors.Is(err, sasl.ErrAuthentication) {
		t.Fatalf("Step: %v, want sasl.ErrAuthentication", err)
	}
}

func TestClientResponseEscapesAndCase(t *testing.T) {
	r, err := ParseClientResponse([]byte("n,a=a=2Cb=3Dc,\x01auth=bearer   tok.en-_\x01\x01"))
	if err != nil {
		t.Fatal(err)
	}
	if r.AuthzID != "a,b=c" || r.Token != "tok.en-_" || r.Extensions != nil {
		t.Fatalf("%+v", r)
	}
}

// franzGo runs franz-go's OAUTHBEARER client against a session, as a
// broker's SaslAuthenticate would carry it, and returns the client's
// error.
func franzGo(t *testing.T, s sasl.Session, token string) error {
	t.Helper()
	ctx := context.Background()
	cs, msg, err := oauth.Auth{Token: token}.AsMechanism().Authenticate(ctx, "localhost:9092")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		out, done, err := s.Step(ctx, msg)
		if err != nil {
			return fmt.Errorf("SASL_AUTHENTICATION_FAILED: %w", err)
		}
		clientDone, next, cerr := cs.Challenge(out)
		if cerr != nil {
			return cerr
		}
		if done != clientDone {
			t.Fatalf("broker done %v, client done %v", done, clientDone)
		}
		if done {
			return nil
		}
		msg = next
	}
	t.Fatal("the exchange did not end")
	return nil
}

// TestUnsecuredFranzGoToken is franz-go's TestOAuthAuth against the
// mechanism: its unsigned token is accepted while fresh and refused with
// invalid_token once expired.
func TestUnsecuredFranzGoToken(t *testing.T) {
	v := newValidator(t, Config{Unsecured: true}, nil)
	tokenFor := func(exp time.Time) string {
		enc := base64.RawURLEncoding.EncodeToString
		claims := fmt.Sprintf(`{"sub":"admin","exp":%d}`, exp.Unix())
		return enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(claims)) + "."
	}
	s := NewMechanism(v).Start()
	if err := franzGo(t, s, tokenFor(now.Add(time.Hour))); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	if s.Principal() != "User:admin" || !s.Expiry().Equal(now.Add(time.Hour).Truncate(time.Second)) {
		t.Fatalf("principal %q, expiry %v", s.Principal(), s.Expiry())
	}
	err := franzGo(t, NewMechanism(v).Start(), tokenFor(now.Add(-time.Minute)))
	if err == nil || !errors.Is(err, sasl.ErrAuthentication) || !strings.Contains(err.Error(), "invalid_token") {
		t.Fatalf("expired token: %v, want SASL_AUTHENTICATION_FAILED with invalid_token", err)
	}
	// Claims are still checked: no sub, no principal.
	if err := franzGo(t, NewMechanism(v).Start(), unsigned(fmt.Sprintf(`{"exp":%d}`, now.Add(time.Hour).Unix()))); err == nil || !strings.Contains(err.Error(), "no sub claim") {
		t.Fatalf("token without sub: %v", err)
	}
	// An unsigned token must carry no signature.
	if _, _, err := v.Validate(context.Background(), tokenFor(now.Add(time.Hour))+"c2ln"); err == nil {
		t.Fatal("an alg none token with a signature was accepted")
	}
	// A signed token needs a key, which unsecured-only mode lacks.
	if _, _, err := v.Validate(context.Background(), sign(t, testKey{priv: ecKey(t, elliptic.P256()), method: jwt.SigningMethodES256}, claims())); err == nil || !strings.Contains(err.Error(), "no key is configured") {
		t.Fatalf("signed token in unsecured-only mode: %v", err)
	}
}

func TestValidateHonoursContext(t *testing.T) {
	v := newValidator(t, Config{Unsecured: true}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := v.Validate(ctx, unsigned(`{"sub":"a","exp":99999999999}`)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Validate with a cancelled context: %v", err)
	}
	if got := testutil.ToFloat64(v.results.WithLabelValues("accepted")); got != 0 {
		t.Fatalf("a cancelled validation was counted as accepted")
	}
}
