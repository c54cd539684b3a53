package kafkaapi

import (
	"context"
	"net"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/metastore"
)

// The rules below are Kafka's (KafkaApis), written out here from its
// documentation of each API's ACLs rather than taken from the frontend's
// code: a request of every registered API is sent as a principal with no
// ACLs and must get Kafka's error, then with the ACLs granted and must be
// served.

const (
	testPrincipal = "User:alice"
	testHost      = "10.0.0.1"
)

// aclGroups is a coordinator with one group, "g", which committed an
// offset of topic "t" and of topic "hidden".
type aclGroups struct{ nullGroups }

func (aclGroups) List(context.Context) ([]group.Summary, error) {
	return []group.Summary{{Group: "g", State: "Empty"}}, nil
}

func (aclGroups) FetchOffsets(context.Context, string) ([]metastore.OffsetCommit, error) {
	return []metastore.OffsetCommit{{Topic: "hidden", Partition: 0, Offset: 3}, {Topic: "t", Partition: 0, Offset: 5}}, nil
}

func allow(rt acl.ResourceType, name string, op acl.Operation) acl.Binding {
	return acl.Binding{ResourceType: rt, ResourceName: name, PatternType: acl.PatternLiteral,
		Principal: testPrincipal, Host: acl.WildcardHost, Operation: op, Permission: acl.PermissionAllow}
}

func str(s string) *string { return &s }

// authzCase is one API's rule: a request, the error a principal without
// grants gets (or check, for APIs that narrow their answer instead of
// refusing), and the ACLs that get it served.
type authzCase struct {
	req    func() kmsg.Request
	refuse int16
	grants []acl.Binding
	// check, when set, replaces the error code test: it is given the
	// response and whether the grants were in place.
	check func(t *testing.T, resp kmsg.Response, granted bool)
	// onConnection marks the SASL APIs, which only a connection answers
	// and which need no ACL: TestSASLNeedsNoACLs authenticates with no
	// ACLs at all.
	onConnection bool
}

