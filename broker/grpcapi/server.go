// Package grpcapi is the gRPC frontend of the broker: it translates the
// strata.v1 API onto the broker core and the core's errors onto gRPC status
// codes. It owns no data.
package grpcapi

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/acl/audit"
	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/broker/errcode"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/topicconfig"
)

// MaxMessageBytes bounds a single gRPC message in either direction, like
// Kafka's socket.request.max.bytes (100 MiB); only a ProduceRequest may be
// that large among what clients send (see limits.go).
const MaxMessageBytes = 100 << 20

// Keepalive: the server pings a connection idle for keepaliveTime and
// closes it if the ping is not answered within keepaliveTimeout, so that
// a client gone without a word does not hold its streams; a connection
// without calls for connectionMaxIdle is closed (Kafka's
// connections.max.idle.ms). Clients may ping every keepaliveMinTime at
// most, with or without calls in flight; one pinging more often is sent
// away (GOAWAY), so pings cannot keep the server busy.
const (
	keepaliveTime     = time.Minute
	keepaliveTimeout  = 20 * time.Second
	keepaliveMinTime  = 10 * time.Second
	connectionMaxIdle = 10 * time.Minute
)

// ServerOptions are the gRPC server settings the frontend needs: large
// messages and flow-control windows sized for batches of a megabyte or more,
// so a single stream is not throttled by the 64 KiB default window, and the
// codec that passes record batches through without copying them (codec.go)
// and bounds what every other message may cost (limits.go); a bound on the
// calls in flight per connection; keepalive; authentication and
// authorization of every call (authn.go, authz.go). Interceptors that
// should see refused calls (metrics) go before these.
func (s *Server) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(serverCodec{}),
		grpc.MaxRecvMsgSize(MaxMessageBytes),
		grpc.MaxSendMsgSize(MaxMessageBytes),
		grpc.MaxConcurrentStreams(MaxConcurrentStreams),
		// Deprecated, yet the only hook a server has on what a compressed
		// message inflates to; gzip is the one grpc-encoding the binary
		// registers.
		grpc.RPCDecompressor(gzipDecompressor{}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time: keepaliveTime, Timeout: keepaliveTimeout, MaxConnectionIdle: connectionMaxIdle,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveMinTime, PermitWithoutStream: true}),
		grpc.InitialWindowSize(16 << 20),
		grpc.InitialConnWindowSize(32 << 20),
		grpc.ReadBufferSize(256 << 10),
		grpc.WriteBufferSize(256 << 10),
		grpc.StatsHandler(connTagger{}),
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
	}
}

// Server implements stratav1.StrataServer over a broker.
type Server struct {
	stratav1.UnimplementedStrataServer
	b     *broker.Broker
	authn *authenticator
	audit *audit.Auditor

	// buffers holds the buffers fetches read into; the codec gives them
	// back once sent.
	buffers mem.BufferPool

	mu     sync.Mutex
	sticky map[string]int32 // topic → partition for unkeyed structured records
}

