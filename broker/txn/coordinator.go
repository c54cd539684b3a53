// Package txn is the transaction coordinator: the state machine of Kafka's
// transactional ids (InitProducerId with a transactional id,
// AddPartitionsToTxn and its KIP-890 verification, AddOffsetsToTxn,
// EndTxn, the transaction timeout, DescribeTransactions and
// ListTransactions), with the state of each id kept in the metastore.
//
// The state of a transactional id is one metastore value, and every
// transition is one compare-and-swap on its revision: a coordinator that
// was replaced, and so holds an older revision, cannot write over its
// successor, and a coordinator that loses a compare-and-swap forgets the id
// and answers NOT_COORDINATOR. The state is also held in memory, for the
// ids this broker coordinates, so that the KIP-890 verification of a
// produce and the timeout checks read no metastore.
//
// Ending a transaction follows Kafka: PrepareCommit (or PrepareAbort) is
// written first, and once it is stored the outcome is decided; then the
// markers are written to every partition of the transaction (through
// MarkerWriter, by the partitions' leaders), then CompleteCommit (or
// CompleteAbort). A coordinator that dies in between leaves PrepareX in
// the metastore, and whoever coordinates the id next writes the markers
// again (they are idempotent per producer epoch) and completes it.
package txn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/topicconfig"
)

// Store keeps the state of transactional ids; *metastore.Store implements
// it.
type Store interface {
	GetTransaction(ctx context.Context, id string) (metastore.TransactionMeta, error)
	PutTransaction(ctx context.Context, meta metastore.TransactionMeta, prevRevision int64) (metastore.TransactionMeta, error)
	DeleteTransaction(ctx context.Context, id string, revision int64) error
	ListTransactions(ctx context.Context) ([]metastore.TransactionMeta, error)
}

// ProducerIDs hands out producer ids unique in the cluster, never reused:
// the broker's allocator, the one idempotent producers get theirs from.
type ProducerIDs interface {
	NextProducerID(ctx context.Context) (int64, error)
}

// MarkerWriter writes a transaction's commit or abort markers (control
// batches) to its partitions, each through the partition's leader. It
// returns nil only once every partition has its marker. Writing the same
// markers again (same producer id, epoch and outcome) must be harmless,
// since a coordinator that takes over an id writes them again; a leader
// refuses markers of a coordinator epoch older than one it has seen for
// the producer.
type MarkerWriter interface {
	WriteMarkers(ctx context.Context, partitions []metastore.TopicPartition, producerID int64, producerEpoch int16, coordinatorEpoch int32, commit bool) error
}

// GroupMarkerWriter makes a transaction's pending offset commits
// (TxnOffsetCommit) of groups visible, or drops them: the groups' side of
// the markers. Like MarkerWriter it must be idempotent.
type GroupMarkerWriter interface {
	WriteGroupMarkers(ctx context.Context, groups []string, producerID int64, producerEpoch int16, commit bool) error
}

// Transaction states, as Kafka names them (DescribeTransactions and
// ListTransactions report them). Kafka's Dead is not stored: an expired id
// has its key deleted. Kafka's PrepareEpochFence is not stored either: the
// fencing abort writes PrepareAbort with the bumped epoch directly.
const (
	StateEmpty          = "Empty"
	StateOngoing        = "Ongoing"
	StatePrepareCommit  = "PrepareCommit"
	StatePrepareAbort   = "PrepareAbort"
	StateCompleteCommit = "CompleteCommit"
	StateCompleteAbort  = "CompleteAbort"
)

// MaxGroupsPerTransaction bounds the consumer groups one transaction
// commits offsets of (AddOffsetsToTxn); an application commits one.
const MaxGroupsPerTransaction = 64

// noEpoch and noProducerID are Kafka's "none" in requests and state.
const (
	noEpoch      int16 = -1
	noProducerID int64 = -1
)

// epochExhausted says whether a producer id has no epoch left to hand out:
// Kafka keeps math.MaxInt16 for the coordinator, so that it can always
// fence (bump) the current producer once more.
func epochExhausted(epoch int16) bool { return epoch >= math.MaxInt16-1 }

