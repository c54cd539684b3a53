package group

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/strata-broker/strata/broker/txn"
	"github.com/strata-broker/strata/metastore"
)

// TxnCommitRequest is a TxnOffsetCommit: offsets a transaction commits for
// the group, which become its committed offsets when the transaction
// commits.
type TxnCommitRequest struct {
	Group, TransactionalID string
	ProducerID             int64
	ProducerEpoch          int16
	// MemberID, InstanceID and Generation are KIP-447's (v3+): a member's
	// commit is fenced by its generation as a plain commit is. Older
	// versions send none (generation -1).
	MemberID, InstanceID string
	Generation           int32
	Offsets              []metastore.OffsetCommit
}

// CommitTxnOffsets stores the offsets as pending in the transaction. The
// group checks are Kafka's for transactional commits: a generation (or
// member or instance id) given must be the group's current one, with its
// member (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID); a
// commit without one is taken even while the group has members (older
// clients send none) and during a rebalance. The transaction's checks are
// the stored transactional id's state (see metastore.CommitTxnOffsets),
// answered with txn.ErrInvalidProducerIDMapping, txn.ErrProducerFenced and
// txn.ErrInvalidTxnState. Offsets refused on their own are reported as
// CommitOffsets reports them.
func (c *Coordinator) CommitTxnOffsets(ctx context.Context, req TxnCommitRequest) error {
	return c.commitChecked(req.Offsets, func(valid []metastore.OffsetCommit) error {
		return c.commitTxnValid(ctx, req, valid)
	})
}

func (c *Coordinator) commitTxnValid(ctx context.Context, req TxnCommitRequest, offsets []metastore.OffsetCommit) error {
	c.mu.Lock()
	g, err := c.groupLocked(ctx, req.Group, false)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	gen := int32(-1)
	switch {
	case g == nil:
		// No stored state: a group without members, which only a commit
		// outside any generation may name.
		if req.Generation >= 0 {
			c.mu.Unlock()
			return fmt.Errorf("%w: %d, group %q has no generation", ErrIllegalGeneration, req.Generation, req.Group)
		}
	case req.Generation < 0 && g.size() == 0:
	case g.cg != nil:
		// A consumer-protocol member names its member epoch.
		if err := checkConsumerCommitLocked(g, req.MemberID, req.Generation); err != nil {
			c.mu.Unlock()
			return err
		}
		gen = req.Generation
	case req.Generation >= 0 || req.MemberID != "" || req.InstanceID != "":
		if req.InstanceID != "" {
			for id, m := range g.members {
				if m.instanceID == req.InstanceID && id != req.MemberID {
					c.mu.Unlock()
					return fmt.Errorf("%w: instance %q is member %q, not %q", ErrFencedInstanceID, req.InstanceID, id, req.MemberID)
				}
			}
		}
		if g.members[req.MemberID] == nil {
			c.mu.Unlock()
			return fmt.Errorf("%w: %q in group %q", ErrUnknownMemberID, req.MemberID, req.Group)
		}
		if req.Generation != g.generation {
			c.mu.Unlock()
			return fmt.Errorf("%w: %d, the group is at %d", ErrIllegalGeneration, req.Generation, g.generation)
		}
		gen = req.Generation
	}
	if g != nil {
		// From now on the stored offsets of these partitions may change
		// without this coordinator writing them.
		g.txnSeq++
		for _, oc := range offsets {
			delete(g.stored, partitionKey{oc.Topic, oc.Partition})
		}
	}
	c.mu.Unlock()
	now := c.cfg.Now()
	for i := range offsets {
		if offsets[i].CommitTime.IsZero() {
			offsets[i].CommitTime = now
		}
	}
	producer := metastore.TxnProducer{TransactionalID: req.TransactionalID, ProducerID: req.ProducerID, ProducerEpoch: req.ProducerEpoch}
	err = c.store.CommitTxnOffsets(ctx, req.Group, producer, req.MemberID, gen, offsets)
	if g != nil {
		// Again once written: a plain commit of the partitions that was
		// written while this write was in flight may be older than the
		// pending offset, and so replaced when the transaction commits.
		c.mu.Lock()
		g.txnSeq++
		for _, oc := range offsets {
			delete(g.stored, partitionKey{oc.Topic, oc.Partition})
		}
		c.mu.Unlock()
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, metastore.ErrTxnProducerIDMismatch):
		return fmt.Errorf("%w: %v", txn.ErrInvalidProducerIDMapping, err)
	case errors.Is(err, metastore.ErrTxnProducerFenced):
		return fmt.Errorf("%w: %v", txn.ErrProducerFenced, err)
	case errors.Is(err, metastore.ErrTxnNotOngoing):
		return fmt.Errorf("%w: %v", txn.ErrInvalidTxnState, err)
	case errors.Is(err, metastore.ErrUnknownMember):
		return fmt.Errorf("%w: not a member of the stored generation: %v", ErrUnknownMemberID, err)
	case errors.Is(err, metastore.ErrGenerationMismatch):
		return fmt.Errorf("%w: the stored generation moved on: %v", ErrIllegalGeneration, err)
	}
	return fmt.Errorf("%w: %v", ErrCoordinatorNotAvailable, err)
}

// FetchStableOffsets is FetchOffsets for OffsetFetch's require_stable
// (KIP-447): the committed offsets together with the partitions that have
// pending transactional offsets, which Kafka answers
// UNSTABLE_OFFSET_COMMIT until their transaction ends.
func (c *Coordinator) FetchStableOffsets(ctx context.Context, groupName string) ([]metastore.OffsetCommit, []metastore.TopicPartition, error) {
	if err := metastore.CheckGroupName(groupName); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrInvalidGroupID, err)
	}
	if !c.cfg.Owns(groupName) {
		return nil, nil, ErrNotCoordinator
	}
	offs, pending, err := c.store.FetchOffsetsAndPending(ctx, groupName)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrCoordinatorNotAvailable, err)
	}
	return offs, pending, nil
}

// CompleteTxnOffsets ends a transaction's side in each group: its pending
// offsets become the groups' committed offsets (commit) or are dropped.
// It is the transaction coordinator's, which is usually on another broker
// than the groups' coordinators: it completes in the metastore directly,
// whichever broker runs it and whoever coordinates the groups, and is
// idempotent. The groups' coordinators already forgot what they knew of
// these partitions' stored offsets when the transactional offsets were
// committed. The error names the groups that failed; the others are done.
func (c *Coordinator) CompleteTxnOffsets(ctx context.Context, groups []string, producerID int64, commit bool) error {
	var errs []error
	for _, name := range slices.Compact(slices.Sorted(slices.Values(groups))) {
		written, err := c.store.CompleteTxnOffsets(ctx, name, producerID, commit)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(written) > 0 {
			c.logger.Debug("transactional offsets committed", "group", name, "producer_id", producerID, "partitions", len(written))
		}
	}
	if err := errors.Join(errs...); err != nil {
		outcome := "abort"
		if commit {
			outcome = "commit"
		}
		return fmt.Errorf("group: %s transactional offsets of producer %d: %w", outcome, producerID, err)
	}
	return nil
}
