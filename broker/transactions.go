package broker

// The broker's side of transactions: it runs the transaction coordinator
// (broker/txn) for the transactional ids it owns, and answers the
// transactional requests with it.

import (
	"context"
	"fmt"
	"time"

	"github.com/strata-broker/strata/broker/txn"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/topicconfig"
)

// txnTickInterval is Kafka's
// transaction.abort.timed.out.transaction.cleanup.interval.ms: how often
// transactions open past their timeout are looked for.
const txnTickInterval = 10 * time.Second

// newTxnCoordinator builds the coordinator from the broker's settings; the
// group coordinator must exist (its offsets complete with the markers). A
// transactional id is owned as a consumer group is (GroupCoordinator's
// choice), and not at all while the broker's lease may have expired.
func newTxnCoordinator(b *Broker) (*txn.Coordinator, error) {
	maxTimeout, err := topicconfig.TransactionMaxTimeout(b.cfg.Settings)
	if err != nil {
		return nil, fmt.Errorf("broker: settings: %w: %w", ErrInvalidConfig, err)
	}
	expiration, err := topicconfig.TransactionalIDExpiration(b.cfg.Settings)
	if err != nil {
		return nil, fmt.Errorf("broker: settings: %w: %w", ErrInvalidConfig, err)
	}
	metrics := newTxnMetrics()
	cfg := txn.Config{
		MaxTimeout:   maxTimeout,
		IDExpiration: expiration,
		GroupMarkers: b.TxnGroupMarkerWriter(),
		Metrics:      metrics,
		Owns: func(id string) bool {
			return b.leaseOK() && b.GroupCoordinator(id).NodeID == b.cfg.NodeID
		},
		Now:    b.now,
		Logger: b.logger.With("component", "transactions"),
	}
	c := txn.New(b.store, producerIDSource{b}, b.TxnMarkerWriter(), cfg)
	metrics.register(b.cfg.Registerer, c)
	return c, nil
}

// producerIDSource hands the coordinator ids from the broker's blocks, the
// ones idempotent producers get.
type producerIDSource struct{ b *Broker }

func (s producerIDSource) NextProducerID(ctx context.Context) (int64, error) {
	id, _, err := s.b.InitProducerID(ctx, "")
	return id, err
}

// runTransactions drives the coordinator until ctx ends: a tick every
// txnTickInterval, and a load of the ids it newly owns whenever the live
// brokers change (reload is signalled) and once at start.
func (b *Broker) runTransactions(ctx context.Context) {
	t := time.NewTicker(txnTickInterval)
	defer t.Stop()
	load := true
	for {
		if load {
			if err := b.txns.Load(ctx); err != nil && ctx.Err() == nil {
				b.logger.Warn("loading transactional ids failed; retried at the next tick", "err", err)
			} else {
				load = false
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-b.txnReload:
			load = true
		case now := <-t.C:
			if !load {
				b.txns.Tick(ctx, now)
			}
		}
	}
}

// txnBrokersChanged asks runTransactions to load the ids this broker may
// have gained; it never blocks the caller.
func (b *Broker) txnBrokersChanged() {
	// At once, before the load: ids held from before are read again on
	// their next use, as another broker may have moved them on meanwhile.
	b.txns.OwnershipChanged()
	select {
	case b.txnReload <- struct{}{}:
	default:
	}
}

// Transactions is the coordinator of the transactional ids this broker
// owns.
func (b *Broker) Transactions() *txn.Coordinator { return b.txns }

// InitTransactionalProducerID is InitProducerId with a transactional id:
// the id's producer id and a new epoch, fencing its earlier producers (see
// txn.Coordinator.InitProducerID).
func (b *Broker) InitTransactionalProducerID(ctx context.Context, id string, timeoutMs int32, expectedID int64, expectedEpoch int16) (int64, int16, error) {
	if b.hosted.isClosed() {
		return -1, -1, fmt.Errorf("init producer id: %w", ErrBrokerClosed)
	}
	return b.txns.InitProducerID(ctx, id, timeoutMs, expectedID, expectedEpoch)
}

// AddPartitionsToTxn adds partitions to the producer's transaction. Every
// partition must exist: the ones that do not are answered
// ErrUnknownTopicOrPartition and nothing is added, as Kafka answers.
func (b *Broker) AddPartitionsToTxn(ctx context.Context, id string, producerID int64, epoch int16, parts []metastore.TopicPartition) (map[metastore.TopicPartition]error, error) {
	unknown := map[metastore.TopicPartition]error{}
	for _, tp := range parts {
		n, err := b.hosted.PartitionCount(tp.Topic)
		if err != nil || tp.Partition < 0 || tp.Partition >= n {
			unknown[tp] = fmt.Errorf("%s-%d: %w", tp.Topic, tp.Partition, ErrUnknownTopicOrPartition)
		}
	}
	if len(unknown) > 0 {
		return unknown, nil
	}
	return nil, b.txns.AddPartitions(ctx, id, producerID, epoch, parts)
}

// AddOffsetsToTxn adds a consumer group's offsets to the producer's
// transaction (TxnOffsetCommit then commits them at the group's
// coordinator).
func (b *Broker) AddOffsetsToTxn(ctx context.Context, id string, producerID int64, epoch int16, group string) error {
	if err := metastore.CheckGroupName(group); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	return b.txns.AddOffsets(ctx, id, producerID, epoch, group)
}

// EndTxn commits or aborts the producer's transaction. It returns once the
// outcome is stored and, within txn.DefaultCompleteTimeout, its markers are
// written; markers that could not be written by then are written by the
// coordinator's next ticks (the outcome is decided either way).
func (b *Broker) EndTxn(ctx context.Context, id string, producerID int64, epoch int16, commit bool) error {
	return b.txns.EndTxn(ctx, id, producerID, epoch, commit)
}

// DescribeTransaction is DescribeTransactions for one id this broker
// coordinates.
func (b *Broker) DescribeTransaction(ctx context.Context, id string) (metastore.TransactionMeta, error) {
	return b.txns.Describe(ctx, id)
}

// ListTransactions lists the transactional ids this broker coordinates
// that match f.
func (b *Broker) ListTransactions(ctx context.Context, f txn.ListFilter) ([]metastore.TransactionMeta, error) {
	return b.txns.List(ctx, f)
}