// Config tunes the coordinator with Kafka's broker settings.
type Config struct {
	// MaxTimeout is transaction.max.timeout.ms: the longest
	// transaction.timeout.ms InitProducerId accepts. Zero means
	// topicconfig.DefaultTransactionMaxTimeout.
	MaxTimeout time.Duration
	// IDExpiration is transactional.id.expiration.ms: an id without an
	// open transaction and unused this long is deleted by Tick. Zero means
	// topicconfig.DefaultTransactionalIDExpiration.
	IDExpiration time.Duration
	// GroupMarkers completes the offsets of groups added with
	// AddOffsetsToTxn; nil: nothing to complete.
	GroupMarkers GroupMarkerWriter
	// Owns says whether this broker coordinates a transactional id now (as
	// consumer groups: rendezvous hashing over the live brokers, FindCoordinator
	// with key type 1). It is asked before each request and each tick, so it
	// should be false as soon as the broker may have lost its place. nil:
	// every id.
	Owns func(id string) bool
	// CompleteTimeout bounds one attempt at completing a transaction
	// (its markers, then CompleteX): markers that cannot be written now (a
	// partition without a leader, or below min.insync.replicas) must not
	// hold up a request for long, nor a tick, which has every other id's
	// timeouts to look after; the next tick tries again. Zero means
	// DefaultCompleteTimeout.
	CompleteTimeout time.Duration
	// Metrics counts what ends transactions; nil counts nothing.
	Metrics Metrics
	Now     func() time.Time
	Logger  *slog.Logger
}

// Metrics receives the coordinator's events, for the broker's metrics;
// the coordinator calls it without holding any lock of its own, except the
// transactional id's.
type Metrics interface {
	// TransactionCompleted: a transaction's CompleteCommit or
	// CompleteAbort was stored by this coordinator (whoever decided it:
	// its producer, its timeout, a fencing InitProducerId, or a previous
	// coordinator that left it in PrepareX).
	TransactionCompleted(commit bool)
	// TransactionTimedOut: the abort of a transaction open past its
	// timeout was decided (PrepareAbort stored).
	TransactionTimedOut()
}

// Coordinator runs the transactional ids this broker coordinates. Its
// methods are safe for concurrent use; requests for one id are served one
// at a time, except that markers are written without holding the id, so
// that requests meanwhile get CONCURRENT_TRANSACTIONS instead of waiting.
type Coordinator struct {
	store   Store
	pids    ProducerIDs
	markers MarkerWriter
	cfg     Config
	logger  *slog.Logger

	mu   sync.Mutex
	txns map[string]*entry
	// gen is the ownership generation, bumped by OwnershipChanged.
	gen atomic.Uint64
}

// OwnershipChanged tells the coordinator that the ids it owns may have
// changed (the live brokers changed, or its lease was renewed after a
// lapse): every id it holds is read from the store again before its next
// use, since another coordinator may have moved it on in between, even if
// this broker owns it again now.
func (c *Coordinator) OwnershipChanged() { c.gen.Add(1) }

// entry is one transactional id as this coordinator knows it.
type entry struct {
	id string

	mu sync.Mutex // serializes the requests for the id
	// loaded: meta and exists reflect the metastore as last read or
	// written by this coordinator.
	loaded bool
	exists bool
	meta   metastore.TransactionMeta
	// fenced: this coordinator has written the id, so meta's
	// CoordinatorEpoch is its own; its first write raises the epoch.
	fenced bool
	// completing: markers for meta's PrepareX are being written (with mu
	// released).
	completing bool
	// gen is the coordinator's ownership generation when meta was last
	// read or written: an entry of an older generation is read again
	// before it is used, since the id may have been another broker's in
	// between (see OwnershipChanged).
	gen uint64
	// open mirrors whether meta, as last set, is a transaction open or
	// being completed, so that OpenTransactions counts without taking mu
	// (which is held across metastore writes).
	open atomic.Bool
}

// set makes m (exists) what e holds. e.mu must be held.
func (e *entry) set(m metastore.TransactionMeta, exists bool) {
	e.meta, e.exists = m, exists
	e.open.Store(exists && isOpen(m.State))
}

// isOpen says whether a state is a transaction not yet complete.
func isOpen(state string) bool {
	return state == StateOngoing || state == StatePrepareCommit || state == StatePrepareAbort
}

