package grpcapi

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/broker/errcode"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/partlog"
)

// ReplicaSecretMetadataKey is the gRPC call metadata that carries a
// broker's replica secret (metastore.ReplicaSecret) on the inter-broker
// calls, ReplicaFetch and WriteTxnMarkers: it proves the caller is the
// broker it names.
// That the caller is a broker at all is ClusterAction on the cluster,
// checked against its principal (its certificate's under mutual TLS) when
// an authorizer is configured (see authz.go).
const ReplicaSecretMetadataKey = "strata-replica-secret"

// replicaSecret returns the replica secret the caller sent ("" if none).
func replicaSecret(ctx context.Context) metastore.ReplicaSecret {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(ReplicaSecretMetadataKey); len(v) == 1 {
		return metastore.ReplicaSecret(v[0])
	}
	return ""
}

// replicationServer serves followers' fetches. gRPC calls replicaFetch
// rather than ReplicaFetch (see Server.Register), so that the reply carries
// the read buffers to the codec.
type replicationServer struct {
	stratav1.UnimplementedReplicationServer
	b *broker.Broker

	// buffers holds the buffers replica fetches read into; the codec gives
	// them back once sent.
	buffers mem.BufferPool
}

// ReplicaFetch implements stratav1.ReplicationServer.
func (r *replicationServer) ReplicaFetch(ctx context.Context, req *stratav1.ReplicaFetchRequest) (*stratav1.ReplicaFetchResponse, error) {
	reply, err := r.replicaFetch(ctx, req)
	if err != nil {
		return nil, err
	}
	return reply.ReplicaFetchResponse, nil
}

// replicaFetch answers with the batches as read, their pooled buffers going
// with them to the codec.
func (r *replicationServer) replicaFetch(ctx context.Context, req *stratav1.ReplicaFetchRequest) (*replicaFetchReply, error) {
	in := broker.ReplicaFetchRequest{
		ReplicaID: req.GetReplicaId(),
		Secret:    replicaSecret(ctx),
		MaxWait:   time.Duration(req.GetMaxWaitMs()) * time.Millisecond,
		MinBytes:  req.GetMinBytes(),
		MaxBytes:  req.GetMaxBytes(),
		Buffers:   r.buffers,
	}
	for _, p := range req.GetPartitions() {
		in.Partitions = append(in.Partitions, broker.ReplicaFetchPartition{
			Topic: p.GetTopic(), TopicID: p.GetTopicId(), Partition: p.GetPartition(), CurrentLeaderEpoch: p.GetCurrentLeaderEpoch(),
			FetchOffset: p.GetFetchOffset(), LastFetchedEpoch: p.GetLastFetchedEpoch(), MaxBytes: p.GetMaxBytes(),
		})
	}
	results, err := r.b.ReplicaFetch(ctx, in)
	if err != nil {
		return nil, statusError(err)
	}
	out := &stratav1.ReplicaFetchResponse{Partitions: make([]*stratav1.ReplicaFetchPartitionResult, len(results))}
	reply := &replicaFetchReply{ReplicaFetchResponse: out, pool: r.buffers}
	for i := range results {
		res := &results[i]
		pr := &stratav1.ReplicaFetchPartitionResult{
			Topic: res.Topic, Partition: res.Partition, HighWatermark: res.HighWatermark,
			LogStartOffset: res.LogStartOffset, RecordBatches: res.Data, Error: partitionError(res.Err),
			ErrorReason: errcode.Of(res.Err).Reason,
		}
		if d := res.Diverging; d != nil {
			pr.DivergingEpoch = &stratav1.EpochEndOffset{Epoch: d.Epoch, EndOffset: d.EndOffset}
		}
		if res.Buffer != nil {
			if reply.bufs == nil {
				reply.bufs = make([]*[]byte, len(results))
			}
			reply.bufs[i], res.Buffer = res.Buffer, nil
		}
		out.Partitions[i] = pr
	}
	return reply, nil
}

// replicaFetchHandler is the generated unary handler of ReplicaFetch,
// calling replicaFetch instead of ReplicaFetch.
func replicaFetchHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	r := srv.(*replicationServer)
	in := new(stratav1.ReplicaFetchRequest)
	if err := dec(in); err != nil {
		return nil, err
	}
	handler := func(ctx context.Context, req any) (any, error) {
		reply, err := r.replicaFetch(ctx, req.(*stratav1.ReplicaFetchRequest))
		if err != nil {
			return nil, err
		}
		return reply, nil
	}
	if interceptor == nil {
		return handler(ctx, in)
	}
	return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: stratav1.Replication_ReplicaFetch_FullMethodName}, handler)
}

