package broker

// End-transaction markers, the leader's side of Kafka's WriteTxnMarkers: a
// transaction coordinator asks each partition's leader to end a producer's
// transaction there. The leader appends the marker (a control batch) like
// any batch, in its leader epoch, and answers once it is committed.

import (
	"context"
	"fmt"
	"time"

	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/record"
)

// TxnMarker ends one producer's transaction in Partitions: Kafka's
// WritableTxnMarker.
type TxnMarker struct {
	ProducerID    int64
	ProducerEpoch int16
	// Commit is true for a commit marker, false for an abort marker.
	Commit bool
	// CoordinatorEpoch is the epoch of the coordinator writing the marker.
	CoordinatorEpoch int32
	Partitions       []metastore.TopicPartition
}

// WriteTxnMarkersRequest is an inter-broker WriteTxnMarkers.
type WriteTxnMarkersRequest struct {
	// BrokerID is the calling broker, and Secret its registration's
	// replica secret: only a broker writes markers.
	BrokerID int32
	Secret   metastore.ReplicaSecret
	Markers  []TxnMarker
}

// TxnMarkerResult answers one TxnMarker: its partitions in the same order.
type TxnMarkerResult struct {
	ProducerID int64
	Partitions []TxnMarkerPartitionResult
}

// TxnMarkerPartitionResult is one partition's answer; Err nil means the
// marker is committed there.
type TxnMarkerPartitionResult struct {
	Topic     string
	Partition int32
	Err       error
}

// markerCommitTimeout bounds the wait of a marker for the ISR, as a
// produce's request timeout does; the coordinator retries after it.
const markerCommitTimeout = DefaultProduceTimeout

// WriteTxnMarkers appends each marker to each of its partitions this broker
// leads, and answers every partition once its marker is committed
// (replicated to the ISR, as acks=all) or with the error:
// ErrNotLeader where this broker does not lead, ErrTransactionCoordinatorFenced
// for a coordinator epoch older than the last the partition took for the
// producer, ErrInvalidProducerEpoch for a producer epoch older than the
// partition's, ErrNotEnoughReplicas(AfterAppend), ErrRequestTimedOut. The
// caller must prove it is a broker (Secret, as for ReplicaFetch), else
// ErrClusterAuthorizationFailed with nothing written.
//
// A marker that repeats the producer's latest one in the partition (same
// producer epoch, outcome and coordinator epoch, with no transaction of the
// producer opened since) is not written again: the answer waits for the
// first one to be committed. Kafka writes every marker it is sent, and
// they are harmless, but a coordinator retries a marker whose answer it
// lost, and each would otherwise add a batch. A marker from a newer
// coordinator epoch is written even so, so that the followers learn the
// epoch too.
func (b *Broker) WriteTxnMarkers(ctx context.Context, req WriteTxnMarkersRequest) ([]TxnMarkerResult, error) {
	if !b.cluster.replicaSecretMatches(ctx, req.BrokerID, req.Secret) {
		return nil, fmt.Errorf("%w: transaction markers from a caller claiming to be broker %d without its registration's secret",
			ErrClusterAuthorizationFailed, req.BrokerID)
	}
	if len(req.Markers) == 0 {
		return nil, fmt.Errorf("%w: write transaction markers names no markers", ErrInvalidRequest)
	}
	return b.writeTxnMarkers(ctx, req.Markers), nil
}

// writeTxnMarkers is WriteTxnMarkers once the caller is known to be a
// broker (this one, for partitions it leads itself).
func (b *Broker) writeTxnMarkers(ctx context.Context, markers []TxnMarker) []TxnMarkerResult {
	type written struct {
		res *TxnMarkerPartitionResult
		at  markerAt
	}
	var toWait []written
	out := make([]TxnMarkerResult, len(markers))
	for i, m := range markers {
		out[i] = TxnMarkerResult{ProducerID: m.ProducerID, Partitions: make([]TxnMarkerPartitionResult, len(m.Partitions))}
		marker := record.EndTxnMarker{ProducerID: m.ProducerID, ProducerEpoch: m.ProducerEpoch, Commit: m.Commit, CoordinatorEpoch: m.CoordinatorEpoch}
		for j, tp := range m.Partitions {
			res := &out[i].Partitions[j]
			*res = TxnMarkerPartitionResult{Topic: tp.Topic, Partition: tp.Partition}
			if m.ProducerID < 0 || m.ProducerEpoch < 0 {
				res.Err = fmt.Errorf("%w: marker for producer id %d epoch %d", ErrInvalidRequest, m.ProducerID, m.ProducerEpoch)
				continue
			}
			w, err := b.appendMarker(tp, marker)
			if err != nil {
				res.Err = fmt.Errorf("%s marker for producer %d epoch %d to %s-%d: %w",
					marker.Type(), m.ProducerID, m.ProducerEpoch, tp.Topic, tp.Partition, err)
				continue
			}
			toWait = append(toWait, written{res: res, at: w})
		}
	}
	// Every marker was appended first, so they replicate in parallel.
	deadline := time.Now().Add(markerCommitTimeout)
	for _, w := range toWait {
		if err := w.at.p.waitCommitted(ctx, w.at.offset, w.at.epoch, w.at.minISR, max(time.Until(deadline), 0)); err != nil {
			w.res.Err = fmt.Errorf("transaction marker at %s-%d offset %d: %w", w.res.Topic, w.res.Partition, w.at.offset, err)
		}
	}
	return out
}

