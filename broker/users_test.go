package broker

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/sasl"
)

func upsertion(t *testing.T, user, mechanism, password string, iterations int) ScramUpsertion {
	t.Helper()
	salt := sasl.NewSalt()
	salted, err := sasl.SaltPassword(mechanism, password, salt, iterations)
	if err != nil {
		t.Fatal(err)
	}
	return ScramUpsertion{User: user, Mechanism: mechanism, Iterations: iterations, Salt: salt, SaltedPassword: salted}
}

// TestUserScramCredentials: credentials altered through one broker are
// described from the metastore, checked by VerifyPassword once followed,
// and a deletion stops the password working.
func TestUserScramCredentials(t *testing.T) {
	b, _ := startBroker(t)
	ctx := context.Background()
	results := b.AlterUserScramCredentials(ctx, nil, []ScramUpsertion{
		upsertion(t, "alice", sasl.ScramSHA512, "s3cret", 8192),
		upsertion(t, "alice", sasl.ScramSHA256, "s3cret", 4096),
		upsertion(t, "bob", sasl.ScramSHA256, "x", 100),
		upsertion(t, "carol", sasl.ScramSHA256, "x", 4096),
		{User: "carol", Mechanism: "SCRAM-SHA-1", Iterations: 4096, Salt: []byte("s"), SaltedPassword: []byte("p")},
		upsertion(t, "", sasl.ScramSHA256, "x", 4096),
		upsertion(t, "dave", sasl.ScramSHA256, "x", 4096),
		upsertion(t, "dave", sasl.ScramSHA256, "y", 4096),
	})
	want := map[string]error{"alice": nil, "bob": ErrUnacceptableCredential, "carol": ErrUnsupportedSaslMechanism, "": ErrUnacceptableCredential, "dave": ErrDuplicateResource}
	if len(results) != len(want) {
		t.Fatalf("results %v", results)
	}
	for _, r := range results {
		if w := want[r.User]; (w == nil) != (r.Err == nil) || (w != nil && !errors.Is(r.Err, w)) {
			t.Errorf("user %q: %v, want %v", r.User, r.Err, w)
		}
	}
	got, err := b.DescribeUserScramCredentials(ctx, []string{"alice", "carol", "bob", "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprint(got); s != "[{alice [{SCRAM-SHA-256 4096} {SCRAM-SHA-512 8192}] <nil>} {carol [] resource not found: attempt to describe a user credential that does not exist} {bob [] duplicate resource: cannot describe SCRAM credentials for the same user twice in a single request}]" {
		t.Fatalf("described %s", s)
	}
	verify := func(password string) error {
		_, err := b.VerifyPassword(ctx, "alice", password)
		return err
	}
	await.True(t, 10*time.Second, "alice's password to be accepted", func() bool { return verify("s3cret") == nil })
	if p, _ := b.VerifyPassword(ctx, "alice", "s3cret"); p != "User:alice" {
		t.Fatalf("principal %q", p)
	}
	if err := verify("wrong"); !errors.Is(err, sasl.ErrAuthentication) {
		t.Fatalf("wrong password: %v", err)
	}
	// Deleting what does not exist refuses the user's whole alteration.
	r := b.AlterUserScramCredentials(ctx, []ScramDeletion{{"alice", sasl.ScramSHA512}, {"alice", sasl.ScramSHA256}, {"erin", sasl.ScramSHA256}}, nil)
	if len(r) != 2 || r[0].Err != nil || !errors.Is(r[1].Err, ErrResourceNotFound) {
		t.Fatalf("deletions: %v", r)
	}
	await.True(t, 10*time.Second, "the deletion to refuse alice", func() bool { return errors.Is(verify("s3cret"), sasl.ErrAuthentication) })
}

// A credential this broker has not seen yet (created a moment ago through
// another broker, or before its watch delivered it) is read from the
// metastore, so that a new user can log in at once; such reads are
// rate limited, so made-up user names cannot turn every login into one.
func TestScramCredentialNotYetFollowedIsRead(t *testing.T) {
	store, dir := startMetastore(t)
	b, err := New(Config{NodeID: 1, DataDir: dir + "/data"}, store) // not started: it follows nothing
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	u := upsertion(t, "alice", sasl.ScramSHA512, "s3cret", 4096)
	cred, err := sasl.CredentialFromSalted(u.Mechanism, u.Salt, u.SaltedPassword, u.Iterations)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.AlterScramCredentials(ctx, "alice", []sasl.ScramCredential{cred}, nil); err != nil {
		t.Fatal(err)
	}
	b.scram.misses = rate.NewLimiter(0, 1) // one read, never refilled
	if _, err := b.VerifyPassword(ctx, "alice", "s3cret"); err != nil {
		t.Fatalf("a credential in the metastore but not in the broker's view: %v", err)
	}
	if _, ok, err := b.ScramCredential(ctx, "alice", sasl.ScramSHA512); ok || err != nil {
		t.Fatalf("past the limit, a miss read the metastore again (found %v, err %v)", ok, err)
	}
}
