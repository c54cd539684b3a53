package client

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// TransactionFilter narrows ListTransactions as Kafka's ListTransactions
// does; a zero field matches every transaction.
type TransactionFilter struct {
	// States are transaction states: Empty, Ongoing, PrepareCommit,
	// PrepareAbort, CompleteCommit, CompleteAbort.
	States      []string
	ProducerIDs []int64
	// MinDuration keeps only transactions open (Ongoing) at least this
	// long (KIP-994).
	MinDuration time.Duration
}

// ListTransactions lists the transactional ids of the whole cluster that
// match f, sorted by id, each with the broker coordinating it. Any broker
// answers for all of them; ids the caller may not Describe are left out.
func (c *Client) ListTransactions(ctx context.Context, f TransactionFilter) ([]*stratav1.TransactionSummary, error) {
	req := &stratav1.ListTransactionsRequest{States: f.States, ProducerIds: f.ProducerIDs, MinDurationMs: f.MinDuration.Milliseconds()}
	var resp *stratav1.ListTransactionsResponse
	err := c.anyBroker(ctx, func(ctx context.Context, api stratav1.StrataClient) error {
		var err error
		resp, err = api.ListTransactions(ctx, req)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list transactions: %w", err)
	}
	return resp.GetTransactions(), nil
}

// DescribeTransactions describes transactional ids, one answer per id in
// the order given; an id that could not be described carries its Error
// (reason ReasonTransactionalIDNotFound for one without state). It needs
// Describe on every id.
func (c *Client) DescribeTransactions(ctx context.Context, ids ...string) ([]*stratav1.TransactionDescription, error) {
	var resp *stratav1.DescribeTransactionsResponse
	err := c.anyBroker(ctx, func(ctx context.Context, api stratav1.StrataClient) error {
		var err error
		resp, err = api.DescribeTransactions(ctx, &stratav1.DescribeTransactionsRequest{TransactionalIds: ids})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("describe transactions: %w", err)
	}
	if got := len(resp.GetTransactions()); got != len(ids) {
		return nil, fmt.Errorf("describe transactions: %d answers for %d ids", got, len(ids))
	}
	return resp.GetTransactions(), nil
}

// DescribeTransaction describes one transactional id; the error of an id
// that could not be described has its Reason (ReasonTransactionalIDNotFound
// for one without state).
func (c *Client) DescribeTransaction(ctx context.Context, id string) (*stratav1.TransactionDescription, error) {
	ds, err := c.DescribeTransactions(ctx, id)
	if err != nil {
		return nil, err
	}
	d := ds[0]
	if pe := d.GetError(); pe != nil && codes.Code(pe.GetCode()) != codes.OK {
		st := status.New(codes.Code(pe.GetCode()), fmt.Sprintf("describe transaction %q: %s", id, pe.GetMessage()))
		if withDetail, derr := st.WithDetails(pe); derr == nil {
			st = withDetail
		}
		return nil, st.Err()
	}
	return d, nil
}
