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
	// ErrGroupMaxSizeReached refuses a new member of a group that has
	// group.max.size members and pending members.
	ErrGroupMaxSizeReached = errors.New("group max size reached")
	// ErrOffsetMetadataTooLarge refuses an offset whose metadata is longer
	// than offset.metadata.max.bytes.
	ErrOffsetMetadataTooLarge = errors.New("offset metadata too large")
	// ErrUnknownTopicOrPartition refuses an offset of a partition that does
	// not exist.
	ErrUnknownTopicOrPartition = errors.New("unknown topic or partition")

	// Errors of the consumer group protocol (KIP-848).
	ErrFencedMemberEpoch        = errors.New("fenced member epoch")
	ErrStaleMemberEpoch         = errors.New("stale member epoch")
	ErrUnreleasedInstanceID     = errors.New("unreleased instance id")
	ErrUnsupportedAssignor      = errors.New("unsupported assignor")
	ErrInvalidRegularExpression = errors.New("invalid regular expression")
	// ErrInvalidRequest refuses a heartbeat that breaks the protocol's
	// rules (a joining member without its subscription, ...).
	ErrInvalidRequest = errors.New("invalid request")
)

// errShareGroupID: the group id is a share group's, so no classic or
// consumer group can be created with it. Each request answers it as Kafka
// does (shareGroupIDError).
var errShareGroupID = errors.New("the group id is a share group's")

// shareGroupIDError is what the members of g are told when its id turns
// out to be a share group's: GROUP_ID_NOT_FOUND to a consumer group's
// heartbeat, INCONSISTENT_GROUP_PROTOCOL to a classic group's JoinGroup, as
// Kafka answers them.
func shareGroupIDError(g *group) error {
	if g.cg != nil {
		return fmt.Errorf("%w: %w: %q", ErrGroupIDNotFound, errShareGroupID, g.name)
	}
	return fmt.Errorf("%w: %w: %q", ErrInconsistentProtocol, errShareGroupID, g.name)
}

// OffsetErrors is CommitOffsets' answer when not every offset was committed:
// Errs has one entry per offset of the request, nil for those committed.
// Some offsets may be refused on their own (their metadata too large, their
// partition unknown) while the others were committed. It matches each of
// its errors with errors.Is.
type OffsetErrors struct {
	Errs []error
}

func (e *OffsetErrors) Error() string {
	failed := 0
	var first error
	for _, err := range e.Errs {
		if err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
	}
	return fmt.Sprintf("%d of %d offsets not committed: %v", failed, len(e.Errs), first)
}

// Unwrap returns the errors of the refused offsets.
func (e *OffsetErrors) Unwrap() []error {
	var out []error
	for _, err := range e.Errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// MemberIDRequiredError is Kafka's MEMBER_ID_REQUIRED (KIP-394): a first
// JoinGroup gets its member id back and joins again with it, so that a
// client that times out while joining does not leave a stray member.
type MemberIDRequiredError struct{ MemberID string }

func (e *MemberIDRequiredError) Error() string {
	return fmt.Sprintf("member id required: join again as %q", e.MemberID)
}
