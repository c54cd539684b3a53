package grpcapi

import (
	"context"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/acl/audit"
	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// access is one thing a call needs: op on the resource of type rt named
// name. orCluster allows it also to a principal that may do op on the
// cluster (Kafka's CreateTopics: Create on the cluster, or on the topic).
type access struct {
	op        acl.Operation
	rt        acl.ResourceType
	name      string
	orCluster bool
}

// rule is what a method's request needs. A method whose answer lists
// resources (ListTopics, Metadata, ListGroups, FetchOffsets,
// ListTransactions) needs nothing up front and leaves out of its answer
// what the principal may not describe (see Server.mayDescribe).
type rule func(req any) []access

func topicAccess(op acl.Operation, name string) access {
	return access{op: op, rt: acl.ResourceTopic, name: name}
}

func groupAccess(op acl.Operation, name string) access {
	return access{op: op, rt: acl.ResourceGroup, name: name}
}

func clusterAccess(op acl.Operation) access {
	return access{op: op, rt: acl.ResourceCluster, name: acl.ClusterName}
}

// groupOffsetTopics are the distinct topics of a group's offsets.
func groupOffsetTopics(op acl.Operation, offs []*stratav1.GroupOffset) []access {
	var out []access
	seen := map[string]bool{}
	for _, o := range offs {
		if !seen[o.GetTopic()] {
			seen[o.GetTopic()] = true
			out = append(out, topicAccess(op, o.GetTopic()))
		}
	}
	return out
}

func fetchTopics(req *stratav1.FetchRequest) []access {
	var out []access
	seen := map[string]bool{}
	for _, p := range req.GetPartitions() {
		if !seen[p.GetTopic()] {
			seen[p.GetTopic()] = true
			out = append(out, topicAccess(acl.OpRead, p.GetTopic()))
		}
	}
	return out
}

// nothing is the rule of a method that filters its answer instead.
func nothing(any) []access { return nil }

// openMethods need no ACL, as Kafka's ApiVersions needs none: the standard
// health service, which probes and load balancers call without
// credentials, and server reflection, which tells no more than the
// published .proto files (grpc.reflection.enable turns it off).
var openMethods = map[string]bool{
	healthpb.Health_Check_FullMethodName:                                   true,
	healthpb.Health_List_FullMethodName:                                    true,
	healthpb.Health_Watch_FullMethodName:                                   true,
	reflectionv1.ServerReflection_ServerReflectionInfo_FullMethodName:      true,
	reflectionv1alpha.ServerReflection_ServerReflectionInfo_FullMethodName: true,
}

// rules are the ACLs every method of the services needs, Kafka's for the
// Kafka API each stands for. A method without a rule is refused (see
// Server.authorize), and a test fails.
var rules = map[string]rule{
	stratav1.Strata_CreateTopic_FullMethodName: func(r any) []access {
		return []access{{op: acl.OpCreate, rt: acl.ResourceTopic, name: r.(*stratav1.CreateTopicRequest).GetName(), orCluster: true}}
	},
	stratav1.Strata_RestoreTopic_FullMethodName: func(r any) []access {
		return []access{{op: acl.OpCreate, rt: acl.ResourceTopic, name: r.(*stratav1.RestoreTopicRequest).GetName(), orCluster: true}}
	},
	stratav1.Strata_DeleteTopic_FullMethodName: func(r any) []access {
		return []access{topicAccess(acl.OpDelete, r.(*stratav1.DeleteTopicRequest).GetName())}
	},
	stratav1.Strata_ListTopics_FullMethodName: nothing,
	stratav1.Strata_DescribeTopic_FullMethodName: func(r any) []access {
		return []access{topicAccess(acl.OpDescribe, r.(*stratav1.DescribeTopicRequest).GetName())}
	},
	stratav1.Strata_AlterTopicConfigs_FullMethodName: func(r any) []access {
		return []access{topicAccess(acl.OpAlterConfigs, r.(*stratav1.AlterTopicConfigsRequest).GetName())}
	},
	// As Kafka's CreatePartitions.
	stratav1.Strata_CreatePartitions_FullMethodName: func(r any) []access {
		return []access{topicAccess(acl.OpAlter, r.(*stratav1.CreatePartitionsRequest).GetName())}
	},
	stratav1.Strata_Produce_FullMethodName: func(r any) []access {
		return []access{topicAccess(acl.OpWrite, r.(*stratav1.ProduceRequest).GetTopic())}
	},
	stratav1.Strata_Fetch_FullMethodName:       func(r any) []access { return fetchTopics(r.(*stratav1.FetchRequest)) },
	stratav1.Strata_FetchStream_FullMethodName: func(r any) []access { return fetchTopics(r.(*stratav1.FetchRequest)) },
	stratav1.Strata_ListOffsets_FullMethodName: func(r any) []access {
		return []access{topicAccess(acl.OpDescribe, r.(*stratav1.ListOffsetsRequest).GetTopic())}
	},
	stratav1.Strata_Metadata_FullMethodName: nothing,
	stratav1.Strata_FindCoordinator_FullMethodName: func(r any) []access {
		return []access{groupAccess(acl.OpDescribe, r.(*stratav1.FindCoordinatorRequest).GetGroup())}
	},
	// Joining needs Read on the group; the broker assigns the member's
	// topics' partitions, which tells their partition counts, so the
	// topics need Describe (reading them needs Read, checked by Fetch).
	stratav1.Strata_ConsumeGroup_FullMethodName: func(r any) []access {
		req := r.(*stratav1.ConsumeGroupRequest)
		out := []access{groupAccess(acl.OpRead, req.GetGroup())}
		for _, t := range req.GetTopics() {
			out = append(out, topicAccess(acl.OpDescribe, t))
		}
		return out
	},
	stratav1.Strata_CommitOffsets_FullMethodName: func(r any) []access {
		req := r.(*stratav1.CommitOffsetsRequest)
		return append([]access{groupAccess(acl.OpRead, req.GetGroup())}, groupOffsetTopics(acl.OpRead, req.GetOffsets())...)
	},
	stratav1.Strata_FetchOffsets_FullMethodName: func(r any) []access {
		return []access{groupAccess(acl.OpDescribe, r.(*stratav1.FetchOffsetsRequest).GetGroup())}
	},
	stratav1.Strata_ListGroups_FullMethodName: nothing,
	stratav1.Strata_DescribeGroup_FullMethodName: func(r any) []access {
		return []access{groupAccess(acl.OpDescribe, r.(*stratav1.DescribeGroupRequest).GetGroup())}
	},
	stratav1.Strata_DeleteGroup_FullMethodName: func(r any) []access {
		return []access{groupAccess(acl.OpDelete, r.(*stratav1.DeleteGroupRequest).GetGroup())}
	},
	// Kafka's AlterConsumerGroupOffsets is an offset commit: Read on the
	// group and on the topic.
	stratav1.Strata_ResetOffsets_FullMethodName: func(r any) []access {
		req := r.(*stratav1.ResetOffsetsRequest)
		return []access{groupAccess(acl.OpRead, req.GetGroup()), topicAccess(acl.OpRead, req.GetTopic())}
	},
	stratav1.Strata_TieringStatus_FullMethodName: func(r any) []access {
		return []access{topicAccess(acl.OpDescribe, r.(*stratav1.TieringStatusRequest).GetTopic())}
	},
	stratav1.Strata_DeleteRecords_FullMethodName: func(r any) []access {
		return []access{topicAccess(acl.OpDelete, r.(*stratav1.DeleteRecordsRequest).GetTopic())}
	},
	stratav1.Strata_PreviewRetention_FullMethodName: func(r any) []access {
		return []access{topicAccess(acl.OpDescribe, r.(*stratav1.PreviewRetentionRequest).GetTopic())}
	},
	// Kafka's AlterUserScramCredentials and DescribeUserScramCredentials.
	stratav1.Strata_AlterUserScramCredentials_FullMethodName:    func(any) []access { return []access{clusterAccess(acl.OpAlter)} },
	stratav1.Strata_DescribeUserScramCredentials_FullMethodName: func(any) []access { return []access{clusterAccess(acl.OpDescribe)} },
	stratav1.Strata_CreateAcls_FullMethodName:                   func(any) []access { return []access{clusterAccess(acl.OpAlter)} },
	stratav1.Strata_DescribeAcls_FullMethodName:                 func(any) []access { return []access{clusterAccess(acl.OpDescribe)} },
	stratav1.Strata_DeleteAcls_FullMethodName:                   func(any) []access { return []access{clusterAccess(acl.OpAlter)} },
	// Kafka's AlterPartitionReassignments, ListPartitionReassignments and
	// ElectLeaders are cluster operations.
	stratav1.Strata_AlterPartitionReassignments_FullMethodName: func(any) []access { return []access{clusterAccess(acl.OpAlter)} },
	stratav1.Strata_ListPartitionReassignments_FullMethodName:  func(any) []access { return []access{clusterAccess(acl.OpDescribe)} },
	stratav1.Strata_ElectLeaders_FullMethodName:                func(any) []access { return []access{clusterAccess(acl.OpAlter)} },
	// As Kafka's DescribeLogDirs.
	stratav1.Strata_DescribeLogDirs_FullMethodName: func(any) []access { return []access{clusterAccess(acl.OpDescribe)} },
	// Kafka's DescribeTransactions needs Describe on each id;
	// ListTransactions leaves out the ids the caller may not describe.
	stratav1.Strata_ListTransactions_FullMethodName: nothing,
	stratav1.Strata_DescribeTransactions_FullMethodName: func(r any) []access {
		ids := r.(*stratav1.DescribeTransactionsRequest).GetTransactionalIds()
		out := make([]access, 0, len(ids))
		for _, id := range ids {
			out = append(out, access{op: acl.OpDescribe, rt: acl.ResourceTransactionalID, name: id})
		}
		return out
	},
	// Only brokers replicate. The replica secret then proves the caller is
	// the replica it names (see broker.ReplicaFetch).
	stratav1.Replication_ReplicaFetch_FullMethodName: func(any) []access { return []access{clusterAccess(acl.OpClusterAction)} },
	// Kafka's WriteTxnMarkers needs ClusterAction too; the replica secret
	// then proves the caller is the broker it names (see
	// broker.WriteTxnMarkers).
	stratav1.Replication_WriteTxnMarkers_FullMethodName: func(any) []access { return []access{clusterAccess(acl.OpClusterAction)} },
}

// authorize checks what the request of method needs against the caller's
// ACLs; it allows everything when the broker has no authorizer.
func (s *Server) authorize(ctx context.Context, method string, req any) error {
	az := s.b.Authorizer()
	if az == nil {
		return nil
	}
	if openMethods[method] {
		return nil
	}
	r, ok := rules[method]
	if !ok {
		// A method added without a rule is closed, not open.
		return status.Errorf(codes.PermissionDenied, "%s has no authorization rule", method)
	}
	principal, host := PrincipalOf(ctx), peerHost(ctx)
	for _, a := range r(req) {
		if a.orCluster {
			d := az.Authorize(principal, host, a.op, acl.ResourceCluster, acl.ClusterName)
			if d.Allowed {
				s.record(ctx, principal, host, method, a.op, acl.ResourceCluster, acl.ClusterName, d, false)
				continue
			}
		}
		d := az.Authorize(principal, host, a.op, a.rt, a.name)
		s.record(ctx, principal, host, method, a.op, a.rt, a.name, d, false)
		if !d.Allowed {
			return denied(principal, a)
		}
	}
	return nil
}

// denied is Kafka's refusal: the error it would send, the operation and
// the resource.
func denied(principal string, a access) error {
	kafka := map[acl.ResourceType]string{
		acl.ResourceTopic:           "TOPIC_AUTHORIZATION_FAILED",
		acl.ResourceGroup:           "GROUP_AUTHORIZATION_FAILED",
		acl.ResourceCluster:         "CLUSTER_AUTHORIZATION_FAILED",
		acl.ResourceTransactionalID: "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
	}[a.rt]
	return status.Errorf(codes.PermissionDenied, "%s: %s is not authorized to %s %s %q", kafka, principal, a.op, a.rt, a.name)
}

// mayDescribe reports whether the caller of ctx may describe the resource,
// for the methods that leave out what it may not. A principal allowed
// Describe on the cluster may describe every group, as in Kafka's
// ListGroups.
func (s *Server) mayDescribe(ctx context.Context, method string, rt acl.ResourceType, name string) bool {
	az := s.b.Authorizer()
	if az == nil {
		return true
	}
	principal, host := PrincipalOf(ctx), peerHost(ctx)
	d := az.Authorize(principal, host, acl.OpDescribe, rt, name)
	// A denial here narrows an answer rather than refusing the call:
	// logged at DEBUG, as Kafka's logIfDenied=false.
	s.record(ctx, principal, host, method, acl.OpDescribe, rt, name, d, true)
	return d.Allowed
}

// record hands one decision to the audit log and the decision metric.
func (s *Server) record(ctx context.Context, principal, host, method string, op acl.Operation, rt acl.ResourceType, name string, d acl.Decision, quiet bool) {
	s.audit.Record(ctx, audit.Decision{Principal: principal, Host: host, Operation: op, ResourceType: rt, ResourceName: name,
		Allowed: d.Allowed, Reason: d.Reason, Quiet: quiet, API: method})
}

// peerHost is the caller's IP address as ACLs name hosts.
func peerHost(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	if h, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
		return h
	}
	return p.Addr.String()
}

// unaryInterceptor authenticates the call, then authorizes its request.
func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	principal, err := s.authn.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	ctx = withPrincipal(ctx, principal)
	if err := s.authorize(ctx, info.FullMethod, req); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

// streamInterceptor authenticates the call, and authorizes its first
// message, which carries what the stream is about (FetchStream's request,
// ConsumeGroup's group and topics), before the handler sees it.
func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	principal, err := s.authn.authenticate(ss.Context())
	if err != nil {
		return err
	}
	return h(srv, &authorizedStream{ServerStream: ss, ctx: withPrincipal(ss.Context(), principal), s: s, method: info.FullMethod})
}

type authorizedStream struct {
	grpc.ServerStream
	ctx     context.Context
	s       *Server
	method  string
	checked bool
	refused error // the first message's refusal, answered to every later receive
}

func (a *authorizedStream) Context() context.Context { return a.ctx }

func (a *authorizedStream) RecvMsg(m any) error {
	if a.refused != nil {
		return a.refused
	}
	if err := a.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if !a.checked {
		a.checked = true
		a.refused = a.s.authorize(a.ctx, a.method, m)
	}
	return a.refused
}
