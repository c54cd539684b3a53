// Package client is the Go client of a Strata cluster's gRPC API (package
// stratav1): topic administration on Client, an asynchronous batching
// Producer and a Consumer. Produce, fetch and ListOffsets go to each
// partition's leader, found from the cluster metadata and followed when it
// moves (see Client).
//
// Records travel as Kafka record-batch v2 bytes in both directions: the
// Producer encodes batches itself and the Consumer decodes them, so the broker
// stores and serves them without re-encoding.
//
// Errors keep the gRPC status they came from: an RPC failure is the gRPC
// status error wrapped with what was being done, and a failure the broker
// reports for one partition is a *PartitionError, with Kafka's name for it in
// Reason where the broker gives one. In both cases status.Code(err) gives the
// code.
package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// Transport limits. Batches are up to a few MiB and a fetch response up to
// tens of MiB, so the gRPC defaults (4 MiB messages, 64 KiB windows, 32 KiB
// socket buffers) would both refuse large messages and throttle throughput.
const (
	// MaxMessageBytes bounds a request or response on the wire.
	MaxMessageBytes = 64 << 20
	// flowWindow is the HTTP/2 flow-control window per stream and per
	// connection: large enough that a full fetch response or produce request
	// is in flight without waiting for window updates.
	flowWindow = 16 << 20
	// socketBuffer is gRPC's read and write buffer size per connection.
	socketBuffer = 1 << 20
)

// DefaultAddr is the broker's default gRPC address.
const DefaultAddr = "localhost:9093"

// DefaultRetryTimeout bounds the retries of calls other than produce (which
// has ProducerOptions.DeliveryTimeout): ListOffsets and consumers that do not
// follow. It is Kafka's default.api.timeout.ms.
const DefaultRetryTimeout = time.Minute

// Reconnection backoff of a broker connection. gRPC's default grows to two
// minutes, which would keep a restarted broker unused long after it is back;
// the client has few connections, so retrying them often costs little.
var reconnectParams = grpc.ConnectParams{
	Backoff: backoff.Config{
		BaseDelay:  100 * time.Millisecond,
		Multiplier: 1.6,
		Jitter:     0.2,
		MaxDelay:   2 * time.Second,
	},
	MinConnectTimeout: 5 * time.Second,
}

// Option configures Dial.
type Option func(*dialOptions)

type dialOptions struct {
	creds        credentials.TransportCredentials
	extra        []grpc.DialOption
	logger       *slog.Logger
	retryTimeout time.Duration
}

// WithTransportCredentials sets the connections' credentials (TLS). The
// default is an insecure (plaintext) connection.
func WithTransportCredentials(c credentials.TransportCredentials) Option {
	return func(o *dialOptions) { o.creds = c }
}

// WithDialOptions appends raw gRPC dial options, applied after the client's
// own, so they can override its transport limits.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *dialOptions) { o.extra = append(o.extra, opts...) }
}

// WithLogger sets where the client logs (at debug level: metadata refreshes
// that failed, retries). The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(o *dialOptions) { o.logger = l }
}

// WithRetryTimeout sets how long ListOffsets and consumers without Follow
// retry a partition whose leader moved or whose broker is unreachable before
// they return the error (default DefaultRetryTimeout).
func WithRetryTimeout(d time.Duration) Option {
	return func(o *dialOptions) { o.retryTimeout = d }
}

// Client is a connection to a Strata cluster. It is safe for concurrent use;
// Producers and Consumers built on it share its connections.
//
// The client starts from the bootstrap servers it is given and learns the
// cluster from the Metadata call: the brokers and each partition's leader.
// It keeps one connection per broker, dialled when first needed and closed
// when the broker leaves the metadata; produce, fetch and ListOffsets go to
// the partition's leader, administrative calls to any broker that answers.
// When a leader moves (a partition error NOT_LEADER_OR_FOLLOWER, or the
// broker becoming unreachable) the metadata is requested again, at most
// every 50 ms however many partitions ask. A leader that merely stops
// answering (paused, or cut off by a network partition, its connections
// left open) is found out by leader checks: a produce, fetch or ListOffsets
// call unanswered for a second (see DefaultLeaderCheckInterval) has the
// metadata requested again, from the other brokers first, and is abandoned
// and retried on the new leader once the cluster has elected one.
//
// A cluster that does not serve Metadata (codes.Unimplemented, brokers from
// before replication) is taken to be the bootstrap broker alone, leading
// every partition.
type Client struct {
	addr         string
	bootstrap    []string
	dialOpts     []grpc.DialOption
	logger       *slog.Logger
	retryTimeout time.Duration
	// bootConn is the first bootstrap server's connection, for API.
	bootConn *grpc.ClientConn

	// ctx ends metadata requests when the client closes; wg waits for them.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// meta is the current view of the cluster, replaced whole by each
	// refresh (and by forgetTopic).
	meta atomic.Pointer[metadata]

	mu     sync.Mutex
	closed bool
	// conns holds one connection per broker address: the bootstrap servers'
	// for the client's life, the others while their broker is in the
	// metadata.
	conns map[string]*grpc.ClientConn
	// preferred is the address that last answered a call any broker could
	// take: it is tried first next time.
	preferred string
	// round is the metadata refresh being prepared or in flight, nil when
	// none; lastRound is when the previous one ended.
	round     *metaRound
	lastRound time.Time
}

