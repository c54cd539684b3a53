package broker

// Transactional produce, with KIP-890 part 1's verification: a leader
// appends a producer's first transactional batch of a transaction only once
// it has read, in the coordinator's stored state, that the transaction is
// open with this partition in it. Without the check a batch delayed past
// its transaction's end (a client retry, a zombie) would open a
// transaction in the log that no marker ever closes, and hold the last
// stable offset, and every read_committed consumer, back for good.
//
// The state is read from the metastore, where the coordinator writes a
// partition into the transaction before it answers AddPartitionsToTxn, so
// the leader asks no other broker: one read per partition per transaction,
// for the first batch only (later batches find the transaction open in
// the log). The read and the append are tied by a guard, as Kafka's
// VerificationGuard: the guard is set before the read and dropped by any
// marker of the producer, and the append requires it still set, so a
// transaction that ended while its state was being read cannot be reopened
// by the batch that was verified against it.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/strata-broker/strata/broker/txn"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/record"
)

// txnGuard stands for the verification of a producer's next transaction in
// one partition, in one leader epoch. Requests of the producer verifying
// at the same time share it; the append of any of them uses it up.
type txnGuard struct {
	epoch       int16 // the producer's
	leaderEpoch int32
	verified    bool
}

const (
	// maxTxnGuards bounds a partition's guards. A guard lives from a
	// verification to the append it is for, so there are about as many
	// as producers starting a transaction at once.
	maxTxnGuards = 10_000
	// txnVerifyTimeout bounds the read of the coordinator's state.
	txnVerifyTimeout = 5 * time.Second
	// txnVerifyAttempts: a verification that a marker overtook is tried
	// again with the state as it is then.
	txnVerifyAttempts = 3
)

// producerEpoch is a producer id with an epoch.
type producerEpoch struct {
	id    int64
	epoch int16
}

// transactionalProducers lists the producers of the transactional batches
// in batches, each once (a request normally has one).
func transactionalProducers(batches []byte) []producerEpoch {
	var out []producerEpoch
	it := record.NewBatches(batches)
	for it.Next() {
		h := it.Header()
		if !h.Transactional() || h.Control() {
			continue
		}
		pe := producerEpoch{h.ProducerID, h.ProducerEpoch}
		if !slices.Contains(out, pe) {
			out = append(out, pe)
		}
	}
	return out
}

// verifyTransactional verifies, for each producer with transactional
// batches in batches that has no transaction open in p's log, that its
// transaction txnID is open with p in it. It returns the verifications,
// by producer id, for the append (leaderAppendVerified).
func (b *Broker) verifyTransactional(ctx context.Context, p *Partition, txnID string, batches []byte) (map[int64]*txnGuard, error) {
	var guards map[int64]*txnGuard
	for _, pe := range transactionalProducers(batches) {
		g, err := b.verifyTxnProducer(ctx, p, txnID, pe)
		if err != nil {
			p.producers.dropGuards(guards)
			return nil, err
		}
		if g != nil {
			if guards == nil {
				guards = map[int64]*txnGuard{}
			}
			guards[pe.id] = g
		}
	}
	return guards, nil
}

// verifyTxnProducer returns pe's verified guard, or nil if its
// transaction is open in the log already.
func (b *Broker) verifyTxnProducer(ctx context.Context, p *Partition, txnID string, pe producerEpoch) (*txnGuard, error) {
	p.mu.Lock()
	leaderEpoch := p.leaderEpoch
	p.mu.Unlock()
	ps := p.producers
	for range txnVerifyAttempts {
		ps.mu.Lock()
		if p.txnOpen(pe.id) {
			ps.mu.Unlock()
			return nil, nil
		}
		g := ps.guards[pe.id]
		if g != nil && g.epoch == pe.epoch && g.leaderEpoch == leaderEpoch && g.verified {
			ps.mu.Unlock()
			return g, nil
		}
		if g == nil || g.epoch != pe.epoch || g.leaderEpoch != leaderEpoch {
			if g == nil && len(ps.guards) >= maxTxnGuards {
				ps.mu.Unlock()
				return nil, fmt.Errorf("%d transactions starting at once in %s-%d; retry: %w", maxTxnGuards, p.Topic, p.Index, ErrNotEnoughReplicas)
			}
			g = &txnGuard{epoch: pe.epoch, leaderEpoch: leaderEpoch}
			if ps.guards == nil {
				ps.guards = map[int64]*txnGuard{}
			}
			ps.guards[pe.id] = g
		}
		ps.mu.Unlock()

		err := b.checkTxnState(ctx, txnID, pe, metastore.TopicPartition{Topic: p.Topic, Partition: p.Index})

		ps.mu.Lock()
		if ps.guards[pe.id] != g {
			// A marker of the producer came meanwhile (or a request of
			// another epoch): the state read may be of a transaction that
			// ended.
			ps.mu.Unlock()
			continue
		}
		if err != nil {
			delete(ps.guards, pe.id)
		} else {
			g.verified = true
		}
		ps.mu.Unlock()
		return g, err
	}
	// Retriable, as Kafka answers a verification that could not finish.
	return nil, fmt.Errorf("producer %d: transaction %q kept changing while its partition %s-%d was verified; retry: %w",
		pe.id, txnID, p.Topic, p.Index, ErrNotEnoughReplicas)
}