func authzCases() map[int16]authzCase {
	topicRead := []acl.Binding{allow(acl.ResourceTopic, "t", acl.OpRead)}
	groupRead := []acl.Binding{allow(acl.ResourceGroup, "g", acl.OpRead)}
	groupErr := kerr.GroupAuthorizationFailed.Code
	topicErr := kerr.TopicAuthorizationFailed.Code
	clusterErr := kerr.ClusterAuthorizationFailed.Code
	txnErr := kerr.TransactionalIDAuthorizationFailed.Code
	return map[int16]authzCase{
		0: {req: func() kmsg.Request {
			r := kmsg.NewPtrProduceRequest()
			r.Acks = -1
			p := kmsg.NewProduceRequestTopicPartition()
			r.Topics = []kmsg.ProduceRequestTopic{{Topic: "t", Partitions: []kmsg.ProduceRequestTopicPartition{p}}}
			return r
		}, refuse: topicErr, grants: []acl.Binding{allow(acl.ResourceTopic, "t", acl.OpWrite)}},
		1: {req: func() kmsg.Request {
			r := kmsg.NewPtrFetchRequest()
			p := kmsg.NewFetchRequestTopicPartition()
			r.Topics = []kmsg.FetchRequestTopic{{Topic: "t", TopicID: [16]byte{15: 1}, Partitions: []kmsg.FetchRequestTopicPartition{p}}}
			return r
		}, refuse: topicErr, grants: topicRead},
		2: {req: func() kmsg.Request {
			r := kmsg.NewPtrListOffsetsRequest()
			p := kmsg.NewListOffsetsRequestTopicPartition()
			r.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: "t", Partitions: []kmsg.ListOffsetsRequestTopicPartition{p}}}
			return r
		}, refuse: topicErr, grants: []acl.Binding{allow(acl.ResourceTopic, "t", acl.OpDescribe)}},
		3: {req: func() kmsg.Request {
			r := kmsg.NewPtrMetadataRequest()
			r.Topics = []kmsg.MetadataRequestTopic{{Topic: str("t")}}
			return r
		}, refuse: topicErr, grants: []acl.Binding{allow(acl.ResourceTopic, "t", acl.OpDescribe)}},
		8: {req: func() kmsg.Request {
			r := kmsg.NewPtrOffsetCommitRequest()
			r.Group = "g"
			p := kmsg.NewOffsetCommitRequestTopicPartition()
			r.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{p}}}
			return r
		}, refuse: groupErr, grants: append(slices.Clone(groupRead), topicRead...)},
		9: {req: func() kmsg.Request {
			r := kmsg.NewPtrOffsetFetchRequest()
			r.Group = "g"
			r.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0}}}
			// v8+ name their groups here.
			r.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "g", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{0}}}}}
			return r
		}, refuse: groupErr, grants: []acl.Binding{allow(acl.ResourceGroup, "g", acl.OpDescribe), allow(acl.ResourceTopic, "t", acl.OpDescribe)}},
		28: {req: func() kmsg.Request {
			r := kmsg.NewPtrTxnOffsetCommitRequest()
			r.TransactionalID, r.Group = "tx", "g"
			p := kmsg.NewTxnOffsetCommitRequestTopicPartition()
			r.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{p}}}
			return r
		}, refuse: kerr.TransactionalIDAuthorizationFailed.Code, grants: append([]acl.Binding{allow(acl.ResourceTransactionalID, "tx", acl.OpWrite)},
			append(slices.Clone(groupRead), topicRead...)...)},
		10: {req: func() kmsg.Request {
			r := kmsg.NewPtrFindCoordinatorRequest()
			r.CoordinatorKey, r.CoordinatorKeys = "g", []string{"g"}
			return r
		}, refuse: groupErr, grants: []acl.Binding{allow(acl.ResourceGroup, "g", acl.OpDescribe)}},
		11: {req: func() kmsg.Request {
			r := kmsg.NewPtrJoinGroupRequest()
			r.Group, r.ProtocolType, r.SessionTimeoutMillis = "g", "consumer", 30000
			r.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{}}}
			return r
		}, refuse: groupErr, grants: groupRead},
		12: {req: func() kmsg.Request {
			r := kmsg.NewPtrHeartbeatRequest()
			r.Group = "g"
			return r
		}, refuse: groupErr, grants: groupRead},
		13: {req: func() kmsg.Request {
			r := kmsg.NewPtrLeaveGroupRequest()
			r.Group = "g"
			r.Members = []kmsg.LeaveGroupRequestMember{{MemberID: "m"}}
			return r
		}, refuse: groupErr, grants: groupRead},
		14: {req: func() kmsg.Request {
			r := kmsg.NewPtrSyncGroupRequest()
			r.Group = "g"
			return r
		}, refuse: groupErr, grants: groupRead},
		68: {req: func() kmsg.Request {
			r := kmsg.NewPtrConsumerGroupHeartbeatRequest()
			r.Group, r.MemberID = "g", "m"
			return r
		}, refuse: groupErr, grants: groupRead},
		69: {req: func() kmsg.Request {
			r := kmsg.NewPtrConsumerGroupDescribeRequest()
			r.Groups = []string{"g"}
			return r
		}, refuse: groupErr, grants: []acl.Binding{allow(acl.ResourceGroup, "g", acl.OpDescribe)}},
		15: {req: func() kmsg.Request {
			r := kmsg.NewPtrDescribeGroupsRequest()
			r.Groups = []string{"g"}
			return r
		}, refuse: groupErr, grants: []acl.Binding{allow(acl.ResourceGroup, "g", acl.OpDescribe)}},
		16: {req: func() kmsg.Request { return kmsg.NewPtrListGroupsRequest() },
			grants: []acl.Binding{allow(acl.ResourceGroup, "g", acl.OpDescribe)},
			check: func(t *testing.T, resp kmsg.Response, granted bool) {
				groups := resp.(*kmsg.ListGroupsResponse).Groups
				if listed := len(groups) == 1 && groups[0].Group == "g"; listed != granted {
					t.Errorf("group g listed: %v, want %v (%+v)", listed, granted, groups)
				}
			}},
		17: {onConnection: true},
		36: {onConnection: true},
		50: {req: func() kmsg.Request {
			r := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
			r.Users = []kmsg.DescribeUserSCRAMCredentialsRequestUser{{Name: "bob"}}
			return r
		}, refuse: clusterErr, grants: []acl.Binding{allow(acl.ResourceCluster, acl.ClusterName, acl.OpDescribe)}},
		51: {req: func() kmsg.Request {
			r := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
			d := kmsg.NewAlterUserSCRAMCredentialsRequestDeletion()
			d.Name, d.Mechanism = "bob", 1
			r.Deletions = []kmsg.AlterUserSCRAMCredentialsRequestDeletion{d}
			return r
		}, refuse: clusterErr, grants: []acl.Binding{allow(acl.ResourceCluster, acl.ClusterName, acl.OpAlter)}},
		18: {req: func() kmsg.Request { return kmsg.NewPtrApiVersionsRequest() },
			check: func(t *testing.T, resp kmsg.Response, _ bool) {
				if r := resp.(*kmsg.ApiVersionsResponse); r.ErrorCode != 0 || len(r.ApiKeys) == 0 {
					t.Errorf("ApiVersions: error %d, %d keys", r.ErrorCode, len(r.ApiKeys))
				}
			}},
		19: {req: func() kmsg.Request {
			r := kmsg.NewPtrCreateTopicsRequest()
			t := kmsg.NewCreateTopicsRequestTopic()
			t.Topic, t.NumPartitions, t.ReplicationFactor = "t2", 1, 1
			r.Topics = []kmsg.CreateTopicsRequestTopic{t}
			return r
		}, refuse: topicErr, grants: []acl.Binding{allow(acl.ResourceTopic, "t2", acl.OpCreate), allow(acl.ResourceTopic, "t2", acl.OpDescribeConfigs)}},
		20: {req: func() kmsg.Request {
			r := kmsg.NewPtrDeleteTopicsRequest()
			r.TopicNames = []string{"t"}
			r.Topics = []kmsg.DeleteTopicsRequestTopic{{Topic: str("t")}}
			return r
		}, refuse: topicErr, grants: []acl.Binding{allow(acl.ResourceTopic, "t", acl.OpDelete)}},
		21: {req: func() kmsg.Request {
			r := kmsg.NewPtrDeleteRecordsRequest()
			r.Topics = []kmsg.DeleteRecordsRequestTopic{{Topic: "t", Partitions: []kmsg.DeleteRecordsRequestTopicPartition{{Partition: 0, Offset: 1}}}}
			return r
		}, refuse: topicErr, grants: []acl.Binding{allow(acl.ResourceTopic, "t", acl.OpDelete)}},
		23: {req: func() kmsg.Request {
			r := kmsg.NewPtrOffsetForLeaderEpochRequest()
			p := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
			r.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{p}}}
			return r
		}, refuse: topicErr, grants: []acl.Binding{allow(acl.ResourceTopic, "t", acl.OpDescribe)}},
		61: {req: func() kmsg.Request {
			r := kmsg.NewPtrDescribeProducersRequest()
			r.Topics = []kmsg.DescribeProducersRequestTopic{{Topic: "t", Partitions: []int32{0}}}
			return r
		}, refuse: topicErr, grants: topicRead},
		22: {req: func() kmsg.Request { return kmsg.NewPtrInitProducerIDRequest() },
			refuse: clusterErr, grants: []acl.Binding{allow(acl.ResourceCluster, acl.ClusterName, acl.OpIdempotentWrite)}},
		29: {req: func() kmsg.Request {
			r := kmsg.NewPtrDescribeACLsRequest()
			r.ResourceType, r.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
			r.Operation, r.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
			return r
		}, refuse: clusterErr, grants: []acl.Binding{allow(acl.ResourceCluster, acl.ClusterName, acl.OpDescribe)}},
		30: {req: func() kmsg.Request {
			r := kmsg.NewPtrCreateACLsRequest()
			c := kmsg.NewCreateACLsRequestCreation()
			c.ResourceType, c.ResourceName, c.ResourcePatternType = kmsg.ACLResourceTypeTopic, "x", kmsg.ACLResourcePatternTypeLiteral
			c.Principal, c.Host, c.Operation, c.PermissionType = "User:bob", "*", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow
			r.Creations = []kmsg.CreateACLsRequestCreation{c}
			return r
		}, refuse: clusterErr, grants: []acl.Binding{allow(acl.ResourceCluster, acl.ClusterName, acl.OpAlter)}},
		31: {req: func() kmsg.Request {
			r := kmsg.NewPtrDeleteACLsRequest()
			f := kmsg.NewDeleteACLsRequestFilter()
			f.ResourceType, f.ResourcePatternType = kmsg.ACLResourceTypeTopic, kmsg.ACLResourcePatternTypeAny
			f.Operation, f.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
			r.Filters = []kmsg.DeleteACLsRequestFilter{f}
			return r
		}, refuse: clusterErr, grants: []acl.Binding{allow(acl.ResourceCluster, acl.ClusterName, acl.OpAlter)}},
		32: {req: func() kmsg.Request {
			r := kmsg.NewPtrDescribeConfigsRequest()
			r.Resources = []kmsg.DescribeConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "t"}}
			return r
		}, refuse: topicErr, grants: []acl.Binding{allow(acl.ResourceTopic, "t", acl.OpDescribeConfigs)}},
		33: {req: func() kmsg.Request {
			r := kmsg.NewPtrAlterConfigsRequest()
			r.Resources = []kmsg.AlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "t"}}
			return r
		}, refuse: topicErr, grants: []acl.Binding{allow(acl.ResourceTopic, "t", acl.OpAlterConfigs)}},
		37: {req: func() kmsg.Request {
			r := kmsg.NewPtrCreatePartitionsRequest()
			r.Topics = []kmsg.CreatePartitionsRequestTopic{{Topic: "t", Count: 2}}
			return r
		}, refuse: topicErr, grants: []acl.Binding{allow(acl.ResourceTopic, "t", acl.OpAlter)}},
		35: {req: func() kmsg.Request {
			return kmsg.NewPtrDescribeLogDirsRequest()
		}, refuse: clusterErr, grants: []acl.Binding{allow(acl.ResourceCluster, acl.ClusterName, acl.OpDescribe)}},
		42: {req: func() kmsg.Request {
			r := kmsg.NewPtrDeleteGroupsRequest()
			r.Groups = []string{"g"}
			return r
		}, refuse: groupErr, grants: []acl.Binding{allow(acl.ResourceGroup, "g", acl.OpDelete)}},
		43: {req: func() kmsg.Request {
			r := kmsg.NewPtrElectLeadersRequest()
			r.Topics = []kmsg.ElectLeadersRequestTopic{{Topic: "t", Partitions: []int32{0}}}
			return r
		}, refuse: clusterErr, grants: []acl.Binding{allow(acl.ResourceCluster, acl.ClusterName, acl.OpAlter)}},
		45: {req: func() kmsg.Request {
			r := kmsg.NewPtrAlterPartitionAssignmentsRequest()
			r.Topics = []kmsg.AlterPartitionAssignmentsRequestTopic{{Topic: "t", Partitions: []kmsg.AlterPartitionAssignmentsRequestTopicPartition{{Partition: 0, Replicas: []int32{1}}}}}
			return r
		}, refuse: clusterErr, grants: []acl.Binding{allow(acl.ResourceCluster, acl.ClusterName, acl.OpAlter)}},
		46: {req: func() kmsg.Request {
			return kmsg.NewPtrListPartitionReassignmentsRequest()
		}, refuse: clusterErr, grants: []acl.Binding{allow(acl.ResourceCluster, acl.ClusterName, acl.OpDescribe)}},
		44: {req: func() kmsg.Request {
			r := kmsg.NewPtrIncrementalAlterConfigsRequest()
			r.Resources = []kmsg.IncrementalAlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "t"}}
			return r
		}, refuse: topicErr, grants: []acl.Binding{allow(acl.ResourceTopic, "t", acl.OpAlterConfigs)}},
		47: {req: func() kmsg.Request {
			r := kmsg.NewPtrOffsetDeleteRequest()
			r.Group = "g"
			r.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
			return r
		}, refuse: groupErr, grants: []acl.Binding{allow(acl.ResourceGroup, "g", acl.OpDelete), allow(acl.ResourceTopic, "t", acl.OpRead)}},
		24: {req: func() kmsg.Request {
			r := kmsg.NewPtrAddPartitionsToTxnRequest()
			r.TransactionalID = "tx"
			r.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: "t", Partitions: []int32{0}}}
			return r
		}, refuse: txnErr, grants: []acl.Binding{allow(acl.ResourceTransactionalID, "tx", acl.OpWrite), allow(acl.ResourceTopic, "t", acl.OpWrite)}},
		25: {req: func() kmsg.Request {
			r := kmsg.NewPtrAddOffsetsToTxnRequest()
			r.TransactionalID, r.Group = "tx", "g"
			return r
		}, refuse: txnErr, grants: []acl.Binding{allow(acl.ResourceTransactionalID, "tx", acl.OpWrite), allow(acl.ResourceGroup, "g", acl.OpRead)}},
		26: {req: func() kmsg.Request {
			r := kmsg.NewPtrEndTxnRequest()
			r.TransactionalID = "tx"
			return r
		}, refuse: txnErr, grants: []acl.Binding{allow(acl.ResourceTransactionalID, "tx", acl.OpWrite)}},
		65: {req: func() kmsg.Request {
			r := kmsg.NewPtrDescribeTransactionsRequest()
			r.TransactionalIDs = []string{"x"}
			return r
		}, refuse: txnErr, grants: []acl.Binding{allow(acl.ResourceTransactionalID, "x", acl.OpDescribe)}},
		66: {req: func() kmsg.Request { return kmsg.NewPtrListTransactionsRequest() },
			grants: []acl.Binding{allow(acl.ResourceTransactionalID, "x", acl.OpDescribe)},
			check: func(t *testing.T, resp kmsg.Response, granted bool) {
				states := resp.(*kmsg.ListTransactionsResponse).TransactionStates
				if listed := len(states) == 1 && states[0].TransactionalID == "x"; listed != granted {
					t.Errorf("transactional id x listed: %v, want %v (%+v)", listed, granted, states)
				}
			}},
		76: {req: func() kmsg.Request {
			r := kmsg.NewPtrShareGroupHeartbeatRequest()
			r.GroupID, r.MemberID, r.SubscribedTopicNames = "g", "m", []string{"t"}
			return r
		}, refuse: groupErr, grants: []acl.Binding{allow(acl.ResourceGroup, "g", acl.OpRead), allow(acl.ResourceTopic, "t", acl.OpDescribe)}},
		77: {req: func() kmsg.Request {
			r := kmsg.NewPtrShareGroupDescribeRequest()
			r.GroupIDs = []string{"g"}
			return r
		}, refuse: groupErr, grants: []acl.Binding{allow(acl.ResourceGroup, "g", acl.OpDescribe)}},
		78: {req: func() kmsg.Request {
			r := kmsg.NewPtrShareFetchRequest()
			r.GroupID, r.MemberID = str("g"), str("m")
			return r
		}, refuse: groupErr, grants: groupRead},
		79: {req: func() kmsg.Request {
			r := kmsg.NewPtrShareAcknowledgeRequest()
			r.GroupID, r.MemberID, r.ShareSessionEpoch = str("g"), str("m"), 1
			return r
		}, refuse: groupErr, grants: groupRead},
		90: {req: func() kmsg.Request {
			r := kmsg.NewPtrDescribeShareGroupOffsetsRequest()
			r.Groups = []kmsg.DescribeShareGroupOffsetsRequestGroup{{GroupID: "g"}}
			return r
		}, refuse: groupErr, grants: []acl.Binding{allow(acl.ResourceGroup, "g", acl.OpDescribe)}},
		91: {req: func() kmsg.Request {
			r := kmsg.NewPtrAlterShareGroupOffsetsRequest()
			r.GroupID = "g"
			return r
		}, refuse: groupErr, grants: groupRead},
		92: {req: func() kmsg.Request {
			r := kmsg.NewPtrDeleteShareGroupOffsetsRequest()
			r.GroupID = "g"
			return r
		}, refuse: groupErr, grants: []acl.Binding{allow(acl.ResourceGroup, "g", acl.OpDelete)}},
		60: {req: func() kmsg.Request {
			r := kmsg.NewPtrDescribeClusterRequest()
			r.EndpointType = 1
			return r
		}, refuse: clusterErr, grants: []acl.Binding{allow(acl.ResourceCluster, acl.ClusterName, acl.OpDescribe)}},
	}
}

