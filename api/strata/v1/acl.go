package stratav1

import (
	"fmt"

	"github.com/strata-broker/strata/acl"
)

// ACLBinding is b as the API carries it, with Kafka's names.
func ACLBinding(b acl.Binding) *AclBinding {
	return &AclBinding{
		ResourceType: b.ResourceType.String(), ResourceName: b.ResourceName, PatternType: b.PatternType.String(),
		Principal: b.Principal, Host: b.Host, Operation: b.Operation.String(), Permission: b.Permission.String(),
	}
}

// ACL reads the binding; an empty pattern type is LITERAL, an empty
// permission ALLOW and an empty host "*", as kafka-acls defaults them.
// Whether it may be stored is acl.Binding.Validate's to say.
func (x *AclBinding) ACL() (acl.Binding, error) {
	var (
		out = acl.Binding{ResourceName: x.GetResourceName(), Principal: x.GetPrincipal(), Host: x.GetHost()}
		err error
	)
	if out.ResourceType, err = enumName("resource type", x.GetResourceType(), acl.ResourceUnknown, acl.ParseResourceType); err != nil {
		return acl.Binding{}, err
	}
	if out.PatternType, err = enumName("pattern type", x.GetPatternType(), acl.PatternLiteral, acl.ParsePatternType); err != nil {
		return acl.Binding{}, err
	}
	if out.Operation, err = enumName("operation", x.GetOperation(), acl.OpUnknown, acl.ParseOperation); err != nil {
		return acl.Binding{}, err
	}
	if out.Permission, err = enumName("permission", x.GetPermission(), acl.PermissionAllow, acl.ParsePermission); err != nil {
		return acl.Binding{}, err
	}
	if out.Host == "" {
		out.Host = acl.WildcardHost
	}
	return out, nil
}

// ACLFilter is f as the API carries it.
func ACLFilter(f acl.Filter) *AclFilter {
	return &AclFilter{
		ResourceType: f.ResourceType.String(), ResourceName: f.ResourceName, PatternType: f.PatternType.String(),
		Principal: f.Principal, Host: f.Host, Operation: f.Operation.String(), Permission: f.Permission.String(),
	}
}

// ACL reads the filter; an empty enumeration is ANY, and no filter
// matches every binding. A filter Kafka would
// refuse is an error wrapping acl.ErrInvalid.
func (x *AclFilter) ACL() (acl.Filter, error) {
	if x == nil {
		return acl.MatchAll, nil
	}
	var (
		out = acl.Filter{ResourceName: x.ResourceName, Principal: x.Principal, Host: x.Host}
		err error
	)
	if out.ResourceType, err = enumName("resource type", x.GetResourceType(), acl.ResourceAny, acl.ParseResourceType); err != nil {
		return acl.Filter{}, err
	}
	if out.PatternType, err = enumName("pattern type", x.GetPatternType(), acl.PatternAny, acl.ParsePatternType); err != nil {
		return acl.Filter{}, err
	}
	if out.Operation, err = enumName("operation", x.GetOperation(), acl.OpAny, acl.ParseOperation); err != nil {
		return acl.Filter{}, err
	}
	if out.Permission, err = enumName("permission", x.GetPermission(), acl.PermissionAny, acl.ParsePermission); err != nil {
		return acl.Filter{}, err
	}
	return out, out.Validate()
}

// enumName reads one of Kafka's names, def when empty.
func enumName[T ~int8](field, s string, def T, parse func(string) (T, bool)) (T, error) {
	if s == "" {
		return def, nil
	}
	v, ok := parse(s)
	if !ok {
		return 0, fmt.Errorf("%w: unknown %s %q", acl.ErrInvalid, field, s)
	}
	return v, nil
}
