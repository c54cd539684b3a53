package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/api/client"
)

func newACLsCmd() *cobra.Command {
	cf := &clientFlags{}
	cmd := &cobra.Command{
		Use:   "acls",
		Short: "Add, list and remove ACLs, as kafka-acls does",
		Long: oneLine(`Add, list and remove Kafka ACLs on the cluster, with kafka-acls' options:
strata acls add --allow-principal User:alice --operation Write --topic orders. The broker must have an
authorizer (authorizer.class.name); the caller needs Alter on the cluster to add and remove, Describe to list.`),
	}
	cf.register(cmd.PersistentFlags())
	cmd.AddCommand(newACLsAddCmd(cf), newACLsListCmd(cf), newACLsRemoveCmd(cf))
	return cmd
}

// aclFlags are kafka-acls' options naming resources, principals, hosts
// and operations.
type aclFlags struct {
	topics, groups, txIDs           []string
	cluster                         bool
	patternType                     string
	allowPrincipals, denyPrincipals []string
	allowHosts, denyHosts, hosts    []string
	operations                      []string
	principal                       string // list only
}

func (f *aclFlags) registerResources(fs *pflag.FlagSet) {
	fs.StringArrayVar(&f.topics, "topic", nil, "topic the ACLs are for (repeatable; * for every topic)")
	fs.StringArrayVar(&f.groups, "group", nil, "consumer group the ACLs are for (repeatable; * for every group)")
	fs.StringArrayVar(&f.txIDs, "transactional-id", nil, "transactional id the ACLs are for (repeatable)")
	fs.BoolVar(&f.cluster, "cluster", false, "the ACLs are for the cluster")
	fs.StringVar(&f.patternType, "resource-pattern-type", "", "literal or prefixed; listing and removing also take any and match (default literal, or any when no resource is named)")
}

func (f *aclFlags) registerEntries(fs *pflag.FlagSet) {
	fs.StringArrayVar(&f.allowPrincipals, "allow-principal", nil, "principal allowed, Type:name (User:alice, User:* for every user; repeatable)")
	fs.StringArrayVar(&f.denyPrincipals, "deny-principal", nil, "principal denied (repeatable)")
	fs.StringArrayVar(&f.allowHosts, "allow-host", nil, "IP address the allowed principals may connect from (repeatable; default *)")
	fs.StringArrayVar(&f.denyHosts, "deny-host", nil, "IP address the denied principals are denied from (repeatable; default *)")
	fs.StringArrayVar(&f.hosts, "host", nil, "IP address for both allowed and denied principals (repeatable; default *)")
	fs.StringArrayVar(&f.operations, "operation", nil, "Read, Write, Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite or All (repeatable; default All)")
}

// resource is one named resource pattern.
type resource struct {
	rt      acl.ResourceType
	name    string
	pattern acl.PatternType
}

// resources are the resources named by the flags; patternDefault applies
// when --resource-pattern-type is not given.
func (f *aclFlags) resources(patternDefault acl.PatternType, allowed ...acl.PatternType) ([]resource, error) {
	pt := patternDefault
	if f.patternType != "" {
		var ok bool
		if pt, ok = acl.ParsePatternType(f.patternType); !ok || !slices.Contains(allowed, pt) {
			return nil, fmt.Errorf("--resource-pattern-type %q: want one of %v", f.patternType, allowed)
		}
	}
	var out []resource
	add := func(rt acl.ResourceType, names []string) {
		for _, n := range names {
			out = append(out, resource{rt: rt, name: n, pattern: pt})
		}
	}
	add(acl.ResourceTopic, f.topics)
	add(acl.ResourceGroup, f.groups)
	add(acl.ResourceTransactionalID, f.txIDs)
	if f.cluster {
		out = append(out, resource{rt: acl.ResourceCluster, name: acl.ClusterName, pattern: pt})
	}
	return out, nil
}

func (f *aclFlags) ops(def acl.Operation) ([]acl.Operation, error) {
	if len(f.operations) == 0 {
		return []acl.Operation{def}, nil
	}
	var out []acl.Operation
	for _, s := range f.operations {
		op, ok := acl.ParseOperation(s)
		if !ok || op == acl.OpUnknown || (op == acl.OpAny && def != acl.OpAny) {
			return nil, fmt.Errorf("--operation %q: unknown operation", s)
		}
		out = append(out, op)
	}
	return out, nil
}

