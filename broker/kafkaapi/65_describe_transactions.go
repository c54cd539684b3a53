// DescribeTransactions (key 65), version 0. Needs the transaction coordinator.
//
// Describes the transactional ids this broker coordinates; another's get
// NOT_COORDINATOR (the admin client asks each id's coordinator), an id
// without state TRANSACTIONAL_ID_NOT_FOUND, one without Describe
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED. An id named twice is answered
// once.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
)

func (s *Server) describeTransactionsAPI() api {
	return api{key: 65, min: 0, max: 0, amplification: 400, handle: decoded(s.describeTransactions), auth: checkedInHandler()}
}

func (s *Server) describeTransactions(ctx context.Context, req *kmsg.DescribeTransactionsRequest) *kmsg.DescribeTransactionsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	ctx, cancel := timeoutCtx(ctx, 0)
	defer cancel()
	seen := map[string]bool{}
	for _, id := range req.TransactionalIDs {
		// Each id is answered once: its state may name many partitions.
		if seen[id] {
			continue
		}
		seen[id] = true
		st := kmsg.NewDescribeTransactionsResponseTransactionState()
		st.TransactionalID, st.ProducerID, st.ProducerEpoch, st.StartTimestamp = id, -1, -1, -1
		if !s.authorized(ctx, acl.OpDescribe, acl.ResourceTransactionalID, id) {
			st.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
			resp.TransactionStates = append(resp.TransactionStates, st)
			continue
		}
		m, err := s.core.DescribeTransaction(ctx, id)
		if err != nil {
			st.ErrorCode = errorCode(err)
			resp.TransactionStates = append(resp.TransactionStates, st)
			continue
		}
		st.State, st.TimeoutMillis, st.ProducerID, st.ProducerEpoch = m.State, m.TimeoutMs, m.ProducerID, m.ProducerEpoch
		if !m.StartTime.IsZero() {
			st.StartTimestamp = m.StartTime.UnixMilli()
		}
		// Partitions come sorted by topic: one entry per topic.
		for _, tp := range m.Partitions {
			if n := len(st.Topics); n == 0 || st.Topics[n-1].Topic != tp.Topic {
				t := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
				t.Topic = tp.Topic
				st.Topics = append(st.Topics, t)
			}
			last := &st.Topics[len(st.Topics)-1]
			last.Partitions = append(last.Partitions, tp.Partition)
		}
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp
}
