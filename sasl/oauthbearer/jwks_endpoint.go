package oauthbearer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Kafka's defaults for a JWKS fetched over HTTP(S) (KIP-768).
const (
	DefaultJWKSRefresh         = time.Hour
	DefaultJWKSRetryBackoff    = 100 * time.Millisecond
	DefaultJWKSRetryBackoffMax = 10 * time.Second
)

// jwksFetchTimeout bounds one fetch of the JWKS: the validation that
// triggered it, and those waiting for it, wait no longer.
const jwksFetchTimeout = 10 * time.Second

// jwksEndpoint is a JWKS fetched over HTTP(S) and fetched again by the
// validations that use it, without a goroutine of its own: when the keys
// are older than the refresh interval, or a token names a kid they lack
// (the issuer rotated) and the last fetch is at least the maximum backoff
// old. One validation fetches at a time; others needing the new keys wait
// for it, the rest go on with the keys they have. A failed fetch keeps
// the keys and is retried after a backoff that doubles up to its maximum.
type jwksEndpoint struct {
	url        string
	client     *http.Client
	refresh    time.Duration
	backoff    time.Duration
	backoffMax time.Duration
	now        func() time.Time
	logger     *slog.Logger

	mu        sync.Mutex
	set       *keySet
	fetched   time.Time     // of the keys in set
	attempted time.Time     // of the last fetch, successful or not
	failures  int           // fetches failed in a row
	inFlight  chan struct{} // closed when the running fetch ends; nil when none runs
}

// keys returns the key set, fetching it again first when it is stale, or
// when it lacks kid and may be fetched again.
func (e *jwksEndpoint) keys(ctx context.Context, kid string) (*keySet, error) {
	for {
		e.mu.Lock()
		now := e.now()
		stale := now.Sub(e.fetched) >= e.refresh
		missing := kid != "" && !e.set.hasKid(kid)
		if !(stale || missing) || now.Before(e.nextAttemptLocked(missing)) {
			set := e.set
			e.mu.Unlock()
			return set, nil
		}
		if wait := e.inFlight; wait != nil {
			e.mu.Unlock()
			if !missing {
				// Stale keys serve until the running fetch replaces them.
				return e.current(), nil
			}
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		done := make(chan struct{})
		e.inFlight = done
		e.attempted = now
		e.mu.Unlock()

		// Detached from the caller: others may be waiting for this fetch.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksFetchTimeout)
		set, err := e.fetch(fctx)
		cancel()

		e.mu.Lock()
		if err != nil {
			e.failures++
			e.logger.Warn("JWKS fetch failed; keeping the keys loaded", "url", e.url, "err", err, "failures", e.failures)
		} else {
			e.set, e.fetched, e.failures = set, e.now(), 0
		}
		e.inFlight = nil
		close(done)
		set = e.set
		e.mu.Unlock()
		return set, nil
	}
}

func (e *jwksEndpoint) current() *keySet {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.set
}

// nextAttemptLocked is the earliest time another fetch may start. Lock
// should be held.
func (e *jwksEndpoint) nextAttemptLocked(forMissingKid bool) time.Time {
	if e.failures > 0 {
		d := e.backoff
		for i := 1; i < e.failures && d < e.backoffMax; i++ {
			d *= 2
		}
		return e.attempted.Add(min(d, e.backoffMax))
	}
	if forMissingKid {
		// A token with a kid nobody published must not make every
		// validation fetch.
		return e.attempted.Add(e.backoffMax)
	}
	return e.attempted
}

// fetch gets and parses the JWKS, at most MaxKeyFileBytes of it.
func (e *jwksEndpoint) fetch(ctx context.Context) (*keySet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", e.url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxKeyFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", e.url, err)
	}
	if len(data) > MaxKeyFileBytes {
		return nil, fmt.Errorf("GET %s: more than the %d bytes allowed", e.url, MaxKeyFileBytes)
	}
	set, err := parseJWKS(data)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", e.url, err)
	}
	return set, nil
}

// loadJWKSEndpoint fetches the JWKS a first time: a validator that cannot
// is an error, as a missing file is.
func loadJWKSEndpoint(ctx context.Context, e *jwksEndpoint) error {
	fctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	set, err := e.fetch(fctx)
	if err != nil {
		return err
	}
	if set == nil {
		return errors.New("empty JWKS")
	}
	e.set, e.fetched, e.attempted = set, e.now(), e.now()
	return nil
}

func (s *keySet) hasKid(kid string) bool {
	if s == nil {
		return false
	}
	for _, k := range s.keys {
		if k.kid == kid {
			return true
		}
	}
	return false
}