// authzServer is a frontend over nullCore and aclGroups deciding against
// an authorizer with allow.everyone.if.no.acl.found off.
func authzServer(t *testing.T) (*Server, *acl.Authorizer) {
	t.Helper()
	authz := acl.New(acl.Config{})
	return New(nullCore{}, Config{NodeID: 1, Groups: aclGroups{}, ShareGroups: nullShareGroups{}, Authorizer: authz}), authz
}

// ask sends req at version as the test principal and returns the answer.
func ask(t *testing.T, s *Server, req kmsg.Request, version int16) kmsg.Response {
	t.Helper()
	req.SetVersion(version)
	body := req.AppendTo(nil)
	empty := kmsg.RequestForKey(req.Key())
	empty.SetVersion(version)
	ctx := withClient(context.Background(), &client{principal: testPrincipal, host: testHost, api: kmsg.NameForKey(req.Key())})
	resp, err := s.answer(ctx, header{key: req.Key(), version: version}, empty, body)
	if err != nil {
		t.Fatalf("%s v%d: %v", kmsg.NameForKey(req.Key()), version, err)
	}
	if p, ok := resp.(*pooledResponse); ok {
		t.Cleanup(p.release)
		resp = p.Response
	}
	return resp
}

// errorCodes are the codes anywhere in a response (fields named
// ErrorCode or ending so).
func errorCodes(resp kmsg.Response) []int16 {
	var out []int16
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Slice:
			for i := range v.Len() {
				walk(v.Index(i))
			}
		case reflect.Struct:
			for i := range v.NumField() {
				f := v.Type().Field(i)
				if f.Type.Kind() == reflect.Int16 && len(f.Name) >= 9 && f.Name[len(f.Name)-9:] == "ErrorCode" {
					out = append(out, int16(v.Field(i).Int()))
					continue
				}
				walk(v.Field(i))
			}
		}
	}
	walk(reflect.ValueOf(resp))
	return out
}

