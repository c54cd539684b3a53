// ListTransactions (key 66), versions 0-1.
//
// Lists the transactional ids this broker coordinates (the admin client
// asks every broker), filtered by state, producer id and, from v1, by how
// long the transaction has been open (KIP-994); ids the principal may not
// Describe are left out, as Kafka does. A state filter Kafka does not know
// is echoed in UnknownStateFilters. v2's regular-expression filter is not
// served.

package kafkaapi

import (
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker/txn"
)

func (s *Server) listTransactionsAPI() api {
	return api{key: 66, min: 0, max: 1, amplification: 200, handle: decoded(s.listTransactions), auth: checkedInHandler()}
}

// txnStates are the states ListTransactions filters on: Kafka's, including
// the two Strata never stores (Dead, PrepareEpochFence), which match
// nothing.
var txnStates = []string{txn.StateEmpty, txn.StateOngoing, txn.StatePrepareCommit, txn.StatePrepareAbort,
	txn.StateCompleteCommit, txn.StateCompleteAbort, "Dead", "PrepareEpochFence"}

func (s *Server) listTransactions(ctx context.Context, req *kmsg.ListTransactionsRequest) *kmsg.ListTransactionsResponse {
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	ctx, cancel := timeoutCtx(ctx, 0)
	defer cancel()
	f := txn.ListFilter{ProducerIDs: req.ProducerIDFilters}
	for _, st := range req.StateFilters {
		if !slices.Contains(txnStates, st) {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, st)
			continue
		}
		f.States = append(f.States, st)
	}
	if len(req.StateFilters) > 0 && len(f.States) == 0 {
		return resp // only unknown states: nothing matches
	}
	if req.Version >= 1 && req.DurationFilterMillis >= 0 {
		f.MinDuration = time.Duration(req.DurationFilterMillis) * time.Millisecond
	}
	list, err := s.core.ListTransactions(ctx, f)
	if err != nil {
		s.logger.Info("list transactions failed", "err", err)
		resp.ErrorCode = errorCode(err)
		return resp
	}
	for _, m := range list {
		if !s.authorizedQuietly(ctx, acl.OpDescribe, acl.ResourceTransactionalID, m.TransactionalID) {
			continue
		}
		st := kmsg.NewListTransactionsResponseTransactionState()
		st.TransactionalID, st.ProducerID, st.TransactionState = m.TransactionalID, m.ProducerID, m.State
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp
}
