package oauthbearer

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/fakeclock"
)

// jwksServer serves a JWKS over HTTPS that a test replaces, or fails.
type jwksServer struct {
	*httptest.Server
	requests atomic.Int64
	mu       sync.Mutex
	body     []byte
	status   int
}

func newJWKSServer(t *testing.T, keys ...testKey) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.serve(t, http.StatusOK, keys...)
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		w.WriteHeader(s.status)
		_, _ = w.Write(s.body)
	}))
	t.Cleanup(s.Close)
	return s
}

// serve makes the server answer status with keys from now on.
func (s *jwksServer) serve(t *testing.T, status int, keys ...testKey) {
	t.Helper()
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	for _, k := range keys {
		set.Keys = append(set.Keys, jwkOf(t, k))
	}
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.status = body, status
}

func TestJWKSEndpoint(t *testing.T) {
	f := newFixture(t)
	srv := newJWKSServer(t, f.rs)
	clock := fakeclock.New(now)
	v, err := NewValidator(context.Background(), Config{JWKSURL: srv.URL + "/jwks"},
		Options{Now: clock.Now, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	validate := func(k testKey) error {
		t.Helper()
		// Claims are checked against the moving clock too.
		_, _, err := v.Validate(context.Background(), sign(t, k, claims("exp", clock.Now().Add(time.Hour).Unix())))
		return err
	}
	requests := func(want int64) {
		t.Helper()
		if got := srv.requests.Load(); got != want {
			t.Fatalf("%d fetches of the JWKS, want %d", got, want)
		}
	}
	if err := validate(f.rs); err != nil {
		t.Fatal(err)
	}
	requests(1)

	// The issuer rotates to rsa-2. A token naming it right after the last
	// fetch is refused without a fetch, so a made-up kid cannot make every
	// validation fetch.
	srv.serve(t, http.StatusOK, f.rs2)
	var te *TokenError
	if err := validate(f.rs2); !errors.As(err, &te) || te.Reason != ReasonKey {
		t.Fatalf("rsa-2 right after a fetch: %v, want an unknown key", err)
	}
	requests(1)
	// Once the maximum backoff has passed, the unknown kid fetches.
	clock.Advance(DefaultJWKSRetryBackoffMax)
	if err := validate(f.rs2); err != nil {
		t.Fatalf("rsa-2 after the backoff: %v", err)
	}
	requests(2)
	if err := validate(f.rs); !errors.As(err, &te) || te.Reason != ReasonKey {
		t.Fatalf("rsa-1 after it left the JWKS: %v, want an unknown key", err)
	}
	requests(2)

	// Stale keys are fetched again; a failing endpoint keeps the keys and
	// is retried after a backoff.
	srv.serve(t, http.StatusInternalServerError)
	clock.Advance(DefaultJWKSRefresh)
	if err := validate(f.rs2); err != nil {
		t.Fatalf("with the endpoint failing: %v, want the loaded keys kept", err)
	}
	requests(3)
	if err := validate(f.rs2); err != nil {
		t.Fatal(err)
	}
	requests(3) // within the backoff
	clock.Advance(DefaultJWKSRetryBackoff)
	srv.serve(t, http.StatusOK, f.rs2, f.ec256)
	if err := validate(f.ec256); err != nil {
		t.Fatalf("after the endpoint recovered: %v", err)
	}
	requests(4)
	// Fresh keys serve without a fetch until the next refresh.
	clock.Advance(DefaultJWKSRefresh - time.Second)
	if err := validate(f.rs2); err != nil {
		t.Fatal(err)
	}
	requests(4)
}

func TestJWKSEndpointRefusals(t *testing.T) {
	f := newFixture(t)
	srv := newJWKSServer(t, f.rs)
	srv.serve(t, http.StatusNotFound)
	if _, err := NewValidator(context.Background(), Config{JWKSURL: srv.URL}, Options{HTTPClient: srv.Client()}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("NewValidator with a 404: %v", err)
	}
	srv.mu.Lock()
	srv.status, srv.body = http.StatusOK, []byte(`{"keys":[`+strings.Repeat(" ", MaxKeyFileBytes)+`]}`)
	srv.mu.Unlock()
	if _, err := NewValidator(context.Background(), Config{JWKSURL: srv.URL}, Options{HTTPClient: srv.Client()}); err == nil || !strings.Contains(err.Error(), "more than the") {
		t.Fatalf("NewValidator with an oversized JWKS: %v", err)
	}
	// The system's roots do not trust the test server.
	srv.serve(t, http.StatusOK, f.rs)
	if _, err := NewValidator(context.Background(), Config{JWKSURL: srv.URL}, Options{}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("NewValidator with an untrusted server: %v", err)
	}
}

// TestJWKSEndpointConcurrentValidations validates from several goroutines
// while the keys go stale and rotate, for the race detector.
func TestJWKSEndpointConcurrentValidations(t *testing.T) {
	f := newFixture(t)
	srv := newJWKSServer(t, f.rs, f.rs2)
	clock := fakeclock.New(now)
	v, err := NewValidator(context.Background(), Config{JWKSURL: srv.URL}, Options{Now: clock.Now, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	tokens := []string{sign(t, f.rs, claims("exp", now.Add(48*time.Hour).Unix())), sign(t, f.rs2, claims("exp", now.Add(48*time.Hour).Unix()))}
	var wg sync.WaitGroup
	errs := make(chan error, 8*20)
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				if g == 0 {
					clock.Advance(DefaultJWKSRefresh)
				}
				if _, _, err := v.Validate(context.Background(), tokens[(g+i)%2]); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := srv.requests.Load(); n < 2 || n > 21 {
		t.Fatalf("%d fetches for 20 refresh intervals", n)
	}
}
