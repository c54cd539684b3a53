package grpcapi

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/broker"
)

// replicationServer serves followers' fetches.
type replicationServer struct {
	stratav1.UnimplementedReplicationServer
	b *broker.Broker
}

func (r replicationServer) ReplicaFetch(ctx context.Context, req *stratav1.ReplicaFetchRequest) (*stratav1.ReplicaFetchResponse, error) {
	in := broker.ReplicaFetchRequest{
		ReplicaID: req.GetReplicaId(),
		MaxWait:   time.Duration(req.GetMaxWaitMs()) * time.Millisecond,
		MinBytes:  req.GetMinBytes(),
		MaxBytes:  req.GetMaxBytes(),
	}
	for _, p := range req.GetPartitions() {
		in.Partitions = append(in.Partitions, broker.ReplicaFetchPartition{
			Topic: p.GetTopic(), Partition: p.GetPartition(), CurrentLeaderEpoch: p.GetCurrentLeaderEpoch(),
			FetchOffset: p.GetFetchOffset(), LastFetchedEpoch: p.GetLastFetchedEpoch(), MaxBytes: p.GetMaxBytes(),
		})
	}
	results, err := r.b.ReplicaFetch(ctx, in)
	if err != nil {
		return nil, statusError(err)
	}
	out := &stratav1.ReplicaFetchResponse{Partitions: make([]*stratav1.ReplicaFetchPartitionResult, len(results))}
	for i, res := range results {
		pr := &stratav1.ReplicaFetchPartitionResult{
			Topic: res.Topic, Partition: res.Partition, HighWatermark: res.HighWatermark,
			LogStartOffset: res.LogStartOffset, RecordBatches: res.Data, Error: partitionError(res.Err),
		}
		if d := res.Diverging; d != nil {
			pr.DivergingEpoch = &stratav1.EpochEndOffset{Epoch: d.Epoch, EndOffset: d.EndOffset}
		}
		out.Partitions[i] = pr
	}
	return out, nil
}

// ReplicaClient sends replica fetches to other brokers over gRPC, keeping one
// connection per address. Close it when the broker stops.
type ReplicaClient struct {
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// NewReplicaClient returns a client with no connections yet.
func NewReplicaClient() *ReplicaClient {
	return &ReplicaClient{conns: map[string]*grpc.ClientConn{}}
}

func (c *ReplicaClient) conn(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc := c.conns[addr]; cc != nil {
		return cc, nil
	}
	// Responses carry up to 10 MiB of batches: with gRPC's 64 KiB default
	// receive window each would take several round trips of window updates.
	cc, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes)),
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

// ReplicaFetch implements broker.ReplicaClient.
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
			Topic: p.Topic, Partition: p.Partition, CurrentLeaderEpoch: p.CurrentLeaderEpoch,
			FetchOffset: p.FetchOffset, LastFetchedEpoch: p.LastFetchedEpoch, MaxBytes: p.MaxBytes,
		})
	}
	// The leader waits up to MaxWait; a silent leader (paused, cut off) must
	// not hold the follower much longer than that.
	ctx, cancel := context.WithTimeout(ctx, req.MaxWait+5*time.Second)
	defer cancel()
	resp, err := stratav1.NewReplicationClient(cc).ReplicaFetch(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("replica fetch from %s: %w", addr, err)
	}
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