// Config is what the frontend needs beside the broker core.
type Config struct {
	// Passwords verifies Basic credentials; nil takes the core's
	// VerifyPassword if it has one, else Basic credentials are refused.
	Passwords PasswordVerifier
	// Tokens validates Bearer tokens; nil refuses them.
	Tokens     TokenValidator
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// New returns the gRPC frontend for b.
func New(b *broker.Broker, cfg Config) *Server {
	passwords := cfg.Passwords
	if passwords == nil {
		// The core verifies passwords once it keeps SCRAM credentials.
		if v, ok := any(b).(PasswordVerifier); ok {
			passwords = v
		}
	}
	return &Server{
		b:       b,
		authn:   &authenticator{passwords: passwords, tokens: cfg.Tokens, now: time.Now},
		audit:   audit.New("grpc", cfg.Logger, cfg.Registerer),
		buffers: broker.NewReadBuffers(),
		sticky:  make(map[string]int32),
	}
}

// Register adds the services to a gRPC server. Fetch and ReplicaFetch are
// served by handlers of their own rather than the generated ones, so that
// their replies can carry read buffers to the codec (see fetchReply). Every
// method answers a message the server's codec refused to decode with
// RESOURCE_EXHAUSTED (see limits.go).
func (s *Server) Register(g *grpc.Server) {
	desc := refusalsAsResourceExhausted(withHandler(stratav1.Strata_ServiceDesc, stratav1.Strata_Fetch_FullMethodName, fetchHandler))
	g.RegisterService(&desc, s)
	repl := refusalsAsResourceExhausted(withHandler(stratav1.Replication_ServiceDesc, stratav1.Replication_ReplicaFetch_FullMethodName, replicaFetchHandler))
	g.RegisterService(&repl, &replicationServer{b: s.b, buffers: s.buffers})
}

// withHandler returns desc with the unary method fullMethod served by h.
func withHandler(desc grpc.ServiceDesc, fullMethod string, h grpc.MethodHandler) grpc.ServiceDesc {
	desc.Methods = slices.Clone(desc.Methods)
	for i := range desc.Methods {
		if "/"+desc.ServiceName+"/"+desc.Methods[i].MethodName == fullMethod {
			desc.Methods[i].Handler = h
			return desc
		}
	}
	panic("grpcapi: the " + desc.ServiceName + " service has no method " + fullMethod)
}

// Metadata answers from the broker's view of the cluster.
func (s *Server) Metadata(ctx context.Context, req *stratav1.MetadataRequest) (*stratav1.MetadataResponse, error) {
	md, err := s.b.Metadata(ctx, req.GetTopics())
	if err != nil {
		return nil, statusError(err)
	}
	out := &stratav1.MetadataResponse{ControllerId: md.ControllerID}
	for _, br := range md.Brokers {
		out.Brokers = append(out.Brokers, &stratav1.BrokerInfo{
			NodeId: br.NodeID, GrpcAddr: br.GRPCAddr, KafkaAddr: br.KafkaAddr, HttpAddr: br.HTTPAddr, Rack: br.Rack,
		})
	}
	named := len(req.GetTopics()) > 0
	for _, t := range md.Topics {
		if t.Internal && !named {
			// Kafka's internal topic holds nothing here (group offsets are
			// in etcd): the operator's listing, and what rebalance and
			// cluster info count, is of stored topics only.
			continue
		}
		if !s.mayDescribe(ctx, stratav1.Strata_Metadata_FullMethodName, acl.ResourceTopic, t.Name) {
			// A topic asked for by name is answered, as Kafka does, with
			// the authorization error and nothing else, whether it exists
			// or not; the others are left out.
			if named {
				out.Topics = append(out.Topics, &stratav1.TopicMetadata{Name: t.Name, Error: &stratav1.PartitionError{
					Code: int32(codes.PermissionDenied), Message: "not authorized to describe topic " + t.Name, Reason: "TOPIC_AUTHORIZATION_FAILED",
				}})
			}
			continue
		}
		tm := &stratav1.TopicMetadata{Name: t.Name, TopicId: t.ID, Error: partitionError(t.Err)}
		for _, p := range t.Partitions {
			tm.Partitions = append(tm.Partitions, partitionInfo(p))
		}
		out.Topics = append(out.Topics, tm)
	}
	return out, nil
}

// fetchHandler is the generated unary handler of Fetch, calling s.fetch
// instead of s.Fetch.
func fetchHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	s := srv.(*Server)
	in := new(stratav1.FetchRequest)
	if err := dec(in); err != nil {
		return nil, err
	}
	handler := func(ctx context.Context, req any) (any, error) {
		reply, err := s.fetch(ctx, req.(*stratav1.FetchRequest))
		if err != nil {
			return nil, err
		}
		return reply, nil
	}
	if interceptor == nil {
		return handler(ctx, in)
	}
	return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: stratav1.Strata_Fetch_FullMethodName}, handler)
}

// statusError maps a core error to a gRPC status whose message a person can
// act on.
func statusError(err error) error {
	if err == nil {
		return nil
	}
	return status.Error(errcode.Of(err).GRPC, err.Error())
}

