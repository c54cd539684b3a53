package metastoretest

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/sasl"
)

type scramKey struct{ user, mechanism string }

// AlterScramCredentials is metastore.Store.AlterScramCredentials.
func (s *Store) AlterScramCredentials(ctx context.Context, user string, upserts []sasl.ScramCredential, deletions []string) error {
	if user == "" {
		return errors.New("metastore: alter SCRAM credentials: empty user name")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("metastore: alter SCRAM credentials: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range deletions {
		if _, ok := s.scram[scramKey{user, m}]; !ok {
			return fmt.Errorf("metastore: alter SCRAM credentials: %w", metastore.ErrCredentialNotFound)
		}
	}
	s.write()
	for _, m := range deletions {
		delete(s.scram, scramKey{user, m})
		s.record(change{kind: scramChange, gone: true, scram: metastore.UserScramCredential{User: user, Credential: sasl.ScramCredential{Mechanism: m}}})
	}
	for _, c := range upserts {
		s.scram[scramKey{user, c.Mechanism}] = c
		s.record(change{kind: scramChange, scram: metastore.UserScramCredential{User: user, Credential: c}})
	}
	s.wake()
	return nil
}

// GetScramCredential is metastore.Store.GetScramCredential.
func (s *Store) GetScramCredential(ctx context.Context, user, mechanism string) (sasl.ScramCredential, bool, error) {
	if err := ctx.Err(); err != nil {
		return sasl.ScramCredential{}, false, fmt.Errorf("metastore: get SCRAM credential: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.scram[scramKey{user, mechanism}]
	return c, ok, nil
}

// ListScramCredentials is metastore.Store.ListScramCredentials.
func (s *Store) ListScramCredentials(ctx context.Context) ([]metastore.UserScramCredential, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("metastore: list SCRAM credentials: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedScram(s.scram), nil
}

func sortedScram(m map[scramKey]sasl.ScramCredential) []metastore.UserScramCredential {
	out := make([]metastore.UserScramCredential, 0, len(m))
	for k, c := range m {
		out = append(out, metastore.UserScramCredential{User: k.user, Credential: c})
	}
	metastore.SortScramCredentials(out)
	return out
}

// FollowScramCredentials is metastore.Store.FollowScramCredentials.
func (s *Store) FollowScramCredentials(ctx context.Context, fn func([]metastore.UserScramCredential)) {
	s.mu.Lock()
	current := maps.Clone(s.scram)
	pos := len(s.history)
	s.mu.Unlock()
	if ctx.Err() != nil {
		return
	}
	fn(sortedScram(current))
	s.tail(ctx, pos, scramChange, func(batch []change) bool {
		for _, c := range batch {
			k := scramKey{c.scram.User, c.scram.Credential.Mechanism}
			if c.gone {
				delete(current, k)
			} else {
				current[k] = c.scram.Credential
			}
		}
		fn(sortedScram(current))
		return true
	})
}
