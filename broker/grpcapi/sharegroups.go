package grpcapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/strata-broker/strata/acl"
	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/broker/sharegroup"
)

// Share groups in ListGroups and DescribeGroup: protocol type "share",
// protocol "simple" (the assignor), generation the group epoch.

// shareGroupStatus is groupStatus for the share-group coordinator's errors.
func shareGroupStatus(err error) error {
	switch {
	case errors.Is(err, sharegroup.ErrNotCoordinator):
		err = fmt.Errorf("%w: %v", group.ErrNotCoordinator, err)
	case errors.Is(err, sharegroup.ErrCoordinatorNotAvailable):
		err = fmt.Errorf("%w: %v", group.ErrCoordinatorNotAvailable, err)
	case errors.Is(err, sharegroup.ErrInvalidRequest):
		err = fmt.Errorf("%w: %v", group.ErrInvalidGroupID, err)
	}
	return groupStatus(err)
}

// shareGroupSummaries are the share groups this broker coordinates that
// the caller may see (all: every one).
func (s *Server) shareGroupSummaries(ctx context.Context, all bool) ([]*stratav1.GroupSummary, error) {
	groups, err := s.b.ShareGroups().List(ctx)
	if err != nil {
		return nil, shareGroupStatus(err)
	}
	var out []*stratav1.GroupSummary
	for _, g := range groups {
		if !all && !s.mayDescribe(ctx, stratav1.Strata_ListGroups_FullMethodName, acl.ResourceGroup, g.Group) {
			continue
		}
		out = append(out, &stratav1.GroupSummary{
			Group: g.Group, ProtocolType: "share", State: sharegroup.State(g),
			Coordinator: s.b.GroupCoordinator(g.Group).NodeID,
		})
	}
	return out, nil
}

// describeShareGroup describes the named share group; false if there is
// none.
func (s *Server) describeShareGroup(ctx context.Context, name string) (*stratav1.DescribeGroupResponse, bool, error) {
	g, err := s.b.ShareGroups().Describe(ctx, name)
	if errors.Is(err, sharegroup.ErrGroupIDNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, shareGroupStatus(err)
	}
	resp := &stratav1.DescribeGroupResponse{
		Group: g.Group, State: sharegroup.State(g), ProtocolType: "share", Protocol: "simple",
		Generation: g.Epoch, Coordinator: s.b.GroupCoordinator(g.Group).NodeID,
	}
	for _, m := range g.Members {
		gm := &stratav1.GroupMember{MemberId: m.MemberID, ClientId: m.ClientID, ClientHost: m.ClientHost}
		for _, tp := range m.Assignment { // sorted: one run per topic
			if n := len(gm.Assignment); n > 0 && gm.Assignment[n-1].Topic == tp.Topic {
				gm.Assignment[n-1].Partitions = append(gm.Assignment[n-1].Partitions, tp.Partition)
				continue
			}
			gm.Assignment = append(gm.Assignment, &stratav1.TopicPartitions{Topic: tp.Topic, Partitions: []int32{tp.Partition}})
		}
		resp.Members = append(resp.Members, gm)
	}
	return resp, true, nil
}