// partitionError reports a partition's error with Kafka's name for it, so
// that a client reacts as a Kafka client would (refresh metadata on
// NOT_LEADER_OR_FOLLOWER, ...).
func partitionError(err error) *stratav1.PartitionError {
	if err == nil {
		return nil
	}
	c := errcode.Of(err)
	return &stratav1.PartitionError{Code: int32(c.GRPC), Message: err.Error(), Reason: c.ReasonName()}
}

func (s *Server) CreateTopic(ctx context.Context, req *stratav1.CreateTopicRequest) (*stratav1.CreateTopicResponse, error) {
	d, err := s.b.CreateTopic(ctx, broker.TopicSpec{
		Name:              req.GetName(),
		Partitions:        req.GetPartitions(),
		ReplicationFactor: req.GetReplicationFactor(),
		Configs:           req.GetConfigs(),
		ValidateOnly:      req.GetValidateOnly(),
	})
	if err != nil {
		return nil, statusError(err)
	}
	return &stratav1.CreateTopicResponse{Topic: topicDescription(d)}, nil
}

func (s *Server) RestoreTopic(ctx context.Context, req *stratav1.RestoreTopicRequest) (*stratav1.RestoreTopicResponse, error) {
	d, err := s.b.RestoreTopic(ctx, req.GetName())
	if err != nil {
		return nil, statusError(err)
	}
	return &stratav1.RestoreTopicResponse{Topic: topicDescription(d)}, nil
}

func (s *Server) DeleteTopic(ctx context.Context, req *stratav1.DeleteTopicRequest) (*stratav1.DeleteTopicResponse, error) {
	if err := s.b.DeleteTopic(ctx, req.GetName()); err != nil {
		return nil, statusError(err)
	}
	return &stratav1.DeleteTopicResponse{}, nil
}

func (s *Server) ListTopics(ctx context.Context, _ *stratav1.ListTopicsRequest) (*stratav1.ListTopicsResponse, error) {
	topics, err := s.b.ListTopics(ctx)
	if err != nil {
		return nil, statusError(err)
	}
	resp := &stratav1.ListTopicsResponse{}
	for _, t := range topics {
		if !s.mayDescribe(ctx, stratav1.Strata_ListTopics_FullMethodName, acl.ResourceTopic, t.Name) {
			continue
		}
		resp.Topics = append(resp.Topics, &stratav1.TopicSummary{
			Name: t.Name, Partitions: t.Partitions, ReplicationFactor: t.ReplicationFactor,
		})
	}
	return resp, nil
}

func (s *Server) DescribeTopic(ctx context.Context, req *stratav1.DescribeTopicRequest) (*stratav1.DescribeTopicResponse, error) {
	d, err := s.b.DescribeTopic(ctx, req.GetName())
	if err != nil {
		return nil, statusError(err)
	}
	return &stratav1.DescribeTopicResponse{Topic: topicDescription(d)}, nil
}

func (s *Server) AlterTopicConfigs(ctx context.Context, req *stratav1.AlterTopicConfigsRequest) (*stratav1.AlterTopicConfigsResponse, error) {
	entries, err := s.b.AlterTopicConfigs(ctx, req.GetName(), req.GetSet(), req.GetDelete(), req.GetValidateOnly())
	if err != nil {
		return nil, statusError(err)
	}
	return &stratav1.AlterTopicConfigsResponse{Configs: configEntries(entries)}, nil
}

func (s *Server) CreatePartitions(ctx context.Context, req *stratav1.CreatePartitionsRequest) (*stratav1.CreatePartitionsResponse, error) {
	if err := s.b.CreatePartitions(ctx, req.GetName(), req.GetCount(), nil, req.GetValidateOnly()); err != nil {
		return nil, statusError(err)
	}
	d, err := s.b.DescribeTopic(ctx, req.GetName())
	if err != nil {
		return nil, statusError(err)
	}
	return &stratav1.CreatePartitionsResponse{Topic: topicDescription(d)}, nil
}

func topicDescription(d broker.TopicDescription) *stratav1.TopicDescription {
	out := &stratav1.TopicDescription{
		Name:              d.Name,
		TopicId:           d.ID,
		ReplicationFactor: d.ReplicationFactor,
		Configs:           configEntries(d.Configs),
	}
	for _, p := range d.Partitions {
		out.Partitions = append(out.Partitions, partitionInfo(p))
	}
	return out
}