// Dial connects to a cluster through addrs, one or more bootstrap servers
// (host:port, comma-separated, as Kafka's bootstrap.servers): any one broker
// is enough to find the others. Connections are made in the background: an
// unreachable cluster shows up as a codes.Unavailable error from the first
// call, not from Dial. ctx is only checked, not kept.
func Dial(ctx context.Context, addrs string, opts ...Option) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	bootstrap := splitAddrs(addrs)
	if len(bootstrap) == 0 {
		return nil, fmt.Errorf("dial %q: no bootstrap server address", addrs)
	}
	o := dialOptions{creds: insecure.NewCredentials(), retryTimeout: DefaultRetryTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if o.retryTimeout <= 0 {
		o.retryTimeout = DefaultRetryTimeout
	}
	grpcOpts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(o.creds),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(MaxMessageBytes),
			grpc.MaxCallSendMsgSize(MaxMessageBytes),
		),
		grpc.WithInitialWindowSize(flowWindow),
		grpc.WithInitialConnWindowSize(flowWindow),
		grpc.WithReadBufferSize(socketBuffer),
		grpc.WithWriteBufferSize(socketBuffer),
		grpc.WithConnectParams(reconnectParams),
	}, o.extra...)
	cctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		addr:         addrs,
		bootstrap:    bootstrap,
		dialOpts:     grpcOpts,
		logger:       o.logger,
		retryTimeout: o.retryTimeout,
		ctx:          cctx,
		cancel:       cancel,
		conns:        make(map[string]*grpc.ClientConn),
	}
	c.meta.Store(emptyMetadata())
	for i, a := range bootstrap {
		conn, err := c.connFor(a)
		if err != nil {
			_ = c.Close()
			return nil, err
		}
		if i == 0 {
			c.bootConn = conn
		}
	}
	return c, nil
}

// splitAddrs parses a comma-separated address list, dropping blanks and
// repeats.
func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// Close closes the connections. Close Producers (which flush) and Consumers
// before the Client they use.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	conns := c.conns
	c.conns = nil
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	var errs []error
	for addr, conn := range conns {
		if err := conn.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close connection to %s: %w", addr, err))
		}
	}
	return errors.Join(errs...)
}

// Addr is the bootstrap server list the client was dialled with.
func (c *Client) Addr() string { return c.addr }

// API is the raw gRPC client of the first bootstrap server, for calls this
// package does not wrap.
func (c *Client) API() stratav1.StrataClient { return stratav1.NewStrataClient(c.bootConn) }