// New returns a coordinator keeping state in store, taking new producer
// ids from pids and writing markers through markers.
func New(store Store, pids ProducerIDs, markers MarkerWriter, cfg Config) *Coordinator {
	if cfg.MaxTimeout <= 0 {
		cfg.MaxTimeout = topicconfig.DefaultTransactionMaxTimeout
	}
	if cfg.IDExpiration <= 0 {
		cfg.IDExpiration = topicconfig.DefaultTransactionalIDExpiration
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CompleteTimeout <= 0 {
		cfg.CompleteTimeout = DefaultCompleteTimeout
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Coordinator{store: store, pids: pids, markers: markers, cfg: cfg, logger: logger, txns: map[string]*entry{}}
}

func (c *Coordinator) owns(id string) bool { return c.cfg.Owns == nil || c.cfg.Owns(id) }

// acquire returns id's entry locked and loaded. Release it with release.
func (c *Coordinator) acquire(ctx context.Context, id string) (*entry, error) {
	if id == "" || len(id) > metastore.MaxTransactionalIDBytes {
		return nil, fmt.Errorf("transactional id of %d bytes: %w", len(id), ErrInvalidRequest)
	}
	if !c.owns(id) {
		return nil, fmt.Errorf("transactional id %q: %w", id, ErrNotCoordinator)
	}
	for {
		c.mu.Lock()
		e := c.txns[id]
		if e == nil {
			e = &entry{id: id}
			c.txns[id] = e
		}
		c.mu.Unlock()
		e.mu.Lock()
		if !c.current(e) {
			// Forgotten while this request waited: a newer entry (or none)
			// stands for the id.
			e.mu.Unlock()
			continue
		}
		if err := c.load(ctx, e); err != nil {
			c.release(e)
			return nil, err
		}
		return e, nil
	}
}

// load reads e from the store unless it holds what was last read or
// written. e.mu must be held.
func (c *Coordinator) load(ctx context.Context, e *entry) error {
	gen := c.gen.Load()
	if e.loaded && e.gen == gen {
		return nil
	}
	m, err := c.store.GetTransaction(ctx, e.id)
	switch {
	case errors.Is(err, metastore.ErrTransactionNotFound):
		e.set(metastore.TransactionMeta{}, false)
		e.fenced = false
	case err != nil:
		return fmt.Errorf("transactional id %q: %v: %w", e.id, err, ErrCoordinatorNotAvailable)
	default:
		if !e.loaded || !e.exists || m.Revision != e.meta.Revision {
			// Written by another coordinator since: its epoch is not ours.
			e.fenced = false
		}
		e.set(m, true)
	}
	e.loaded, e.gen = true, gen
	return nil
}

// confirm checks, before an answer that writes nothing, that e still holds
// the stored state: the store is the judge of what was decided, and an
// answer from memory alone could repeat a decision another coordinator
// has since moved on from. A change makes the coordinator step down for
// the id (ErrNotCoordinator: the client looks it up and asks again). e.mu
// must be held.
func (c *Coordinator) confirm(ctx context.Context, e *entry) error {
	m, err := c.store.GetTransaction(ctx, e.id)
	switch {
	case errors.Is(err, metastore.ErrTransactionNotFound):
		c.forget(e)
		return fmt.Errorf("transactional id %q is gone from the store: %w", e.id, ErrNotCoordinator)
	case err != nil:
		return fmt.Errorf("transactional id %q: %v: %w", e.id, err, ErrCoordinatorNotAvailable)
	case m.Revision != e.meta.Revision:
		c.forget(e)
		return fmt.Errorf("transactional id %q changed by another coordinator: %w", e.id, ErrNotCoordinator)
	}
	return nil
}

// release unlocks e, forgetting it if the id has no state: requests about
// unknown ids must not fill memory.
func (c *Coordinator) release(e *entry) {
	if !e.exists {
		c.forget(e)
	}
	e.mu.Unlock()
}

func (c *Coordinator) current(e *entry) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.txns[e.id] == e
}

// forget drops e, so that the next request reads the id from the store.
// e.mu must be held.
func (c *Coordinator) forget(e *entry) {
	e.loaded = false
	c.mu.Lock()
	if c.txns[e.id] == e {
		delete(c.txns, e.id)
	}
	c.mu.Unlock()
}

// write stores next as e's state, by compare-and-swap on the revision e
// holds. e.mu must be held. The first write of this coordinator raises the
// coordinator epoch, which fences a predecessor's markers.
func (c *Coordinator) write(ctx context.Context, e *entry, next metastore.TransactionMeta) error {
	next.TransactionalID = e.id
	next.UpdatedAt = c.cfg.Now()
	var prev int64
	switch {
	case !e.exists:
		next.CoordinatorEpoch = 0
	case e.fenced:
		prev, next.CoordinatorEpoch = e.meta.Revision, e.meta.CoordinatorEpoch
	default:
		prev, next.CoordinatorEpoch = e.meta.Revision, e.meta.CoordinatorEpoch+1
	}
	stored, err := c.store.PutTransaction(ctx, next, prev)
	switch {
	case errors.Is(err, metastore.ErrConflict):
		c.forget(e)
		c.logger.Info("transactional id changed by another coordinator; stepping down for it", "transactional_id", e.id)
		return fmt.Errorf("transactional id %q changed by another coordinator: %w", e.id, ErrNotCoordinator)
	case err != nil:
		// Whether or not the write landed, what e holds may be stale: it
		// is read again, by the next request or the next tick. It stays
		// held, so that a transaction whose PrepareX did land is still
		// completed by a tick when no request comes.
		e.loaded = false
		return fmt.Errorf("transactional id %q: %v: %w", e.id, err, ErrCoordinatorNotAvailable)
	}
	e.set(stored, true)
	e.fenced, e.gen = true, c.gen.Load()
	return nil
}

// InitProducerID is InitProducerId with a transactional id: it returns the
// producer id and epoch the producer uses from now on, fencing every
// earlier producer of the id. timeoutMs is the producer's
// transaction.timeout.ms. expectedID and expectedEpoch are KIP-360's: the
// producer id and epoch a producer already has (-1, -1 for none); a
// producer that has them gets its epoch bumped, a retry whose answer was
// lost gets the same answer again, and a fenced one gets
// ErrProducerFenced. An open transaction is aborted first, with the epoch
// bumped to fence its producer, and the call returns
// ErrConcurrentTransactions: the client retries and gets the next epoch.
func (c *Coordinator) InitProducerID(ctx context.Context, id string, timeoutMs int32, expectedID int64, expectedEpoch int16) (int64, int16, error) {
	if timeoutMs <= 0 || time.Duration(timeoutMs)*time.Millisecond > c.cfg.MaxTimeout {
		return noProducerID, noEpoch, fmt.Errorf("transaction.timeout.ms %d not in [1, %d] (transaction.max.timeout.ms): %w",
			timeoutMs, c.cfg.MaxTimeout.Milliseconds(), ErrInvalidTransactionTimeout)
	}
	expected := expectedID != noProducerID
	if expected != (expectedEpoch != noEpoch) {
		return noProducerID, noEpoch, fmt.Errorf("expected producer id %d with epoch %d: both or neither must be -1: %w", expectedID, expectedEpoch, ErrInvalidRequest)
	}
	e, err := c.acquire(ctx, id)
	if err != nil {
		return noProducerID, noEpoch, err
	}
	defer c.release(e)
	if !e.exists {
		pid, err := c.pids.NextProducerID(ctx)
		if err != nil {
			return noProducerID, noEpoch, fmt.Errorf("init producer id for transactional id %q: %v: %w", id, err, ErrCoordinatorNotAvailable)
		}
		next := metastore.TransactionMeta{
			ProducerID: pid, ProducerEpoch: 0, LastProducerID: noProducerID, LastProducerEpoch: noEpoch,
			TimeoutMs: timeoutMs, State: StateEmpty,
		}
		if err := c.write(ctx, e, next); err != nil {
			return noProducerID, noEpoch, err
		}
		return pid, 0, nil
	}
	m := e.meta
	if e.completing {
		return noProducerID, noEpoch, fmt.Errorf("transactional id %q is completing a transaction: %w", id, ErrConcurrentTransactions)
	}
	// KIP-360: a producer that names an id other than the current one (or,
	// after a rotation, the previous one with its exhausted epoch) was
	// fenced by another producer.
	if expected && !(m.ProducerEpoch == noEpoch || expectedID == m.ProducerID ||
		(expectedID == m.LastProducerID && epochExhausted(expectedEpoch))) {
		return noProducerID, noEpoch, fmt.Errorf("transactional id %q has producer id %d, not %d: %w", id, m.ProducerID, expectedID, ErrProducerFenced)
	}
	switch m.State {
	case StatePrepareCommit, StatePrepareAbort:
		return noProducerID, noEpoch, fmt.Errorf("transactional id %q is in %s: %w", id, m.State, ErrConcurrentTransactions)
	case StateOngoing:
		if err := c.prepare(ctx, e, false, true); err != nil {
			return noProducerID, noEpoch, err
		}
		c.logger.Info("aborting the open transaction of a producer fenced by a new one", "transactional_id", id,
			"producer_id", m.ProducerID, "producer_epoch", m.ProducerEpoch)
		if err := c.completeWithin(ctx, e); err != nil {
			c.logger.Warn("abort of a fenced producer's transaction not completed; retried later", "transactional_id", id, "err", err)
		}
		return noProducerID, noEpoch, fmt.Errorf("transactional id %q had an open transaction, now aborted: %w", id, ErrConcurrentTransactions)
	case StateEmpty, StateCompleteCommit, StateCompleteAbort:
	default:
		return noProducerID, noEpoch, fmt.Errorf("transactional id %q is in unknown state %q: %w", id, m.State, ErrInvalidTxnState)
	}
	next := m
	next.TimeoutMs, next.State, next.Partitions, next.Groups, next.StartTime = timeoutMs, StateEmpty, nil, nil, time.Time{}
	next.LastProducerID = m.ProducerID
	switch {
	case epochExhausted(m.ProducerEpoch) && (!expected || expectedEpoch == m.ProducerEpoch):
		pid, err := c.pids.NextProducerID(ctx)
		if err != nil {
			return noProducerID, noEpoch, fmt.Errorf("init producer id for transactional id %q: %v: %w", id, err, ErrCoordinatorNotAvailable)
		}
		next.ProducerID, next.ProducerEpoch, next.LastProducerEpoch = pid, 0, noEpoch
		if expected {
			next.LastProducerEpoch = m.ProducerEpoch
		}
	case !expected:
		next.ProducerEpoch, next.LastProducerEpoch = m.ProducerEpoch+1, noEpoch
	case expectedEpoch == m.ProducerEpoch:
		next.ProducerEpoch, next.LastProducerEpoch = m.ProducerEpoch+1, m.ProducerEpoch
	case expectedEpoch == m.LastProducerEpoch:
		// A retry of a bump that succeeded: the same answer, nothing
		// written. (A newer producer's InitProducerId would have reset
		// the last epoch.)
		if err := c.confirm(ctx, e); err != nil {
			return noProducerID, noEpoch, err
		}
		return m.ProducerID, m.ProducerEpoch, nil
	default:
		return noProducerID, noEpoch, fmt.Errorf("transactional id %q has epoch %d, not %d: %w", id, m.ProducerEpoch, expectedEpoch, ErrProducerFenced)
	}
	if err := c.write(ctx, e, next); err != nil {
		return noProducerID, noEpoch, err
	}
	return next.ProducerID, next.ProducerEpoch, nil
}

// checkProducer is the check of every request of a producer within a
// transaction, in Kafka's order. e.mu must be held.
func checkProducer(e *entry, producerID int64, epoch int16) error {
	switch {
	case !e.exists:
		return fmt.Errorf("transactional id %q has no producer: %w", e.id, ErrInvalidProducerIDMapping)
	case e.meta.ProducerID != producerID:
		return fmt.Errorf("transactional id %q has producer id %d, not %d: %w", e.id, e.meta.ProducerID, producerID, ErrInvalidProducerIDMapping)
	case e.meta.ProducerEpoch != epoch:
		return fmt.Errorf("transactional id %q has producer epoch %d, not %d: %w", e.id, e.meta.ProducerEpoch, epoch, ErrProducerFenced)
	case e.completing || e.meta.State == StatePrepareCommit || e.meta.State == StatePrepareAbort:
		return fmt.Errorf("transactional id %q is in %s: %w", e.id, e.meta.State, ErrConcurrentTransactions)
	}
	return nil
}

// AddPartitions is AddPartitionsToTxn: it adds partitions to the
// producer's transaction, opening one (Ongoing) if none is. Adding
// partitions already in the open transaction writes nothing.
func (c *Coordinator) AddPartitions(ctx context.Context, id string, producerID int64, epoch int16, partitions []metastore.TopicPartition) error {
	for _, tp := range partitions {
		if tp.Topic == "" || tp.Partition < 0 {
			return fmt.Errorf("partition %q-%d: %w", tp.Topic, tp.Partition, ErrInvalidRequest)
		}
	}
	return c.add(ctx, id, producerID, epoch, partitions, "")
}

// AddOffsets is AddOffsetsToTxn: the transaction will commit offsets of
// group (TxnOffsetCommit), which become visible when it commits.
func (c *Coordinator) AddOffsets(ctx context.Context, id string, producerID int64, epoch int16, group string) error {
	if err := metastore.CheckGroupName(group); err != nil {
		return fmt.Errorf("add offsets of group to transactional id %q: %w: %w", id, err, ErrInvalidRequest)
	}
	return c.add(ctx, id, producerID, epoch, nil, group)
}

func (c *Coordinator) add(ctx context.Context, id string, producerID int64, epoch int16, partitions []metastore.TopicPartition, group string) error {
	e, err := c.acquire(ctx, id)
	if err != nil {
		return err
	}
	defer c.release(e)
	if err := checkProducer(e, producerID, epoch); err != nil {
		return err
	}
	if len(partitions) == 0 && group == "" {
		return nil // nothing to add opens no transaction
	}
	m := e.meta
	next := m
	switch m.State {
	case StateOngoing:
		if (group == "" || slices.Contains(m.Groups, group)) && containsAll(m.Partitions, partitions) {
			return c.confirm(ctx, e)
		}
		next.Partitions, next.Groups = slices.Clone(m.Partitions), slices.Clone(m.Groups)
	case StateEmpty, StateCompleteCommit, StateCompleteAbort:
		next.State, next.StartTime, next.Partitions, next.Groups = StateOngoing, c.cfg.Now(), nil, nil
	default:
		return fmt.Errorf("transactional id %q is in %s: %w", id, m.State, ErrInvalidTxnState)
	}
	next.Partitions = append(next.Partitions, partitions...)
	if group != "" && !slices.Contains(next.Groups, group) {
		// Each group id is up to 32 KiB and the state is rewritten
		// whole on every change: without a bound a client could make
		// every write of it as large as etcd takes.
		if len(next.Groups) >= MaxGroupsPerTransaction {
			return fmt.Errorf("transactional id %q already commits the offsets of %d groups: %w", id, len(next.Groups), ErrInvalidRequest)
		}
		next.Groups = append(next.Groups, group)
	}
	next.LastProducerID = m.ProducerID
	return c.write(ctx, e, next)
}

func containsAll(have, want []metastore.TopicPartition) bool {
	for _, tp := range want {
		if !slices.Contains(have, tp) {
			return false
		}
	}
	return true
}

// Verify is KIP-890's verification (AddPartitionsToTxn with VerifyOnly),
// which a partition leader asks before it appends a transactional batch:
// whether each partition is in the producer's open transaction. The
// returned slice has an entry per partition, nil for one in it,
// ErrInvalidTxnState for one that is not; err is set when the producer
// itself is refused (unknown, fenced, or its transaction completing).
func (c *Coordinator) Verify(ctx context.Context, id string, producerID int64, epoch int16, partitions []metastore.TopicPartition) ([]error, error) {
	e, err := c.acquire(ctx, id)
	if err != nil {
		return nil, err
	}
	defer c.release(e)
	if err := checkProducer(e, producerID, epoch); err != nil {
		return nil, err
	}
	errs := make([]error, len(partitions))
	for i, tp := range partitions {
		if e.meta.State != StateOngoing || !slices.Contains(e.meta.Partitions, tp) {
			errs[i] = fmt.Errorf("partition %s-%d is not in transactional id %q's transaction: %w", tp.Topic, tp.Partition, id, ErrInvalidTxnState)
		}
	}
	return errs, nil
}

// EndTxn commits or aborts the producer's open transaction. It returns
// once PrepareCommit (PrepareAbort) is stored, the point from which the
// outcome holds; it also tries to write the markers and complete the
// transaction, and if that fails Tick (or the next coordinator) finishes
// it. A retry of an EndTxn that completed answers nil.
func (c *Coordinator) EndTxn(ctx context.Context, id string, producerID int64, epoch int16, commit bool) error {
	e, err := c.acquire(ctx, id)
	if err != nil {
		return err
	}
	defer c.release(e)
	want := map[bool]string{true: StateCompleteCommit, false: StateCompleteAbort}[commit]
	preparing := map[bool]string{true: StatePrepareCommit, false: StatePrepareAbort}[commit]
	if err := checkProducer(e, producerID, epoch); err != nil {
		// A retry while its own completion runs is told to wait; the
		// opposite outcome is a state error, as in Kafka.
		if errors.Is(err, ErrConcurrentTransactions) && e.meta.State != preparing {
			return fmt.Errorf("transactional id %q is in %s: %w", id, e.meta.State, ErrInvalidTxnState)
		}
		return err
	}
	switch s := e.meta.State; {
	case s == want:
		// A retry of a completed EndTxn.
		return c.confirm(ctx, e)
	case s != StateOngoing:
		return fmt.Errorf("transactional id %q is in %s, cannot %s: %w", id, s, endVerb(commit), ErrInvalidTxnState)
	}
	if err := c.prepare(ctx, e, commit, false); err != nil {
		return err
	}
	if err := c.completeWithin(ctx, e); err != nil {
		c.logger.Warn("transaction decided but not completed; retried later", "transactional_id", id, "commit", commit, "err", err)
	}
	return nil
}

func endVerb(commit bool) string {
	if commit {
		return "commit"
	}
	return "abort"
}

// prepare writes PrepareCommit or PrepareAbort for e's open transaction;
// fence also bumps the epoch (the abort of a timed-out transaction, or of
// one whose producer a new one replaces), so that its producer is refused
// from now on. e.mu must be held.
func (c *Coordinator) prepare(ctx context.Context, e *entry, commit, fence bool) error {
	m := e.meta
	next := m
	next.State = StatePrepareAbort
	if commit {
		next.State = StatePrepareCommit
	}
	next.LastProducerID = m.ProducerID
	// The coordinator keeps MaxInt16 for this bump (epochExhausted), so it
	// overflows only for state no coordinator wrote.
	if fence && m.ProducerEpoch < math.MaxInt16 {
		next.ProducerEpoch, next.LastProducerEpoch = m.ProducerEpoch+1, noEpoch
	}
	return c.write(ctx, e, next)
}

// DefaultCompleteTimeout is Config.CompleteTimeout's default.
const DefaultCompleteTimeout = 10 * time.Second

// completeWithin is complete bounded by Config.CompleteTimeout.
func (c *Coordinator) completeWithin(ctx context.Context, e *entry) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CompleteTimeout)
	defer cancel()
	return c.complete(ctx, e)
}