func partitionInfo(p metastore.PartitionState) *stratav1.PartitionInfo {
	return &stratav1.PartitionInfo{
		Partition:        p.Partition,
		Leader:           p.Leader,
		LeaderEpoch:      p.LeaderEpoch,
		Replicas:         p.Replicas,
		Isr:              p.ISR,
		AddingReplicas:   p.AddingReplicas,
		RemovingReplicas: p.RemovingReplicas,
	}
}

func configEntries(entries []topicconfig.Entry) []*stratav1.ConfigEntry {
	out := make([]*stratav1.ConfigEntry, 0, len(entries))
	for _, e := range entries {
		out = append(out, &stratav1.ConfigEntry{Name: e.Name, Value: e.Value, Source: string(e.Source)})
	}
	return out
}

func acks(a stratav1.Acks) (broker.Acks, error) {
	switch a {
	case stratav1.Acks_ACKS_NONE:
		return broker.AcksNone, nil
	case stratav1.Acks_ACKS_LEADER:
		return broker.AcksLeader, nil
	case stratav1.Acks_ACKS_ALL:
		return broker.AcksAll, nil
	}
	return 0, status.Errorf(codes.InvalidArgument, "unknown acks value %d", a)
}

func (s *Server) Produce(ctx context.Context, req *stratav1.ProduceRequest) (*stratav1.ProduceResponse, error) {
	a, err := acks(req.GetAcks())
	if err != nil {
		return nil, err
	}
	if req.GetTopic() == "" {
		return nil, status.Error(codes.InvalidArgument, "produce: topic is required")
	}
	parts, err := s.producePartitions(req)
	if err != nil {
		return nil, statusError(err)
	}
	results, err := s.b.ProduceWithTimeout(ctx, req.GetTopic(), a, time.Duration(req.GetTimeoutMs())*time.Millisecond, parts)
	if err != nil {
		return nil, statusError(err)
	}
	resp := &stratav1.ProduceResponse{Partitions: make([]*stratav1.ProducePartitionResult, len(results))}
	for i, r := range results {
		pr := &stratav1.ProducePartitionResult{
			Partition:      r.Partition,
			BaseOffset:     r.BaseOffset,
			RecordCount:    int32(r.Records),
			LogStartOffset: r.LogStartOffset,
			Error:          partitionError(r.Err),
		}
		if a == broker.AcksNone {
			pr.BaseOffset = -1
		}
		resp.Partitions[i] = pr
	}
	return resp, nil
}

// producePartitions turns the request into per-partition batches: raw batches
// pass through untouched; structured records are routed (partition -1) and
// encoded into one batch per partition.
func (s *Server) producePartitions(req *stratav1.ProduceRequest) ([]broker.PartitionBatches, error) {
	topic := req.GetTopic()
	var out []broker.PartitionBatches
	byPartition := map[int32][]record.Record{}
	var order []int32
	for _, pp := range req.GetPartitions() {
		if len(pp.GetRecordBatches()) > 0 {
			if len(pp.GetRecords()) > 0 {
				return nil, fmt.Errorf("%w: partition %d carries both records and record_batches", broker.ErrInvalidRequest, pp.GetPartition())
			}
			if pp.GetPartition() < 0 {
				return nil, fmt.Errorf("%w: record_batches need an explicit partition", broker.ErrInvalidRequest)
			}
			out = append(out, broker.PartitionBatches{Partition: pp.GetPartition(), Batches: pp.GetRecordBatches()})
			continue
		}
		if len(pp.GetRecords()) == 0 {
			return nil, fmt.Errorf("%w: partition %d has no records", broker.ErrInvalidRequest, pp.GetPartition())
		}
		sticky := s.stickyPartition(topic)
		for _, r := range pp.GetRecords() {
			p := pp.GetPartition()
			if p < 0 {
				var err error
				p, err = s.b.KeyPartition(topic, keyOf(r), sticky)
				if err != nil {
					return nil, err
				}
			}
			if _, ok := byPartition[p]; !ok {
				order = append(order, p)
			}
			byPartition[p] = append(byPartition[p], toRecord(r))
		}
	}
	for _, p := range order {
		batch, err := s.b.EncodeRecords(byPartition[p])
		if err != nil {
			return nil, err
		}
		out = append(out, broker.PartitionBatches{Partition: p, Batches: batch})
	}
	return out, nil
}

