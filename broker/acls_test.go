package broker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/internal/await"
)

// TestBrokerFollowsACLs: an ACL written to the metastore (by any broker)
// and then deleted changes this broker's decisions without a restart.
func TestBrokerFollowsACLs(t *testing.T) {
	b, store := startBrokerWith(t, Config{Settings: map[string]string{"authorizer.class.name": "strata"}})
	if b.Authorizer() == nil {
		t.Fatal("no authorizer with authorizer.class.name set")
	}
	write := acl.Binding{ResourceType: acl.ResourceTopic, ResourceName: "t", PatternType: acl.PatternLiteral,
		Principal: "User:alice", Host: "*", Operation: acl.OpWrite, Permission: acl.PermissionAllow}
	allowed := func() bool {
		return b.Authorizer().Authorize("User:alice", "10.0.0.1", acl.OpWrite, acl.ResourceTopic, "t").Allowed
	}
	if allowed() {
		t.Fatal("allowed before any ACL")
	}
	ctx := context.Background()
	if err := store.CreateACLs(ctx, []acl.Binding{write}); err != nil {
		t.Fatal(err)
	}
	await.True(t, 10*time.Second, "the ACL to allow alice", allowed)
	if _, err := store.DeleteACLs(ctx, []acl.Filter{acl.ExactFilter(write)}); err != nil {
		t.Fatal(err)
	}
	await.True(t, 10*time.Second, "the deletion to deny alice", func() bool { return !allowed() })
}

func TestBrokerWithoutAuthorizer(t *testing.T) {
	b, _ := startBroker(t)
	if b.Authorizer() != nil {
		t.Fatal("an authorizer without authorizer.class.name")
	}
	if _, err := b.DescribeACLs(context.Background(), acl.MatchAll); !errors.Is(err, ErrSecurityDisabled) {
		t.Fatalf("DescribeACLs = %v, want ErrSecurityDisabled", err)
	}
	if _, err := New(Config{NodeID: 1, DataDir: t.TempDir(), Settings: map[string]string{"authorizer.class.name": "com.example.Other"}}, nil); err == nil {
		t.Fatal("an unknown authorizer.class.name was accepted")
	}
}
