package grpcapi

// Transactions for operators: ListTransactions and DescribeTransactions
// answered by any broker for every transactional id of the cluster, from
// the coordinators' stored state (broker.ClusterTransactions).

import (
	"context"
	"slices"
	"time"

	"github.com/strata-broker/strata/acl"
	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/broker/txn"
)

func (s *Server) ListTransactions(ctx context.Context, req *stratav1.ListTransactionsRequest) (*stratav1.ListTransactionsResponse, error) {
	f := txn.ListFilter{States: req.GetStates(), ProducerIDs: req.GetProducerIds()}
	if ms := req.GetMinDurationMs(); ms > 0 {
		f.MinDuration = time.Duration(ms) * time.Millisecond
	}
	all, err := s.b.ClusterTransactions(ctx, f)
	if err != nil {
		return nil, statusError(err)
	}
	resp := &stratav1.ListTransactionsResponse{Transactions: make([]*stratav1.TransactionSummary, 0, len(all))}
	for _, t := range all {
		if !s.mayDescribe(ctx, stratav1.Strata_ListTransactions_FullMethodName, acl.ResourceTransactionalID, t.TransactionalID) {
			continue
		}
		resp.Transactions = append(resp.Transactions, &stratav1.TransactionSummary{
			TransactionalId: t.TransactionalID, Coordinator: t.Coordinator, ProducerId: t.ProducerID, State: t.State,
		})
	}
	return resp, nil
}

func (s *Server) DescribeTransactions(ctx context.Context, req *stratav1.DescribeTransactionsRequest) (*stratav1.DescribeTransactionsResponse, error) {
	resp := &stratav1.DescribeTransactionsResponse{Transactions: make([]*stratav1.TransactionDescription, 0, len(req.GetTransactionalIds()))}
	for _, id := range req.GetTransactionalIds() {
		t, err := s.b.ClusterTransaction(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return nil, statusError(err)
			}
			resp.Transactions = append(resp.Transactions, &stratav1.TransactionDescription{TransactionalId: id, Coordinator: -1, Error: partitionError(err)})
			continue
		}
		resp.Transactions = append(resp.Transactions, transactionDescription(t))
	}
	return resp, nil
}

func transactionDescription(t broker.TransactionStatus) *stratav1.TransactionDescription {
	d := &stratav1.TransactionDescription{
		TransactionalId: t.TransactionalID, Coordinator: t.Coordinator, State: t.State,
		ProducerId: t.ProducerID, ProducerEpoch: int32(t.ProducerEpoch), TransactionTimeoutMs: t.TimeoutMs,
		TransactionStartTimeMs: -1, Groups: slices.Clone(t.Groups),
	}
	if !t.StartTime.IsZero() {
		d.TransactionStartTimeMs = t.StartTime.UnixMilli()
	}
	for _, tp := range t.Partitions { // sorted: one run per topic
		if n := len(d.Partitions); n > 0 && d.Partitions[n-1].GetTopic() == tp.Topic {
			d.Partitions[n-1].Partitions = append(d.Partitions[n-1].Partitions, tp.Partition)
			continue
		}
		d.Partitions = append(d.Partitions, &stratav1.TopicPartitions{Topic: tp.Topic, Partitions: []int32{tp.Partition}})
	}
	return d
}
