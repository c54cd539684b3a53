package grpcapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/strata-broker/strata/internal/tlsconf"
)

// AnonymousPrincipal is the principal of a call that presented neither a
// client certificate nor credentials, as Kafka's.
const AnonymousPrincipal = "User:ANONYMOUS"

// AuthorizationMetadataKey is the call metadata that carries credentials:
// "Basic base64(user:password)" or "Bearer <token>", as HTTP's header.
const AuthorizationMetadataKey = "authorization"

// PasswordVerifier checks a user's password against the credentials the
// cluster stores, returning the user's principal ("User:alice").
type PasswordVerifier interface {
	VerifyPassword(ctx context.Context, user, password string) (principal string, err error)
}

// TokenValidator checks an OAuth bearer token, returning its principal and
// when it expires.
type TokenValidator interface {
	Validate(ctx context.Context, token string) (principal string, expiry time.Time, err error)
}

// credentialCacheTTL is how long a connection reuses a verified credential
// without verifying it again. Verifying a password is a salted hash of
// thousands of iterations (SCRAM), far more than a produce costs, so it is
// not done per call; a password changed or a user deleted stops working on
// open connections within this time, as Kafka's re-authentication bounds it.
const credentialCacheTTL = 30 * time.Second

// authenticator finds the principal of a call.
type authenticator struct {
	passwords PasswordVerifier // nil: Basic credentials are refused
	tokens    TokenValidator   // nil: Bearer tokens are refused
	now       func() time.Time
}

// errUnauthenticated is every credential failure's answer: it says nothing
// of whether the user exists, the password or the token was wrong, or
// the verifier failed.
var errUnauthenticated = status.Error(codes.Unauthenticated, "authentication failed")

// authenticate returns the principal of the call ctx carries: the
// principal of the credentials in its metadata (which must come over TLS),
// else of its TLS client certificate, else AnonymousPrincipal. Credentials
// win over a certificate, as Kafka's SASL does over SSL's.
func (a *authenticator) authenticate(ctx context.Context) (string, error) {
	var tlsState *credentials.TLSInfo
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			tlsState = &info
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	auth := md.Get(AuthorizationMetadataKey)
	switch {
	case len(auth) > 1:
		return "", status.Error(codes.Unauthenticated, "more than one authorization in the call metadata")
	case len(auth) == 1:
		if tlsState == nil {
			// Refused even when they are right: they crossed the network in
			// the clear, and saying so is the fix.
			return "", status.Error(codes.Unauthenticated, "credentials are accepted only over TLS")
		}
		return a.verify(ctx, auth[0])
	}
	if tlsState != nil {
		if p := tlsconf.Principal(tlsState.State); p != "" {
			return p, nil
		}
	}
	return AnonymousPrincipal, nil
}

func (a *authenticator) verify(ctx context.Context, authorization string) (string, error) {
	scheme, cred, _ := strings.Cut(authorization, " ")
	cred = strings.TrimSpace(cred)
	key := sha256.Sum256([]byte(strings.ToLower(scheme) + "\x00" + cred))
	cache, _ := ctx.Value(connCacheKey{}).(*connCache)
	now := a.now()
	if p, ok := cache.get(key, now); ok {
		return p, nil
	}
	var (
		principal string
		until     = now.Add(credentialCacheTTL)
	)
	switch {
	case strings.EqualFold(scheme, "Basic"):
		if a.passwords == nil {
			return "", errUnauthenticated
		}
		raw, err := base64.StdEncoding.DecodeString(cred)
		if err != nil {
			return "", errUnauthenticated
		}
		user, password, ok := strings.Cut(string(raw), ":")
		if !ok || user == "" {
			return "", errUnauthenticated
		}
		if principal, err = a.passwords.VerifyPassword(ctx, user, password); err != nil || principal == "" {
			return "", errUnauthenticated
		}
	case strings.EqualFold(scheme, "Bearer"):
		if a.tokens == nil {
			return "", errUnauthenticated
		}
		p, expiry, err := a.tokens.Validate(ctx, cred)
		if err != nil || p == "" || !expiry.After(now) {
			return "", errUnauthenticated
		}
		principal = p
		if expiry.Before(until) {
			until = expiry
		}
	default:
		return "", status.Error(codes.Unauthenticated, "authorization must be Basic or Bearer")
	}
	cache.put(key, principal, until)
	return principal, nil
}

// connCache remembers the last credential verified on one connection (a
// client sends the same one on every call), by its SHA-256 rather than the
// credential itself, so a password is not kept in memory. Failures are not
// remembered.
type connCache struct {
	mu        sync.Mutex
	key       [sha256.Size]byte
	principal string
	until     time.Time
}

type connCacheKey struct{}

// get is safe on a nil cache (a call the stats handler did not tag).
func (c *connCache) get(key [sha256.Size]byte, now time.Time) (string, bool) {
	if c == nil {
		return "", false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.principal == "" || !now.Before(c.until) || subtle.ConstantTimeCompare(c.key[:], key[:]) != 1 {
		return "", false
	}
	return c.principal, true
}

func (c *connCache) put(key [sha256.Size]byte, principal string, until time.Time) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.key, c.principal, c.until = key, principal, until
	c.mu.Unlock()
}

// connTagger gives each connection its credential cache: gRPC derives the
// context of every call on a connection from the one TagConn returns, so
// the cache lives exactly as long as the connection.
type connTagger struct{}

func (connTagger) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return context.WithValue(ctx, connCacheKey{}, &connCache{})
}
func (connTagger) HandleConn(context.Context, stats.ConnStats) {}
func (connTagger) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return ctx
}
func (connTagger) HandleRPC(context.Context, stats.RPCStats) {}

type principalKey struct{}

// withPrincipal is ctx of a call made by principal.
func withPrincipal(ctx context.Context, principal string) context.Context {
	return context.WithValue(ctx, principalKey{}, principal)
}

// PrincipalOf is the principal the call of ctx was authenticated as
// (AnonymousPrincipal outside an authenticated call).
func PrincipalOf(ctx context.Context) string {
	if p, ok := ctx.Value(principalKey{}).(string); ok {
		return p
	}
	return AnonymousPrincipal
}
