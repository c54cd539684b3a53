package grpcapi

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/strata-broker/strata/acl"
	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/internal/tlsconf"
	"github.com/strata-broker/strata/metastore"
)

// passwords is a PasswordVerifier whose every user's password is the
// user's name and "-secret", counting verifications.
type passwords struct {
	verified atomic.Int32
}

func (p *passwords) VerifyPassword(_ context.Context, user, password string) (string, error) {
	p.verified.Add(1)
	if password == user+"-secret" {
		return "User:" + user, nil
	}
	return "", errors.New("wrong password for " + user)
}

// tokens is a TokenValidator over a map of token → principal, all expiring
// at expiry.
type tokens struct {
	principals map[string]string
	expiry     time.Time
}

func (v tokens) Validate(_ context.Context, token string) (string, time.Time, error) {
	if p, ok := v.principals[token]; ok {
		return p, v.expiry, nil
	}
	return "", time.Time{}, errors.New("unknown token")
}

// secureBroker is broker 1 with an authorizer (User:admin a super user),
// gRPC over TLS taking client certificates if given, and peer 2 registered
// beside it. It returns the core, the broker's address, its certificates
// and peer 2's replica secret.
type secureBroker struct {
	b      *broker.Broker
	addr   string
	certs  tlsconf.Generated
	secret metastore.ReplicaSecret
	pw     *passwords
}

func startSecureBroker(t *testing.T, authorizer bool, tok TokenValidator) *secureBroker {
	t.Helper()
	g, err := tlsconf.Generate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m, err := tlsconf.Load(tlsconf.Options{KeyStore: g.Server, TrustStore: g.CA, ClientAuth: tls.VerifyClientCertIfGiven})
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{"group.initial.rebalance.delay.ms": "0"}
	if authorizer {
		settings["authorizer.class.name"] = "strata"
		settings["super.users"] = "User:admin"
	}
	pw := &passwords{}
	secrets := map[int32]metastore.ReplicaSecret{}
	b, _, addr := serveBroker(t, testBroker{
		settings: settings, peers: []int32{2}, secrets: secrets,
		passwords: pw, tokens: tok,
		serverOpts: []grpc.ServerOption{grpc.Creds(credentials.NewTLS(m.ServerConfig()))},
	})
	return &secureBroker{b: b, addr: addr, certs: g, secret: secrets[2], pw: pw}
}