// markerAt is where a marker is (or was already) in a partition's log.
type markerAt struct {
	p      *Partition
	offset int64
	epoch  int32 // the leader epoch it was appended in
	minISR int
}

// appendMarker appends m to partition tp, which this broker must lead.
func (b *Broker) appendMarker(tp metastore.TopicPartition, m record.EndTxnMarker) (markerAt, error) {
	p, err := b.hosted.leaderPartition(tp.Topic, tp.Partition)
	if err != nil {
		return markerAt{}, err
	}
	tcfg, err := b.hosted.TopicConfig(tp.Topic)
	if err != nil {
		return markerAt{}, err
	}
	minISR := int(tcfg.MinInsyncReplicas)
	offset, epoch, err := p.appendMarker(m, minISR, b.leaseOK, b.registered(), b.now())
	if err != nil {
		b.offline.check(p, err)
		return markerAt{}, err
	}
	return markerAt{p: p, offset: offset, epoch: epoch, minISR: minISR}, nil
}

// appendMarker appends m as the leader, under the producer state's lock,
// and returns the marker's offset and the leader epoch to wait on; for a
// repeat of the producer's latest marker (see WriteTxnMarkers) it writes
// nothing and returns that marker's offset.
func (p *Partition) appendMarker(m record.EndTxnMarker, minISR int, leaseOK func() bool, registered int64, now time.Time) (int64, int32, error) {
	p.roleMu.RLock()
	defer p.roleMu.RUnlock()
	epoch, err := p.appendableLocked(AcksAll, minISR, leaseOK, registered)
	if err != nil {
		return 0, 0, err
	}
	offset, wrote, err := p.appendMarkerLocked(m, epoch, now)
	if err != nil {
		return 0, 0, err
	}
	if wrote {
		p.appendedAsLeader()
	}
	return offset, epoch, nil
}

// appendMarkerLocked checks m against the producer's state and appends it
// in leader epoch epoch; wrote is false for a repeat. The caller holds
// roleMu.
func (p *Partition) appendMarkerLocked(m record.EndTxnMarker, epoch int32, now time.Time) (offset int64, wrote bool, err error) {
	ps := p.producers
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if e := ps.table.Get(m.ProducerID, ps.now()); e != nil {
		// Kafka's order: the producer epoch, then the coordinator epoch.
		if m.ProducerEpoch < e.Epoch {
			return 0, false, fmt.Errorf("producer epoch %d, the partition's is %d: %w", m.ProducerEpoch, e.Epoch, ErrInvalidProducerEpoch)
		}
		if m.CoordinatorEpoch < e.CoordinatorEpoch {
			return 0, false, fmt.Errorf("coordinator epoch %d, the partition took %d for the producer: %w",
				m.CoordinatorEpoch, e.CoordinatorEpoch, ErrTransactionCoordinatorFenced)
		}
		if e.HasMarker && e.Epoch == m.ProducerEpoch && e.Marker.Commit == m.Commit && e.CoordinatorEpoch == m.CoordinatorEpoch &&
			!p.txnOpen(m.ProducerID) {
			// Not written, but a transaction ended all the same: what was
			// verified for the producer was verified against it.
			delete(ps.guards, m.ProducerID)
			return e.Marker.Offset, false, nil
		}
	}
	batch := record.BuildEndTxnMarker(m, now.UnixMilli())
	if _, err := p.log.Append(batch, epoch); err != nil {
		return 0, false, err
	}
	// The log stamped the offset into batch.
	h, err := record.ParseHeader(batch)
	if err != nil {
		return 0, false, fmt.Errorf("%s-%d: appended marker: %w", p.Topic, p.Index, err)
	}
	ps.table.RecordMarker(&h, &m, ps.now())
	// The transaction is over: the producer's next one is verified anew.
	delete(ps.guards, m.ProducerID)
	return h.BaseOffset, true, nil
}

// txnOpen reports whether the producer has a transaction open in the log.
func (p *Partition) txnOpen(producerID int64) bool { return p.log.HasOpenTransaction(producerID) }