var authorizationCodes = []int16{
	kerr.TopicAuthorizationFailed.Code, kerr.GroupAuthorizationFailed.Code,
	kerr.ClusterAuthorizationFailed.Code, kerr.TransactionalIDAuthorizationFailed.Code,
}

func TestEveryAPIIsAuthorized(t *testing.T) {
	cases := authzCases()
	s, _ := authzServer(t)
	for _, a := range s.registered() {
		name := kmsg.NameForKey(a.key)
		c, ok := cases[a.key]
		if !ok {
			t.Errorf("%s (key %d) has no authorization rule in this test: add Kafka's", name, a.key)
			continue
		}
		if a.auth.kind == 0 {
			t.Errorf("%s (key %d) states no authorization rule (api.auth)", name, a.key)
		}
		if c.onConnection {
			if a.auth.kind != ruleNone || a.onConn == nil {
				t.Errorf("%s (key %d) is marked as answered on the connection without authorization, but is not", name, a.key)
			}
			continue
		}
		t.Run(name, func(t *testing.T) {
			s, authz := authzServer(t)
			// Refused with no ACLs for the principal, even with ACLs for
			// someone else on the same resources (so that the decision is
			// "no matching ACL", not "no ACL found").
			var others []acl.Binding
			for _, b := range c.grants {
				b.Principal = "User:mallory"
				others = append(others, b)
			}
			authz.Update(others)
			resp := ask(t, s, c.req(), a.max)
			if c.check != nil {
				c.check(t, resp, false)
			} else if codes := errorCodes(resp); !slices.Contains(codes, c.refuse) {
				t.Errorf("without ACLs: codes %v, want %s (%d)", codes, kerr.ErrorForCode(c.refuse), c.refuse)
			}
			authz.Update(append(others, c.grants...))
			resp = ask(t, s, c.req(), a.max)
			if c.check != nil {
				c.check(t, resp, true)
				return
			}
			for _, code := range errorCodes(resp) {
				if slices.Contains(authorizationCodes, code) {
					t.Errorf("with %v: refused with %s", c.grants, kerr.ErrorForCode(code))
				}
			}
		})
	}
}