// complete writes the markers of e's PrepareX and then CompleteX. e.mu
// must be held; it is released while the markers are written.
func (c *Coordinator) complete(ctx context.Context, e *entry) error {
	m := e.meta
	if e.completing || (m.State != StatePrepareCommit && m.State != StatePrepareAbort) {
		return nil
	}
	commit := m.State == StatePrepareCommit
	e.completing = true
	e.mu.Unlock()
	err := c.writeMarkers(ctx, m, commit)
	e.mu.Lock()
	e.completing = false
	if err != nil {
		return err
	}
	if !e.loaded || e.meta.Revision != m.Revision {
		return fmt.Errorf("transactional id %q changed while its markers were written: %w", e.id, ErrNotCoordinator)
	}
	next := m
	next.State = StateCompleteAbort
	if commit {
		next.State = StateCompleteCommit
	}
	next.Partitions, next.Groups = nil, nil
	next.LastProducerID, next.LastProducerEpoch = m.ProducerID, m.ProducerEpoch
	if err := c.write(ctx, e, next); err != nil {
		return err
	}
	if c.cfg.Metrics != nil {
		c.cfg.Metrics.TransactionCompleted(commit)
	}
	return nil
}

func (c *Coordinator) writeMarkers(ctx context.Context, m metastore.TransactionMeta, commit bool) error {
	if len(m.Partitions) > 0 {
		if err := c.markers.WriteMarkers(ctx, m.Partitions, m.ProducerID, m.ProducerEpoch, m.CoordinatorEpoch, commit); err != nil {
			return fmt.Errorf("write %s markers of transactional id %q to %d partitions: %w", endVerb(commit), m.TransactionalID, len(m.Partitions), err)
		}
	}
	if len(m.Groups) > 0 && c.cfg.GroupMarkers != nil {
		if err := c.cfg.GroupMarkers.WriteGroupMarkers(ctx, m.Groups, m.ProducerID, m.ProducerEpoch, commit); err != nil {
			return fmt.Errorf("complete offsets of transactional id %q in %d groups: %w", m.TransactionalID, len(m.Groups), err)
		}
	}
	return nil
}

