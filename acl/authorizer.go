package acl

import (
	"slices"
	"strings"
	"sync/atomic"
)

// Reason says which rule decided.
type Reason int8

// The rules of a decision, in the order they are tried.
const (
	// ReasonSuperUser: the principal is in super.users.
	ReasonSuperUser Reason = iota + 1
	// ReasonDenyACL: a matching Deny ACL.
	ReasonDenyACL
	// ReasonAllowACL: a matching Allow ACL and no matching Deny.
	ReasonAllowACL
	// ReasonNoACLFound: no ACL applies to the resource, and
	// allow.everyone.if.no.acl.found decided.
	ReasonNoACLFound
	// ReasonNoMatchingACL: ACLs apply to the resource, none allows this.
	ReasonNoMatchingACL
)

func (r Reason) String() string {
	switch r {
	case ReasonSuperUser:
		return "super user"
	case ReasonDenyACL:
		return "deny ACL"
	case ReasonAllowACL:
		return "allow ACL"
	case ReasonNoACLFound:
		return "no ACL found"
	case ReasonNoMatchingACL:
		return "no matching ACL"
	}
	return "unknown"
}

// Decision is the authorizer's answer.
type Decision struct {
	Allowed bool
	Reason  Reason
}

// Config is the authorizer's broker settings.
type Config struct {
	// SuperUsers are super.users: principals allowed everything.
	SuperUsers []string
	// AllowEveryoneIfNoACLFound is allow.everyone.if.no.acl.found.
	AllowEveryoneIfNoACLFound bool
}

// Authorizer decides requests against a set of bindings that Update
// replaces. Authorize reads an immutable index through an atomic pointer,
// so decisions never wait for an update, and each decision sees one whole
// set: the one before an update or the one after.
type Authorizer struct {
	superUsers    map[string]bool
	allowIfNoACLs bool
	idx           atomic.Pointer[index]
}

// New returns an authorizer with no ACLs.
func New(cfg Config) *Authorizer {
	a := &Authorizer{superUsers: map[string]bool{}, allowIfNoACLs: cfg.AllowEveryoneIfNoACLFound}
	for _, p := range cfg.SuperUsers {
		a.superUsers[p] = true
	}
	a.idx.Store(newIndex(nil))
	return a
}

// Update replaces the set of bindings decisions are made against.
// Bindings that are not valid (see Binding.Validate) are ignored.
func (a *Authorizer) Update(bindings []Binding) { a.idx.Store(newIndex(bindings)) }

// Len is the number of bindings decisions are made against.
func (a *Authorizer) Len() int { return a.idx.Load().n }

// Authorize decides whether principal ("User:alice"), connected from host
// (the client's IP address as text), may perform op on the resource of type
// rt named name. It reads only the ACLs that apply to that resource: those
// stored under its name and "*", and those under each prefix length that
// some PREFIXED ACL of the type has, so its cost does not grow with the
// number of ACLs on other resources.
func (a *Authorizer) Authorize(principal, host string, op Operation, rt ResourceType, name string) Decision {
	if a.superUsers[principal] {
		return Decision{Allowed: true, Reason: ReasonSuperUser}
	}
	ri := a.idx.Load().types[rt]
	if ri == nil {
		return a.noACLFound()
	}
	ptype := principal[:strings.IndexByte(principal, ':')+1] // "User:" (or "" when malformed)
	m := matcher{principal: principal, ptype: ptype, host: host, op: op}
	m.check(ri.literal[name])
	if name != WildcardName {
		m.check(ri.literal[WildcardName])
	}
	for _, l := range ri.prefixLens {
		if l > len(name) {
			break
		}
		m.check(ri.prefixed[name[:l]])
	}
	switch {
	case m.denied:
		return Decision{Allowed: false, Reason: ReasonDenyACL}
	case m.allowed:
		return Decision{Allowed: true, Reason: ReasonAllowACL}
	case !m.found:
		return a.noACLFound()
	}
	return Decision{Allowed: false, Reason: ReasonNoMatchingACL}
}

func (a *Authorizer) noACLFound() Decision {
	return Decision{Allowed: a.allowIfNoACLs, Reason: ReasonNoACLFound}
}

type matcher struct {
	principal, ptype, host string
	op                     Operation
	found, allowed, denied bool
}

func (m *matcher) check(entries []entry) {
	if len(entries) > 0 {
		m.found = true
	}
	for i := range entries {
		e := &entries[i]
		if e.principal != m.principal && !(e.wildcardPrincipal && e.principal[:len(e.principal)-1] == m.ptype) {
			continue
		}
		if e.host != WildcardHost && e.host != m.host {
			continue
		}
		if e.permission == PermissionDeny {
			if e.op == m.op || e.op == OpAll {
				m.denied = true
				return
			}
			continue
		}
		if implies(e.op, m.op) {
			m.allowed = true
		}
	}
}

// implies reports whether an Allow ACL for granted allows op: All allows
// everything, Read, Write, Delete and Alter allow Describe, and
// AlterConfigs allows DescribeConfigs.
func implies(granted, op Operation) bool {
	if granted == op || granted == OpAll {
		return true
	}
	switch op {
	case OpDescribe:
		return granted == OpRead || granted == OpWrite || granted == OpDelete || granted == OpAlter
	case OpDescribeConfigs:
		return granted == OpAlterConfigs
	}
	return false
}

// entry is a binding's access control entry, filed under its resource.
type entry struct {
	principal         string
	wildcardPrincipal bool // "Type:*"
	host              string
	op                Operation
	permission        Permission
}

// resourceIndex holds one resource type's ACLs by name.
type resourceIndex struct {
	literal  map[string][]entry
	prefixed map[string][]entry
	// prefixLens are the distinct lengths of the PREFIXED names, ascending:
	// a resource name is looked up under each of its prefixes of these
	// lengths, and no other.
	prefixLens []int
}

type index struct {
	types map[ResourceType]*resourceIndex
	n     int
}

func newIndex(bindings []Binding) *index {
	idx := &index{types: map[ResourceType]*resourceIndex{}}
	for _, b := range bindings {
		if b.Validate() != nil {
			continue
		}
		ri := idx.types[b.ResourceType]
		if ri == nil {
			ri = &resourceIndex{literal: map[string][]entry{}, prefixed: map[string][]entry{}}
			idx.types[b.ResourceType] = ri
		}
		e := entry{
			principal:         b.Principal,
			wildcardPrincipal: strings.HasSuffix(b.Principal, ":*"),
			host:              b.Host,
			op:                b.Operation,
			permission:        b.Permission,
		}
		if b.PatternType == PatternLiteral {
			ri.literal[b.ResourceName] = append(ri.literal[b.ResourceName], e)
		} else {
			if _, ok := ri.prefixed[b.ResourceName]; !ok {
				ri.prefixLens = append(ri.prefixLens, len(b.ResourceName))
			}
			ri.prefixed[b.ResourceName] = append(ri.prefixed[b.ResourceName], e)
		}
		idx.n++
	}
	for _, ri := range idx.types {
		slices.Sort(ri.prefixLens)
		ri.prefixLens = slices.Compact(ri.prefixLens)
	}
	return idx
}
