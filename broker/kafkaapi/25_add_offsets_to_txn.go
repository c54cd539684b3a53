// AddOffsetsToTxn (key 25), versions 0-4. Needs the transaction coordinator.
//
// Adds a consumer group to the producer's transaction, before the producer
// commits the group's offsets in it with TxnOffsetCommit (at the group's
// coordinator). Needs Write on the transactional id and Read on the group,
// as in Kafka. PRODUCER_FENCED is answered from v2, INVALID_PRODUCER_EPOCH
// before.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
)

func (s *Server) addOffsetsToTxnAPI() api {
	return api{key: 25, min: 0, max: 4, amplification: 48, handle: decoded(s.addOffsetsToTxn), auth: checkedInHandler()}
}

func (s *Server) addOffsetsToTxn(ctx context.Context, req *kmsg.AddOffsetsToTxnRequest) *kmsg.AddOffsetsToTxnResponse {
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	ctx, cancel := timeoutCtx(ctx, 0)
	defer cancel()
	switch {
	case !s.authorized(ctx, acl.OpWrite, acl.ResourceTransactionalID, req.TransactionalID):
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
	case !s.authorized(ctx, acl.OpRead, acl.ResourceGroup, req.Group):
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
	default:
		if err := s.core.AddOffsetsToTxn(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group); err != nil {
			s.logger.Info("add offsets to transaction refused", "transactional_id", req.TransactionalID, "group", req.Group, "err", err)
			resp.ErrorCode = txnErrorCode(err, req.Version >= 2)
		}
	}
	return resp
}