func TestNoAuthorizerAllowsEverything(t *testing.T) {
	s := New(nullCore{}, Config{NodeID: 1, Groups: aclGroups{}, ShareGroups: nullShareGroups{}})
	for key, c := range authzCases() {
		if c.onConnection {
			continue
		}
		a, _ := s.lookup(key)
		resp := ask(t, s, c.req(), a.max)
		if c.check != nil {
			c.check(t, resp, true)
			continue
		}
		for _, code := range errorCodes(resp) {
			if slices.Contains(authorizationCodes, code) {
				t.Errorf("%s without an authorizer: refused with %s", kmsg.NameForKey(key), kerr.ErrorForCode(code))
			}
		}
	}
}

func TestMetadataListsOnlyDescribableTopics(t *testing.T) {
	s, authz := authzServer(t)
	authz.Update([]acl.Binding{allow(acl.ResourceTopic, "t", acl.OpDescribe)})
	// nullCore's Metadata of every topic lists none; ask by id and by
	// name for one topic allowed and one not.
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{{Topic: str("t")}, {Topic: str("hidden")}}
	resp := ask(t, s, req, 12).(*kmsg.MetadataResponse)
	got := map[string]int16{}
	for _, rt := range resp.Topics {
		got[*rt.Topic] = rt.ErrorCode
	}
	if got["t"] != 0 || got["hidden"] != kerr.TopicAuthorizationFailed.Code || len(got) != 2 {
		t.Fatalf("metadata by name: %v, want t served and hidden TOPIC_AUTHORIZATION_FAILED", got)
	}
	// By id: nullCore's topic "t" has an id; without Describe its name
	// must not come back.
	authz.Update([]acl.Binding{allow(acl.ResourceTopic, "other", acl.OpDescribe)})
	req = kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{{TopicID: topicID("00000000-0000-4000-8000-000000000000")}}
	resp = ask(t, s, req, 12).(*kmsg.MetadataResponse)
	if len(resp.Topics) != 1 || resp.Topics[0].Topic != nil || resp.Topics[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("metadata by id without Describe: %+v", resp.Topics)
	}
}

