package acl

import "strings"

// Filter selects bindings as Kafka's AclBindingFilter does: a nil name,
// principal or host matches any; ResourceAny, OpAny and PermissionAny match
// any; PatternAny matches bindings of either pattern type with exactly the
// filter's name, and PatternMatch matches the bindings that apply to the
// resource the name names (its LITERAL binding, the LITERAL "*" one, and
// the PREFIXED ones its name begins with).
type Filter struct {
	ResourceType ResourceType
	ResourceName *string
	PatternType  PatternType
	Principal    *string
	Host         *string
	Operation    Operation
	Permission   Permission
}

// MatchAll is the filter every binding matches.
var MatchAll = Filter{ResourceType: ResourceAny, PatternType: PatternAny, Operation: OpAny, Permission: PermissionAny}

// ExactFilter is the filter that matches b and no other binding.
func ExactFilter(b Binding) Filter {
	return Filter{
		ResourceType: b.ResourceType, ResourceName: &b.ResourceName, PatternType: b.PatternType,
		Principal: &b.Principal, Host: &b.Host, Operation: b.Operation, Permission: b.Permission,
	}
}

// Validate refuses a filter with an unknown field, which Kafka answers
// with INVALID_REQUEST rather than matching nothing.
func (f Filter) Validate() error {
	if f.ResourceType <= ResourceUnknown || f.ResourceType > ResourceUser {
		return invalid("unknown resource type %s", f.ResourceType)
	}
	if f.PatternType <= PatternUnknown || f.PatternType > PatternPrefixed {
		return invalid("unknown pattern type %s", f.PatternType)
	}
	if f.Operation <= OpUnknown || f.Operation > OpDescribeTokens {
		return invalid("unknown operation %s", f.Operation)
	}
	if f.Permission <= PermissionUnknown || f.Permission > PermissionAllow {
		return invalid("unknown permission type %s", f.Permission)
	}
	return nil
}

// Matches reports whether f selects b.
func (f Filter) Matches(b Binding) bool {
	return f.matchesPattern(b) &&
		(f.Principal == nil || *f.Principal == b.Principal) &&
		(f.Host == nil || *f.Host == b.Host) &&
		(f.Operation == OpAny || f.Operation == b.Operation) &&
		(f.Permission == PermissionAny || f.Permission == b.Permission)
}

func (f Filter) matchesPattern(b Binding) bool {
	if f.ResourceType != ResourceAny && f.ResourceType != b.ResourceType {
		return false
	}
	if f.PatternType != PatternAny && f.PatternType != PatternMatch && f.PatternType != b.PatternType {
		return false
	}
	if f.ResourceName == nil {
		return true
	}
	name := *f.ResourceName
	if f.PatternType != PatternMatch {
		return name == b.ResourceName
	}
	switch b.PatternType {
	case PatternLiteral:
		return name == b.ResourceName || b.ResourceName == WildcardName
	case PatternPrefixed:
		return strings.HasPrefix(name, b.ResourceName)
	}
	return false
}
