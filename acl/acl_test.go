package acl

import (
	"errors"
	"fmt"
	"testing"
)

func allow(rt ResourceType, name string, pt PatternType, principal string, op Operation) Binding {
	return Binding{ResourceType: rt, ResourceName: name, PatternType: pt, Principal: principal, Host: "*", Operation: op, Permission: PermissionAllow}
}

func deny(rt ResourceType, name string, pt PatternType, principal string, op Operation) Binding {
	b := allow(rt, name, pt, principal, op)
	b.Permission = PermissionDeny
	return b
}

func TestAuthorize(t *testing.T) {
	const alice, bob = "User:alice", "User:bob"
	for _, c := range []struct {
		name      string
		cfg       Config
		acls      []Binding
		principal string
		host      string
		op        Operation
		rt        ResourceType
		resource  string
		want      Decision
	}{
		{"no ACLs denies by default", Config{}, nil, alice, "10.0.0.1", OpRead, ResourceTopic, "t", Decision{false, ReasonNoACLFound}},
		{"no ACLs allows when configured", Config{AllowEveryoneIfNoACLFound: true}, nil, alice, "10.0.0.1", OpRead, ResourceTopic, "t", Decision{true, ReasonNoACLFound}},
		{"ACLs on another resource count as none", Config{AllowEveryoneIfNoACLFound: true},
			[]Binding{allow(ResourceTopic, "other", PatternLiteral, bob, OpRead)}, alice, "h", OpRead, ResourceTopic, "t", Decision{true, ReasonNoACLFound}},
		{"an ACL for someone else on the resource is an ACL found", Config{AllowEveryoneIfNoACLFound: true},
			[]Binding{allow(ResourceTopic, "t", PatternLiteral, bob, OpRead)}, alice, "h", OpRead, ResourceTopic, "t", Decision{false, ReasonNoMatchingACL}},
		{"literal allow", Config{}, []Binding{allow(ResourceTopic, "t", PatternLiteral, alice, OpWrite)}, alice, "h", OpWrite, ResourceTopic, "t", Decision{true, ReasonAllowACL}},
		{"literal is not a prefix", Config{}, []Binding{allow(ResourceTopic, "t", PatternLiteral, alice, OpWrite)}, alice, "h", OpWrite, ResourceTopic, "tt", Decision{false, ReasonNoACLFound}},
		{"other operation", Config{}, []Binding{allow(ResourceTopic, "t", PatternLiteral, alice, OpWrite)}, alice, "h", OpRead, ResourceTopic, "t", Decision{false, ReasonNoMatchingACL}},
		{"other resource type", Config{}, []Binding{allow(ResourceGroup, "t", PatternLiteral, alice, OpRead)}, alice, "h", OpRead, ResourceTopic, "t", Decision{false, ReasonNoACLFound}},
		{"wildcard name", Config{}, []Binding{allow(ResourceTopic, "*", PatternLiteral, alice, OpRead)}, alice, "h", OpRead, ResourceTopic, "anything", Decision{true, ReasonAllowACL}},
		{"prefixed", Config{}, []Binding{allow(ResourceTopic, "orders-", PatternPrefixed, alice, OpRead)}, alice, "h", OpRead, ResourceTopic, "orders-eu", Decision{true, ReasonAllowACL}},
		{"prefixed equal name", Config{}, []Binding{allow(ResourceTopic, "orders-", PatternPrefixed, alice, OpRead)}, alice, "h", OpRead, ResourceTopic, "orders-", Decision{true, ReasonAllowACL}},
		{"prefixed not matching", Config{}, []Binding{allow(ResourceTopic, "orders-", PatternPrefixed, alice, OpRead)}, alice, "h", OpRead, ResourceTopic, "orders", Decision{false, ReasonNoACLFound}},
		{"prefixed star is not a wildcard", Config{}, []Binding{allow(ResourceTopic, "*", PatternPrefixed, alice, OpRead)}, alice, "h", OpRead, ResourceTopic, "t", Decision{false, ReasonNoACLFound}},
		{"wildcard principal", Config{}, []Binding{allow(ResourceTopic, "t", PatternLiteral, "User:*", OpRead)}, alice, "h", OpRead, ResourceTopic, "t", Decision{true, ReasonAllowACL}},
		{"wildcard principal of another type", Config{}, []Binding{allow(ResourceTopic, "t", PatternLiteral, "Group:*", OpRead)}, alice, "h", OpRead, ResourceTopic, "t", Decision{false, ReasonNoMatchingACL}},
		{"host matches", Config{}, []Binding{{ResourceTopic, "t", PatternLiteral, alice, "10.0.0.1", OpRead, PermissionAllow}}, alice, "10.0.0.1", OpRead, ResourceTopic, "t", Decision{true, ReasonAllowACL}},
		{"host differs", Config{}, []Binding{{ResourceTopic, "t", PatternLiteral, alice, "10.0.0.1", OpRead, PermissionAllow}}, alice, "10.0.0.2", OpRead, ResourceTopic, "t", Decision{false, ReasonNoMatchingACL}},
		{"deny wins over allow", Config{}, []Binding{
			allow(ResourceTopic, "t", PatternLiteral, alice, OpRead),
			deny(ResourceTopic, "t", PatternLiteral, alice, OpRead)}, alice, "h", OpRead, ResourceTopic, "t", Decision{false, ReasonDenyACL}},
		{"prefixed deny wins over literal allow", Config{}, []Binding{
			allow(ResourceTopic, "secret-x", PatternLiteral, alice, OpRead),
			deny(ResourceTopic, "secret-", PatternPrefixed, "User:*", OpAll)}, alice, "h", OpRead, ResourceTopic, "secret-x", Decision{false, ReasonDenyACL}},
		{"wildcard deny wins", Config{}, []Binding{
			allow(ResourceTopic, "t", PatternLiteral, alice, OpRead),
			deny(ResourceTopic, "*", PatternLiteral, alice, OpRead)}, alice, "h", OpRead, ResourceTopic, "t", Decision{false, ReasonDenyACL}},
		{"deny of another operation does not deny", Config{}, []Binding{
			allow(ResourceTopic, "t", PatternLiteral, alice, OpRead),
			deny(ResourceTopic, "t", PatternLiteral, alice, OpWrite)}, alice, "h", OpRead, ResourceTopic, "t", Decision{true, ReasonAllowACL}},
		{"deny Read does not deny Describe", Config{}, []Binding{
			allow(ResourceTopic, "t", PatternLiteral, alice, OpDescribe),
			deny(ResourceTopic, "t", PatternLiteral, alice, OpRead)}, alice, "h", OpDescribe, ResourceTopic, "t", Decision{true, ReasonAllowACL}},
		{"all allows everything", Config{}, []Binding{allow(ResourceCluster, ClusterName, PatternLiteral, alice, OpAll)}, alice, "h", OpClusterAction, ResourceCluster, ClusterName, Decision{true, ReasonAllowACL}},
		{"read implies describe", Config{}, []Binding{allow(ResourceTopic, "t", PatternLiteral, alice, OpRead)}, alice, "h", OpDescribe, ResourceTopic, "t", Decision{true, ReasonAllowACL}},
		{"write implies describe", Config{}, []Binding{allow(ResourceTopic, "t", PatternLiteral, alice, OpWrite)}, alice, "h", OpDescribe, ResourceTopic, "t", Decision{true, ReasonAllowACL}},
		{"delete implies describe", Config{}, []Binding{allow(ResourceGroup, "g", PatternLiteral, alice, OpDelete)}, alice, "h", OpDescribe, ResourceGroup, "g", Decision{true, ReasonAllowACL}},
		{"alter implies describe", Config{}, []Binding{allow(ResourceTopic, "t", PatternLiteral, alice, OpAlter)}, alice, "h", OpDescribe, ResourceTopic, "t", Decision{true, ReasonAllowACL}},
		{"create does not imply describe", Config{}, []Binding{allow(ResourceTopic, "t", PatternLiteral, alice, OpCreate)}, alice, "h", OpDescribe, ResourceTopic, "t", Decision{false, ReasonNoMatchingACL}},
		{"describe does not imply read", Config{}, []Binding{allow(ResourceTopic, "t", PatternLiteral, alice, OpDescribe)}, alice, "h", OpRead, ResourceTopic, "t", Decision{false, ReasonNoMatchingACL}},
		{"alter configs implies describe configs", Config{}, []Binding{allow(ResourceTopic, "t", PatternLiteral, alice, OpAlterConfigs)}, alice, "h", OpDescribeConfigs, ResourceTopic, "t", Decision{true, ReasonAllowACL}},
		{"deny all denies describe", Config{}, []Binding{
			allow(ResourceTopic, "t", PatternLiteral, alice, OpDescribe),
			deny(ResourceTopic, "t", PatternLiteral, alice, OpAll)}, alice, "h", OpDescribe, ResourceTopic, "t", Decision{false, ReasonDenyACL}},
		{"super user beats deny", Config{SuperUsers: []string{alice}}, []Binding{deny(ResourceTopic, "t", PatternLiteral, alice, OpAll)}, alice, "h", OpRead, ResourceTopic, "t", Decision{true, ReasonSuperUser}},
		{"transactional id", Config{}, []Binding{allow(ResourceTransactionalID, "tx-", PatternPrefixed, alice, OpWrite)}, alice, "h", OpWrite, ResourceTransactionalID, "tx-1", Decision{true, ReasonAllowACL}},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := New(c.cfg)
			a.Update(c.acls)
			if got := a.Authorize(c.principal, c.host, c.op, c.rt, c.resource); got != c.want {
				t.Errorf("Authorize(%s, %s, %s, %s %q) = %+v, want %+v", c.principal, c.host, c.op, c.rt, c.resource, got, c.want)
			}
		})
	}
}

