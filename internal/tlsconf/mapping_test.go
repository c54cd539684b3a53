package tlsconf

import (
	"errors"
	"testing"
)

// The cases are Kafka's SslPrincipalMapperTest's behaviour: the rules
// apply in order, a RULE only to a subject it matches whole.
func TestPrincipalMappingRules(t *testing.T) {
	for _, tc := range []struct {
		rules, dn, want string
		noMatch         bool
	}{
		{"", "CN=alice,OU=ops,O=example", "CN=alice,OU=ops,O=example", false},
		{"DEFAULT", "CN=alice,OU=ops", "CN=alice,OU=ops", false},
		{"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,DEFAULT", "CN=kafka-app,OU=ServiceUsers,O=Org", "kafka-app", false},
		{"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,DEFAULT", "CN=alice,OU=People,O=Org", "CN=alice,OU=People,O=Org", false},
		{"RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L", "CN=Duke,OU=JavaSoft,O=Sun Microsystems,L=Santa Clara,ST=CA,C=US", "duke@javasoft", false},
		{"RULE:^CN=(.*?),OU=(.*?)$/$1/U", "CN=alice,OU=ops", "ALICE", false},
		{"RULE:^cn=(.*?),ou=(.*?),dc=(.*?),dc=(.*?)$/$1@$2/U, DEFAULT", "cn=duke,ou=javasoft,dc=sun,dc=com", "DUKE@JAVASOFT", false},
		{`RULE:^CN=(.*?),OU=ops$/ops\/$1/`, "CN=alice,OU=ops", "ops/alice", false},
		// A pattern that matches only part of the subject does not apply.
		{"RULE:CN=alice/bob/", "CN=alice,OU=ops", "", true},
	} {
		m, err := ParsePrincipalMappingRules(tc.rules)
		if err != nil {
			t.Fatalf("%q: %v", tc.rules, err)
		}
		got, err := m.Name(tc.dn)
		if tc.noMatch {
			if !errors.Is(err, ErrNoMatchingRule) {
				t.Errorf("%q on %q: %q, %v; want no matching rule", tc.rules, tc.dn, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q on %q: %q, %v; want %q", tc.rules, tc.dn, got, err, tc.want)
		}
	}
	for _, bad := range []string{"RULE:^CN=(.*)$", "RULE:^CN=(.*)$/$1/X", "NOTARULE", "DEFAULT junk", "RULE:(/x/"} {
		if _, err := ParsePrincipalMappingRules(bad); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}
