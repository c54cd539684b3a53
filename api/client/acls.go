package client

import (
	"context"
	"fmt"

	"github.com/strata-broker/strata/acl"
	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// CreateACLs stores bindings (Kafka's CreateAcls). It needs Alter on the
// cluster, and a broker with an authorizer.
func (c *Client) CreateACLs(ctx context.Context, bindings []acl.Binding) error {
	req := &stratav1.CreateAclsRequest{}
	for _, b := range bindings {
		req.Bindings = append(req.Bindings, stratav1.ACLBinding(b))
	}
	err := c.anyBroker(ctx, func(ctx context.Context, api stratav1.StrataClient) error {
		_, err := api.CreateAcls(ctx, req)
		return err
	})
	if err != nil {
		return fmt.Errorf("create ACLs: %w", err)
	}
	return nil
}

// DescribeACLs lists the bindings f matches (Kafka's DescribeAcls). It
// needs Describe on the cluster.
func (c *Client) DescribeACLs(ctx context.Context, f acl.Filter) ([]acl.Binding, error) {
	var resp *stratav1.DescribeAclsResponse
	err := c.anyBroker(ctx, func(ctx context.Context, api stratav1.StrataClient) error {
		var err error
		resp, err = api.DescribeAcls(ctx, &stratav1.DescribeAclsRequest{Filter: stratav1.ACLFilter(f)})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("describe ACLs: %w", err)
	}
	return fromProto(resp.GetBindings())
}

// DeleteACLs deletes the bindings the filters match and returns them, per
// filter (Kafka's DeleteAcls). It needs Alter on the cluster.
func (c *Client) DeleteACLs(ctx context.Context, filters []acl.Filter) ([][]acl.Binding, error) {
	req := &stratav1.DeleteAclsRequest{}
	for _, f := range filters {
		req.Filters = append(req.Filters, stratav1.ACLFilter(f))
	}
	var resp *stratav1.DeleteAclsResponse
	err := c.anyBroker(ctx, func(ctx context.Context, api stratav1.StrataClient) error {
		var err error
		resp, err = api.DeleteAcls(ctx, req)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("delete ACLs: %w", err)
	}
	out := make([][]acl.Binding, 0, len(resp.GetResults()))
	for _, r := range resp.GetResults() {
		bs, err := fromProto(r.GetBindings())
		if err != nil {
			return nil, fmt.Errorf("delete ACLs: %w", err)
		}
		out = append(out, bs)
	}
	return out, nil
}

func fromProto(in []*stratav1.AclBinding) ([]acl.Binding, error) {
	out := make([]acl.Binding, 0, len(in))
	for _, pb := range in {
		b, err := pb.ACL()
		if err != nil {
			return nil, fmt.Errorf("binding from the broker: %w", err)
		}
		out = append(out, b)
	}
	return out, nil
}