func TestUpdateReplacesTheSet(t *testing.T) {
	a := New(Config{})
	a.Update([]Binding{allow(ResourceTopic, "t", PatternLiteral, "User:alice", OpRead)})
	if !a.Authorize("User:alice", "h", OpRead, ResourceTopic, "t").Allowed {
		t.Fatal("not allowed after the ACL was added")
	}
	a.Update(nil)
	if a.Authorize("User:alice", "h", OpRead, ResourceTopic, "t").Allowed {
		t.Fatal("still allowed after the ACL was removed")
	}
}

func TestValidate(t *testing.T) {
	ok := allow(ResourceTopic, "t", PatternLiteral, "User:alice", OpRead)
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Binding){
		"any resource type":    func(b *Binding) { b.ResourceType = ResourceAny },
		"match pattern":        func(b *Binding) { b.PatternType = PatternMatch },
		"empty name":           func(b *Binding) { b.ResourceName = "" },
		"cluster name":         func(b *Binding) { b.ResourceType = ResourceCluster },
		"any operation":        func(b *Binding) { b.Operation = OpAny },
		"unknown operation":    func(b *Binding) { b.Operation = 99 },
		"any permission":       func(b *Binding) { b.Permission = PermissionAny },
		"principal no colon":   func(b *Binding) { b.Principal = "alice" },
		"principal empty name": func(b *Binding) { b.Principal = "User:" },
		"host not an IP":       func(b *Binding) { b.Host = "example" },
	} {
		b := ok
		mutate(&b)
		if err := b.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate() = %v, want ErrInvalid", name, err)
		}
	}
}

