package grpcapi

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-broker/strata/acl"
	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/broker"
)

// aclStatus maps the ACL methods' errors: SECURITY_DISABLED and
// INVALID_REQUEST are Kafka's answers, which the core's error table does
// not carry.
func aclStatus(err error) error {
	switch {
	case errors.Is(err, broker.ErrSecurityDisabled):
		return status.Error(codes.FailedPrecondition, "SECURITY_DISABLED: no authorizer is configured on the broker (authorizer.class.name)")
	case errors.Is(err, acl.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return statusError(err)
}

func (s *Server) CreateAcls(ctx context.Context, req *stratav1.CreateAclsRequest) (*stratav1.CreateAclsResponse, error) {
	bindings := make([]acl.Binding, 0, len(req.GetBindings()))
	for _, pb := range req.GetBindings() {
		b, err := pb.ACL()
		if err == nil {
			err = b.Validate()
		}
		if err != nil {
			return nil, aclStatus(err)
		}
		bindings = append(bindings, b)
	}
	if err := s.b.CreateACLs(ctx, bindings); err != nil {
		return nil, aclStatus(err)
	}
	return &stratav1.CreateAclsResponse{}, nil
}

func (s *Server) DescribeAcls(ctx context.Context, req *stratav1.DescribeAclsRequest) (*stratav1.DescribeAclsResponse, error) {
	f, err := req.GetFilter().ACL()
	if err != nil {
		return nil, aclStatus(err)
	}
	bindings, err := s.b.DescribeACLs(ctx, f)
	if err != nil {
		return nil, aclStatus(err)
	}
	resp := &stratav1.DescribeAclsResponse{}
	for _, b := range bindings {
		resp.Bindings = append(resp.Bindings, stratav1.ACLBinding(b))
	}
	return resp, nil
}

func (s *Server) DeleteAcls(ctx context.Context, req *stratav1.DeleteAclsRequest) (*stratav1.DeleteAclsResponse, error) {
	filters := make([]acl.Filter, 0, len(req.GetFilters()))
	for _, pf := range req.GetFilters() {
		f, err := pf.ACL()
		if err != nil {
			return nil, aclStatus(err)
		}
		filters = append(filters, f)
	}
	deleted, err := s.b.DeleteACLs(ctx, filters)
	if err != nil {
		return nil, aclStatus(err)
	}
	resp := &stratav1.DeleteAclsResponse{}
	for _, d := range deleted {
		r := &stratav1.DeletedAcls{}
		for _, b := range d {
			r.Bindings = append(r.Bindings, stratav1.ACLBinding(b))
		}
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}