// stickyPartition returns a chooser for unkeyed records that keeps one
// partition for the whole request and moves to another for the next one, as
// Kafka's sticky partitioner does per batch.
func (s *Server) stickyPartition(topic string) func(n int32) int32 {
	chosen := int32(-1)
	return func(n int32) int32 {
		if chosen >= 0 && chosen < n {
			return chosen
		}
		s.mu.Lock()
		prev, ok := s.sticky[topic]
		next := rand.Int32N(n)
		if ok && n > 1 && next == prev {
			next = (next + 1) % n
		}
		s.sticky[topic] = next
		s.mu.Unlock()
		chosen = next
		return chosen
	}
}

func keyOf(r *stratav1.Record) []byte {
	if r.GetKeyNull() {
		return nil
	}
	if r.Key == nil {
		// proto3 cannot tell an empty key from an absent one; an absent key is
		// the common case, and Kafka clients send null for "no key".
		return nil
	}
	return r.Key
}

func toRecord(r *stratav1.Record) record.Record {
	out := record.Record{Key: keyOf(r), Timestamp: r.GetTimestampMs()}
	if !r.GetValueNull() {
		out.Value = r.GetValue()
		if out.Value == nil {
			out.Value = []byte{}
		}
	}
	for _, h := range r.GetHeaders() {
		out.Headers = append(out.Headers, record.RecordHeader{Key: h.GetKey(), Value: h.GetValue()})
	}
	return out
}

func fetchRequest(req *stratav1.FetchRequest) ([]broker.FetchPartition, broker.FetchOptions, error) {
	if len(req.GetPartitions()) == 0 {
		return nil, broker.FetchOptions{}, status.Error(codes.InvalidArgument, "fetch: no partitions requested")
	}
	parts := make([]broker.FetchPartition, len(req.GetPartitions()))
	for i, fp := range req.GetPartitions() {
		if fp.GetTopic() == "" {
			return nil, broker.FetchOptions{}, status.Error(codes.InvalidArgument, "fetch: topic is required")
		}
		parts[i] = broker.FetchPartition{Topic: fp.GetTopic(), Partition: fp.GetPartition(), Offset: fp.GetOffset(), MaxBytes: fp.GetMaxBytes()}
	}
	if req.GetMaxWaitMs() < 0 || req.GetMinBytes() < 0 || req.GetMaxBytes() < 0 {
		return nil, broker.FetchOptions{}, status.Error(codes.InvalidArgument, "fetch: max_wait_ms, min_bytes and max_bytes must not be negative")
	}
	iso, err := isolationLevel(req.GetIsolationLevel())
	if err != nil {
		return nil, broker.FetchOptions{}, status.Errorf(codes.InvalidArgument, "fetch: %v", err)
	}
	return parts, broker.FetchOptions{
		// gRPC clients get committed records only: the broker drops aborted
		// transactions' batches rather than sending their list.
		IsolationLevel: iso,
		DropAborted:    true,
		MaxBytes:       req.GetMaxBytes(),
		MinBytes:       req.GetMinBytes(),
		MaxWait:        time.Duration(req.GetMaxWaitMs()) * time.Millisecond,
		// A client naming its rack chose the replica it asks (follower
		// fetching); the others keep reading from leaders only.
		FollowerReads: req.GetRack() != "",
		ClientRack:    req.GetRack(),
	}, nil
}

// isolationLevel maps the API's isolation level to the broker's, refusing
// values it does not know (a newer client's) rather than reading uncommitted.
func isolationLevel(l stratav1.IsolationLevel) (broker.IsolationLevel, error) {
	switch l {
	case stratav1.IsolationLevel_READ_UNCOMMITTED:
		return broker.ReadUncommitted, nil
	case stratav1.IsolationLevel_READ_COMMITTED:
		return broker.ReadCommitted, nil
	}
	return 0, fmt.Errorf("unknown isolation_level %d", l)
}