func TestFilterMatches(t *testing.T) {
	str := func(s string) *string { return &s }
	lit := allow(ResourceTopic, "orders", PatternLiteral, "User:alice", OpRead)
	wild := allow(ResourceTopic, "*", PatternLiteral, "User:alice", OpRead)
	pre := allow(ResourceTopic, "ord", PatternPrefixed, "User:alice", OpRead)
	grp := allow(ResourceGroup, "orders", PatternLiteral, "User:bob", OpRead)
	all := []Binding{lit, wild, pre, grp}
	for _, c := range []struct {
		name string
		f    Filter
		want []Binding
	}{
		{"match all", MatchAll, all},
		{"resource type", Filter{ResourceType: ResourceGroup, PatternType: PatternAny, Operation: OpAny, Permission: PermissionAny}, []Binding{grp}},
		{"any pattern with a name is exact", Filter{ResourceType: ResourceTopic, ResourceName: str("orders"), PatternType: PatternAny, Operation: OpAny, Permission: PermissionAny}, []Binding{lit}},
		{"literal with a name", Filter{ResourceType: ResourceAny, ResourceName: str("orders"), PatternType: PatternLiteral, Operation: OpAny, Permission: PermissionAny}, []Binding{lit, grp}},
		{"prefixed only", Filter{ResourceType: ResourceAny, PatternType: PatternPrefixed, Operation: OpAny, Permission: PermissionAny}, []Binding{pre}},
		{"match finds what applies", Filter{ResourceType: ResourceTopic, ResourceName: str("orders"), PatternType: PatternMatch, Operation: OpAny, Permission: PermissionAny}, []Binding{lit, wild, pre}},
		{"principal", Filter{ResourceType: ResourceAny, PatternType: PatternAny, Principal: str("User:bob"), Operation: OpAny, Permission: PermissionAny}, []Binding{grp}},
		{"host", Filter{ResourceType: ResourceAny, PatternType: PatternAny, Host: str("10.0.0.1"), Operation: OpAny, Permission: PermissionAny}, nil},
		{"operation", Filter{ResourceType: ResourceAny, PatternType: PatternAny, Operation: OpWrite, Permission: PermissionAny}, nil},
		{"permission", Filter{ResourceType: ResourceAny, PatternType: PatternAny, Operation: OpAny, Permission: PermissionAllow}, all},
		{"exact", ExactFilter(pre), []Binding{pre}},
	} {
		var got []Binding
		for _, b := range all {
			if c.f.Matches(b) {
				got = append(got, b)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: matched %v, want %v", c.name, got, c.want)
		}
	}
	if err := (Filter{ResourceType: ResourceTopic, PatternType: PatternUnknown, Operation: OpAny, Permission: PermissionAny}).Validate(); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown pattern type: Validate() = %v, want ErrInvalid", err)
	}
}