// Metadata returns the cluster's brokers and, for the named topics (every
// topic when none is named), each partition's leader, replicas and ISR, from
// any broker that answers. Clusters from before replication answer
// codes.Unimplemented.
func (c *Client) Metadata(ctx context.Context, topics ...string) (*stratav1.MetadataResponse, error) {
	var resp *stratav1.MetadataResponse
	err := c.anyBroker(ctx, func(ctx context.Context, api stratav1.StrataClient) error {
		var err error
		resp, err = api.Metadata(ctx, &stratav1.MetadataRequest{Topics: topics})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	return resp, nil
}

// CreateTopic creates a topic with the given partition count, replication
// factor and config overrides (nil for none), and returns its description.
func (c *Client) CreateTopic(ctx context.Context, name string, partitions, replicationFactor int32, configs map[string]string) (*stratav1.TopicDescription, error) {
	var resp *stratav1.CreateTopicResponse
	err := c.anyBroker(ctx, func(ctx context.Context, api stratav1.StrataClient) error {
		var err error
		resp, err = api.CreateTopic(ctx, &stratav1.CreateTopicRequest{
			Name:              name,
			Partitions:        partitions,
			ReplicationFactor: replicationFactor,
			Configs:           configs,
		})
		return err
	})
	// A topic the client knew as missing exists now.
	c.forgetTopic(name)
	if err != nil {
		return nil, fmt.Errorf("create topic %q: %w", name, err)
	}
	return resp.GetTopic(), nil
}

// DeleteTopic deletes a topic and its data.
func (c *Client) DeleteTopic(ctx context.Context, name string) error {
	c.forgetTopic(name)
	err := c.anyBroker(ctx, func(ctx context.Context, api stratav1.StrataClient) error {
		_, err := api.DeleteTopic(ctx, &stratav1.DeleteTopicRequest{Name: name})
		return err
	})
	if err != nil {
		return fmt.Errorf("delete topic %q: %w", name, err)
	}
	return nil
}

// RestoreTopic recreates a topic from the brokers' object store.
func (c *Client) RestoreTopic(ctx context.Context, name string) (*stratav1.TopicDescription, error) {
	var resp *stratav1.RestoreTopicResponse
	err := c.anyBroker(ctx, func(ctx context.Context, api stratav1.StrataClient) error {
		var err error
		resp, err = api.RestoreTopic(ctx, &stratav1.RestoreTopicRequest{Name: name})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("restore topic %q: %w", name, err)
	}
	return resp.GetTopic(), nil
}

// ListTopics returns every topic, sorted by name.
func (c *Client) ListTopics(ctx context.Context) ([]*stratav1.TopicSummary, error) {
	var resp *stratav1.ListTopicsResponse
	err := c.anyBroker(ctx, func(ctx context.Context, api stratav1.StrataClient) error {
		var err error
		resp, err = api.ListTopics(ctx, &stratav1.ListTopicsRequest{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	topics := resp.GetTopics()
	sort.Slice(topics, func(i, j int) bool { return topics[i].GetName() < topics[j].GetName() })
	return topics, nil
}

// DescribeTopic returns a topic's partitions (with their leader, replicas
// and ISR) and every config with its effective value and source. Partitions
// are sorted by number.
func (c *Client) DescribeTopic(ctx context.Context, name string) (*stratav1.TopicDescription, error) {
	var resp *stratav1.DescribeTopicResponse
	err := c.anyBroker(ctx, func(ctx context.Context, api stratav1.StrataClient) error {
		var err error
		resp, err = api.DescribeTopic(ctx, &stratav1.DescribeTopicRequest{Name: name})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("describe topic %q: %w", name, err)
	}
	t := resp.GetTopic()
	if t == nil {
		return nil, fmt.Errorf("describe topic %q: empty response", name)
	}
	parts := t.GetPartitions()
	sort.Slice(parts, func(i, j int) bool { return parts[i].GetPartition() < parts[j].GetPartition() })
	return t, nil
}

// AlterTopicConfigs sets and deletes (reverts to the default) topic config
// overrides, and returns the topic's configs after the change.
func (c *Client) AlterTopicConfigs(ctx context.Context, name string, set map[string]string, del []string) ([]*stratav1.ConfigEntry, error) {
	var resp *stratav1.AlterTopicConfigsResponse
	err := c.anyBroker(ctx, func(ctx context.Context, api stratav1.StrataClient) error {
		var err error
		resp, err = api.AlterTopicConfigs(ctx, &stratav1.AlterTopicConfigsRequest{Name: name, Set: set, Delete: del})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("alter configs of topic %q: %w", name, err)
	}
	return resp.GetConfigs(), nil
}

// CreatePartitions grows topic name to count partitions (the new total) and
// returns the topic as it is afterwards. Partitions are never removed: a
// count not above the current one is refused (INVALID_PARTITIONS).
func (c *Client) CreatePartitions(ctx context.Context, name string, count int32) (*stratav1.TopicDescription, error) {
	var resp *stratav1.CreatePartitionsResponse
	err := c.anyBroker(ctx, func(ctx context.Context, api stratav1.StrataClient) error {
		var err error
		resp, err = api.CreatePartitions(ctx, &stratav1.CreatePartitionsRequest{Name: name, Count: count})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create partitions of topic %q: %w", name, err)
	}
	// The cached partition count is stale: producers and consumers of this
	// client see the new partitions at their next metadata lookup.
	c.forgetTopic(name)
	return resp.GetTopic(), nil
}

// Special timestamps for ListOffsets, and start offsets for a Consumer.
const (
	// OffsetEarliest is the log start offset.
	OffsetEarliest int64 = -2
	// OffsetLatest is the high watermark: the offset the next record
	// readable by consumers will get.
	OffsetLatest int64 = -1
)

// ListOffsets looks up, for each partition, OffsetEarliest, OffsetLatest or
// the first offset whose timestamp (milliseconds since the epoch) is >=
// timestamp; -1 when there is none. Each partition is asked of its leader;
// a partition whose leader moved or is unreachable is asked again after a
// metadata refresh, for up to the client's retry timeout. A leader that has
// not answered for DefaultLeaderCheckInterval is checked against fresh
// metadata, and abandoned if it was deposed. A failure on one partition is
// returned as a *PartitionError.
func (c *Client) ListOffsets(ctx context.Context, topic string, partitions []int32, timestamp int64) (map[int32]int64, error) {
	return c.listOffsets(ctx, topic, partitions, timestamp, false, DefaultLeaderCheckInterval)
}

// listOffsets is ListOffsets checking silent leaders every checkInterval
// (never when it is not positive). With committed, OffsetLatest is the last
// stable offset, where a read_committed consumer reads to.
func (c *Client) listOffsets(ctx context.Context, topic string, partitions []int32, timestamp int64, committed bool, checkInterval time.Duration) (map[int32]int64, error) {
	if _, err := c.partitionCount(ctx, topic, false); err != nil {
		return nil, fmt.Errorf("list offsets of topic %q: %w", topic, err)
	}
	out := make(map[int32]int64, len(partitions))
	pending := slices.Compact(slices.Sorted(slices.Values(partitions)))
	start := time.Now()
	var lastErr error
	for attempt := 1; ; attempt++ {
		byLeader := c.byLeader(topic, pending)
		var retry []int32
		failed := time.Now()
		for leader, ps := range byLeader {
			if leader == noLeader {
				retry = append(retry, ps...)
				lastErr = leaderNotAvailable(topic, ps[0])
				continue
			}
			again, againErr, err := c.listOffsetsAt(ctx, leader, topic, ps, timestamp, committed, checkInterval, out)
			if err != nil {
				return nil, err
			}
			if len(again) > 0 {
				retry = append(retry, again...)
				lastErr = againErr
			}
		}
		if len(retry) == 0 {
			break
		}
		if time.Since(start) >= c.retryTimeout {
			return nil, fmt.Errorf("list offsets of topic %q: gave up after %v: %w", topic, c.retryTimeout, lastErr)
		}
		if err := sleepCtx(ctx, retryDelay(DefaultRetryBackoff, DefaultRetryBackoffMax, attempt, nil)); err != nil {
			return nil, err
		}
		if err := c.refreshMetadata(ctx, []string{topic}, failed); err != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		for _, p := range retry {
			if err := c.checkPartition(topic, p); err != nil {
				return nil, fmt.Errorf("list offsets of topic %q partition %d: %w", topic, p, err)
			}
		}
		pending = retry
	}
	for _, p := range partitions {
		if _, ok := out[p]; !ok {
			return nil, fmt.Errorf("list offsets of topic %q: no result for partition %d", topic, p)
		}
	}
	return out, nil
}

// listOffsetsAt asks one leader for some partitions' offsets and stores them
// in out. It returns the partitions to ask again (the leader moved or is
// unreachable) with the reason, or an error that ends the lookup.
func (c *Client) listOffsetsAt(ctx context.Context, leader int32, topic string, partitions []int32, timestamp int64, committed bool, checkInterval time.Duration, out map[int32]int64) (retry []int32, retryErr, err error) {
	req := &stratav1.ListOffsetsRequest{Topic: topic, IsolationLevel: isolationLevel(committed)}
	for _, p := range partitions {
		req.Partitions = append(req.Partitions, &stratav1.ListOffsetsPartition{Partition: p, Timestamp: timestamp})
	}
	conn, err := c.nodeConn(leader)
	var resp *stratav1.ListOffsetsResponse
	if err == nil {
		callCtx, abort := context.WithCancelCause(ctx)
		watch := startLeaderWatch(callCtx, abort, c, leader, topic, partitions, checkInterval)
		resp, err = stratav1.NewStrataClient(conn).ListOffsets(callCtx, req)
		if moved := watch.stop(); moved != nil && err != nil {
			err = moved
		}
		abort(nil)
	}
	if err != nil {
		err = fmt.Errorf("list offsets of topic %q: %w", topic, err)
		if ctx.Err() != nil || !callRetriable(err) {
			return nil, nil, err
		}
		return partitions, err, nil
	}
	for _, r := range resp.GetPartitions() {
		perr := newPartitionError(topic, r.GetPartition(), r.GetError(), -1, -1)
		switch {
		case perr == nil:
			out[r.GetPartition()] = r.GetOffset()
		case perr.leaderMoved():
			retry = append(retry, r.GetPartition())
			retryErr = perr
		default:
			return nil, nil, perr
		}
	}
	return retry, retryErr, nil
}