// Describe is DescribeTransactions for one id.
func (c *Coordinator) Describe(ctx context.Context, id string) (metastore.TransactionMeta, error) {
	e, err := c.acquire(ctx, id)
	if err != nil {
		return metastore.TransactionMeta{}, err
	}
	defer c.release(e)
	if !e.exists {
		return metastore.TransactionMeta{}, fmt.Errorf("transactional id %q: %w", id, ErrTransactionalIDNotFound)
	}
	m := e.meta
	m.Partitions, m.Groups = slices.Clone(m.Partitions), slices.Clone(m.Groups)
	return m, nil
}

// ListFilter is ListTransactions' filter; a zero field matches all.
type ListFilter struct {
	States      []string
	ProducerIDs []int64
	// MinDuration (KIP-994) keeps the transactions open at least this long.
	MinDuration time.Duration
}

// List is ListTransactions: the ids this broker coordinates, as stored,
// that match f.
func (c *Coordinator) List(ctx context.Context, f ListFilter) ([]metastore.TransactionMeta, error) {
	all, err := c.store.ListTransactions(ctx)
	if err != nil {
		return nil, fmt.Errorf("list transactions: %w", err)
	}
	now := c.cfg.Now()
	var out []metastore.TransactionMeta
	for _, m := range all {
		if c.owns(m.TransactionalID) && f.Match(m, now) {
			out = append(out, m)
		}
	}
	return out, nil
}