// ReplicaClient sends a broker's calls to other brokers over gRPC (replica
// fetches, transaction markers), keeping one connection per address. Close
// it when the broker stops.
type ReplicaClient struct {
	creds credentials.TransportCredentials
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// NewReplicaClient returns a client with no connections yet.
//
// creds are the credentials other brokers are dialled with; nil is
// plaintext.
func NewReplicaClient(creds credentials.TransportCredentials) *ReplicaClient {
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	return &ReplicaClient{conns: map[string]*grpc.ClientConn{}, creds: creds}
}

func (c *ReplicaClient) conn(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc := c.conns[addr]; cc != nil {
		return cc, nil
	}
	// Responses carry up to 10 MiB of batches: with gRPC's 64 KiB default
	// receive window each would take several round trips of window updates.
	// The codec receives them without copying the batches once more.
	cc, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(c.creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.ForceCodecV2(codec{})),
		grpc.WithInitialWindowSize(16<<20),
		grpc.WithInitialConnWindowSize(32<<20),
		grpc.WithReadBufferSize(256<<10),
		grpc.WithWriteBufferSize(256<<10),
	)
	if err != nil {
		return nil, fmt.Errorf("replica client for %s: %w", addr, err)
	}
	c.conns[addr] = cc
	return cc, nil
}

// ReplicaFetch implements broker.ReplicaClient. The response is received
// into req.Receive, when not nil, and the results' Data alias it.
func (c *ReplicaClient) ReplicaFetch(ctx context.Context, addr string, req broker.ReplicaFetchRequest) ([]broker.ReplicaFetchResult, error) {
	cc, err := c.conn(addr)
	if err != nil {
		return nil, err
	}
	in := &stratav1.ReplicaFetchRequest{
		ReplicaId: req.ReplicaID, MaxWaitMs: int32(req.MaxWait / time.Millisecond),
		MinBytes: req.MinBytes, MaxBytes: req.MaxBytes,
	}
	for _, p := range req.Partitions {
		in.Partitions = append(in.Partitions, &stratav1.ReplicaFetchPartition{
			Topic: p.Topic, TopicId: p.TopicID, Partition: p.Partition, CurrentLeaderEpoch: p.CurrentLeaderEpoch,
			FetchOffset: p.FetchOffset, LastFetchedEpoch: p.LastFetchedEpoch, MaxBytes: p.MaxBytes,
		})
	}
	// The leader waits up to MaxWait; a silent leader (paused, cut off) must
	// not hold the follower much longer than that.
	ctx, cancel := context.WithTimeout(ctx, req.MaxWait+5*time.Second)
	defer cancel()
	if req.Secret != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, ReplicaSecretMetadataKey, string(req.Secret))
	}
	recv := &replicaFetchReceive{ReplicaFetchResponse: &stratav1.ReplicaFetchResponse{}, buf: req.Receive}
	if err := cc.Invoke(ctx, stratav1.Replication_ReplicaFetch_FullMethodName, in, recv); err != nil {
		return nil, fmt.Errorf("replica fetch from %s: %w", addr, err)
	}
	resp := recv.ReplicaFetchResponse
	out := make([]broker.ReplicaFetchResult, len(resp.GetPartitions()))
	for i, pr := range resp.GetPartitions() {
		res := broker.ReplicaFetchResult{
			Topic: pr.GetTopic(), Partition: pr.GetPartition(), HighWatermark: pr.GetHighWatermark(),
			LogStartOffset: pr.GetLogStartOffset(), Data: pr.GetRecordBatches(),
		}
		if d := pr.GetDivergingEpoch(); d != nil {
			res.Diverging = &broker.EpochEndOffset{Epoch: d.GetEpoch(), EndOffset: d.GetEndOffset()}
		}
		if e := pr.GetError(); e != nil {
			res.Err = fmt.Errorf("leader %s: %s: %s", addr, e.GetReason(), e.GetMessage())
			// The reason maps back to the error's kind through the table. A
			// leader still on a release before error_reason sends only the
			// reason's name, which names the same enum value.
			reason := pr.GetErrorReason()
			if reason == stratav1.ErrorReason_ERROR_REASON_UNSPECIFIED {
				reason = stratav1.ParseReason(e.GetReason())
			}
			if k, _ := errcode.KindOf(reason); k == broker.KindOffsetOutOfRange && i < len(req.Partitions) {
				// Typed again, because the follower acts on it: its log ends
				// before the leader's log start.
				res.Err = fmt.Errorf("leader %s: %s: %w", addr, e.GetMessage(), &partlog.OffsetOutOfRangeError{
					Offset: req.Partitions[i].FetchOffset, Start: pr.GetLogStartOffset(), End: pr.GetHighWatermark()})
			}
		}
		out[i] = res
	}
	return out, nil
}

// Close closes every connection.
func (c *ReplicaClient) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for addr, cc := range c.conns {
		cc.Close()
		delete(c.conns, addr)
	}
	return nil
}
