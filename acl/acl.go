// Package acl is Kafka's authorization model: ACL bindings (a resource
// pattern and an access control entry), the filters that CreateAcls,
// DescribeAcls and DeleteAcls use to select them, and the authorizer that
// decides whether a principal may perform an operation on a resource.
//
// The numeric codes of resource types, pattern types, operations and
// permission types are Kafka's wire codes, so the Kafka frontend passes them
// through unchanged. The decision is Kafka's (AclAuthorizer and
// StandardAuthorizer agree on it):
//
//   - a super user is allowed everything;
//   - the ACLs that apply to a resource are the LITERAL ones of its name,
//     the LITERAL ones named "*", and the PREFIXED ones whose name begins
//     its name;
//   - of those, an ACL matches a request when its principal is the
//     request's or the wildcard of its type ("User:*"), its host is the
//     client's address or "*", and its operation is the one asked or All;
//     an Allow ACL also matches the operations its own implies (Read,
//     Write, Delete and Alter imply Describe; AlterConfigs implies
//     DescribeConfigs), a Deny ACL does not;
//   - a matching Deny denies, whatever allows; otherwise a matching Allow
//     allows;
//   - when no ACL applies to the resource at all (whoever and whatever
//     they are for), allow.everyone.if.no.acl.found decides; otherwise the
//     request is denied.
package acl

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// ResourceType is Kafka's resource type code.
type ResourceType int8

// Kafka's resource types. Strata authorizes Topic, Group, Cluster and
// TransactionalId; the others can be named in filters only.
const (
	ResourceUnknown         ResourceType = 0
	ResourceAny             ResourceType = 1
	ResourceTopic           ResourceType = 2
	ResourceGroup           ResourceType = 3
	ResourceCluster         ResourceType = 4
	ResourceTransactionalID ResourceType = 5
	ResourceDelegationToken ResourceType = 6
	ResourceUser            ResourceType = 7
)

// PatternType is Kafka's resource pattern type code.
type PatternType int8

// Kafka's pattern types. A binding is LITERAL or PREFIXED; ANY and MATCH
// are for filters only.
const (
	PatternUnknown  PatternType = 0
	PatternAny      PatternType = 1
	PatternMatch    PatternType = 2
	PatternLiteral  PatternType = 3
	PatternPrefixed PatternType = 4
)

// Operation is Kafka's ACL operation code.
type Operation int8

// Kafka's operations. Any is for filters only; All in a binding matches
// every operation.
const (
	OpUnknown         Operation = 0
	OpAny             Operation = 1
	OpAll             Operation = 2
	OpRead            Operation = 3
	OpWrite           Operation = 4
	OpCreate          Operation = 5
	OpDelete          Operation = 6
	OpAlter           Operation = 7
	OpDescribe        Operation = 8
	OpClusterAction   Operation = 9
	OpDescribeConfigs Operation = 10
	OpAlterConfigs    Operation = 11
	OpIdempotentWrite Operation = 12
	OpCreateTokens    Operation = 13
	OpDescribeTokens  Operation = 14
)

// Permission is Kafka's ACL permission type code.
type Permission int8

// Kafka's permission types. Any is for filters only.
const (
	PermissionUnknown Permission = 0
	PermissionAny     Permission = 1
	PermissionDeny    Permission = 2
	PermissionAllow   Permission = 3
)

// ClusterName is the only name a Cluster resource has, as in Kafka.
const ClusterName = "kafka-cluster"

// WildcardName is the LITERAL resource name that applies to every resource
// of its type; WildcardHost is the host that matches every client address.
const (
	WildcardName = "*"
	WildcardHost = "*"
)

// Binding is one ACL: who (Principal, from Host) may or may not
// (Permission) do what (Operation) to which resources (ResourceType,
// ResourceName, PatternType).
type Binding struct {
	ResourceType ResourceType `json:"resource_type"`
	ResourceName string       `json:"resource_name"`
	PatternType  PatternType  `json:"pattern_type"`
	Principal    string       `json:"principal"`
	Host         string       `json:"host"`
	Operation    Operation    `json:"operation"`
	Permission   Permission   `json:"permission"`
}