// entry is the principals, hosts and permission of one side (allow or
// deny).
type entry struct {
	perm       acl.Permission
	principals []string
	hosts      []string
}

func (f *aclFlags) entries() []entry {
	hosts := func(own []string) []string {
		h := append(slices.Clone(own), f.hosts...)
		if len(h) == 0 {
			return []string{acl.WildcardHost}
		}
		return h
	}
	var out []entry
	if len(f.allowPrincipals) > 0 {
		out = append(out, entry{perm: acl.PermissionAllow, principals: f.allowPrincipals, hosts: hosts(f.allowHosts)})
	}
	if len(f.denyPrincipals) > 0 {
		out = append(out, entry{perm: acl.PermissionDeny, principals: f.denyPrincipals, hosts: hosts(f.denyHosts)})
	}
	return out
}

// bindings are every combination of the flags' resources, principals,
// hosts and operations, as kafka-acls makes them.
func (f *aclFlags) bindings() ([]acl.Binding, error) {
	res, err := f.resources(acl.PatternLiteral, acl.PatternLiteral, acl.PatternPrefixed)
	if err != nil {
		return nil, err
	}
	if len(res) == 0 {
		return nil, errors.New("name a resource: --topic, --group, --transactional-id or --cluster")
	}
	ents := f.entries()
	if len(ents) == 0 {
		return nil, errors.New("name a principal: --allow-principal or --deny-principal")
	}
	ops, err := f.ops(acl.OpAll)
	if err != nil {
		return nil, err
	}
	var out []acl.Binding
	for _, r := range res {
		for _, e := range ents {
			for _, p := range e.principals {
				for _, h := range e.hosts {
					for _, op := range ops {
						b := acl.Binding{ResourceType: r.rt, ResourceName: r.name, PatternType: r.pattern, Principal: p, Host: h, Operation: op, Permission: e.perm}
						if err := b.Validate(); err != nil {
							return nil, err
						}
						out = append(out, b)
					}
				}
			}
		}
	}
	return out, nil
}

func newACLsAddCmd(cf *clientFlags) *cobra.Command {
	f := &aclFlags{}
	cmd := &cobra.Command{
		Use:   "add",
		Short: "Add ACLs: every combination of the principals, hosts and operations on the resources",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bindings, err := f.bindings()
			if err != nil {
				return err
			}
			return cf.admin(cmd, func(ctx context.Context, c *client.Client) error {
				if err := c.CreateACLs(ctx, bindings); err != nil {
					return err
				}
				printACLs(cmd.OutOrStdout(), "Adding ACLs for resource", bindings)
				return nil
			})
		},
	}
	f.registerResources(cmd.Flags())
	f.registerEntries(cmd.Flags())
	return cmd
}

// filters select, for each named resource (or any resource when none is
// named), the bindings of the named principals, hosts and operations (any
// when not named).
func (f *aclFlags) filters() ([]acl.Filter, error) {
	res, err := f.resources(acl.PatternLiteral, acl.PatternLiteral, acl.PatternPrefixed, acl.PatternAny, acl.PatternMatch)
	if err != nil {
		return nil, err
	}
	base := []acl.Filter{{ResourceType: acl.ResourceAny, PatternType: acl.PatternAny}}
	if len(res) > 0 {
		base = base[:0]
		for _, r := range res {
			base = append(base, acl.Filter{ResourceType: r.rt, ResourceName: &r.name, PatternType: r.pattern})
		}
	} else if f.patternType != "" {
		pt, _ := acl.ParsePatternType(f.patternType)
		base[0].PatternType = pt
	}
	ops, err := f.ops(acl.OpAny)
	if err != nil {
		return nil, err
	}
	type who struct {
		perm      acl.Permission
		principal *string
		host      *string
	}
	var whos []who
	for _, e := range f.entries() {
		for _, p := range e.principals {
			for _, h := range e.hosts {
				w := who{perm: e.perm, principal: &p}
				if h != acl.WildcardHost || len(f.hosts)+len(f.allowHosts)+len(f.denyHosts) > 0 {
					w.host = &h
				}
				whos = append(whos, w)
			}
		}
	}
	if f.principal != "" {
		whos = append(whos, who{perm: acl.PermissionAny, principal: &f.principal})
	}
	if len(whos) == 0 {
		whos = []who{{perm: acl.PermissionAny}}
	}
	var out []acl.Filter
	for _, b := range base {
		for _, w := range whos {
			for _, op := range ops {
				x := b
				x.Principal, x.Host, x.Permission, x.Operation = w.principal, w.host, w.perm, op
				out = append(out, x)
			}
		}
	}
	return out, nil
}

