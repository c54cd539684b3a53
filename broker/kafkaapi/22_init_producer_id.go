// InitProducerId (key 22), versions 0-4.
//
// Idempotent producers only: the core refuses a transactional id, as there
// are no transactions. Ids come from blocks reserved in etcd in increasing
// order, so every broker can tell an id the cluster issued from one a
// client made up (Produce refuses those with UNKNOWN_PRODUCER_ID).

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
	id, epoch, err := s.core.InitProducerID(ctx, txn)
	if err != nil {
		s.logger.Info("init producer id refused", "transactional_id", txn, "err", err)
		resp.ErrorCode = errorCode(err)
		resp.ProducerID, resp.ProducerEpoch = -1, -1
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = id, epoch
	return resp
}
