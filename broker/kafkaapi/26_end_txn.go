// EndTxn (key 26), versions 0-4. Needs the transaction coordinator.
//
// Commits or aborts the producer's transaction. The answer comes once the
// outcome is stored (PrepareCommit or PrepareAbort) and the markers are
// written (Kafka answers before its markers; answering after them spares
// the client CONCURRENT_TRANSACTIONS on its next transaction). Markers
// that cannot be written within 10 s are left to the coordinator's ticks:
// the answer is then NONE all the same, the outcome being decided, and
// requests of the id get CONCURRENT_TRANSACTIONS until they are written. v5 is KIP-890 part 2's
// (an epoch bump at every commit), which Strata does not implement.
// PRODUCER_FENCED is answered from v2, INVALID_PRODUCER_EPOCH before.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
)

func (s *Server) endTxnAPI() api {
	return api{key: 26, min: 0, max: 4, amplification: 48, handle: decoded(s.endTxn), auth: checkedInHandler()}
}

func (s *Server) endTxn(ctx context.Context, req *kmsg.EndTxnRequest) *kmsg.EndTxnResponse {
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	ctx, cancel := timeoutCtx(ctx, 0)
	defer cancel()
	if !s.authorized(ctx, acl.OpWrite, acl.ResourceTransactionalID, req.TransactionalID) {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp
	}
	if err := s.core.EndTxn(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit); err != nil {
		s.logger.Info("end transaction refused", "transactional_id", req.TransactionalID, "commit", req.Commit, "err", err)
		resp.ErrorCode = txnErrorCode(err, req.Version >= 2)
	}
	return resp
}
