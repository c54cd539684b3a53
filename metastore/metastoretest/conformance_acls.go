package metastoretest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/strata-broker/strata/acl"
)

func testACLs(t *testing.T, target Target) {
	s, ctx := target.Store, testCtx(t)
	str := func(v string) *string { return &v }
	binding := func(rt acl.ResourceType, name string, pt acl.PatternType, principal string, op acl.Operation) acl.Binding {
		return acl.Binding{ResourceType: rt, ResourceName: name, PatternType: pt, Principal: principal, Host: "*", Operation: op, Permission: acl.PermissionAllow}
	}
	write := binding(acl.ResourceTopic, "orders", acl.PatternLiteral, "User:alice", acl.OpWrite)
	read := binding(acl.ResourceTopic, "ord", acl.PatternPrefixed, "User:bob", acl.OpRead)
	group := binding(acl.ResourceGroup, "g", acl.PatternLiteral, "User:bob", acl.OpRead)

	updates := follow(t, s.FollowACLs)
	if first := next(t, updates); len(first) != 0 {
		t.Fatalf("first delivery %v, want none", first)
	}
	if err := s.CreateACLs(ctx, []acl.Binding{write, read}); err != nil {
		t.Fatal(err)
	}
	if got := next(t, updates); fmt.Sprint(got) != fmt.Sprint([]acl.Binding{read, write}) {
		t.Fatalf("after creating two, followed %v", got)
	}
	// Idempotent: creating again leaves one of each.
	if err := s.CreateACLs(ctx, []acl.Binding{write, group}); err != nil {
		t.Fatal(err)
	}
	want := []acl.Binding{read, write, group}
	if got := next(t, updates); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after creating again, followed %v, want %v", got, want)
	}
	if got, err := s.ListACLs(ctx, acl.MatchAll); err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ListACLs(all) = %v, %v; want %v", got, err, want)
	}
	bad := write
	bad.Operation = acl.OpAny
	if err := s.CreateACLs(ctx, []acl.Binding{bad}); !errors.Is(err, acl.ErrInvalid) {
		t.Fatalf("creating an invalid binding: %v, want acl.ErrInvalid", err)
	}

	match := acl.Filter{ResourceType: acl.ResourceTopic, ResourceName: str("orders"), PatternType: acl.PatternMatch, Operation: acl.OpAny, Permission: acl.PermissionAny}
	if got, err := s.ListACLs(ctx, match); err != nil || fmt.Sprint(got) != fmt.Sprint([]acl.Binding{read, write}) {
		t.Fatalf("ListACLs(match orders) = %v, %v", got, err)
	}
	bob := acl.Filter{ResourceType: acl.ResourceAny, PatternType: acl.PatternAny, Principal: str("User:bob"), Operation: acl.OpAny, Permission: acl.PermissionAny}
	nothing := acl.Filter{ResourceType: acl.ResourceCluster, PatternType: acl.PatternAny, Operation: acl.OpAny, Permission: acl.PermissionAny}
	deleted, err := s.DeleteACLs(ctx, []acl.Filter{nothing, bob, acl.MatchAll})
	if err != nil {
		t.Fatal(err)
	}
	// A binding matched by two filters is reported under the first.
	if fmt.Sprint(deleted) != fmt.Sprint([][]acl.Binding{nil, {read, group}, {write}}) {
		t.Fatalf("DeleteACLs reported %v", deleted)
	}
	if got := next(t, updates); len(got) != 0 {
		t.Fatalf("after deleting all, followed %v", got)
	}
	if got, err := s.ListACLs(ctx, acl.MatchAll); err != nil || len(got) != 0 {
		t.Fatalf("ListACLs after deleting = %v, %v", got, err)
	}
	if deleted, err := s.DeleteACLs(ctx, []acl.Filter{acl.MatchAll}); err != nil || len(deleted) != 1 || len(deleted[0]) != 0 {
		t.Fatalf("deleting again = %v, %v; want nothing deleted", deleted, err)
	}
}