func TestOffsetFetchOfEveryTopicLeavesOutUndescribable(t *testing.T) {
	s, authz := authzServer(t)
	authz.Update([]acl.Binding{allow(acl.ResourceGroup, "g", acl.OpDescribe), allow(acl.ResourceTopic, "t", acl.OpDescribe)})
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = "g"
	resp := ask(t, s, req, 7).(*kmsg.OffsetFetchResponse)
	var topics []string
	for _, rt := range resp.Topics {
		topics = append(topics, rt.Topic)
	}
	if !slices.Equal(topics, []string{"t"}) {
		t.Fatalf("offsets of every topic: %v, want only t (hidden may not be described)", topics)
	}
}

func TestInitProducerIDTakesWriteOnAnyTopic(t *testing.T) {
	s, authz := authzServer(t)
	authz.Update([]acl.Binding{allow(acl.ResourceTopic, "orders", acl.OpWrite)})
	resp := ask(t, s, kmsg.NewPtrInitProducerIDRequest(), 4).(*kmsg.InitProducerIDResponse)
	if resp.ErrorCode != 0 || resp.ProducerID < 0 {
		t.Fatalf("idempotent producer with Write on a topic: error %d, id %d", resp.ErrorCode, resp.ProducerID)
	}
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID = str("tx")
	resp = ask(t, s, req, 4).(*kmsg.InitProducerIDResponse)
	if resp.ErrorCode != kerr.TransactionalIDAuthorizationFailed.Code {
		t.Fatalf("transactional producer without Write on its id: error %d", resp.ErrorCode)
	}
}

