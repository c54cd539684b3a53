package acl

import "testing"

func TestAuthorizeByResourceType(t *testing.T) {
	const alice = "User:alice"
	b := func(name string, pt PatternType, principal string, op Operation, perm Permission) Binding {
		return Binding{ResourceType: ResourceTopic, ResourceName: name, PatternType: pt, Principal: principal,
			Host: WildcardHost, Operation: op, Permission: perm}
	}
	for _, tc := range []struct {
		name     string
		cfg      Config
		bindings []Binding
		want     bool
	}{
		{"no ACLs", Config{}, nil, false},
		{"no ACLs, allow everyone", Config{AllowEveryoneIfNoACLFound: true}, nil, true},
		{"super user", Config{SuperUsers: []string{alice}}, nil, true},
		{"literal allow", Config{}, []Binding{b("orders", PatternLiteral, alice, OpWrite, PermissionAllow)}, true},
		{"allow of another operation", Config{}, []Binding{b("orders", PatternLiteral, alice, OpRead, PermissionAllow)}, false},
		{"allow All", Config{}, []Binding{b("orders", PatternLiteral, alice, OpAll, PermissionAllow)}, true},
		{"allow for another principal", Config{}, []Binding{b("orders", PatternLiteral, "User:bob", OpWrite, PermissionAllow)}, false},
		{"wildcard principal", Config{}, []Binding{b("orders", PatternLiteral, "User:*", OpWrite, PermissionAllow)}, true},
		{"literal allow, same literal deny", Config{}, []Binding{
			b("orders", PatternLiteral, alice, OpWrite, PermissionAllow), b("orders", PatternLiteral, alice, OpWrite, PermissionDeny)}, false},
		{"literal allow under a prefixed deny", Config{}, []Binding{
			b("orders", PatternLiteral, alice, OpWrite, PermissionAllow), b("ord", PatternPrefixed, alice, OpWrite, PermissionDeny)}, false},
		{"prefixed allow, literal deny of its name", Config{}, []Binding{
			b("ord", PatternPrefixed, alice, OpWrite, PermissionAllow), b("ord", PatternLiteral, alice, OpWrite, PermissionDeny)}, true},
		{"prefixed allow under a shorter prefixed deny", Config{}, []Binding{
			b("orders-", PatternPrefixed, alice, OpWrite, PermissionAllow), b("ord", PatternPrefixed, alice, OpWrite, PermissionDeny)}, false},
		{"wildcard allow", Config{}, []Binding{b(WildcardName, PatternLiteral, alice, OpWrite, PermissionAllow)}, true},
		{"wildcard deny wins", Config{}, []Binding{
			b("orders", PatternLiteral, alice, OpWrite, PermissionAllow), b(WildcardName, PatternLiteral, alice, OpWrite, PermissionDeny)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := New(tc.cfg)
			a.Update(tc.bindings)
			if got := a.AuthorizeByResourceType(alice, "10.0.0.1", OpWrite, ResourceTopic); got != tc.want {
				t.Fatalf("AuthorizeByResourceType = %v, want %v", got, tc.want)
			}
		})
	}
}
