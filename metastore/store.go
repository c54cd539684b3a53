package metastore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap/zapcore"
)

// DefaultPrefix is the key prefix used when New or Dial is given an empty one.
const DefaultPrefix = "/strata"

// Sentinel errors. Returned errors wrap them with what was being done, so
// test with errors.Is.
var (
	ErrTopicExists   = errors.New("metastore: topic already exists")
	ErrTopicNotFound = errors.New("metastore: topic not found")
	// ErrConflict means a compare-and-swap lost: the key changed since the
	// revision the caller read. Re-read and retry.
	ErrConflict = errors.New("metastore: conflict: key changed since it was read")
	// ErrBrokerRegistered means another live registration holds the node id.
	ErrBrokerRegistered = errors.New("metastore: broker id already registered")
	// ErrLeaseLost is reported by Registration.Err when the broker's lease
	// expired or was revoked by someone else.
	ErrLeaseLost = errors.New("metastore: broker lease lost")
)

// Store reads and writes Strata's cluster state in etcd under a key prefix.
// It is safe for concurrent use.
type Store struct {
	client     *clientv3.Client
	ownsClient bool
	prefix     string
	logger     *slog.Logger
}

// New returns a Store using client under prefix (DefaultPrefix if empty).
// The caller keeps ownership of client: Store.Close does not close it.
// A nil logger discards.
func New(client *clientv3.Client, prefix string, logger *slog.Logger) *Store {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	prefix = strings.TrimRight(prefix, "/")
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Store{client: client, prefix: prefix, logger: logger}
}

// authTimeout bounds the login to etcd (WithAuth) at Dial.
const authTimeout = 30 * time.Second

// Dial connects to etcd at endpoints and checks that the cluster answers a
// linearizable read before ctx ends (bound the wait with ctx). The Store owns
// the client; Close closes it. opts secure the connection (WithTLS,
// WithAuth).
func Dial(ctx context.Context, endpoints []string, prefix string, logger *slog.Logger, opts ...DialOption) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg := clientv3.Config{
		Endpoints:            endpoints,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		// etcd's client warns about every retried call cancelled by its
		// context; only its errors are worth Strata's log.
		Logger: newZapLogger(logger, zapcore.ErrorLevel, "etcd-client", nil),
		// Bounds the login of WithAuth, which clientv3.New does before
		// returning and would otherwise wait forever for an etcd that
		// does not answer; it does not make the dial itself blocking.
		DialTimeout: authTimeout,
	}
	var dc dialConfig
	for _, o := range opts {
		o(&dc)
	}
	if err := dc.apply(&cfg); err != nil {
		return nil, fmt.Errorf("metastore: dial %v: %w", endpoints, err)
	}
	if cfg.TLS != nil {
		if err := probeTLS(ctx, endpoints, cfg.TLS); err != nil {
			return nil, fmt.Errorf("metastore: dial %v: %w", endpoints, err)
		}
	}
	client, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("metastore: dial %v: %w", endpoints, err)
	}
	s := New(client, prefix, logger)
	s.ownsClient = true
	// A count-only linearizable range proves a leader is reachable.
	if _, err := client.Get(ctx, s.prefix+"/", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("metastore: dial %v: %w", endpoints, err)
	}
	return s, nil
}

// Close releases the etcd client if the Store owns it (Dial); for a Store
// made by New it does nothing.
func (s *Store) Close() error {
	if !s.ownsClient {
		return nil
	}
	if err := s.client.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("metastore: close: %w", err)
	}
	return nil
}

func (s *Store) topicsPrefix() string { return s.prefix + "/topics/" }

func (s *Store) topicKey(name string) string { return s.topicsPrefix() + name }

func (s *Store) partitionsPrefix(topic string) string {
	return s.prefix + "/partitions/" + topic + "/"
}

func (s *Store) partitionKey(topic string, partition int32) string {
	return s.partitionsPrefix(topic) + strconv.FormatInt(int64(partition), 10)
}

func (s *Store) brokersPrefix() string { return s.prefix + "/brokers/" }

func (s *Store) brokerKey(id int32) string {
	return s.brokersPrefix() + strconv.FormatInt(int64(id), 10)
}

// CheckTopicName refuses names that would break the key layout. Kafka's
// naming rules are the caller's (topicconfig.ValidTopicName).
func CheckTopicName(name string) error {
	if name == "" {
		return errors.New("empty topic name")
	}
	if strings.ContainsRune(name, '/') {
		return errors.New("topic name contains '/'")
	}
	return nil
}

func encode(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode %T: %w", v, err)
	}
	return string(b), nil
}