// Match says whether m passes f at now.
func (f ListFilter) Match(m metastore.TransactionMeta, now time.Time) bool {
	switch {
	case len(f.States) > 0 && !slices.Contains(f.States, m.State),
		len(f.ProducerIDs) > 0 && !slices.Contains(f.ProducerIDs, m.ProducerID),
		f.MinDuration > 0 && (m.State != StateOngoing || now.Sub(m.StartTime) < f.MinDuration):
		return false
	}
	return true
}

// OpenTransactions is the number of transactional ids this coordinator
// holds whose transaction is open (Ongoing) or being completed
// (PrepareCommit, PrepareAbort), as it last read or wrote them.
func (c *Coordinator) OpenTransactions() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, e := range c.txns {
		if e.open.Load() {
			n++
		}
	}
	return n
}

// Load reads every transactional id this broker coordinates and does not
// hold yet, as Kafka's coordinator loads its transaction log partitions
// when it becomes their leader: call it when the set of live brokers
// changes. It then ticks, so that transactions a previous coordinator left
// in PrepareCommit or PrepareAbort are completed now.
func (c *Coordinator) Load(ctx context.Context) error {
	all, err := c.store.ListTransactions(ctx)
	if err != nil {
		return fmt.Errorf("load transactions: %w", err)
	}
	loaded := 0
	c.mu.Lock()
	for _, m := range all {
		if _, ok := c.txns[m.TransactionalID]; ok || !c.owns(m.TransactionalID) {
			continue
		}
		e := &entry{id: m.TransactionalID, loaded: true}
		e.set(m, true)
		c.txns[m.TransactionalID] = e
		loaded++
	}
	c.mu.Unlock()
	if loaded > 0 {
		c.logger.Info("loaded transactional ids", "count", loaded)
	}
	c.Tick(ctx, c.cfg.Now())
	return nil
}