// ErrInvalid is wrapped by what Validate and Filter.Validate return: the
// binding or filter cannot be used (Kafka's INVALID_REQUEST).
var ErrInvalid = errors.New("acl: invalid")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Validate checks that b can be stored, with the reasons Kafka gives for
// refusing a binding to CreateAcls.
func (b Binding) Validate() error {
	switch b.ResourceType {
	case ResourceTopic, ResourceGroup, ResourceCluster, ResourceTransactionalID:
	default:
		return invalid("unsupported resource type %s", b.ResourceType)
	}
	if b.PatternType != PatternLiteral && b.PatternType != PatternPrefixed {
		return invalid("invalid pattern type %s", b.PatternType)
	}
	if b.ResourceName == "" {
		return invalid("resource name should not be empty")
	}
	if b.ResourceType == ResourceCluster && b.ResourceName != ClusterName {
		return invalid("the only valid name for the CLUSTER resource is %s", ClusterName)
	}
	if b.Operation < OpAll || b.Operation > OpIdempotentWrite {
		return invalid("invalid operation %s", b.Operation)
	}
	if b.Permission != PermissionAllow && b.Permission != PermissionDeny {
		return invalid("invalid permission type %s", b.Permission)
	}
	if _, _, err := ParsePrincipal(b.Principal); err != nil {
		return err
	}
	if b.Host != WildcardHost && net.ParseIP(b.Host) == nil {
		return invalid("host %q is neither %q nor an IP address", b.Host, WildcardHost)
	}
	return nil
}

// ParsePrincipal splits a principal "Type:Name" (User:alice, User:*).
func ParsePrincipal(p string) (typ, name string, err error) {
	typ, name, ok := strings.Cut(p, ":")
	if !ok {
		return "", "", invalid("could not parse principal from %q (no colon is present separating the principal type from the principal name)", p)
	}
	if typ == "" || name == "" {
		return "", "", invalid("principal %q needs a type and a name", p)
	}
	return typ, name, nil
}

// String is the binding as Kafka's tools print it.
func (b Binding) String() string {
	return fmt.Sprintf("(pattern=ResourcePattern(resourceType=%s, name=%s, patternType=%s), entry=(principal=%s, host=%s, operation=%s, permissionType=%s))",
		b.ResourceType, b.ResourceName, b.PatternType, b.Principal, b.Host, b.Operation, b.Permission)
}

var resourceNames = map[ResourceType]string{
	ResourceUnknown: "UNKNOWN", ResourceAny: "ANY", ResourceTopic: "TOPIC", ResourceGroup: "GROUP",
	ResourceCluster: "CLUSTER", ResourceTransactionalID: "TRANSACTIONAL_ID",
	ResourceDelegationToken: "DELEGATION_TOKEN", ResourceUser: "USER",
}

var patternNames = map[PatternType]string{
	PatternUnknown: "UNKNOWN", PatternAny: "ANY", PatternMatch: "MATCH", PatternLiteral: "LITERAL", PatternPrefixed: "PREFIXED",
}

var operationNames = map[Operation]string{
	OpUnknown: "UNKNOWN", OpAny: "ANY", OpAll: "ALL", OpRead: "READ", OpWrite: "WRITE", OpCreate: "CREATE",
	OpDelete: "DELETE", OpAlter: "ALTER", OpDescribe: "DESCRIBE", OpClusterAction: "CLUSTER_ACTION",
	OpDescribeConfigs: "DESCRIBE_CONFIGS", OpAlterConfigs: "ALTER_CONFIGS", OpIdempotentWrite: "IDEMPOTENT_WRITE",
	OpCreateTokens: "CREATE_TOKENS", OpDescribeTokens: "DESCRIBE_TOKENS",
}

var permissionNames = map[Permission]string{
	PermissionUnknown: "UNKNOWN", PermissionAny: "ANY", PermissionDeny: "DENY", PermissionAllow: "ALLOW",
}

func name[K comparable](names map[K]string, k K, code int8) string {
	if s, ok := names[k]; ok {
		return s
	}
	return fmt.Sprintf("UNKNOWN(%d)", code)
}

func (t ResourceType) String() string { return name(resourceNames, t, int8(t)) }
func (t PatternType) String() string  { return name(patternNames, t, int8(t)) }
func (o Operation) String() string    { return name(operationNames, o, int8(o)) }
func (p Permission) String() string   { return name(permissionNames, p, int8(p)) }

// parse finds the code whose name is s, ignoring case and underscores as
// Kafka's fromString does not but kafka-acls' options do ("DescribeConfigs",
// "describe_configs", "DESCRIBE_CONFIGS").
func parse[K comparable](names map[K]string, s string) (K, bool) {
	norm := func(x string) string { return strings.ToUpper(strings.ReplaceAll(x, "_", "")) }
	for k, n := range names {
		if norm(n) == norm(s) {
			return k, true
		}
	}
	var zero K
	return zero, false
}

// ParseResourceType reads a resource type name (Topic, TRANSACTIONAL_ID).
func ParseResourceType(s string) (ResourceType, bool) { return parse(resourceNames, s) }

// ParsePatternType reads a pattern type name (literal, PREFIXED).
func ParsePatternType(s string) (PatternType, bool) { return parse(patternNames, s) }

// ParseOperation reads an operation name (Write, DescribeConfigs).
func ParseOperation(s string) (Operation, bool) { return parse(operationNames, s) }

// ParsePermission reads a permission type name (Allow, DENY).
func ParsePermission(s string) (Permission, bool) { return parse(permissionNames, s) }
