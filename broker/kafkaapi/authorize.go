package kafkaapi

import (
	"context"
	"errors"
	"reflect"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/acl/audit"
)

// Authorization follows Kafka's KafkaApis: each API checks the operations
// its resources need and answers a refused resource with Kafka's error
// for it (TOPIC_AUTHORIZATION_FAILED, GROUP_AUTHORIZATION_FAILED,
// CLUSTER_AUTHORIZATION_FAILED, TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
// serving the rest of the request. Without an authorizer
// (authorizer.class.name unset) everything is allowed and nothing is
// checked.

// errTopicAuthorization marks a topic refused inside a flow that carries
// errors rather than codes (Metadata's auto-create).
var errTopicAuthorization = errors.New("topic authorization failed")

// ruleKind says where an API's authorization happens.
type ruleKind int8

const (
	// ruleNone: the API needs no authorization (ApiVersions, and the SASL
	// exchange that establishes who the principal is).
	ruleNone ruleKind = iota + 1
	// ruleCluster: the whole request needs one operation on the cluster,
	// checked before the handler runs.
	ruleCluster
	// ruleHandler: the handler checks each resource it touches, as the
	// answer depends on which ones are allowed.
	ruleHandler
)

// rule is how an API is authorized. Every registered API states one
// (TestEveryAPIIsAuthorized holds them to it).
type rule struct {
	kind ruleKind
	op   acl.Operation // ruleCluster
	// deny answers a request refused by a ruleCluster check; nil sets the
	// response's top-level error code (and message) to
	// CLUSTER_AUTHORIZATION_FAILED.
	deny func(kmsg.Request) kmsg.Response
}

func noAuthorization() rule  { return rule{kind: ruleNone} }
func checkedInHandler() rule { return rule{kind: ruleHandler} }

// onCluster is the rule of an API whose every request needs op on the
// cluster; deny, if given, answers a refused request.
func onCluster(op acl.Operation, deny ...func(kmsg.Request) kmsg.Response) rule {
	r := rule{kind: ruleCluster, op: op}
	if len(deny) > 0 {
		r.deny = deny[0]
	}
	return r
}

// clusterDenied answers req with CLUSTER_AUTHORIZATION_FAILED in its
// response's top-level ErrorCode (and ErrorMessage, where it has one).
func clusterDenied(req kmsg.Request) kmsg.Response {
	resp := req.ResponseKind()
	v := reflect.ValueOf(resp).Elem()
	if f := v.FieldByName("ErrorCode"); f.IsValid() && f.Kind() == reflect.Int16 {
		f.SetInt(int64(kerr.ClusterAuthorizationFailed.Code))
	}
	if f := v.FieldByName("ErrorMessage"); f.IsValid() && f.Type() == reflect.TypeOf((*string)(nil)) {
		msg := kerr.ClusterAuthorizationFailed.Description
		f.Set(reflect.ValueOf(&msg))
	}
	return resp
}

// authorized decides whether the request's principal may perform op on
// the resource, and records the decision in the audit log and metric.
func (s *Server) authorized(ctx context.Context, op acl.Operation, rt acl.ResourceType, name string) bool {
	return s.decide(ctx, op, rt, name, false)
}

// authorizedQuietly is authorized for a check whose denial narrows the
// answer rather than refusing it (Kafka's logIfDenied=false): the denial
// is logged at DEBUG.
func (s *Server) authorizedQuietly(ctx context.Context, op acl.Operation, rt acl.ResourceType, name string) bool {
	return s.decide(ctx, op, rt, name, true)
}

func (s *Server) decide(ctx context.Context, op acl.Operation, rt acl.ResourceType, name string, quiet bool) bool {
	if s.authz == nil {
		return true
	}
	principal, c := principalOf(ctx), clientOf(ctx)
	d := s.authz.Authorize(principal, c.host, op, rt, name)
	s.audit.Record(ctx, audit.Decision{
		Principal: principal, Host: c.host, Operation: op, ResourceType: rt, ResourceName: name,
		Allowed: d.Allowed, Reason: d.Reason, Quiet: quiet, API: c.api,
	})
	return d.Allowed
}

// authorizedOnAny reports whether the principal may perform op on some
// resource of type rt (Kafka's authorizeByResourceType).
func (s *Server) authorizedOnAny(ctx context.Context, op acl.Operation, rt acl.ResourceType) bool {
	if s.authz == nil {
		return true
	}
	principal, c := principalOf(ctx), clientOf(ctx)
	ok := s.authz.AuthorizeByResourceType(principal, c.host, op, rt)
	reason := acl.ReasonAllowACL
	if !ok {
		reason = acl.ReasonNoMatchingACL
	}
	s.audit.Record(ctx, audit.Decision{
		Principal: principal, Host: c.host, Operation: op, ResourceType: rt, ResourceName: "(any)",
		Allowed: ok, Reason: reason, Quiet: true, API: c.api,
	})
	return ok
}

// topicsAuthorized decides op on each distinct topic once: a request
// names a topic once per partition list, and a denial is logged once.
func (s *Server) topicsAuthorized(ctx context.Context, op acl.Operation, topics func(yield func(string) bool)) map[string]bool {
	if s.authz == nil {
		return nil
	}
	out := map[string]bool{}
	for t := range topics {
		if _, ok := out[t]; !ok {
			out[t] = s.authorized(ctx, op, acl.ResourceTopic, t)
		}
	}
	return out
}

// allowedIn reads a topicsAuthorized answer: nil (no authorizer) allows
// everything.
func allowedIn(m map[string]bool, topic string) bool { return m == nil || m[topic] }