// Fetch implements stratav1.StrataServer. gRPC calls fetch instead (see
// Register).
func (s *Server) Fetch(ctx context.Context, req *stratav1.FetchRequest) (*stratav1.FetchResponse, error) {
	reply, err := s.fetch(ctx, req)
	if err != nil {
		return nil, err
	}
	return reply.FetchResponse, nil
}

func (s *Server) fetch(ctx context.Context, req *stratav1.FetchRequest) (*fetchReply, error) {
	parts, opts, err := fetchRequest(req)
	if err != nil {
		return nil, err
	}
	opts.Buffers = s.buffers
	results, err := s.b.Fetch(ctx, parts, opts)
	if err != nil {
		return nil, statusError(err)
	}
	return s.fetchReply(ctx, parts, results, req), nil
}

// followWait is how long one round of a follow-mode fetch waits for data
// before looping; it only bounds how often an idle stream re-checks.
const followWait = 5 * time.Second

func (s *Server) FetchStream(req *stratav1.FetchRequest, stream grpc.ServerStreamingServer[stratav1.FetchResponse]) error {
	parts, opts, err := fetchRequest(req)
	if err != nil {
		return err
	}
	ctx := stream.Context()
	if opts.MaxWait <= 0 || opts.MaxWait > followWait {
		opts.MaxWait = followWait
	}
	opts.Buffers = s.buffers
	for {
		results, err := s.b.Fetch(ctx, parts, opts)
		if err != nil {
			return statusError(err)
		}
		// The reply is built from the requested offsets, before they move on.
		reply := s.fetchReply(ctx, parts, results, req)
		sent := false
		failed := false
		for i, r := range results {
			if r.Err != nil {
				failed = true
			}
			if len(r.Data) > 0 || r.NextOffset > parts[i].Offset {
				// Data may be empty with the offset moved on: batches of
				// aborted transactions, dropped.
				sent = true
				// Decoding may have stopped short of the data read.
				parts[i].Offset = reply.Partitions[i].NextOffset
			}
		}
		if sent || failed {
			// SendMsg, not Send, to pass the reply with its buffers to the
			// codec; Send takes only the message.
			if err := stream.SendMsg(reply); err != nil {
				return err
			}
		}
		if failed {
			// The client sees which partition failed and why; following a partition
			// that cannot be read would spin.
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		if s.b.Draining() {
			// Tell the follower to reconnect elsewhere (or later) instead of
			// holding the broker's shutdown.
			return status.Error(codes.Unavailable, "broker is shutting down")
		}
	}
}

// fetchReply builds the response. Without decode, record batches go out as
// read, and their pooled buffers go with them (to be given back once sent);
// results no longer own them. With decode, the records alias the buffers,
// which are left to the garbage collector.
// fetchReply builds the answer to req from the fetch's results. Records
// decoded for the client (req.decode) are bounded by the request's byte
// bound, like the batches: a batch may inflate to 32 times
// max.message.bytes, so a response of decoded batches could otherwise be
// that many times the bound. Decoding stops before the batch that would
// pass it (the first batch of the response is always decoded, so that a
// client makes progress), and that partition's next offset is where it
// stopped.
func (s *Server) fetchReply(ctx context.Context, parts []broker.FetchPartition, results []broker.FetchResult, req *stratav1.FetchRequest) *fetchReply {
	resp := &stratav1.FetchResponse{Partitions: make([]*stratav1.FetchPartitionResult, len(results))}
	reply := &fetchReply{FetchResponse: resp, pool: s.buffers}
	dec := recordDecoder{b: s.b, ctx: ctx, budget: decodedBudget(req.GetMaxBytes())}
	for i := range results {
		r := &results[i]
		pr := &stratav1.FetchPartitionResult{
			Topic:          r.Topic,
			Partition:      r.Partition,
			HighWatermark:  r.HighWatermark,
			LogStartOffset: r.LogStartOffset,

			NextOffset: r.NextOffset,
			Error:      partitionError(r.Err),
		}
		if r.Err == nil {
			lso := r.LastStableOffset
			pr.LastStableOffset = &lso
		}
		if req.GetDecode() {
			recs, next, err := dec.decode(r.Data, parts[i].Offset, r.Partition)
			if err != nil {
				pr.Error = &stratav1.PartitionError{Code: int32(codes.DataLoss), Message: err.Error()}
			}
			if next >= 0 {
				pr.NextOffset = next
			}
			pr.Records = recs
		} else {
			pr.RecordBatches = r.Data
			if r.Buffer != nil {
				if reply.bufs == nil {
					reply.bufs = make([]*[]byte, len(results))
				}
				reply.bufs[i], r.Buffer = r.Buffer, nil
			}
		}
		resp.Partitions[i] = pr
	}
	return reply
}

// decodedBudget is how many bytes of decoded records a response may carry:
// the request's byte bound, or Kafka's fetch.max.bytes default, within the
// broker's cap on a response.
func decodedBudget(maxBytes int32) int64 {
	if maxBytes <= 0 {
		maxBytes = 50 << 20
	}
	return min(int64(maxBytes), 64<<20)
}

// recordCost is what a decoded record adds to a response beside its key,
// value and headers' bytes: its message and their fields' framing.
const recordCost = 64

// recordDecoder decodes the batches of a response's partitions within the
// response's budget.
type recordDecoder struct {
	b       *broker.Broker
	ctx     context.Context
	budget  int64
	started bool // some batch of the response has been decoded
}

// decode returns the records of one partition's data at or above from, and
// the offset where decoding stopped when the budget ended it (-1 when it
// decoded all).
func (d *recordDecoder) decode(data []byte, from int64, partition int32) ([]*stratav1.Record, int64, error) {
	var out []*stratav1.Record
	it := record.NewBatches(data)
	for it.Next() {
		h := it.Header()
		if h.Control() {
			continue
		}
		if d.budget <= 0 && d.started {
			return out, max(h.BaseOffset, from), nil
		}
		d.started = true
		err := d.b.Decompress(d.ctx, func() error {
			return record.ForEach(it.Bytes(), func(r *record.Record) error {
				if r.Offset < from {
					return nil
				}
				pr := &stratav1.Record{
					Key: r.Key, KeyNull: r.Key == nil,
					Value: r.Value, ValueNull: r.Value == nil,
					TimestampMs: r.Timestamp, Offset: r.Offset, Partition: partition,
				}
				size := int64(recordCost + len(r.Key) + len(r.Value))
				for _, hd := range r.Headers {
					pr.Headers = append(pr.Headers, &stratav1.Header{Key: hd.Key, Value: hd.Value})
					size += int64(recordCost + len(hd.Key) + len(hd.Value))
				}
				d.budget -= size
				out = append(out, pr)
				return nil
			})
		})
		if err != nil {
			return out, -1, fmt.Errorf("decode batch at offset %d: %w", h.BaseOffset, err)
		}
	}
	return out, -1, it.Err()
}

func (s *Server) ListOffsets(_ context.Context, req *stratav1.ListOffsetsRequest) (*stratav1.ListOffsetsResponse, error) {
	if req.GetTopic() == "" {
		return nil, status.Error(codes.InvalidArgument, "list offsets: topic is required")
	}
	if _, err := s.b.PartitionCount(req.GetTopic()); err != nil {
		return nil, statusError(err)
	}
	iso, err := isolationLevel(req.GetIsolationLevel())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "list offsets: %v", err)
	}
	resp := &stratav1.ListOffsetsResponse{}
	for _, p := range req.GetPartitions() {
		off, ts, found, err := s.b.ListOffset(req.GetTopic(), p.GetPartition(), p.GetTimestamp(), iso)
		r := &stratav1.ListOffsetsPartitionResult{Partition: p.GetPartition(), Offset: off, Timestamp: ts, Error: partitionError(err)}
		if err == nil && !found {
			r.Offset, r.Timestamp = -1, -1
		}
		resp.Partitions = append(resp.Partitions, r)
	}
	return resp, nil
}