// dropGuards forgets the given verifications, unless newer ones replaced
// them.
func (ps *producerStates) dropGuards(guards map[int64]*txnGuard) {
	if len(guards) == 0 {
		return
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.dropGuardsLocked(guards)
}

func (ps *producerStates) dropGuardsLocked(guards map[int64]*txnGuard) {
	for pid, g := range guards {
		if ps.guards[pid] == g {
			delete(ps.guards, pid)
		}
	}
}

// checkTxnState reads txnID's stored state and checks that pe's
// transaction is open with tp in it.
func (b *Broker) checkTxnState(ctx context.Context, txnID string, pe producerEpoch, tp metastore.TopicPartition) error {
	ctx, cancel := context.WithTimeout(ctx, txnVerifyTimeout)
	defer cancel()
	m, err := b.store.GetTransaction(ctx, txnID)
	switch {
	case errors.Is(err, metastore.ErrTransactionNotFound):
		return fmt.Errorf("transactional id %q has no state (InitProducerId first): %w", txnID, txn.ErrInvalidTxnState)
	case err != nil:
		// Retriable: the producer sends the batch again.
		return fmt.Errorf("verify transactional id %q: %v: %w", txnID, err, ErrRequestTimedOut)
	case m.ProducerID != pe.id:
		return fmt.Errorf("transactional id %q has producer id %d, the batch %d: %w", txnID, m.ProducerID, pe.id, txn.ErrInvalidTxnState)
	case m.ProducerEpoch > pe.epoch:
		return fmt.Errorf("transactional id %q is at epoch %d, the batch at %d (a newer producer fenced it): %w",
			txnID, m.ProducerEpoch, pe.epoch, ErrInvalidProducerEpoch)
	case m.ProducerEpoch < pe.epoch:
		return fmt.Errorf("transactional id %q is at epoch %d, the batch at %d: %w", txnID, m.ProducerEpoch, pe.epoch, txn.ErrInvalidTxnState)
	case m.State != txn.StateOngoing || !slices.Contains(m.Partitions, tp):
		return fmt.Errorf("%s-%d is not in an open transaction of transactional id %q (AddPartitionsToTxn first): %w",
			tp.Topic, tp.Partition, txnID, txn.ErrInvalidTxnState)
	}
	return nil
}

// checkTxnAppendLocked checks, before a leader appends batch h in leader
// epoch epoch, that a transactional batch continues its producer's open
// transaction or was verified for this request (guards) since the
// producer's last marker. The refusal is retriable: the producer sends
// the batch again and it is verified again, which gives the definite
// answer. The caller holds ps.mu.
func (p *Partition) checkTxnAppendLocked(h *record.Header, epoch int32, guards map[int64]*txnGuard) error {
	if !h.Transactional() || h.Control() || p.txnOpen(h.ProducerID) {
		return nil
	}
	if g := guards[h.ProducerID]; g != nil && p.producers.guards[h.ProducerID] == g && g.verified &&
		g.epoch == h.ProducerEpoch && g.leaderEpoch == epoch {
		return nil
	}
	return fmt.Errorf("%s-%d: producer %d epoch %d: transactional batch not verified with its coordinator since its last marker; retry: %w",
		p.Topic, p.Index, h.ProducerID, h.ProducerEpoch, ErrNotEnoughReplicas)
}
