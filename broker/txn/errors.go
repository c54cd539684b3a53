package txn

import "errors"

// Errors of the coordinator, one per reaction Kafka's transactional
// protocol asks of a client; each is named after Kafka's error code.
// Frontends map them to their protocol's codes with errors.Is.
var (
	// ErrNotCoordinator (NOT_COORDINATOR): this broker does not coordinate
	// the transactional id, or found that another coordinator changed its
	// state; the client looks the coordinator up again.
	ErrNotCoordinator = errors.New("this broker is not the transactional id's coordinator")
	// ErrConcurrentTransactions (CONCURRENT_TRANSACTIONS): a transaction of
	// the id is being completed (or aborted to fence its producer); the
	// client retries.
	ErrConcurrentTransactions = errors.New("concurrent transactions")
	// ErrProducerFenced (PRODUCER_FENCED; INVALID_PRODUCER_EPOCH for the
	// request versions that predate it): the producer's epoch is not the
	// transactional id's current one, because a newer producer
	// initialized the id or a timed-out transaction was aborted.
	ErrProducerFenced = errors.New("producer fenced")
	// ErrInvalidProducerIDMapping (INVALID_PRODUCER_ID_MAPPING): the
	// transactional id is unknown or has another producer id.
	ErrInvalidProducerIDMapping = errors.New("invalid producer id mapping")
	// ErrInvalidTxnState (INVALID_TXN_STATE): the request does not fit
	// the transaction's state (EndTxn without an open transaction, a
	// commit of an aborted one, a partition outside the transaction).
	ErrInvalidTxnState = errors.New("invalid transaction state")
	// ErrInvalidTransactionTimeout (INVALID_TRANSACTION_TIMEOUT):
	// transaction.timeout.ms is not positive or exceeds the broker's
	// transaction.max.timeout.ms.
	ErrInvalidTransactionTimeout = errors.New("invalid transaction timeout")
	// ErrTransactionalIDNotFound (TRANSACTIONAL_ID_NOT_FOUND): Describe of
	// an id that has no state.
	ErrTransactionalIDNotFound = errors.New("transactional id not found")
	// ErrCoordinatorNotAvailable (COORDINATOR_NOT_AVAILABLE): the store
	// could not be read or written (an etcd election, a timeout); clients
	// retry it, as when Kafka's coordinator cannot write its log.
	ErrCoordinatorNotAvailable = errors.New("transaction coordinator not available")
	// ErrInvalidRequest (INVALID_REQUEST): an empty transactional id, or an
	// empty or too long group or topic name.
	ErrInvalidRequest = errors.New("invalid request")
)
