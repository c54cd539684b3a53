package metastoretest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/sasl"
)

func testScramCredentials(t *testing.T, target Target) {
	s, ctx := target.Store, testCtx(t)
	cred := func(mech string, iterations int) sasl.ScramCredential {
		return sasl.ScramCredential{Mechanism: mech, Salt: []byte("salt"), Iterations: iterations, StoredKey: []byte("stored"), ServerKey: []byte("server")}
	}
	str := func(cs []metastore.UserScramCredential) string {
		var out []string
		for _, c := range cs {
			out = append(out, fmt.Sprintf("%s/%s/%d", c.User, c.Credential.Mechanism, c.Credential.Iterations))
		}
		return fmt.Sprint(out)
	}
	updates := follow(t, s.FollowScramCredentials)
	if first := next(t, updates); len(first) != 0 {
		t.Fatalf("first delivery %v, want none", str(first))
	}
	// A user name with a '/' must not break the key layout.
	if err := s.AlterScramCredentials(ctx, "bo/b", []sasl.ScramCredential{cred(sasl.ScramSHA256, 4096), cred(sasl.ScramSHA512, 8192)}, nil); err != nil {
		t.Fatal(err)
	}
	if got := str(next(t, updates)); got != "[bo/b/SCRAM-SHA-256/4096 bo/b/SCRAM-SHA-512/8192]" {
		t.Fatalf("after creating, followed %v", got)
	}
	if err := s.AlterScramCredentials(ctx, "alice", []sasl.ScramCredential{cred(sasl.ScramSHA512, 4096)}, nil); err != nil {
		t.Fatal(err)
	}
	next(t, updates)
	// Deleting one that does not exist changes nothing, upserts included.
	err := s.AlterScramCredentials(ctx, "alice", []sasl.ScramCredential{cred(sasl.ScramSHA512, 5000)}, []string{sasl.ScramSHA256})
	if !errors.Is(err, metastore.ErrCredentialNotFound) {
		t.Fatalf("deleting a missing credential: %v", err)
	}
	all, err := s.ListScramCredentials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := str(all); got != "[alice/SCRAM-SHA-512/4096 bo/b/SCRAM-SHA-256/4096 bo/b/SCRAM-SHA-512/8192]" {
		t.Fatalf("listed %v", got)
	}
	if all[0].Credential.ServerKey == nil || string(all[0].Credential.StoredKey) != "stored" {
		t.Fatalf("credential not kept whole: %+v", all[0].Credential)
	}
	if err := s.AlterScramCredentials(ctx, "bo/b", []sasl.ScramCredential{cred(sasl.ScramSHA256, 9000)}, []string{sasl.ScramSHA512}); err != nil {
		t.Fatal(err)
	}
	if got := str(next(t, updates)); got != "[alice/SCRAM-SHA-512/4096 bo/b/SCRAM-SHA-256/9000]" {
		t.Fatalf("after deleting and replacing, followed %v", got)
	}
	// One credential read alone: present, replaced, deleted, never made.
	for _, c := range []struct {
		user, mech string
		want       int // iterations; 0: none
	}{{"bo/b", sasl.ScramSHA256, 9000}, {"bo/b", sasl.ScramSHA512, 0}, {"alice", sasl.ScramSHA512, 4096}, {"nobody", sasl.ScramSHA512, 0}} {
		got, ok, err := s.GetScramCredential(ctx, c.user, c.mech)
		if err != nil {
			t.Fatal(err)
		}
		if ok != (c.want != 0) || got.Iterations != c.want || (ok && (got.Mechanism != c.mech || string(got.StoredKey) != "stored")) {
			t.Fatalf("GetScramCredential(%s, %s) = %+v, %v; want %d iterations", c.user, c.mech, got, ok, c.want)
		}
	}
}
