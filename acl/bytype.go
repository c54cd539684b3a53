package acl

import "strings"

// byTypeProbe is the resource name AuthorizeByResourceType first decides
// against: a name no ACL is expected to carry, so that super users and
// allow.everyone.if.no.acl.found answer as they would for any resource.
const byTypeProbe = "hardcode"

// AuthorizeByResourceType reports whether principal, connected from host,
// may perform op on at least one resource of type rt, as Kafka's
// Authorizer.authorizeByResourceType decides it: yes for a super user or
// when the probe name is allowed (allow.everyone.if.no.acl.found with no
// ACL on it); otherwise yes when some Allow ACL of the principal (or its
// type's wildcard) for op (or All) names "*", or names a resource that no
// Deny ACL for op covers (a LITERAL deny of the same name, or a PREFIXED
// deny of one of its prefixes); a LITERAL "*" deny refuses outright.
// Unlike Authorize, an Allow does not imply other operations here (Kafka
// does not). Kafka uses it where one allowed resource of a type is enough:
// InitProducerId without a transactional id takes Write on any topic.
func (a *Authorizer) AuthorizeByResourceType(principal, host string, op Operation, rt ResourceType) bool {
	if a.Authorize(principal, host, op, rt, byTypeProbe).Allowed {
		return true
	}
	ri := a.idx.Load().types[rt]
	if ri == nil {
		return false
	}
	ptype := principal[:strings.IndexByte(principal, ':')+1]
	applies := func(e *entry) bool {
		return (e.principal == principal || (e.wildcardPrincipal && e.principal[:len(e.principal)-1] == ptype)) &&
			(e.host == WildcardHost || e.host == host) &&
			(e.op == op || e.op == OpAll)
	}
	has := func(entries []entry, perm Permission) bool {
		for i := range entries {
			if entries[i].permission == perm && applies(&entries[i]) {
				return true
			}
		}
		return false
	}
	if has(ri.literal[WildcardName], PermissionDeny) {
		return false
	}
	if has(ri.literal[WildcardName], PermissionAllow) {
		return true
	}
	// deniedUnder reports whether a PREFIXED deny covers every name that
	// begins with name.
	deniedUnder := func(name string) bool {
		for _, l := range ri.prefixLens {
			if l > len(name) {
				break
			}
			if has(ri.prefixed[name[:l]], PermissionDeny) {
				return true
			}
		}
		return false
	}
	for name, entries := range ri.literal {
		if name != WildcardName && has(entries, PermissionAllow) && !has(entries, PermissionDeny) && !deniedUnder(name) {
			return true
		}
	}
	for name, entries := range ri.prefixed {
		if has(entries, PermissionAllow) && !deniedUnder(name) {
			return true
		}
	}
	return false
}
