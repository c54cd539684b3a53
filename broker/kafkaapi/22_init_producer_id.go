// InitProducerId (key 22), versions 0-4.
//
// Without a transactional id (an idempotent producer) any broker answers:
// ids come from blocks reserved in etcd in increasing order, so every
// broker can tell an id the cluster issued from one a client made up
// (Produce refuses those with UNKNOWN_PRODUCER_ID). With one, the id's
// transaction coordinator answers (FindCoordinator key type 1): the id's
// producer id with its epoch bumped, which fences older producers of it;
// from v3 the producer id and epoch the client had (KIP-360) let it bump
// its own epoch after an error. PRODUCER_FENCED is answered from v4,
// INVALID_PRODUCER_EPOCH before.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
)

func (s *Server) initProducerIDAPI() api {
	return api{key: 22, min: 0, max: 4, amplification: 55, handle: decoded(s.initProducerID), auth: checkedInHandler()}
}

func (s *Server) initProducerID(ctx context.Context, req *kmsg.InitProducerIDRequest) *kmsg.InitProducerIDResponse {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	ctx, cancel := timeoutCtx(ctx, 0)
	defer cancel()
	txn := ""
	if req.TransactionalID != nil {
		txn = *req.TransactionalID
	}
	// A transactional producer needs Write on its transactional id; an
	// idempotent one IdempotentWrite on the cluster or, as Kafka allows
	// since idempotence became the default (KIP-679), Write on any topic.
	switch {
	case req.TransactionalID != nil && !s.authorized(ctx, acl.OpWrite, acl.ResourceTransactionalID, txn):
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
	case req.TransactionalID == nil && !s.authorizedQuietly(ctx, acl.OpIdempotentWrite, acl.ResourceCluster, acl.ClusterName) &&
		!s.authorizedOnAny(ctx, acl.OpWrite, acl.ResourceTopic):
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
	}
	if resp.ErrorCode != 0 {
		resp.ProducerID, resp.ProducerEpoch = -1, -1
		return resp
	}
	var id int64
	var epoch int16
	var err error
	if req.TransactionalID != nil {
		id, epoch, err = s.core.InitTransactionalProducerID(ctx, txn, req.TransactionTimeoutMillis, req.ProducerID, req.ProducerEpoch)
	} else {
		id, epoch, err = s.core.InitProducerID(ctx, txn)
	}
	if err != nil {
		s.logger.Info("init producer id refused", "transactional_id", txn, "err", err)
		resp.ErrorCode = txnErrorCode(err, req.Version >= 4)
		resp.ProducerID, resp.ProducerEpoch = -1, -1
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = id, epoch
	return resp
}
