// Package client is the Go client of a Strata broker's gRPC API (package
// stratav1): topic administration on Client, an asynchronous batching
// Producer and a Consumer.
//
// Records travel as Kafka record-batch v2 bytes in both directions: the
// Producer encodes batches itself and the Consumer decodes them, so the broker
// stores and serves them without re-encoding.
//
// Errors keep the gRPC status they came from: an RPC failure is the gRPC
// status error wrapped with what was being done, and a failure the broker
// reports for one partition is a *PartitionError. In both cases
// status.Code(err) gives the code.
package client

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

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

// Option configures Dial.
type Option func(*dialOptions)

type dialOptions struct {
	creds credentials.TransportCredentials
	extra []grpc.DialOption
}

// WithTransportCredentials sets the connection's credentials (TLS). The
// default is an insecure (plaintext) connection.
func WithTransportCredentials(c credentials.TransportCredentials) Option {
	return func(o *dialOptions) { o.creds = c }
}

// WithDialOptions appends raw gRPC dial options, applied after the client's
// own, so they can override its transport limits.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *dialOptions) { o.extra = append(o.extra, opts...) }
}

// Client is a connection to one Strata broker. It is safe for concurrent use;
// Producers and Consumers built on it share its connection.
type Client struct {
	addr string
	conn *grpc.ClientConn
	api  stratav1.StrataClient

	mu sync.Mutex
	// partitionCounts caches the partition count of topics the producer
	// has seen, from DescribeTopic (or CreateTopic).
	partitionCounts map[string]int32
}

// Dial connects to the broker at addr (host:port). The connection is made in
// the background: an unreachable broker shows up as a codes.Unavailable
// error from the first call, not from Dial. ctx is only checked, not kept.
func Dial(ctx context.Context, addr string, opts ...Option) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o := dialOptions{creds: insecure.NewCredentials()}
	for _, opt := range opts {
		opt(&o)
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
	}, o.extra...)
	conn, err := grpc.NewClient(addr, grpcOpts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	conn.Connect()
	return &Client{
		addr:            addr,
		conn:            conn,
		api:             stratav1.NewStrataClient(conn),
		partitionCounts: make(map[string]int32),
	}, nil
}

// Close closes the connection. Close Producers (which flush) and Consumers
// before the Client they use.
func (c *Client) Close() error {
	if err := c.conn.Close(); err != nil {
		return fmt.Errorf("close connection to %s: %w", c.addr, err)
	}
	return nil
}

// Addr is the address the client dialed.
func (c *Client) Addr() string { return c.addr }

// API is the raw gRPC client, for calls this package does not wrap.
func (c *Client) API() stratav1.StrataClient { return c.api }

// CreateTopic creates a topic with the given partition count, replication
// factor and config overrides (nil for none), and returns its description.
func (c *Client) CreateTopic(ctx context.Context, name string, partitions, replicationFactor int32, configs map[string]string) (*stratav1.TopicDescription, error) {
	resp, err := c.api.CreateTopic(ctx, &stratav1.CreateTopicRequest{
		Name:              name,
		Partitions:        partitions,
		ReplicationFactor: replicationFactor,
		Configs:           configs,
	})
	if err != nil {
		return nil, fmt.Errorf("create topic %q: %w", name, err)
	}
	if n := len(resp.GetTopic().GetPartitions()); n > 0 {
		c.setPartitionCount(name, int32(n))
	}
	return resp.GetTopic(), nil
}

// DeleteTopic deletes a topic and its data.
func (c *Client) DeleteTopic(ctx context.Context, name string) error {
	c.forgetTopic(name)
	if _, err := c.api.DeleteTopic(ctx, &stratav1.DeleteTopicRequest{Name: name}); err != nil {
		return fmt.Errorf("delete topic %q: %w", name, err)
	}
	return nil
}