// BenchmarkAuthorize decides against 10,000 ACLs: 2,500 principals with a
// literal Write, a prefixed Read, a group Read and a transactional id
// Write each, plus prefixed denies of four lengths.
func BenchmarkAuthorize(b *testing.B) {
	var acls []Binding
	for i := range 2500 {
		p := fmt.Sprintf("User:user-%d", i)
		acls = append(acls,
			allow(ResourceTopic, fmt.Sprintf("topic-%d", i), PatternLiteral, p, OpWrite),
			allow(ResourceTopic, fmt.Sprintf("team-%d-", i), PatternPrefixed, p, OpRead),
			allow(ResourceGroup, fmt.Sprintf("group-%d", i), PatternLiteral, p, OpRead),
			allow(ResourceTransactionalID, fmt.Sprintf("tx-%d", i), PatternLiteral, p, OpWrite))
	}
	for _, prefix := range []string{"a", "ab", "team-9999", "secret-"} {
		acls = append(acls, deny(ResourceTopic, prefix, PatternPrefixed, "User:*", OpAll))
	}
	a := New(Config{SuperUsers: []string{"User:admin"}})
	a.Update(acls)
	if a.Len() < 10000 {
		b.Fatalf("%d ACLs", a.Len())
	}
	if !a.Authorize("User:user-1234", "10.0.0.1", OpRead, ResourceTopic, "team-1234-orders").Allowed {
		b.Fatal("not allowed")
	}
	b.ReportAllocs()
	for b.Loop() {
		a.Authorize("User:user-1234", "10.0.0.1", OpRead, ResourceTopic, "team-1234-orders")
	}
}