// Tick does what time asks of the ids this coordinator holds: it forgets
// those it no longer coordinates, aborts transactions open longer than
// their timeout (bumping the epoch, so that their producer is fenced, as
// Kafka does), completes transactions left in PrepareCommit or
// PrepareAbort (their markers failed, or a previous coordinator died), and
// deletes ids unused for transactional.id.expiration.ms. Failures are
// logged and retried at the next tick.
func (c *Coordinator) Tick(ctx context.Context, now time.Time) {
	c.mu.Lock()
	entries := make([]*entry, 0, len(c.txns))
	for _, e := range c.txns {
		entries = append(entries, e)
	}
	c.mu.Unlock()
	for _, e := range entries {
		if ctx.Err() != nil {
			return
		}
		e.mu.Lock()
		if !c.current(e) {
			e.mu.Unlock()
			continue
		}
		if !c.owns(e.id) {
			c.forget(e)
			e.mu.Unlock()
			continue
		}
		if err := c.load(ctx, e); err != nil {
			c.logger.Warn("transactional id not read; retried at the next tick", "transactional_id", e.id, "err", err)
			e.mu.Unlock()
			continue
		}
		if err := c.tickEntry(ctx, e, now); err != nil {
			c.logger.Warn("transaction timer failed; retried at the next tick", "transactional_id", e.id, "err", err)
		}
		c.release(e)
	}
}

