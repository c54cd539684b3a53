package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/strata-broker/strata/broker/txn"
	"github.com/strata-broker/strata/metastore"
)

// TxnMarkerWriter writes a transaction's markers through the partitions'
// leaders: the broker's txn.MarkerWriter. It groups the partitions by the
// leader the broker's cluster view names, sends each leader one
// WriteTxnMarkers (this broker's own partitions are written directly), and
// retries the partitions whose leader moved, is unknown, is unreachable or
// could not commit the marker yet, with the cluster view as it is then,
// until every partition has its marker or ctx ends.
type TxnMarkerWriter struct {
	b *Broker
	// backoff is the first wait before a retry; it doubles up to
	// markerBackoffMax.
	backoff time.Duration
}

var _ txn.MarkerWriter = (*TxnMarkerWriter)(nil)

const (
	markerBackoffMin = 50 * time.Millisecond
	markerBackoffMax = time.Second
)

// TxnMarkerWriter returns the broker's writer of transaction markers.
func (b *Broker) TxnMarkerWriter() *TxnMarkerWriter {
	return &TxnMarkerWriter{b: b, backoff: markerBackoffMin}
}

// WriteMarkers implements txn.MarkerWriter. It returns nil once every
// partition's leader has committed the marker; a partition whose topic no
// longer exists is skipped, as Kafka's coordinator does (nobody can read
// it). Otherwise the error names the partitions without a marker: those
// refused for good (ErrTransactionCoordinatorFenced,
// ErrInvalidProducerEpoch: retrying cannot help, and the error wraps them)
// as soon as the others are done, and those still failing when ctx ends.
func (w *TxnMarkerWriter) WriteMarkers(ctx context.Context, partitions []metastore.TopicPartition, producerID int64, producerEpoch int16, coordinatorEpoch int32, commit bool) error {
	pending := slices.Clone(partitions)
	slices.SortFunc(pending, metastore.CompareTopicPartitions)
	pending = slices.Compact(pending)
	marker := TxnMarker{ProducerID: producerID, ProducerEpoch: producerEpoch, Commit: commit, CoordinatorEpoch: coordinatorEpoch}
	refused := map[metastore.TopicPartition]error{}
	backoff := w.backoff
	for {
		lastErr := map[metastore.TopicPartition]error{}
		byLeader := map[int32][]metastore.TopicPartition{}
		for _, tp := range pending {
			leader, exists, err := w.leaderOf(ctx, tp)
			switch {
			case err != nil:
				lastErr[tp] = err
			case !exists:
				w.b.logger.Info("transaction marker skipped: the partition no longer exists",
					"topic", tp.Topic, "partition", tp.Partition, "producer_id", producerID)
			case leader < 0:
				lastErr[tp] = fmt.Errorf("%s-%d has no leader: %w", tp.Topic, tp.Partition, ErrLeaderNotAvailable)
			default:
				byLeader[leader] = append(byLeader[leader], tp)
			}
		}
		for tp, err := range w.send(ctx, byLeader, marker) {
			if retriableMarkerError(err) {
				lastErr[tp] = err
			} else {
				refused[tp] = err
			}
		}
		if len(lastErr) == 0 {
			if len(refused) == 0 {
				return nil
			}
			return markerFailure(refused, nil, commit, producerID)
		}
		pending = pending[:0]
		for tp := range lastErr {
			pending = append(pending, tp)
		}
		slices.SortFunc(pending, metastore.CompareTopicPartitions)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return markerFailure(refused, lastErr, commit, producerID)
		case <-t.C:
		}
		backoff = min(2*backoff, markerBackoffMax)
	}
}

// leaderOf returns the leader of tp as the cluster view has it; exists is
// false when the topic is gone (its states are not in the view, and the
// metastore confirms it).
func (w *TxnMarkerWriter) leaderOf(ctx context.Context, tp metastore.TopicPartition) (leader int32, exists bool, err error) {
	if st, ok := w.b.cluster.cachedState(tp.Topic, tp.Partition); ok {
		return st.Leader, true, nil
	}
	// Not followed yet, or deleted: only the metastore tells which. Its
	// answer is not cached here; the view's watch delivers it.
	states, err := w.b.cluster.partitions.PartitionStates(ctx, tp.Topic)
	if errors.Is(err, metastore.ErrTopicNotFound) {
		return -1, false, nil
	}
	if err != nil {
		return -1, false, fmt.Errorf("leader of %s-%d: %w", tp.Topic, tp.Partition, err)
	}
	for _, st := range states {
		if st.Partition == tp.Partition {
			return st.Leader, true, nil
		}
	}
	return -1, false, nil
}