// ListTopics returns every topic, sorted by name.
func (c *Client) ListTopics(ctx context.Context) ([]*stratav1.TopicSummary, error) {
	resp, err := c.api.ListTopics(ctx, &stratav1.ListTopicsRequest{})
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	topics := resp.GetTopics()
	sort.Slice(topics, func(i, j int) bool { return topics[i].GetName() < topics[j].GetName() })
	return topics, nil
}

// DescribeTopic returns a topic's partitions, replicas and every config with
// its effective value and source. Partitions are sorted by number.
func (c *Client) DescribeTopic(ctx context.Context, name string) (*stratav1.TopicDescription, error) {
	resp, err := c.api.DescribeTopic(ctx, &stratav1.DescribeTopicRequest{Name: name})
	if err != nil {
		return nil, fmt.Errorf("describe topic %q: %w", name, err)
	}
	t := resp.GetTopic()
	if t == nil {
		return nil, fmt.Errorf("describe topic %q: empty response", name)
	}
	parts := t.GetPartitions()
	sort.Slice(parts, func(i, j int) bool { return parts[i].GetPartition() < parts[j].GetPartition() })
	if len(parts) > 0 {
		c.setPartitionCount(name, int32(len(parts)))
	}
	return t, nil
}

// AlterTopicConfigs sets and deletes (reverts to the default) topic config
// overrides, and returns the topic's configs after the change.
func (c *Client) AlterTopicConfigs(ctx context.Context, name string, set map[string]string, del []string) ([]*stratav1.ConfigEntry, error) {
	resp, err := c.api.AlterTopicConfigs(ctx, &stratav1.AlterTopicConfigsRequest{Name: name, Set: set, Delete: del})
	if err != nil {
		return nil, fmt.Errorf("alter configs of topic %q: %w", name, err)
	}
	return resp.GetConfigs(), nil
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
// timestamp; -1 when there is none. A failure on one partition is returned as
// a *PartitionError.
func (c *Client) ListOffsets(ctx context.Context, topic string, partitions []int32, timestamp int64) (map[int32]int64, error) {
	req := &stratav1.ListOffsetsRequest{Topic: topic}
	for _, p := range partitions {
		req.Partitions = append(req.Partitions, &stratav1.ListOffsetsPartition{Partition: p, Timestamp: timestamp})
	}
	resp, err := c.api.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("list offsets of topic %q: %w", topic, err)
	}
	out := make(map[int32]int64, len(partitions))
	for _, r := range resp.GetPartitions() {
		if perr := newPartitionError(topic, r.GetPartition(), r.GetError(), -1, -1); perr != nil {
			return nil, perr
		}
		out[r.GetPartition()] = r.GetOffset()
	}
	for _, p := range partitions {
		if _, ok := out[p]; !ok {
			return nil, fmt.Errorf("list offsets of topic %q: no result for partition %d", topic, p)
		}
	}
	return out, nil
}

// partitionCount returns the topic's partition count, from the cache or (when
// not cached, or refresh is set) by describing the topic.
func (c *Client) partitionCount(ctx context.Context, topic string, refresh bool) (int32, error) {
	if !refresh {
		c.mu.Lock()
		n, ok := c.partitionCounts[topic]
		c.mu.Unlock()
		if ok {
			return n, nil
		}
	}
	t, err := c.DescribeTopic(ctx, topic)
	if err != nil {
		if status.Code(err) == codes.NotFound {
			c.forgetTopic(topic)
		}
		return 0, err
	}
	if len(t.GetPartitions()) == 0 {
		return 0, fmt.Errorf("topic %q has no partitions", topic)
	}
	return int32(len(t.GetPartitions())), nil
}

func (c *Client) setPartitionCount(topic string, n int32) {
	c.mu.Lock()
	c.partitionCounts[topic] = n
	c.mu.Unlock()
}

func (c *Client) forgetTopic(topic string) {
	c.mu.Lock()
	delete(c.partitionCounts, topic)
	c.mu.Unlock()
}
