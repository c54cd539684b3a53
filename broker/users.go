package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/sasl"
)

// ScramStore keeps users' SCRAM credentials and reports their changes.
type ScramStore interface {
	AlterScramCredentials(ctx context.Context, user string, upserts []sasl.ScramCredential, deletions []string) error
	GetScramCredential(ctx context.Context, user, mechanism string) (sasl.ScramCredential, bool, error)
	ListScramCredentials(ctx context.Context) ([]metastore.UserScramCredential, error)
	FollowScramCredentials(ctx context.Context, fn func([]metastore.UserScramCredential))
}

// Refusals of a user's SCRAM credential alterations or descriptions, each
// one of Kafka's error codes.
var (
	// ErrResourceNotFound: a deletion or description names a credential
	// (or user) that does not exist (RESOURCE_NOT_FOUND).
	ErrResourceNotFound = errors.New("resource not found")
	// ErrDuplicateResource: one request names a user (describe) or a
	// user's mechanism (alter) twice (DUPLICATE_RESOURCE).
	ErrDuplicateResource = errors.New("duplicate resource")
	// ErrUnsupportedSaslMechanism: not a SCRAM mechanism
	// (UNSUPPORTED_SASL_MECHANISM).
	ErrUnsupportedSaslMechanism = errors.New("unsupported SASL mechanism")
	// ErrUnacceptableCredential: an empty user name or salt, or iterations
	// outside Kafka's bounds (UNACCEPTABLE_CREDENTIAL).
	ErrUnacceptableCredential = errors.New("unacceptable credential")
)

// ScramDeletion deletes a user's credential for one mechanism.
type ScramDeletion struct {
	User, Mechanism string
}

// ScramUpsertion sets a user's credential for one mechanism. The client
// salts the password (sasl.SaltPassword), as Kafka's do, so the password
// itself never reaches the broker.
type ScramUpsertion struct {
	User, Mechanism string
	Iterations      int
	Salt            []byte
	SaltedPassword  []byte
}

// UserScramResult is the outcome of one user's alterations: all of them
// or none.
type UserScramResult struct {
	User string
	Err  error
}

// ScramCredentialInfo describes a credential without its secrets.
type ScramCredentialInfo struct {
	Mechanism  string
	Iterations int
}

// UserScramCredentials describes one user's credentials, or why not.
type UserScramCredentials struct {
	User        string
	Credentials []ScramCredentialInfo
	Err         error
}

// scramUsers is the broker's view of the credentials, following the
// metastore, so that a login does not read etcd and a deletion reaches
// every broker through its watch.
type scramUsers struct {
	mu    sync.RWMutex
	creds map[string]map[string]sasl.ScramCredential // by user, then mechanism
	// misses bounds the logins that read etcd because the credential is
	// not (yet) in creds: a user created a moment ago on another broker,
	// or through this one before its watch delivered it. Made-up user
	// names cannot turn every login into an etcd read beyond it.
	misses *rate.Limiter
}

// Reads of etcd per second for credentials the broker's view lacks.
const (
	scramMissReadsPerSecond = 20
	scramMissReadBurst      = 20
	// scramMissReadTimeout bounds such a read: the login waits for it.
	scramMissReadTimeout = 2 * time.Second
)

func newScramUsers() scramUsers {
	return scramUsers{misses: rate.NewLimiter(scramMissReadsPerSecond, scramMissReadBurst)}
}

func (u *scramUsers) update(all []metastore.UserScramCredential) {
	m := make(map[string]map[string]sasl.ScramCredential, len(all))
	for _, c := range all {
		if m[c.User] == nil {
			m[c.User] = map[string]sasl.ScramCredential{}
		}
		m[c.User][c.Credential.Mechanism] = c.Credential
	}
	u.mu.Lock()
	u.creds = m
	u.mu.Unlock()
}

// followScram keeps the broker's credentials those of the metastore, on a
// goroutine wg accounts for, until ctx ends. ready is closed once the
// first set is in, so that no login is refused for credentials not loaded
// yet.
func (b *Broker) followScram(ctx context.Context, wg *sync.WaitGroup) (ready <-chan struct{}) {
	done := make(chan struct{})
	var once sync.Once
	wg.Add(1)
	go func() {
		defer wg.Done()
		b.store.FollowScramCredentials(ctx, func(all []metastore.UserScramCredential) {
			b.scram.update(all)
			once.Do(func() { close(done) })
		})
		once.Do(func() { close(done) })
	}()
	return done
}

// ScramCredential is a user's credential for a SCRAM mechanism
// (sasl.CredentialStore), as this broker last saw it, or, when it has not
// seen one, as etcd has it now: a user created through any broker can log
// in at once, without waiting for this broker's watch.
func (b *Broker) ScramCredential(ctx context.Context, user, mechanism string) (sasl.ScramCredential, bool, error) {
	b.scram.mu.RLock()
	c, ok := b.scram.creds[user][mechanism]
	b.scram.mu.RUnlock()
	if ok || !b.scram.misses.Allow() {
		return c, ok, nil
	}
	ctx, cancel := context.WithTimeout(ctx, scramMissReadTimeout)
	defer cancel()
	c, ok, err := b.store.GetScramCredential(ctx, user, mechanism)
	if err != nil {
		return sasl.ScramCredential{}, false, fmt.Errorf("broker: read SCRAM credential: %w", err)
	}
	return c, ok, nil
}