// send writes the marker to each leader's partitions, the leaders in
// parallel, and returns the error of every partition that failed.
func (w *TxnMarkerWriter) send(ctx context.Context, byLeader map[int32][]metastore.TopicPartition, m TxnMarker) map[metastore.TopicPartition]error {
	var (
		mu     sync.Mutex
		failed = map[metastore.TopicPartition]error{}
		wg     sync.WaitGroup
	)
	for leader, tps := range byLeader {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := m
			m.Partitions = tps
			results, err := w.call(ctx, leader, m)
			mu.Lock()
			defer mu.Unlock()
			for i, tp := range tps {
				switch {
				case err != nil:
					failed[tp] = err
				case i >= len(results):
					failed[tp] = fmt.Errorf("broker %d answered no result for %s-%d: %w", leader, tp.Topic, tp.Partition, ErrLeaderNotAvailable)
				case results[i].Err != nil:
					failed[tp] = results[i].Err
				}
			}
		}()
	}
	wg.Wait()
	return failed
}

// call sends one marker to a leader and returns its partitions' results,
// in m.Partitions' order.
func (w *TxnMarkerWriter) call(ctx context.Context, leader int32, m TxnMarker) ([]TxnMarkerPartitionResult, error) {
	b := w.b
	var results []TxnMarkerResult
	if leader == b.cfg.NodeID {
		results = b.writeTxnMarkers(ctx, []TxnMarker{m})
	} else {
		addr, ok := b.cluster.brokerAddr(leader)
		if !ok {
			return nil, fmt.Errorf("leader %d is not a live broker: %w", leader, ErrLeaderNotAvailable)
		}
		if b.cfg.Replicas == nil {
			return nil, fmt.Errorf("no client to reach leader %d at %s: %w", leader, addr, ErrLeaderNotAvailable)
		}
		var err error
		results, err = b.cfg.Replicas.WriteTxnMarkers(ctx, addr, WriteTxnMarkersRequest{
			BrokerID: b.cfg.NodeID, Secret: b.replicaSecret(), Markers: []TxnMarker{m}})
		if err != nil {
			// The call as a whole failed (the leader down or unreachable,
			// its answer lost): retried, like a leader that moved.
			return nil, fmt.Errorf("transaction markers to broker %d at %s: %w", leader, addr, errors.Join(err, ErrLeaderNotAvailable))
		}
	}
	if len(results) != 1 {
		return nil, fmt.Errorf("broker %d answered %d marker results for 1: %w", leader, len(results), ErrLeaderNotAvailable)
	}
	return results[0].Partitions, nil
}

// retriableMarkerError reports whether a partition's marker may succeed
// when sent again, maybe to another leader: Kafka's coordinator retries
// these too.
func retriableMarkerError(err error) bool {
	switch Classify(err) {
	case KindNotLeader, KindLeaderNotAvailable, KindUnknownTopicOrPartition, KindNotEnoughReplicas,
		KindNotEnoughReplicasAfterAppend, KindRequestTimedOut, KindFencedLeaderEpoch, KindUnknownLeaderEpoch,
		KindUnavailable, KindStorageError, KindUpstreamUnavailable, KindCanceled, KindDeadlineExceeded:
		return true
	}
	return false
}

// markerFailure is WriteMarkers' error: refused holds the partitions
// refused for good, unfinished those still failing when time ran out.
func markerFailure(refused, unfinished map[metastore.TopicPartition]error, commit bool, producerID int64) error {
	what := "abort"
	if commit {
		what = "commit"
	}
	var names []string
	var errs []error
	for _, set := range []map[metastore.TopicPartition]error{refused, unfinished} {
		tps := make([]metastore.TopicPartition, 0, len(set))
		for tp := range set {
			tps = append(tps, tp)
		}
		slices.SortFunc(tps, metastore.CompareTopicPartitions)
		for _, tp := range tps {
			names = append(names, fmt.Sprintf("%s-%d", tp.Topic, tp.Partition))
			errs = append(errs, set[tp])
		}
	}
	return fmt.Errorf("%s markers of producer %d not written to %s: %w", what, producerID, strings.Join(names, ", "), errors.Join(errs...))
}
