package kafkatests_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/testenv"
)

func aclAdmin(t *testing.T, addr string) (*kgo.Client, *kadm.Client) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl, kadm.NewClient(cl)
}

// TestKafkaACLs creates, describes with filters and deletes ACLs through
// Kafka's CreateAcls, DescribeAcls and DeleteAcls on a broker with
// authorizer.class.name set, and gets Kafka's per-binding INVALID_REQUEST
// for a binding Kafka refuses.
func TestKafkaACLs(t *testing.T) {
	// The plaintext listener's clients are User:ANONYMOUS: made a super
	// user, it may manage ACLs.
	dev := testenv.StartDev(t, testenv.DevOptions{ExtraArgs: []string{"--config", "authorizer.class.name=strata",
		"--config", "super.users=User:ANONYMOUS"}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, adm := aclAdmin(t, dev.KafkaAddr)

	created, err := adm.CreateACLs(ctx, kadm.NewACLs().Allow("User:alice").AllowHosts().
		Topics("orders").Operations(kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral))
	if err != nil {
		t.Fatal(err)
	}
	more, err := adm.CreateACLs(ctx, kadm.NewACLs().Allow("User:bob").AllowHosts().
		Topics("ord").Groups("g").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternPrefixed))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range append(created, more...) {
		if r.Err != nil {
			t.Fatalf("creating %s %s %s: %v %s", r.Principal, r.Name, r.Operation, r.Err, r.ErrMessage)
		}
	}

	// Invalid bindings are refused one by one; the valid one beside them
	// is created.
	req := kmsg.NewPtrCreateACLsRequest()
	for _, c := range []struct {
		rt        kmsg.ACLResourceType
		name      string
		principal string
		op        kmsg.ACLOperation
	}{
		{kmsg.ACLResourceTypeCluster, "not-the-cluster", "User:alice", kmsg.ACLOperationAlter},
		{kmsg.ACLResourceTypeTopic, "t", "alice", kmsg.ACLOperationRead},
		{kmsg.ACLResourceTypeTopic, "t", "User:alice", kmsg.ACLOperationAny},
		{kmsg.ACLResourceTypeCluster, "kafka-cluster", "User:admin", kmsg.ACLOperationAlter},
	} {
		cr := kmsg.NewCreateACLsRequestCreation()
		cr.ResourceType, cr.ResourceName, cr.ResourcePatternType = c.rt, c.name, kmsg.ACLResourcePatternTypeLiteral
		cr.Principal, cr.Host, cr.Operation, cr.PermissionType = c.principal, "*", c.op, kmsg.ACLPermissionTypeAllow
		req.Creations = append(req.Creations, cr)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	var codes []int16
	for _, r := range resp.Results {
		codes = append(codes, r.ErrorCode)
	}
	inv := kerr.InvalidRequest.Code
	if !slices.Equal(codes, []int16{inv, inv, inv, 0}) {
		t.Fatalf("CreateAcls error codes %v, want [%d %d %d 0]", codes, inv, inv, inv)
	}

	describe := func(b *kadm.ACLBuilder) kadm.DescribedACLs {
		t.Helper()
		res, err := adm.DescribeACLs(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		var out kadm.DescribedACLs
		for _, r := range res {
			if r.Err != nil {
				t.Fatalf("describe: %v", r.Err)
			}
			out = append(out, r.Described...)
		}
		return out
	}
	// MATCH finds the ACLs that apply to topic orders: alice's literal and
	// bob's prefix "ord".
	got := describe(kadm.NewACLs().Allow().AllowHosts().Topics("orders").ResourcePatternType(kadm.ACLPatternMatch).Operations())
	if len(got) != 2 {
		t.Fatalf("described %+v for topic orders (MATCH), want 2 ACLs", got)
	}
	// By principal, any resource: bob's topic prefix and group prefix.
	got = describe(kadm.NewACLs().Allow("User:bob").AllowHosts().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Operations())
	if len(got) != 2 || got[0].Principal != "User:bob" || got[1].Principal != "User:bob" {
		t.Fatalf("described %+v for User:bob, want his 2 ACLs", got)
	}
	// The cluster binding created beside the invalid ones.
	if got = describe(kadm.NewACLs().Allow().AllowHosts().Clusters().ResourcePatternType(kadm.ACLPatternAny).Operations()); len(got) != 1 || got[0].Principal != "User:admin" {
		t.Fatalf("described %+v for the cluster, want User:admin's", got)
	}

	deleted, err := adm.DeleteACLs(ctx, kadm.NewACLs().Allow("User:bob").AllowHosts().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Operations())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range deleted {
		if r.Err != nil {
			t.Fatalf("delete: %v", r.Err)
		}
		n += len(r.Deleted)
	}
	if n != 2 {
		t.Fatalf("deleted %d ACLs of User:bob, want 2: %+v", n, deleted)
	}
	if got = describe(kadm.NewACLs().Allow().AllowHosts().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Operations()); len(got) != 2 {
		t.Fatalf("after deleting bob's, described %+v, want alice's and admin's", got)
	}
}

// TestKafkaACLsSecurityDisabled: without authorizer.class.name the ACL
// APIs answer SECURITY_DISABLED, as Kafka does.
func TestKafkaACLsSecurityDisabled(t *testing.T) {
	dev := testenv.StartDev(t, testenv.DevOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, adm := aclAdmin(t, dev.KafkaAddr)
	res, err := adm.DescribeACLs(ctx, kadm.NewACLs().Allow().AllowHosts().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Operations())
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || !errors.Is(res[0].Err, kerr.SecurityDisabled) {
		t.Fatalf("DescribeAcls = %+v, want SECURITY_DISABLED", res)
	}
	created, err := adm.CreateACLs(ctx, kadm.NewACLs().Allow("User:alice").AllowHosts().Topics("t").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral))
	if err != nil {
		t.Fatal(err)
	}
	if len(created) != 1 || !errors.Is(created[0].Err, kerr.SecurityDisabled) {
		t.Fatalf("CreateAcls = %+v, want SECURITY_DISABLED", created)
	}
}
