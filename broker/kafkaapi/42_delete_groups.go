// DeleteGroups (key 42), versions 0-2. Needs the group coordinator.

package kafkaapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/broker/sharegroup"
)

func (s *Server) deleteGroupsAPI() api {
	return api{key: 42, min: 0, max: 2, amplification: 160, handle: decoded(s.deleteGroups), needsGroups: true,
		auth: checkedInHandler()}
}

func (s *Server) deleteGroups(ctx context.Context, req *kmsg.DeleteGroupsRequest) *kmsg.DeleteGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, name := range req.Groups {
		rg := kmsg.NewDeleteGroupsResponseGroup()
		rg.Group = name
		if !s.authorized(ctx, acl.OpDelete, acl.ResourceGroup, name) {
			rg.ErrorCode = kerr.GroupAuthorizationFailed.Code
		} else if code, err := s.deleteGroup(ctx, name); err != nil {
			rg.ErrorCode = code
			if req.Version >= 3 {
				rg.ErrorMessage = errorMessage(err)
			}
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}

// deleteGroup deletes a classic or consumer group, or else a share group
// of that id with its share-partition state (group ids are unique across
// types), and returns the Kafka code of a failure.
func (s *Server) deleteGroup(ctx context.Context, name string) (int16, error) {
	err := s.groups.Delete(ctx, name)
	if !errors.Is(err, group.ErrGroupIDNotFound) || s.shareGroups == nil {
		return groupCode(err), err
	}
	var dropState func(context.Context, string) error
	if s.shares != nil {
		dropState = s.shares.DeleteGroup
	}
	if err := s.shareGroups.Delete(ctx, name, dropState); errors.Is(err, sharegroup.ErrGroupIDNotFound) {
		err = fmt.Errorf("%w: %q", group.ErrGroupIDNotFound, name)
		return groupCode(err), err
	} else if err != nil {
		return shareGroupCode(err), err
	}
	return 0, nil
}
