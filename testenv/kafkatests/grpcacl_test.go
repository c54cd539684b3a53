package kafkatests_test

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/internal/tlsconf"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// TestGRPCACLsByClientCertificate: a broker with an authorizer and TLS
// with client certificates on its gRPC port knows callers by their
// certificates, or by their passwords. The super user
// (the generated client certificate) grants User:CN=alice Write and Read
// on a topic with `strata acls add`; alice then produces to and consumes
// from it with the CLI, while User:CN=bob, without ACLs, is refused
// PermissionDenied naming the operation and the topic, and sees no topic
// in `topics list`. A SCRAM user, granted Read only, consumes with her
// password and is refused Write; a wrong password is Unauthenticated. A
// bearer token's principal is served what its ACL allows; a token that does
// not verify is Unauthenticated.
func TestGRPCACLsByClientCertificate(t *testing.T) {
	dir := t.TempDir()
	g, err := tlsconf.Generate(dir)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := tlsconf.IssueClient(dir, "alice")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := tlsconf.IssueClient(dir, "bob")
	if err != nil {
		t.Fatal(err)
	}
	dev := testenv.StartDev(t, testenv.DevOptions{ExtraArgs: []string{
		"--config", "authorizer.class.name=strata",
		"--config", "super.users=User:CN=strata-client",
		"--config", "grpc.ssl.keystore.location=" + g.Server,
		"--config", "grpc.ssl.truststore.location=" + g.CA,
		// requested, not required: carol and dave below connect without a
		// certificate, with a password and a token.
		"--config", "grpc.ssl.client.auth=requested",
		"--config", "sasl.oauthbearer.unsecured.validation.enable=true",
	}})
	as := func(cert string) []string { return []string{"--tls-ca", g.CA, "--tls-cert", cert} }
	must := func(stdin string, args ...string) string {
		t.Helper()
		out, errOut, err := testenvtest.RunStrata(t, dev.GRPCAddr, stdin, args...)
		if err != nil {
			t.Fatalf("strata %s: %v\n%s", strings.Join(args, " "), err, errOut)
		}
		return out
	}

	must("", append([]string{"topics", "create", "orders"}, as(g.Client)...)...)
	must("", append([]string{"acls", "add", "--allow-principal", "User:CN=alice", "--operation", "Write", "--operation", "Read", "--topic", "orders"}, as(g.Client)...)...)
	listed := must("", append([]string{"acls", "list", "--topic", "orders"}, as(g.Client)...)...)
	if !strings.Contains(listed, "(principal=User:CN=alice, host=*, operation=WRITE, permissionType=ALLOW)") {
		t.Fatalf("acls list:\n%s", listed)
	}

	// Bob: refused, with Kafka's error, the operation and the resource
	// named (the CLI describes the topic before it produces).
	_, errOut, err := testenvtest.RunStrata(t, dev.GRPCAddr, "from-bob\n", append([]string{"produce", "orders"}, as(bob)...)...)
	if err == nil || !strings.Contains(errOut, "PermissionDenied") || !strings.Contains(errOut, "TOPIC_AUTHORIZATION_FAILED: User:CN=bob is not authorized to DESCRIBE TOPIC \"orders\"") {
		t.Fatalf("bob's produce: %v\n%s\nwant PermissionDenied on the topic", err, errOut)
	}
	if out := must("", append([]string{"topics", "list"}, as(bob)...)...); strings.Contains(out, "orders") {
		t.Fatalf("bob lists a topic he may not describe:\n%s", out)
	}
	_, errOut, err = testenvtest.RunStrata(t, dev.GRPCAddr, "", append([]string{"acls", "add", "--allow-principal", "User:CN=bob", "--topic", "orders"}, as(bob)...)...)
	if err == nil || !strings.Contains(errOut, "CLUSTER_AUTHORIZATION_FAILED") {
		t.Fatalf("bob granting himself ACLs: %v\n%s", err, errOut)
	}

	// Alice: served. The ACL reaches the broker through its watch of etcd,
	// which `acls add` returning does not wait for.
	await.NoError(t, 30*time.Second, "alice's produce to be allowed", func() error {
		_, errOut, err := testenvtest.RunStrata(t, dev.GRPCAddr, "one\ntwo\n", append([]string{"produce", "orders"}, as(alice)...)...)
		if err != nil && !strings.Contains(errOut, "PermissionDenied") {
			t.Fatalf("alice's produce: %v\n%s", err, errOut)
		}
		if err != nil {
			return fmt.Errorf("%v: %s", err, errOut)
		}
		return nil
	})
	out := must("", append([]string{"consume", "orders", "--from-beginning", "--exit-at-end"}, as(alice)...)...)
	if !strings.Contains(out, "one\ntwo\n") {
		t.Fatalf("alice consumed %q; want one, two", out)
	}
	if out := must("", append([]string{"topics", "list"}, as(alice)...)...); !strings.Contains(out, "orders") {
		t.Fatalf("alice does not list the topic she may read:\n%s", out)
	}
	// Bob still reads nothing.
	_, errOut, err = testenvtest.RunStrata(t, dev.GRPCAddr, "", append([]string{"consume", "orders", "--from-beginning", "--exit-at-end"}, as(bob)...)...)
	if err == nil || !strings.Contains(errOut, "PermissionDenied") {
		t.Fatalf("bob's consume: %v\n%s", err, errOut)
	}
	// Allowed to describe the topic, bob gets as far as the produce, which
	// is refused for Write.
	must("", append([]string{"acls", "add", "--allow-principal", "User:CN=bob", "--operation", "Describe", "--topic", "orders"}, as(g.Client)...)...)
	await.NoError(t, 30*time.Second, "bob's produce to be refused for Write", func() error {
		_, errOut, err := testenvtest.RunStrata(t, dev.GRPCAddr, "from-bob\n", append([]string{"produce", "orders"}, as(bob)...)...)
		if err == nil {
			t.Fatal("bob, allowed only Describe, produced")
		}
		if !strings.Contains(errOut, "TOPIC_AUTHORIZATION_FAILED: User:CN=bob is not authorized to WRITE TOPIC \"orders\"") {
			return fmt.Errorf("%v: %s", err, errOut)
		}
		return nil
	})

	// Carol: a SCRAM user (strata users), authenticating with her password
	// over TLS without a certificate, and granted Read.
	carolPW := filepath.Join(dir, "carol.pw")
	if err := os.WriteFile(carolPW, []byte("carol-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	must("", append([]string{"users", "create", "carol", "--password-file", carolPW}, as(g.Client)...)...)
	must("", append([]string{"acls", "add", "--allow-principal", "User:carol", "--operation", "Read", "--topic", "orders"}, as(g.Client)...)...)
	carol := []string{"--tls-ca", g.CA, "--user", "carol", "--user-password-file", "-"}
	await.NoError(t, 30*time.Second, "carol to read the topic", func() error {
		out, errOut, err := testenvtest.RunStrata(t, dev.GRPCAddr, "carol-secret\n", append([]string{"consume", "orders", "--from-beginning", "--exit-at-end"}, carol...)...)
		if err != nil {
			// The user and the ACL reach the broker through its watches.
			if !strings.Contains(errOut, "Unauthenticated") && !strings.Contains(errOut, "PermissionDenied") {
				t.Fatalf("carol's consume: %v\n%s", err, errOut)
			}
			return fmt.Errorf("%v: %s", err, errOut)
		}
		if !strings.Contains(out, "one\ntwo\n") {
			t.Fatalf("carol consumed %q; want one, two", out)
		}
		return nil
	})
	_, errOut, err = testenvtest.RunStrata(t, dev.GRPCAddr, "not-her-password\n", append([]string{"consume", "orders", "--from-beginning", "--exit-at-end"}, carol...)...)
	if err == nil || !strings.Contains(errOut, "authentication failed (Unauthenticated)") {
		t.Fatalf("a wrong password: %v\n%s; want Unauthenticated", err, errOut)
	}
	// The password's line on stdin, then the records.
	_, errOut, err = testenvtest.RunStrata(t, dev.GRPCAddr, "carol-secret\nfrom-carol\n", append([]string{"produce", "orders"}, carol...)...)
	if err == nil || !strings.Contains(errOut, "User:carol is not authorized to WRITE TOPIC") {
		t.Fatalf("carol's produce, allowed only Read: %v\n%s", err, errOut)
	}

	// Dave: an OAuth bearer token (unsigned: the broker validates tokens in
	// Kafka's unsecured test mode), granted Describe.
	b64 := base64.RawURLEncoding.EncodeToString
	token := b64([]byte(`{"alg":"none"}`)) + "." + b64([]byte(fmt.Sprintf(`{"sub":"dave","iat":%d,"exp":%d}`, time.Now().Unix(), time.Now().Add(time.Hour).Unix()))) + "."
	tokenFile := filepath.Join(dir, "dave.token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dave := []string{"--tls-ca", g.CA, "--token-file", tokenFile}
	if out := must("", append([]string{"topics", "list"}, dave...)...); strings.Contains(out, "orders") {
		t.Fatalf("dave lists a topic before any ACL lets him:\n%s", out)
	}
	must("", append([]string{"acls", "add", "--allow-principal", "User:dave", "--operation", "Describe", "--topic", "orders"}, as(g.Client)...)...)
	await.NoError(t, 30*time.Second, "dave to see the topic", func() error {
		if out := must("", append([]string{"topics", "list"}, dave...)...); !strings.Contains(out, "orders") {
			return fmt.Errorf("topics list: %q", out)
		}
		return nil
	})
	forged := strings.Replace(token, b64([]byte(`{"alg":"none"}`)), b64([]byte(`{"alg":"RS256"}`)), 1)
	if err := os.WriteFile(tokenFile, []byte(forged+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, err = testenvtest.RunStrata(t, dev.GRPCAddr, "", append([]string{"topics", "list"}, dave...)...)
	if err == nil || !strings.Contains(errOut, "authentication failed (Unauthenticated)") {
		t.Fatalf("a token whose signature does not verify: %v\n%s; want Unauthenticated", err, errOut)
	}
}