// An ACL naming a host matches a client connecting from that address:
// the host authorization sees is the bare IP ACLs are written with
// ("127.0.0.1"), not Kafka's "/127.0.0.1" of group member hosts.
func TestACLHostIsTheClientsAddress(t *testing.T) {
	authz := acl.New(acl.Config{})
	s := New(nullCore{}, Config{NodeID: 1, Groups: aclGroups{}, ShareGroups: nullShareGroups{}, Authorizer: authz})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(lis)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	grant := func(host string) {
		authz.Update([]acl.Binding{{ResourceType: acl.ResourceTopic, ResourceName: "t", PatternType: acl.PatternLiteral,
			Principal: AnonymousPrincipal, Host: host, Operation: acl.OpDescribe, Permission: acl.PermissionAllow}})
	}
	metadataOfT := func() int16 {
		t.Helper()
		req := kmsg.NewPtrMetadataRequest()
		req.Topics = []kmsg.MetadataRequestTopic{{Topic: str("t")}}
		resp, err := dialRaw(t, lis.Addr().String()).do(req, 12)
		if err != nil {
			t.Fatal(err)
		}
		return resp.(*kmsg.MetadataResponse).Topics[0].ErrorCode
	}
	grant("127.0.0.1")
	if code := metadataOfT(); code != 0 {
		t.Fatalf("Describe granted to host 127.0.0.1, a client from 127.0.0.1 got %s", kerr.ErrorForCode(code))
	}
	grant("10.9.9.9")
	if code := metadataOfT(); code != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("Describe granted to another host only: error %d, want TOPIC_AUTHORIZATION_FAILED", code)
	}
}
