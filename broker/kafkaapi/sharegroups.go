package kafkaapi

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-broker/strata/broker/sharegroup"
	"github.com/strata-broker/strata/metastore"
)

// ShareGroups is the share-group coordinator the frontend needs;
// *sharegroup.Coordinator implements it.
type ShareGroups interface {
	Heartbeat(ctx context.Context, req sharegroup.HeartbeatRequest) (sharegroup.HeartbeatResult, error)
	Describe(ctx context.Context, name string) (metastore.ShareGroupMeta, error)
	List(ctx context.Context) ([]metastore.ShareGroupMeta, error)
	Delete(ctx context.Context, name string, dropState func(context.Context, string) error) error
}

var _ ShareGroups = (*sharegroup.Coordinator)(nil)

// GroupConfigs are the GROUP config resources; *broker.Broker implements it.
type GroupConfigs interface {
	StoredGroupConfigs(ctx context.Context, group string) (map[string]string, error)
	AlterGroupConfigs(ctx context.Context, group string, set map[string]string, del []string, validateOnly bool) (map[string]string, error)
	GroupConfigBounds() sharegroup.Bounds
}

// shareGroupCode is the Kafka error code of a share-group coordinator's
// error.
func shareGroupCode(err error) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, sharegroup.ErrNotCoordinator):
		return kerr.NotCoordinator.Code
	case errors.Is(err, sharegroup.ErrInvalidRequest):
		return kerr.InvalidRequest.Code
	case errors.Is(err, sharegroup.ErrGroupIDNotFound):
		return kerr.GroupIDNotFound.Code
	case errors.Is(err, sharegroup.ErrUnknownMemberID):
		return kerr.UnknownMemberID.Code
	case errors.Is(err, sharegroup.ErrFencedMemberEpoch):
		return kerr.FencedMemberEpoch.Code
	case errors.Is(err, sharegroup.ErrGroupMaxSizeReached):
		return kerr.GroupMaxSizeReached.Code
	case errors.Is(err, sharegroup.ErrNonEmptyGroup):
		return kerr.NonEmptyGroup.Code
	}
	return kerr.CoordinatorNotAvailable.Code
}

// topicIDs maps topic names to ids, for the responses that name topics by
// id, from the topics the broker follows (no metastore read).
func (s *Server) topicIDs() map[string][16]byte {
	out := map[string][16]byte{}
	s.core.EachTopicID(func(name, id string) { out[name] = topicID(id) })
	return out
}
