package topicconfig

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// KafkaListener is what bounds the Kafka listener's connections and the
// size of the requests they send, read from the broker settings by
// KafkaListenerSettings. The memory of requests in flight is
// queued.max.request.bytes (QueuedMaxRequestBytes).
type KafkaListener struct {
	// NonProduceRequestMaxBytes (socket.request.max.bytes.non.produce)
	// bounds every request but Produce, which socket.request.max.bytes
	// bounds. Clients send large Produce requests only: a Fetch or Metadata
	// naming thousands of partitions is tens or hundreds of KB, and other
	// requests cost far more memory per byte once decoded.
	NonProduceRequestMaxBytes int32
	// MaxConnections (max.connections) bounds open connections: at the
	// limit the listener stops accepting until one closes, as Kafka does.
	MaxConnections int
	// MaxConnectionsPerIP (max.connections.per.ip) bounds the connections
	// from one address: one over it is closed at once, as in Kafka.
	MaxConnectionsPerIP int
	// ConnectionsMaxIdle (connections.max.idle.ms) closes a connection that
	// has sent no request for this long.
	ConnectionsMaxIdle time.Duration
	// RequestTimeout (socket.request.timeout.ms) bounds how long a request
	// may take to arrive once its first byte has: a client that trickles a
	// frame holds memory, so it is cut off.
	RequestTimeout time.Duration
}

// Defaults of the Kafka listener's bounds. Kafka leaves connection counts
// unlimited; a broker that must not be taken down by its clients cannot.
// Each connection costs a goroutine and a descriptor (about 10 KiB idle),
// so 10,000 of them cost about 100 MiB; one address may use a tenth of
// that, enough for a host running many clients, yet one host cannot shut
// everyone else out.
const (
	DefaultNonProduceRequestMaxBytes = 1 << 20
	DefaultMaxConnections            = 10000
	DefaultMaxConnectionsPerIP       = 1000
	DefaultConnectionsMaxIdle        = 10 * time.Minute // Kafka's 600000 ms
	// DefaultRequestTimeout is Kafka clients' request.timeout.ms: a client
	// has given up on a request by then anyway.
	DefaultRequestTimeout = 30 * time.Second
)

// KafkaListenerSettings reads the Kafka listener's bounds from the broker
// settings. A bad value is an error naming its key (all of them, joined).
func KafkaListenerSettings(brokerSettings map[string]string) (KafkaListener, error) {
	l := KafkaListener{
		NonProduceRequestMaxBytes: DefaultNonProduceRequestMaxBytes,
		MaxConnections:            DefaultMaxConnections,
		MaxConnectionsPerIP:       DefaultMaxConnectionsPerIP,
		ConnectionsMaxIdle:        DefaultConnectionsMaxIdle,
		RequestTimeout:            DefaultRequestTimeout,
	}
	var errs []error
	read := func(key string, lo, hi int64, reason string, set func(int64)) {
		raw, ok := brokerSettings[key]
		if !ok {
			return
		}
		v, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
		if err != nil || v < lo || v > hi {
			errs = append(errs, &ValueError{Key: key, Value: raw, Reason: reason})
			return
		}
		set(v)
	}
	read("socket.request.max.bytes.non.produce", 1024, math.MaxInt32, "must be an integer from 1024 to 2147483647",
		func(v int64) { l.NonProduceRequestMaxBytes = int32(v) })
	// As Kafka requires, the largest request fits the request memory
	// budget (read by QueuedMaxRequestBytes).
	maxRequest, errMax := SocketRequestMaxBytes(brokerSettings)
	queued, errQueued := QueuedMaxRequestBytes(brokerSettings)
	if errMax == nil && errQueued == nil && queued > 0 && queued < int64(maxRequest) {
		errs = append(errs, &ValueError{Key: "queued.max.request.bytes", Value: brokerSettings["queued.max.request.bytes"],
			Reason: fmt.Sprintf("must be -1 (no limit) or at least socket.request.max.bytes (%d)", maxRequest)})
	}
	read("max.connections", 1, math.MaxInt32, "must be an integer from 1 to 2147483647",
		func(v int64) { l.MaxConnections = int(v) })
	read("max.connections.per.ip", 1, math.MaxInt32, "must be an integer from 1 to 2147483647",
		func(v int64) { l.MaxConnectionsPerIP = int(v) })
	read("connections.max.idle.ms", 1, math.MaxInt64/int64(time.Millisecond), "must be a positive number of milliseconds",
		func(v int64) { l.ConnectionsMaxIdle = time.Duration(v) * time.Millisecond })
	read("socket.request.timeout.ms", 1, math.MaxInt64/int64(time.Millisecond), "must be a positive number of milliseconds",
		func(v int64) { l.RequestTimeout = time.Duration(v) * time.Millisecond })
	if err := errors.Join(errs...); err != nil {
		return KafkaListener{}, err
	}
	return l, nil
}