// dial connects over TLS, presenting the client certificate when withCert.
func (sb *secureBroker) dial(t *testing.T, withCert bool) *grpc.ClientConn {
	t.Helper()
	cert := ""
	if withCert {
		cert = sb.certs.Client
	}
	cfg, err := tlsconf.ClientConfig(sb.certs.CA, cert, "")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(sb.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// as is ctx of calls made as user, with the password the test verifier
// takes.
func as(ctx context.Context, user string) context.Context {
	return basic(ctx, user, user+"-secret")
}

func basic(ctx context.Context, user, password string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, AuthorizationMetadataKey, "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+password)))
}

// methodCase calls one method. A call that must be refused fails with
// PermissionDenied; one allowed succeeds. A filtered method is never
// refused: seen reports whether its answer showed the resource.
type methodCase struct {
	grants   []acl.Binding
	call     func(ctx context.Context, t *testing.T) error
	filtered func(ctx context.Context, t *testing.T) (seen bool)
}

func allow(principal string, op acl.Operation, rt acl.ResourceType, name string) acl.Binding {
	return acl.Binding{ResourceType: rt, ResourceName: name, PatternType: acl.PatternLiteral, Principal: principal, Host: acl.WildcardHost, Operation: op, Permission: acl.PermissionAllow}
}

// TestEveryMethodIsAuthorized: for every method of the Strata and
// Replication services, as the generated descriptors list them, a
// principal without the ACL the method needs is refused with
// PermissionDenied (or, for a listing, not shown the resource), and one
// granted it is served. A method added without a rule fails here.
func TestEveryMethodIsAuthorized(t *testing.T) {
	sb := startSecureBroker(t, true, nil)
	conn := sb.dial(t, false)
	c := stratav1.NewStrataClient(conn)
	rc := stratav1.NewReplicationClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin := as(ctx, "admin")

	// Topics and groups the calls work on, made by the super user.
	for _, name := range []string{"t", "doomed", "markers"} {
		if _, err := c.CreateTopic(admin, &stratav1.CreateTopicRequest{Name: name, Partitions: 1, ReplicationFactor: 1}); err != nil {
			t.Fatal(err)
		}
	}
	produce(t, adminClient{c, admin}, "t", 0, 0, 1)
	// Groups this broker coordinates (peer 2 coordinates others).
	local := func(prefix string) string {
		for i := 0; ; i++ {
			if name := fmt.Sprintf("%s-%d", prefix, i); sb.b.GroupCoordinator(name).NodeID == 1 {
				return name
			}
		}
	}
	listed, deleted, members, committed := local("listed"), local("deleted"), local("members"), local("committed")
	for _, g := range []string{listed, deleted} {
		if _, err := c.CommitOffsets(admin, &stratav1.CommitOffsetsRequest{Group: g, Generation: -1, Offsets: []*stratav1.GroupOffset{{Topic: "t", Partition: 0, Offset: 1}}}); err != nil {
			t.Fatal(err)
		}
	}

	// A transactional id this broker coordinates.
	txid := local("txn")
	await.NoError(t, 10*time.Second, "the broker to coordinate "+txid, func() error {
		_, _, err := sb.b.InitTransactionalProducerID(ctx, txid, 60_000, -1, -1)
		return err
	})

	cases := map[string]func(p string) methodCase{
		stratav1.Strata_CreateTopic_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpCreate, acl.ResourceTopic, "created")}, call: func(ctx context.Context, _ *testing.T) error {
				_, err := c.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "created", Partitions: 1, ReplicationFactor: 1})
				return err
			}}
		},
		stratav1.Strata_DeleteTopic_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpDelete, acl.ResourceTopic, "doomed")}, call: func(ctx context.Context, _ *testing.T) error {
				_, err := c.DeleteTopic(ctx, &stratav1.DeleteTopicRequest{Name: "doomed"})
				return err
			}}
		},
		stratav1.Strata_ListTopics_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpDescribe, acl.ResourceTopic, "t")}, filtered: func(ctx context.Context, t *testing.T) bool {
				resp, err := c.ListTopics(ctx, &stratav1.ListTopicsRequest{})
				if err != nil {
					t.Fatalf("ListTopics: %v", err)
				}
				return slices.ContainsFunc(resp.GetTopics(), func(s *stratav1.TopicSummary) bool { return s.GetName() == "t" })
			}}
		},
		stratav1.Strata_DescribeTopic_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpDescribe, acl.ResourceTopic, "t")}, call: func(ctx context.Context, _ *testing.T) error {
				_, err := c.DescribeTopic(ctx, &stratav1.DescribeTopicRequest{Name: "t"})
				return err
			}}
		},
		stratav1.Strata_AlterTopicConfigs_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpAlterConfigs, acl.ResourceTopic, "t")}, call: func(ctx context.Context, _ *testing.T) error {
				_, err := c.AlterTopicConfigs(ctx, &stratav1.AlterTopicConfigsRequest{Name: "t", Set: map[string]string{"retention.ms": "86400000"}})
				return err
			}}
		},
		stratav1.Strata_CreatePartitions_FullMethodName: func(p string) methodCase {
			// Validate only: "t" keeps its one partition for the others.
			return methodCase{grants: []acl.Binding{allow(p, acl.OpAlter, acl.ResourceTopic, "t")}, call: func(ctx context.Context, _ *testing.T) error {
				_, err := c.CreatePartitions(ctx, &stratav1.CreatePartitionsRequest{Name: "t", Count: 2, ValidateOnly: true})
				return err
			}}
		},
		stratav1.Strata_RestoreTopic_FullMethodName: func(p string) methodCase {
			// Without an object store the restore itself fails, after the
			// authorization this checks.
			return methodCase{grants: []acl.Binding{allow(p, acl.OpCreate, acl.ResourceCluster, acl.ClusterName)}, call: func(ctx context.Context, _ *testing.T) error {
				_, err := c.RestoreTopic(ctx, &stratav1.RestoreTopicRequest{Name: "restored"})
				if err != nil && status.Code(err) != codes.PermissionDenied {
					return nil
				}
				return err
			}}
		},
		stratav1.Strata_Produce_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpWrite, acl.ResourceTopic, "t")}, call: func(ctx context.Context, _ *testing.T) error {
				return tryProduce(adminClient{c, ctx}, "t", 0, 1, 1)
			}}
		},
		stratav1.Strata_Fetch_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpRead, acl.ResourceTopic, "t")}, call: func(ctx context.Context, _ *testing.T) error {
				_, err := c.Fetch(ctx, &stratav1.FetchRequest{Partitions: []*stratav1.FetchPartition{{Topic: "t", Partition: 0}}})
				return err
			}}
		},
		stratav1.Strata_FetchStream_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpRead, acl.ResourceTopic, "t")}, call: func(ctx context.Context, _ *testing.T) error {
				ctx, cancel := context.WithCancel(ctx)
				defer cancel()
				s, err := c.FetchStream(ctx, &stratav1.FetchRequest{Partitions: []*stratav1.FetchPartition{{Topic: "t", Partition: 0}}})
				if err != nil {
					return err
				}
				_, err = s.Recv()
				return err
			}}
		},
		stratav1.Strata_ListOffsets_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpDescribe, acl.ResourceTopic, "t")}, call: func(ctx context.Context, _ *testing.T) error {
				_, err := c.ListOffsets(ctx, &stratav1.ListOffsetsRequest{Topic: "t", Partitions: []*stratav1.ListOffsetsPartition{{Partition: 0, Timestamp: -1}}})
				return err
			}}
		},
		stratav1.Strata_Metadata_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpDescribe, acl.ResourceTopic, "t")}, filtered: func(ctx context.Context, t *testing.T) bool {
				all, err := c.Metadata(ctx, &stratav1.MetadataRequest{})
				if err != nil {
					t.Fatalf("Metadata: %v", err)
				}
				named, err := c.Metadata(ctx, &stratav1.MetadataRequest{Topics: []string{"t"}})
				if err != nil {
					t.Fatalf("Metadata: %v", err)
				}
				listed := slices.ContainsFunc(all.GetTopics(), func(m *stratav1.TopicMetadata) bool { return m.GetName() == "t" })
				if len(named.GetTopics()) != 1 {
					t.Fatalf("Metadata of t answered %d topics", len(named.GetTopics()))
				}
				refused := named.GetTopics()[0].GetError().GetReason() == "TOPIC_AUTHORIZATION_FAILED"
				if listed == refused || refused != (len(named.GetTopics()[0].GetPartitions()) == 0) {
					t.Fatalf("Metadata: t listed %v, named %v", listed, named.GetTopics()[0])
				}
				return listed
			}}
		},
		stratav1.Strata_FindCoordinator_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpDescribe, acl.ResourceGroup, "g")}, call: func(ctx context.Context, _ *testing.T) error {
				_, err := c.FindCoordinator(ctx, &stratav1.FindCoordinatorRequest{Group: "g"})
				return err
			}}
		},
		stratav1.Strata_ConsumeGroup_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpRead, acl.ResourceGroup, members), allow(p, acl.OpDescribe, acl.ResourceTopic, "t")}, call: func(ctx context.Context, _ *testing.T) error {
				ctx, cancel := context.WithCancel(ctx)
				defer cancel()
				s, err := c.ConsumeGroup(ctx)
				if err != nil {
					return err
				}
				if err := s.Send(&stratav1.ConsumeGroupRequest{Group: members, Topics: []string{"t"}}); err != nil {
					return err
				}
				_, err = s.Recv()
				return err
			}}
		},
		stratav1.Strata_CommitOffsets_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpRead, acl.ResourceGroup, committed), allow(p, acl.OpRead, acl.ResourceTopic, "t")}, call: func(ctx context.Context, _ *testing.T) error {
				_, err := c.CommitOffsets(ctx, &stratav1.CommitOffsetsRequest{Group: committed, Generation: -1, Offsets: []*stratav1.GroupOffset{{Topic: "t", Partition: 0, Offset: 1}}})
				return err
			}}
		},
		stratav1.Strata_FetchOffsets_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpDescribe, acl.ResourceGroup, listed)}, call: func(ctx context.Context, _ *testing.T) error {
				_, err := c.FetchOffsets(ctx, &stratav1.FetchOffsetsRequest{Group: listed})
				return err
			}}
		},
		stratav1.Strata_ListGroups_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpDescribe, acl.ResourceGroup, listed)}, filtered: func(ctx context.Context, t *testing.T) bool {
				resp, err := c.ListGroups(ctx, &stratav1.ListGroupsRequest{})
				if err != nil {
					t.Fatalf("ListGroups: %v", err)
				}
				return slices.ContainsFunc(resp.GetGroups(), func(g *stratav1.GroupSummary) bool { return g.GetGroup() == listed })
			}}
		},
		stratav1.Strata_DescribeGroup_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpDescribe, acl.ResourceGroup, listed)}, call: func(ctx context.Context, _ *testing.T) error {
				_, err := c.DescribeGroup(ctx, &stratav1.DescribeGroupRequest{Group: listed})
				return err
			}}
		},
		stratav1.Strata_DeleteGroup_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpDelete, acl.ResourceGroup, deleted)}, call: func(ctx context.Context, _ *testing.T) error {
				_, err := c.DeleteGroup(ctx, &stratav1.DeleteGroupRequest{Group: deleted})
				return err
			}}
		},
		stratav1.Strata_ResetOffsets_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpRead, acl.ResourceGroup, listed), allow(p, acl.OpRead, acl.ResourceTopic, "t")}, call: func(ctx context.Context, _ *testing.T) error {
				_, err := c.ResetOffsets(ctx, &stratav1.ResetOffsetsRequest{Group: listed, Topic: "t", Offsets: []*stratav1.GroupOffset{{Topic: "t", Partition: 0, Offset: 0}}})
				return err
			}}
		},
		stratav1.Strata_TieringStatus_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpDescribe, acl.ResourceTopic, "t")}, call: func(ctx context.Context, _ *testing.T) error {
				_, err := c.TieringStatus(ctx, &stratav1.TieringStatusRequest{Topic: "t"})
				return err
			}}
		},
		stratav1.Strata_DeleteRecords_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpDelete, acl.ResourceTopic, "t")}, call: func(ctx context.Context, _ *testing.T) error {
				_, err := c.DeleteRecords(ctx, &stratav1.DeleteRecordsRequest{Topic: "t", Partitions: []*stratav1.DeleteRecordsPartition{{Partition: 0, Offset: 0}}})
				return err
			}}
		},
		stratav1.Strata_PreviewRetention_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpDescribe, acl.ResourceTopic, "t")}, call: func(ctx context.Context, _ *testing.T) error {
				_, err := c.PreviewRetention(ctx, &stratav1.PreviewRetentionRequest{Topic: "t"})
				return err
			}}
		},
		stratav1.Strata_AlterUserScramCredentials_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpAlter, acl.ResourceCluster, acl.ClusterName)}, call: func(ctx context.Context, _ *testing.T) error {
				resp, err := c.AlterUserScramCredentials(ctx, &stratav1.AlterUserScramCredentialsRequest{Upsertions: []*stratav1.ScramCredentialUpsertion{{
					User: "someone", Mechanism: "SCRAM-SHA-256", Iterations: 4096, Salt: []byte("salt"), SaltedPassword: make([]byte, 32),
				}}})
				if err == nil && resp.GetResults()[0].GetError() != "" {
					return fmt.Errorf("%s: %s", resp.GetResults()[0].GetError(), resp.GetResults()[0].GetErrorMessage())
				}
				return err
			}}
		},
		stratav1.Strata_DescribeUserScramCredentials_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpDescribe, acl.ResourceCluster, acl.ClusterName)}, call: func(ctx context.Context, _ *testing.T) error {
				_, err := c.DescribeUserScramCredentials(ctx, &stratav1.DescribeUserScramCredentialsRequest{})
				return err
			}}
		},
		stratav1.Strata_CreateAcls_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpAlter, acl.ResourceCluster, acl.ClusterName)}, call: func(ctx context.Context, _ *testing.T) error {
				_, err := c.CreateAcls(ctx, &stratav1.CreateAclsRequest{Bindings: []*stratav1.AclBinding{
					stratav1.ACLBinding(allow("User:someone", acl.OpRead, acl.ResourceTopic, "elsewhere")),
				}})
				return err
			}}
		},
		stratav1.Strata_DescribeAcls_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpDescribe, acl.ResourceCluster, acl.ClusterName)}, call: func(ctx context.Context, _ *testing.T) error {
				_, err := c.DescribeAcls(ctx, &stratav1.DescribeAclsRequest{})
				return err
			}}
		},
		stratav1.Strata_DeleteAcls_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpAlter, acl.ResourceCluster, acl.ClusterName)}, call: func(ctx context.Context, _ *testing.T) error {
				nobody := "User:no-such-principal"
				_, err := c.DeleteAcls(ctx, &stratav1.DeleteAclsRequest{Filters: []*stratav1.AclFilter{{Principal: &nobody}}})
				return err
			}}
		},
		stratav1.Strata_AlterPartitionReassignments_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpAlter, acl.ResourceCluster, acl.ClusterName)}, call: func(ctx context.Context, _ *testing.T) error {
				// Cancelling a move that is not there: served, and answered
				// per partition.
				_, err := c.AlterPartitionReassignments(ctx, &stratav1.AlterPartitionReassignmentsRequest{Reassignments: []*stratav1.PartitionReassignment{{Topic: "t", Partition: 0}}})
				return err
			}}
		},
		stratav1.Strata_ListPartitionReassignments_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpDescribe, acl.ResourceCluster, acl.ClusterName)}, call: func(ctx context.Context, _ *testing.T) error {
				_, err := c.ListPartitionReassignments(ctx, &stratav1.ListPartitionReassignmentsRequest{})
				return err
			}}
		},
		stratav1.Strata_ElectLeaders_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpAlter, acl.ResourceCluster, acl.ClusterName)}, call: func(ctx context.Context, _ *testing.T) error {
				_, err := c.ElectLeaders(ctx, &stratav1.ElectLeadersRequest{Partitions: []*stratav1.TopicPartitionRef{{Topic: "t", Partition: 0}}})
				return err
			}}
		},
		stratav1.Strata_DescribeLogDirs_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpDescribe, acl.ResourceCluster, acl.ClusterName)}, call: func(ctx context.Context, _ *testing.T) error {
				_, err := c.DescribeLogDirs(ctx, &stratav1.DescribeLogDirsRequest{})
				return err
			}}
		},
		stratav1.Strata_ListTransactions_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpDescribe, acl.ResourceTransactionalID, txid)}, filtered: func(ctx context.Context, t *testing.T) bool {
				resp, err := c.ListTransactions(ctx, &stratav1.ListTransactionsRequest{})
				if err != nil {
					t.Fatalf("ListTransactions: %v", err)
				}
				return slices.ContainsFunc(resp.GetTransactions(), func(s *stratav1.TransactionSummary) bool { return s.GetTransactionalId() == txid })
			}}
		},
		stratav1.Strata_DescribeTransactions_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpDescribe, acl.ResourceTransactionalID, txid)}, call: func(ctx context.Context, t *testing.T) error {
				resp, err := c.DescribeTransactions(ctx, &stratav1.DescribeTransactionsRequest{TransactionalIds: []string{txid}})
				if err == nil && resp.GetTransactions()[0].GetError() != nil {
					t.Fatalf("served, but not described: %v", resp.GetTransactions()[0].GetError())
				}
				return err
			}}
		},
		stratav1.Replication_ReplicaFetch_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpClusterAction, acl.ResourceCluster, acl.ClusterName)}, call: func(ctx context.Context, _ *testing.T) error {
				ctx = metadata.AppendToOutgoingContext(ctx, ReplicaSecretMetadataKey, string(sb.secret))
				_, err := rc.ReplicaFetch(ctx, &stratav1.ReplicaFetchRequest{ReplicaId: 2, MaxBytes: 1 << 20,
					Partitions: []*stratav1.ReplicaFetchPartition{{Topic: "t", Partition: 0}}})
				return err
			}}
		},
		stratav1.Replication_WriteTxnMarkers_FullMethodName: func(p string) methodCase {
			return methodCase{grants: []acl.Binding{allow(p, acl.OpClusterAction, acl.ResourceCluster, acl.ClusterName)}, call: func(ctx context.Context, t *testing.T) error {
				ctx = metadata.AppendToOutgoingContext(ctx, ReplicaSecretMetadataKey, string(sb.secret))
				resp, err := rc.WriteTxnMarkers(ctx, &stratav1.WriteTxnMarkersRequest{BrokerId: 2, Markers: []*stratav1.TxnMarker{{
					ProducerId: 7, Partitions: []*stratav1.TxnMarkerPartition{{Topic: "markers", Partition: 0}}}}})
				if err == nil {
					if e := resp.GetMarkers()[0].GetPartitions()[0].GetError(); e != nil {
						t.Fatalf("served, but the marker was refused: %v", e)
					}
				}
				return err
			}}
		},
	}

	var methods []string
	for _, d := range []grpc.ServiceDesc{stratav1.Strata_ServiceDesc, stratav1.Replication_ServiceDesc} {
		for _, m := range d.Methods {
			methods = append(methods, "/"+d.ServiceName+"/"+m.MethodName)
		}
		for _, s := range d.Streams {
			methods = append(methods, "/"+d.ServiceName+"/"+s.StreamName)
		}
	}
	for _, method := range methods {
		if _, ok := rules[method]; !ok {
			t.Errorf("%s has no authorization rule", method)
		}
		mk, ok := cases[method]
		if !ok {
			t.Errorf("%s has no case in this test", method)
			continue
		}
		t.Run(method, func(t *testing.T) {
			user := fmt.Sprintf("u%d", slices.Index(methods, method))
			mc := mk("User:" + user)
			// Before the grant: refused.
			if mc.filtered != nil {
				if mc.filtered(as(ctx, user), t) {
					t.Fatalf("shown before any ACL allowed it")
				}
			} else if err := mc.call(as(ctx, user), t); status.Code(err) != codes.PermissionDenied {
				t.Fatalf("without the ACL: %v; want PermissionDenied", err)
			}
			if err := sb.b.CreateACLs(ctx, mc.grants); err != nil {
				t.Fatal(err)
			}
			// The authorizer follows the ACLs: poll until the grant is seen.
			await.NoError(t, 10*time.Second, "the granted call to be served", func() error {
				if mc.filtered != nil {
					if !mc.filtered(as(ctx, user), t) {
						return errors.New("not shown")
					}
					return nil
				}
				err := mc.call(as(ctx, user), t)
				if status.Code(err) == codes.PermissionDenied {
					return err
				}
				if err != nil {
					t.Fatalf("with the ACL: %v", err)
				}
				return nil
			})
		})
	}
	for m := range rules {
		if !slices.Contains(methods, m) {
			t.Errorf("rule for %s, which no service has", m)
		}
	}
}