// tickEntry is Tick for one id. e.mu must be held.
func (c *Coordinator) tickEntry(ctx context.Context, e *entry, now time.Time) error {
	m := e.meta
	switch {
	case !e.exists || e.completing:
		return nil
	case m.State == StateOngoing && now.Sub(m.StartTime) > time.Duration(m.TimeoutMs)*time.Millisecond:
		c.logger.Info("aborting a transaction open past its timeout", "transactional_id", e.id,
			"producer_id", m.ProducerID, "producer_epoch", m.ProducerEpoch, "timeout_ms", m.TimeoutMs, "started", m.StartTime)
		if err := c.prepare(ctx, e, false, true); err != nil {
			return err
		}
		if c.cfg.Metrics != nil {
			c.cfg.Metrics.TransactionTimedOut()
		}
		return c.completeWithin(ctx, e)
	case m.State == StatePrepareCommit || m.State == StatePrepareAbort:
		if !e.fenced {
			// Taken over from another coordinator: a write of the same
			// state raises the coordinator epoch first, so that leaders
			// refuse the markers of the one replaced.
			if err := c.write(ctx, e, m); err != nil {
				return err
			}
		}
		return c.completeWithin(ctx, e)
	case (m.State == StateEmpty || m.State == StateCompleteCommit || m.State == StateCompleteAbort) &&
		now.Sub(m.UpdatedAt) > c.cfg.IDExpiration:
		err := c.store.DeleteTransaction(ctx, e.id, m.Revision)
		c.forget(e)
		if err != nil && !errors.Is(err, metastore.ErrTransactionNotFound) {
			return fmt.Errorf("expire transactional id %q: %w", e.id, err)
		}
		c.logger.Info("transactional id expired", "transactional_id", e.id, "producer_id", m.ProducerID)
		e.set(metastore.TransactionMeta{}, false)
	}
	return nil
}
