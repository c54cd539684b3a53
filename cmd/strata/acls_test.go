package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/testenv"
)

// TestACLsAddMakesEveryCombination: kafka-acls' options make one binding
// per resource, principal, host and operation.
func TestACLsAddMakesEveryCombination(t *testing.T) {
	f := aclFlags{
		topics: []string{"orders"}, groups: []string{"billing"}, patternType: "prefixed",
		allowPrincipals: []string{"User:alice"}, denyPrincipals: []string{"User:bob"}, denyHosts: []string{"10.0.0.1"},
		operations: []string{"Write", "describe_configs"},
	}
	got, err := f.bindings()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 8 {
		t.Fatalf("%d bindings; want 2 resources × 2 principals × 2 operations: %v", len(got), got)
	}
	want := acl.Binding{ResourceType: acl.ResourceGroup, ResourceName: "billing", PatternType: acl.PatternPrefixed,
		Principal: "User:bob", Host: "10.0.0.1", Operation: acl.OpDescribeConfigs, Permission: acl.PermissionDeny}
	found := false
	for _, b := range got {
		found = found || b == want
		if b.Principal == "User:alice" && b.Host != acl.WildcardHost {
			t.Errorf("allowed principal got host %q; want *", b.Host)
		}
	}
	if !found {
		t.Fatalf("%v lacks %v", got, want)
	}
	for name, bad := range map[string]aclFlags{
		"no resource":    {allowPrincipals: []string{"User:a"}},
		"no principal":   {topics: []string{"t"}},
		"bad operation":  {topics: []string{"t"}, allowPrincipals: []string{"User:a"}, operations: []string{"Juggle"}},
		"bad principal":  {topics: []string{"t"}, allowPrincipals: []string{"alice"}},
		"match on add":   {topics: []string{"t"}, allowPrincipals: []string{"User:a"}, patternType: "match"},
		"host not an IP": {topics: []string{"t"}, allowPrincipals: []string{"User:a"}, hosts: []string{"example"}},
	} {
		if _, err := bad.bindings(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestClientCredentialFlags: a password comes from a file, standard input
// or the environment, never the command line; a token from a file or the
// environment; both at once, or a password without a user, are refused.
func TestClientCredentialFlags(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }
	none := env(nil)
	for name, c := range map[string]struct {
		f     clientFlags
		stdin string
		env   func(string) string
		n     int
		bad   bool
	}{
		"nothing":               {env: none},
		"password file":         {f: clientFlags{user: "alice", passwordFile: pwFile}, env: none, n: 1},
		"password on stdin":     {f: clientFlags{user: "alice", passwordFile: "-"}, stdin: "s3cret\nrecords\n", env: none, n: 1},
		"password in env":       {f: clientFlags{user: "alice"}, env: env(map[string]string{passwordEnv: "s3cret"}), n: 1},
		"user without password": {f: clientFlags{user: "alice"}, env: none, bad: true},
		"empty stdin":           {f: clientFlags{user: "alice", passwordFile: "-"}, env: none, bad: true},
		"password without user": {f: clientFlags{passwordFile: pwFile}, env: none, bad: true},
		"token file":            {f: clientFlags{tokenFile: pwFile}, env: none, n: 1},
		"token in env":          {env: env(map[string]string{tokenEnv: "tok"}), n: 1},
		"user beats token env":  {f: clientFlags{user: "alice"}, env: env(map[string]string{passwordEnv: "p", tokenEnv: "tok"}), n: 1},
		"user and token file":   {f: clientFlags{user: "alice", tokenFile: pwFile}, env: env(map[string]string{passwordEnv: "p"}), bad: true},
		"missing password file": {f: clientFlags{user: "alice", passwordFile: filepath.Join(dir, "nope")}, env: none, bad: true},
	} {
		stdin := strings.NewReader(c.stdin)
		opts, err := c.f.credentials(stdin, c.env)
		if (err != nil) != c.bad || len(opts) != c.n {
			t.Errorf("%s: %d options, %v; want %d, error %v", name, len(opts), err, c.n, c.bad)
		}
		if rest, _ := io.ReadAll(stdin); c.f.passwordFile == "-" && !c.bad && string(rest) != "records\n" {
			t.Errorf("%s: stdin after the password is %q; want the records left for the command", name, rest)
		}
	}
}

// TestACLsCommands: add, list and remove against a broker with an
// authorizer, listed as kafka-acls lists them.
func TestACLsCommands(t *testing.T) {
	addr := testenv.StartInProcess(t, map[string]string{"authorizer.class.name": "strata", "super.users": "User:ANONYMOUS"})
	mustStrata(t, "", "acls", "add", "--bootstrap-server", addr, "--allow-principal", "User:alice",
		"--operation", "Write", "--operation", "Read", "--topic", "orders")
	mustStrata(t, "", "acls", "add", "--bootstrap-server", addr, "--deny-principal", "User:bob", "--host", "10.0.0.9",
		"--operation", "All", "--group", "app-", "--resource-pattern-type", "prefixed")
	got := mustStrata(t, "", "acls", "list", "--bootstrap-server", addr)
	want := "Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)`:\n" +
		" \t(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)\n" +
		" \t(principal=User:alice, host=*, operation=WRITE, permissionType=ALLOW)\n" +
		"\n" +
		"Current ACLs for resource `ResourcePattern(resourceType=GROUP, name=app-, patternType=PREFIXED)`:\n" +
		" \t(principal=User:bob, host=10.0.0.9, operation=ALL, permissionType=DENY)\n"
	if got != want {
		t.Fatalf("acls list:\n%s\nwant:\n%s", got, want)
	}
	if got := mustStrata(t, "", "acls", "list", "--bootstrap-server", addr, "--topic", "orders"); !strings.Contains(got, "User:alice") || strings.Contains(got, "User:bob") {
		t.Fatalf("acls list --topic orders:\n%s", got)
	}
	if got := mustStrata(t, "", "acls", "list", "--bootstrap-server", addr, "--principal", "User:bob"); strings.Contains(got, "User:alice") || !strings.Contains(got, "User:bob") {
		t.Fatalf("acls list --principal User:bob:\n%s", got)
	}
	removed := mustStrata(t, "", "acls", "remove", "--bootstrap-server", addr, "--topic", "orders", "--allow-principal", "User:alice", "--operation", "Write")
	if !strings.Contains(removed, "operation=WRITE") || strings.Contains(removed, "operation=READ") {
		t.Fatalf("acls remove printed:\n%s", removed)
	}
	if got := mustStrata(t, "", "acls", "list", "--bootstrap-server", addr, "--topic", "orders"); strings.Contains(got, "WRITE") || !strings.Contains(got, "READ") {
		t.Fatalf("after removing Write:\n%s", got)
	}
	mustStrata(t, "", "acls", "remove", "--bootstrap-server", addr, "--group", "app-", "--resource-pattern-type", "prefixed")
	if got := mustStrata(t, "", "acls", "list", "--bootstrap-server", addr); strings.Contains(got, "User:bob") {
		t.Fatalf("after removing the group's ACLs:\n%s", got)
	}
}

// The --tls-* flags fall back to STRATA_TLS_CA, STRATA_TLS_CERT and
// STRATA_TLS_KEY one by one; a flag wins over its variable.
func TestTLSFlagsFromTheEnvironment(t *testing.T) {
	env := map[string]string{tlsCAEnv: "/env/ca.pem", tlsCertEnv: "/env/client.pem", tlsKeyEnv: " /env/key.pem "}
	getenv := func(k string) string { return env[k] }
	f := clientFlags{tlsCert: "/flag/client.pem"}
	ca, cert, key := f.tlsFiles(getenv)
	if ca != "/env/ca.pem" || cert != "/flag/client.pem" || key != "/env/key.pem" {
		t.Fatalf("tlsFiles = %q, %q, %q; want the CA and key from the environment, the flag's certificate", ca, cert, key)
	}
	if ca, cert, key := (&clientFlags{}).tlsFiles(func(string) string { return "" }); ca != "" || cert != "" || key != "" {
		t.Fatalf("tlsFiles with nothing set = %q, %q, %q; want none", ca, cert, key)
	}
}
