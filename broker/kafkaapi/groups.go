package kafkaapi

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/metastore"
)

// Groups is the group coordinator the frontend needs; *group.Coordinator
// implements it.
type Groups interface {
	Join(ctx context.Context, req group.JoinRequest) (group.JoinResult, error)
	Sync(ctx context.Context, req group.SyncRequest) ([]byte, error)
	Heartbeat(ctx context.Context, groupName, memberID string, generation int32) error
	Leave(ctx context.Context, groupName string, memberIDs, instanceIDs []string) []error
	CommitOffsets(ctx context.Context, groupName, memberID string, generation int32, offsets []metastore.OffsetCommit) error
	FetchOffsets(ctx context.Context, groupName string) ([]metastore.OffsetCommit, error)
	Describe(ctx context.Context, groupName string) (group.Description, error)
	List(ctx context.Context) ([]group.Summary, error)
	Delete(ctx context.Context, groupName string) error
	DeleteOffsets(ctx context.Context, groupName, topic string, partitions []int32) error
}

var _ Groups = (*group.Coordinator)(nil)

// groupCode maps the coordinator's errors to Kafka's codes.
func groupCode(err error) int16 {
	var required *group.MemberIDRequiredError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &required):
		return kerr.MemberIDRequired.Code
	case errors.Is(err, group.ErrNotCoordinator):
		return kerr.NotCoordinator.Code
	case errors.Is(err, group.ErrUnknownMemberID):
		return kerr.UnknownMemberID.Code
	case errors.Is(err, group.ErrIllegalGeneration):
		return kerr.IllegalGeneration.Code
	case errors.Is(err, group.ErrRebalanceInProgress):
		return kerr.RebalanceInProgress.Code
	case errors.Is(err, group.ErrInconsistentProtocol):
		return kerr.InconsistentGroupProtocol.Code
	case errors.Is(err, group.ErrInvalidSessionTimeout):
		return kerr.InvalidSessionTimeout.Code
	case errors.Is(err, group.ErrInvalidGroupID):
		return kerr.InvalidGroupID.Code
	case errors.Is(err, group.ErrGroupNotEmpty):
		return kerr.NonEmptyGroup.Code
	case errors.Is(err, group.ErrGroupIDNotFound):
		return kerr.GroupIDNotFound.Code
	case errors.Is(err, group.ErrFencedInstanceID):
		return kerr.FencedInstanceID.Code
	case errors.Is(err, group.ErrGroupSubscribedToTopic):
		return kerr.GroupSubscribedToTopic.Code
	case errors.Is(err, group.ErrCoordinatorNotAvailable), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return kerr.CoordinatorNotAvailable.Code
	}
	return kerr.UnknownServerError.Code
}

// maxRebalanceWait bounds how long a JoinGroup or SyncGroup may wait,
// whatever the member's rebalance timeout says.
const maxRebalanceWait = 10 * time.Minute

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