// adminClient makes the helpers' calls (produce) with a fixed context, the
// caller's credentials in it.
type adminClient struct {
	stratav1.StrataClient
	ctx context.Context
}

func (a adminClient) Produce(_ context.Context, in *stratav1.ProduceRequest, opts ...grpc.CallOption) (*stratav1.ProduceResponse, error) {
	return a.StrataClient.Produce(a.ctx, in, opts...)
}

// TestAuthentication: wrong, malformed or unaccepted credentials are
// Unauthenticated with a message that tells nothing; credentials over a
// plaintext connection are refused; no credentials is User:ANONYMOUS.
func TestAuthentication(t *testing.T) {
	expired := time.Now().Add(-time.Minute)
	sb := startSecureBroker(t, true, tokens{principals: map[string]string{"good": "User:carol", "stale": "User:dave"}, expiry: expired})
	c := stratav1.NewStrataClient(sb.dial(t, false))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for name, ctx := range map[string]context.Context{
		"wrong password": basic(ctx, "admin", "guess"),
		"unknown user":   basic(ctx, "mallory", "guess"),
		"not base64":     metadata.AppendToOutgoingContext(ctx, AuthorizationMetadataKey, "Basic !!!"),
		"expired token":  metadata.AppendToOutgoingContext(ctx, AuthorizationMetadataKey, "Bearer stale"),
		"unknown token":  metadata.AppendToOutgoingContext(ctx, AuthorizationMetadataKey, "Bearer forged"),
	} {
		_, err := c.ListTopics(ctx, &stratav1.ListTopicsRequest{})
		if status.Code(err) != codes.Unauthenticated || status.Convert(err).Message() != "authentication failed" {
			t.Errorf("%s: %v; want Unauthenticated, authentication failed", name, err)
		}
	}
	if _, err := c.ListTopics(metadata.AppendToOutgoingContext(ctx, AuthorizationMetadataKey, "Digest x"), &stratav1.ListTopicsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("unknown scheme: %v; want Unauthenticated", err)
	}
	// Anonymous: authenticated, and refused what User:ANONYMOUS may not do.
	if _, err := c.DescribeTopic(ctx, &stratav1.DescribeTopicRequest{Name: "t"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("anonymous DescribeTopic: %v; want PermissionDenied", err)
	}

	// Over plaintext, credentials are refused even when right.
	plain := serveBrokerPlain(t, sb.pw)
	if _, err := plain.ListTopics(as(ctx, "admin"), &stratav1.ListTopicsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Basic over plaintext: %v; want Unauthenticated", err)
	}
}

func serveBrokerPlain(t *testing.T, pw PasswordVerifier) stratav1.StrataClient {
	t.Helper()
	_, c, _ := serveBroker(t, testBroker{passwords: pw})
	return c
}

// TestCredentialCachedPerConnection: a connection sending the same
// password on every call is verified once; another password, or another
// connection, is verified again.
func TestCredentialCachedPerConnection(t *testing.T) {
	sb := startSecureBroker(t, false, nil)
	c := stratav1.NewStrataClient(sb.dial(t, false))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 5 {
		if _, err := c.ListTopics(as(ctx, "admin"), &stratav1.ListTopicsRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := sb.pw.verified.Load(); n != 1 {
		t.Fatalf("5 calls with one credential verified %d times; want 1", n)
	}
	if _, err := c.ListTopics(as(ctx, "nobody"), &stratav1.ListTopicsRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListTopics(basic(ctx, "admin", "wrong"), &stratav1.ListTopicsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("a wrong password after a right one on the same connection: %v; want Unauthenticated", err)
	}
	other := stratav1.NewStrataClient(sb.dial(t, false))
	if _, err := other.ListTopics(as(ctx, "admin"), &stratav1.ListTopicsRequest{}); err != nil {
		t.Fatal(err)
	}
	if n := sb.pw.verified.Load(); n != 4 {
		t.Fatalf("verified %d times; want 4 (first, another user, a wrong password, another connection)", n)
	}
}

// TestPrincipalSources: a client certificate makes the caller its
// subject's principal, a bearer token the token's, and either can be
// granted ACLs.
func TestPrincipalSources(t *testing.T) {
	sb := startSecureBroker(t, true, tokens{principals: map[string]string{"tok": "User:carol"}, expiry: time.Now().Add(time.Hour)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := stratav1.NewStrataClient(sb.dial(t, false))
	if _, err := admin.CreateTopic(as(ctx, "admin"), &stratav1.CreateTopicRequest{Name: "t", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	withCert := stratav1.NewStrataClient(sb.dial(t, true))
	bearer := metadata.AppendToOutgoingContext(ctx, AuthorizationMetadataKey, "Bearer tok")
	for who, call := range map[string]func() error{
		"User:CN=strata-client": func() error {
			_, err := withCert.DescribeTopic(ctx, &stratav1.DescribeTopicRequest{Name: "t"})
			return err
		},
		"User:carol": func() error {
			_, err := admin.DescribeTopic(bearer, &stratav1.DescribeTopicRequest{Name: "t"})
			return err
		},
	} {
		if err := call(); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("%s before its ACL: %v; want PermissionDenied", who, err)
		}
		if err := sb.b.CreateACLs(ctx, []acl.Binding{allow(who, acl.OpDescribe, acl.ResourceTopic, "t")}); err != nil {
			t.Fatal(err)
		}
		await.NoError(t, 10*time.Second, who+" to be allowed", call)
	}
}

// TestNoAuthorizerAllowsEverything: without authorizer.class.name every
// principal, anonymous included, is served, and the ACL methods answer
// FAILED_PRECONDITION (Kafka's SECURITY_DISABLED).
func TestNoAuthorizerAllowsEverything(t *testing.T) {
	_, c, _ := serveBroker(t, testBroker{})
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "t", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DescribeAcls(ctx, &stratav1.DescribeAclsRequest{}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("DescribeAcls without an authorizer: %v; want FailedPrecondition", err)
	}
}

// TestACLMethods: CreateAcls, DescribeAcls and DeleteAcls round-trip
// bindings by Kafka's names, and refuse what Kafka refuses.
func TestACLMethods(t *testing.T) {
	_, c, _ := serveBroker(t, testBroker{settings: map[string]string{"authorizer.class.name": "strata", "allow.everyone.if.no.acl.found": "true"}})
	ctx := context.Background()
	b := &stratav1.AclBinding{ResourceType: "Topic", ResourceName: "orders", PatternType: "prefixed", Principal: "User:alice", Operation: "Write"}
	if _, err := c.CreateAcls(ctx, &stratav1.CreateAclsRequest{Bindings: []*stratav1.AclBinding{b}}); err != nil {
		t.Fatal(err)
	}
	resp, err := c.DescribeAcls(ctx, &stratav1.DescribeAclsRequest{Filter: &stratav1.AclFilter{ResourceType: "TOPIC"}})
	if err != nil {
		t.Fatal(err)
	}
	want := &stratav1.AclBinding{ResourceType: "TOPIC", ResourceName: "orders", PatternType: "PREFIXED", Principal: "User:alice", Host: "*", Operation: "WRITE", Permission: "ALLOW"}
	if len(resp.GetBindings()) != 1 || resp.GetBindings()[0].String() != want.String() {
		t.Fatalf("DescribeAcls: %v; want %v", resp.GetBindings(), want)
	}
	for name, bad := range map[string]*stratav1.AclBinding{
		"unknown operation": {ResourceType: "Topic", ResourceName: "x", Principal: "User:a", Operation: "Juggle"},
		"no principal type": {ResourceType: "Topic", ResourceName: "x", Principal: "alice", Operation: "Read"},
		"cluster name":      {ResourceType: "Cluster", ResourceName: "x", Principal: "User:a", Operation: "Alter"},
	} {
		if _, err := c.CreateAcls(ctx, &stratav1.CreateAclsRequest{Bindings: []*stratav1.AclBinding{bad}}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v; want InvalidArgument", name, err)
		}
	}
	alice := "User:alice"
	del, err := c.DeleteAcls(ctx, &stratav1.DeleteAclsRequest{Filters: []*stratav1.AclFilter{{Principal: &alice}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(del.GetResults()) != 1 || len(del.GetResults()[0].GetBindings()) != 1 {
		t.Fatalf("DeleteAcls: %v; want the one binding", del)
	}
	if resp, err := c.DescribeAcls(ctx, &stratav1.DescribeAclsRequest{}); err != nil || len(resp.GetBindings()) != 0 {
		t.Fatalf("after delete: %v, %v; want none", resp, err)
	}
}
