package topicconfig

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// Broker settings of the transaction coordinator, Kafka's names.
const (
	// TransactionMaxTimeoutKey bounds the transaction.timeout.ms a
	// producer may ask for in InitProducerId; a longer one is refused
	// with INVALID_TRANSACTION_TIMEOUT.
	TransactionMaxTimeoutKey = "transaction.max.timeout.ms"
	// TransactionalIDExpirationKey is how long the state of a
	// transactional id without an open transaction is kept after its last
	// use.
	TransactionalIDExpirationKey = "transactional.id.expiration.ms"
)

// Kafka's defaults.
const (
	DefaultTransactionMaxTimeout     = 15 * time.Minute
	DefaultTransactionalIDExpiration = 7 * 24 * time.Hour
)

// TransactionMaxTimeout reads transaction.max.timeout.ms: from 1 ms to
// Kafka's int32 limit.
func TransactionMaxTimeout(brokerSettings map[string]string) (time.Duration, error) {
	return positiveMs(brokerSettings, TransactionMaxTimeoutKey, DefaultTransactionMaxTimeout)
}

// TransactionalIDExpiration reads transactional.id.expiration.ms: from 1
// ms to Kafka's int32 limit (about 24.8 days).
func TransactionalIDExpiration(brokerSettings map[string]string) (time.Duration, error) {
	return positiveMs(brokerSettings, TransactionalIDExpirationKey, DefaultTransactionalIDExpiration)
}

// positiveMs reads an int32 number of milliseconds of at least 1, as Kafka
// declares both transaction keys.
func positiveMs(brokerSettings map[string]string, key string, def time.Duration) (time.Duration, error) {
	raw, ok := brokerSettings[key]
	if !ok {
		return def, nil
	}
	v, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 32)
	if err != nil || v < 1 {
		return 0, &ValueError{Key: key, Value: raw, Reason: "must be an integer from 1 to " + strconv.Itoa(math.MaxInt32)}
	}
	return time.Duration(v) * time.Millisecond, nil
}