// VerifyPassword checks a user's password against the user's SCRAM
// credentials and returns the principal, "User:name". A refusal wraps
// sasl.ErrAuthentication and does not say whether the user exists.
func (b *Broker) VerifyPassword(ctx context.Context, user, password string) (principal string, err error) {
	return sasl.VerifyPassword(ctx, b, user, password)
}

// AlterUserScramCredentials applies deletions and upsertions per user, as
// Kafka's AlterUserScramCredentials does: a user's alterations are all
// checked first, and one refused refuses that user's others; other users
// are not affected. Results are in the order users first appear.
func (b *Broker) AlterUserScramCredentials(ctx context.Context, deletions []ScramDeletion, upsertions []ScramUpsertion) []UserScramResult {
	type alteration struct {
		err       error
		upserts   []sasl.ScramCredential
		deletions []string
		seen      map[string]bool // mechanisms altered
	}
	var order []string
	byUser := map[string]*alteration{}
	get := func(user, mechanism string) *alteration {
		a, ok := byUser[user]
		if !ok {
			a = &alteration{seen: map[string]bool{}}
			byUser[user] = a
			order = append(order, user)
		}
		switch {
		case a.err != nil:
		case user == "":
			a.err = fmt.Errorf("%w: the user name must not be empty", ErrUnacceptableCredential)
		case a.seen[mechanism]:
			a.err = fmt.Errorf("%w: a user's credential for %s cannot be altered twice in one request", ErrDuplicateResource, mechanism)
		default:
			if _, ok := sasl.ScramHash(mechanism); !ok {
				a.err = fmt.Errorf("%w: %q is not a SCRAM mechanism (%s or %s)", ErrUnsupportedSaslMechanism, mechanism, sasl.ScramSHA256, sasl.ScramSHA512)
			}
		}
		a.seen[mechanism] = true
		return a
	}
	for _, d := range deletions {
		if a := get(d.User, d.Mechanism); a.err == nil {
			a.deletions = append(a.deletions, d.Mechanism)
		}
	}
	for _, u := range upsertions {
		a := get(u.User, u.Mechanism)
		if a.err != nil {
			continue
		}
		switch {
		case u.Iterations < sasl.MinIterations:
			a.err = fmt.Errorf("%w: %d iterations is fewer than the minimum, %d", ErrUnacceptableCredential, u.Iterations, sasl.MinIterations)
		case u.Iterations > sasl.MaxIterations:
			a.err = fmt.Errorf("%w: %d iterations is more than the maximum, %d", ErrUnacceptableCredential, u.Iterations, sasl.MaxIterations)
		case len(u.Salt) == 0:
			a.err = fmt.Errorf("%w: the salt must not be empty", ErrUnacceptableCredential)
		case len(u.SaltedPassword) == 0:
			a.err = fmt.Errorf("%w: the salted password must not be empty", ErrUnacceptableCredential)
		}
		if a.err != nil {
			continue
		}
		c, err := sasl.CredentialFromSalted(u.Mechanism, u.Salt, u.SaltedPassword, u.Iterations)
		if err != nil {
			a.err = fmt.Errorf("%w: %v", ErrUnsupportedSaslMechanism, err)
			continue
		}
		a.upserts = append(a.upserts, c)
	}
	out := make([]UserScramResult, 0, len(order))
	for _, user := range order {
		a := byUser[user]
		if a.err == nil {
			err := b.store.AlterScramCredentials(ctx, user, a.upserts, a.deletions)
			switch {
			case errors.Is(err, metastore.ErrCredentialNotFound):
				a.err = fmt.Errorf("%w: attempt to delete a user credential that does not exist", ErrResourceNotFound)
			case err != nil:
				a.err = fmt.Errorf("broker: %w", err)
			}
		}
		out = append(out, UserScramResult{User: user, Err: a.err})
	}
	return out
}

// DescribeUserScramCredentials describes the named users' credentials
// (every user's when users is empty), read from the metastore so that a
// change made through any broker is seen at once. A user named twice, or
// without credentials, gets its own error, as in Kafka.
func (b *Broker) DescribeUserScramCredentials(ctx context.Context, users []string) ([]UserScramCredentials, error) {
	all, err := b.store.ListScramCredentials(ctx)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	infos := map[string][]ScramCredentialInfo{}
	var everyone []string
	for _, c := range all {
		if _, ok := infos[c.User]; !ok {
			everyone = append(everyone, c.User)
		}
		infos[c.User] = append(infos[c.User], ScramCredentialInfo{Mechanism: c.Credential.Mechanism, Iterations: c.Credential.Iterations})
	}
	if len(users) == 0 {
		users = everyone
	}
	count := map[string]int{}
	for _, u := range users {
		count[u]++
	}
	out := make([]UserScramCredentials, 0, len(users))
	done := map[string]bool{}
	for _, u := range users {
		if done[u] {
			continue
		}
		done[u] = true
		r := UserScramCredentials{User: u, Credentials: infos[u]}
		switch {
		case count[u] > 1:
			r.Credentials, r.Err = nil, fmt.Errorf("%w: cannot describe SCRAM credentials for the same user twice in a single request", ErrDuplicateResource)
		case len(r.Credentials) == 0:
			r.Err = fmt.Errorf("%w: attempt to describe a user credential that does not exist", ErrResourceNotFound)
		}
		out = append(out, r)
	}
	return out, nil
}
