package metastore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strata-broker/strata/sasl"
)

// ErrCredentialNotFound: a deletion named a SCRAM credential that does not
// exist.
var ErrCredentialNotFound = errors.New("metastore: SCRAM credential not found")

// UserScramCredential is one user's credential for one SCRAM mechanism:
// the salt, iterations and derived keys, never the password.
type UserScramCredential struct {
	User       string               `json:"user"`
	Credential sasl.ScramCredential `json:"credential"`
}

func (s *Store) scramPrefix() string { return s.prefix + "/scram/" }

// scramKey names a user's credential for a mechanism. The user name is
// escaped: Kafka allows any character in it, '/' included.
func (s *Store) scramKey(user, mechanism string) string {
	return s.scramPrefix() + url.PathEscape(user) + "/" + mechanism
}

// SortScramCredentials orders credentials by user then mechanism, the
// order ListScramCredentials and FollowScramCredentials deliver.
func SortScramCredentials(cs []UserScramCredential) {
	slices.SortFunc(cs, func(a, b UserScramCredential) int {
		return cmp.Or(cmp.Compare(a.User, b.User), cmp.Compare(a.Credential.Mechanism, b.Credential.Mechanism))
	})
}

// AlterScramCredentials changes one user's SCRAM credentials in one
// transaction: it deletes those of the mechanisms in deletions and stores
// upserts (replacing any of the same mechanism). When a deletion names a
// credential that does not exist nothing changes and the error wraps
// ErrCredentialNotFound.
func (s *Store) AlterScramCredentials(ctx context.Context, user string, upserts []sasl.ScramCredential, deletions []string) error {
	if user == "" {
		return errors.New("metastore: alter SCRAM credentials: empty user name")
	}
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	for _, m := range deletions {
		k := s.scramKey(user, m)
		cmps = append(cmps, clientv3.Compare(clientv3.Version(k), ">", 0))
		ops = append(ops, clientv3.OpDelete(k))
	}
	for _, c := range upserts {
		val, err := encode(UserScramCredential{User: user, Credential: c})
		if err != nil {
			return fmt.Errorf("metastore: alter SCRAM credentials: %w", err)
		}
		ops = append(ops, clientv3.OpPut(s.scramKey(user, c.Mechanism), val))
	}
	resp, err := s.client.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("metastore: alter SCRAM credentials: %w", err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("metastore: alter SCRAM credentials: %w", ErrCredentialNotFound)
	}
	return nil
}

// ListScramCredentials returns every user's SCRAM credentials, sorted.
// GetScramCredential reads one user's credential for one mechanism; ok is
// false when there is none.
func (s *Store) GetScramCredential(ctx context.Context, user, mechanism string) (c sasl.ScramCredential, ok bool, err error) {
	key := s.scramKey(user, mechanism)
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return sasl.ScramCredential{}, false, fmt.Errorf("metastore: get SCRAM credential: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return sasl.ScramCredential{}, false, nil
	}
	uc, err := s.decodeScram(key, resp.Kvs[0].Value)
	if err != nil || uc.User != user || uc.Credential.Mechanism != mechanism {
		return sasl.ScramCredential{}, false, nil
	}
	return uc.Credential, true, nil
}

func (s *Store) ListScramCredentials(ctx context.Context) ([]UserScramCredential, error) {
	resp, err := s.client.Get(ctx, s.scramPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("metastore: list SCRAM credentials: %w", err)
	}
	out := make([]UserScramCredential, 0, len(resp.Kvs))
	for _, e := range resp.Kvs {
		if c, err := s.decodeScram(string(e.Key), e.Value); err == nil {
			out = append(out, c)
		}
	}
	SortScramCredentials(out)
	return out, nil
}

// decodeScram decodes a credential; an undecodable one is logged (by key:
// the value is secret material) and skipped.
func (s *Store) decodeScram(key string, value []byte) (UserScramCredential, error) {
	var c UserScramCredential
	err := json.Unmarshal(value, &c)
	if err == nil && (c.User == "" || c.Credential.Iterations <= 0) {
		err = errors.New("no user or iterations")
	}
	if err != nil {
		s.logger.Error("skipping undecodable SCRAM credential", "key", key, "err", err)
		return c, err
	}
	return c, nil
}

// FollowScramCredentials calls fn with every credential, sorted, now and
// after every change, until ctx ends (see followPrefix).
func (s *Store) FollowScramCredentials(ctx context.Context, fn func([]UserScramCredential)) {
	followDecoded(ctx, s, s.scramPrefix(), s.decodeScram, SortScramCredentials, fn)
}
