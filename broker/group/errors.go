package group

import (
	"errors"
	"fmt"
)

// Errors of the coordinator, one per reaction Kafka's group protocol asks
// of a client. Frontends map them to their protocol's codes with errors.Is.
var (
	ErrNotCoordinator          = errors.New("this broker is not the group's coordinator")
	ErrUnknownMemberID         = errors.New("unknown member id")
	ErrIllegalGeneration       = errors.New("illegal generation")
	ErrRebalanceInProgress     = errors.New("rebalance in progress")
	ErrInconsistentProtocol    = errors.New("inconsistent group protocol")
	ErrInvalidSessionTimeout   = errors.New("invalid session timeout")
	ErrInvalidGroupID          = errors.New("invalid group id")
	ErrGroupNotEmpty           = errors.New("group is not empty")
	ErrGroupIDNotFound         = errors.New("group id not found")
	ErrFencedInstanceID        = errors.New("fenced instance id")
	ErrGroupSubscribedToTopic  = errors.New("group is subscribed to the topic")
	ErrCoordinatorNotAvailable = errors.New("coordinator not available")
)

// MemberIDRequiredError is Kafka's MEMBER_ID_REQUIRED (KIP-394): a first
// JoinGroup gets its member id back and joins again with it, so that a
// client that times out while joining does not leave a stray member.
type MemberIDRequiredError struct{ MemberID string }

func (e *MemberIDRequiredError) Error() string {
	return fmt.Sprintf("member id required: join again as %q", e.MemberID)
}