func newACLsListCmd(cf *clientFlags) *cobra.Command {
	f := &aclFlags{}
	var output outputFormat
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List ACLs, of the named resources (every resource when none is named)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filters, err := f.filters()
			if err != nil {
				return err
			}
			return cf.admin(cmd, func(ctx context.Context, c *client.Client) error {
				var all []acl.Binding
				for _, flt := range filters {
					bs, err := c.DescribeACLs(ctx, flt)
					if err != nil {
						return err
					}
					for _, b := range bs {
						if !slices.Contains(all, b) {
							all = append(all, b)
						}
					}
				}
				if output == outputJSON {
					if all == nil {
						all = []acl.Binding{}
					}
					return writeJSON(cmd.OutOrStdout(), all)
				}
				printACLs(cmd.OutOrStdout(), "Current ACLs for resource", all)
				return nil
			})
		},
	}
	f.registerResources(cmd.Flags())
	cmd.Flags().StringVar(&f.principal, "principal", "", "list only this principal's ACLs")
	addOutputFlag(cmd.Flags(), &output)
	return cmd
}

func newACLsRemoveCmd(cf *clientFlags) *cobra.Command {
	f := &aclFlags{}
	cmd := &cobra.Command{
		Use:   "remove",
		Short: "Remove the ACLs of the named resources, principals, hosts and operations (all of a resource's when no principal is named)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(f.topics)+len(f.groups)+len(f.txIDs) == 0 && !f.cluster {
				return errors.New("name a resource: --topic, --group, --transactional-id or --cluster")
			}
			filters, err := f.filters()
			if err != nil {
				return err
			}
			return cf.admin(cmd, func(ctx context.Context, c *client.Client) error {
				deleted, err := c.DeleteACLs(ctx, filters)
				if err != nil {
					return err
				}
				printACLs(cmd.OutOrStdout(), "Removed ACLs for resource", slices.Concat(deleted...))
				return nil
			})
		},
	}
	f.registerResources(cmd.Flags())
	f.registerEntries(cmd.Flags())
	return cmd
}

// printACLs writes bindings by resource pattern as kafka-acls does:
//
//	Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)`:
//		(principal=User:alice, host=*, operation=WRITE, permissionType=ALLOW)
func printACLs(w io.Writer, heading string, bindings []acl.Binding) {
	bs := slices.Clone(bindings)
	slices.SortFunc(bs, func(a, b acl.Binding) int {
		return cmp.Or(cmp.Compare(a.ResourceType, b.ResourceType), strings.Compare(a.ResourceName, b.ResourceName),
			cmp.Compare(a.PatternType, b.PatternType), strings.Compare(a.Principal, b.Principal),
			strings.Compare(a.Host, b.Host), cmp.Compare(a.Operation, b.Operation), cmp.Compare(a.Permission, b.Permission))
	})
	for i, b := range bs {
		if i == 0 || b.ResourceType != bs[i-1].ResourceType || b.ResourceName != bs[i-1].ResourceName || b.PatternType != bs[i-1].PatternType {
			if i > 0 {
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "%s `ResourcePattern(resourceType=%s, name=%s, patternType=%s)`:\n", heading, b.ResourceType, b.ResourceName, b.PatternType)
		}
		fmt.Fprintf(w, " \t(principal=%s, host=%s, operation=%s, permissionType=%s)\n", b.Principal, b.Host, b.Operation, b.Permission)
	}
}
