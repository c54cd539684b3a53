package grpcapi

import (
	"context"
	"fmt"

	"google.golang.org/grpc/metadata"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/broker/errcode"
	"github.com/strata-broker/strata/metastore"
)

// WriteTxnMarkers implements stratav1.ReplicationServer: a transaction
// coordinator's markers for the partitions this broker leads. The caller
// proves it is a broker as a follower does (see ReplicaSecretMetadataKey).
func (r *replicationServer) WriteTxnMarkers(ctx context.Context, req *stratav1.WriteTxnMarkersRequest) (*stratav1.WriteTxnMarkersResponse, error) {
	in := broker.WriteTxnMarkersRequest{BrokerID: req.GetBrokerId(), Secret: replicaSecret(ctx)}
	for _, m := range req.GetMarkers() {
		tm := broker.TxnMarker{ProducerID: m.GetProducerId(), ProducerEpoch: int16(m.GetProducerEpoch()), Commit: m.GetCommit(),
			CoordinatorEpoch: m.GetCoordinatorEpoch()}
		if e := m.GetProducerEpoch(); e != int32(tm.ProducerEpoch) {
			return nil, statusError(fmt.Errorf("%w: producer epoch %d does not fit an int16", broker.ErrInvalidRequest, e))
		}
		for _, p := range m.GetPartitions() {
			tm.Partitions = append(tm.Partitions, metastore.TopicPartition{Topic: p.GetTopic(), Partition: p.GetPartition()})
		}
		in.Markers = append(in.Markers, tm)
	}
	results, err := r.b.WriteTxnMarkers(ctx, in)
	if err != nil {
		return nil, statusError(err)
	}
	out := &stratav1.WriteTxnMarkersResponse{Markers: make([]*stratav1.TxnMarkerResult, len(results))}
	for i, res := range results {
		mr := &stratav1.TxnMarkerResult{ProducerId: res.ProducerID, Partitions: make([]*stratav1.TxnMarkerPartitionResult, len(res.Partitions))}
		for j, pr := range res.Partitions {
			mr.Partitions[j] = &stratav1.TxnMarkerPartitionResult{Topic: pr.Topic, Partition: pr.Partition,
				Error: partitionError(pr.Err), ErrorReason: errcode.Of(pr.Err).Reason}
		}
		out.Markers[i] = mr
	}
	return out, nil
}

// WriteTxnMarkers implements broker.ReplicaClient. A partition's error is a
// *broker.KindError when the leader's reason names a kind, so that the
// caller tells a moved leader from a fenced coordinator.
func (c *ReplicaClient) WriteTxnMarkers(ctx context.Context, addr string, req broker.WriteTxnMarkersRequest) ([]broker.TxnMarkerResult, error) {
	cc, err := c.conn(addr)
	if err != nil {
		return nil, err
	}
	in := &stratav1.WriteTxnMarkersRequest{BrokerId: req.BrokerID}
	for _, m := range req.Markers {
		tm := &stratav1.TxnMarker{ProducerId: m.ProducerID, ProducerEpoch: int32(m.ProducerEpoch), Commit: m.Commit, CoordinatorEpoch: m.CoordinatorEpoch}
		for _, tp := range m.Partitions {
			tm.Partitions = append(tm.Partitions, &stratav1.TxnMarkerPartition{Topic: tp.Topic, Partition: tp.Partition})
		}
		in.Markers = append(in.Markers, tm)
	}
	if req.Secret != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, ReplicaSecretMetadataKey, string(req.Secret))
	}
	resp := &stratav1.WriteTxnMarkersResponse{}
	if err := cc.Invoke(ctx, stratav1.Replication_WriteTxnMarkers_FullMethodName, in, resp); err != nil {
		return nil, fmt.Errorf("write transaction markers to %s: %w", addr, err)
	}
	out := make([]broker.TxnMarkerResult, len(resp.GetMarkers()))
	for i, mr := range resp.GetMarkers() {
		res := broker.TxnMarkerResult{ProducerID: mr.GetProducerId(), Partitions: make([]broker.TxnMarkerPartitionResult, len(mr.GetPartitions()))}
		for j, pr := range mr.GetPartitions() {
			p := broker.TxnMarkerPartitionResult{Topic: pr.GetTopic(), Partition: pr.GetPartition()}
			if e := pr.GetError(); e != nil {
				p.Err = fmt.Errorf("leader %s: %s: %s", addr, e.GetReason(), e.GetMessage())
				if k, ok := errcode.KindOf(pr.GetErrorReason()); ok {
					p.Err = &broker.KindError{Kind: k, Err: p.Err}
				}
			}
			res.Partitions[j] = p
		}
		out[i] = res
	}
	return out, nil
}
