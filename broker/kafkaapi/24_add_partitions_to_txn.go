// AddPartitionsToTxn (key 24), versions 0-3. Needs the transaction coordinator.
//
// Adds partitions to the producer's transaction before it writes to them.
// Versions 4 and 5 batch several transactions and carry KIP-890's
// verify-only flag; Kafka keeps them for its brokers, and a Strata leader
// verifies a transactional batch by reading the coordinator's stored state
// instead (see broker/txnproduce.go), so only the client versions are
// served. A partition that does not exist is UNKNOWN_TOPIC_OR_PARTITION
// and the others OPERATION_NOT_ATTEMPTED, nothing added, as Kafka answers;
// so are a partition of a topic without Write and the others. PRODUCER_FENCED
// is answered from v2, INVALID_PRODUCER_EPOCH before.

package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/metastore"
)

func (s *Server) addPartitionsToTxnAPI() api {
	return api{key: 24, min: 0, max: 3, amplification: 90, handle: decoded(s.addPartitionsToTxn), auth: checkedInHandler()}
}

func (s *Server) addPartitionsToTxn(ctx context.Context, req *kmsg.AddPartitionsToTxnRequest) *kmsg.AddPartitionsToTxnResponse {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	ctx, cancel := timeoutCtx(ctx, 0)
	defer cancel()
	codes := map[metastore.TopicPartition]int16{}
	var parts []metastore.TopicPartition
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			tp := metastore.TopicPartition{Topic: t.Topic, Partition: p}
			if _, dup := codes[tp]; !dup {
				parts = append(parts, tp)
			}
			codes[tp] = 0
		}
	}
	// Kafka's order: the transactional id, then each topic; any refusal
	// leaves the other partitions OPERATION_NOT_ATTEMPTED.
	failed := false
	setAll := func(code int16) {
		for tp := range codes {
			codes[tp] = code
		}
	}
	if !s.authorized(ctx, acl.OpWrite, acl.ResourceTransactionalID, req.TransactionalID) {
		setAll(kerr.TransactionalIDAuthorizationFailed.Code)
		failed = true
	}
	if !failed {
		allowed := s.topicsAuthorized(ctx, acl.OpWrite, func(yield func(string) bool) {
			for _, t := range req.Topics {
				if !yield(t.Topic) {
					return
				}
			}
		})
		for tp := range codes {
			if !allowedIn(allowed, tp.Topic) {
				codes[tp] = kerr.TopicAuthorizationFailed.Code
				failed = true
			}
		}
	}
	if !failed {
		perPartition, err := s.core.AddPartitionsToTxn(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, parts)
		switch {
		case err != nil:
			s.logger.Info("add partitions to transaction refused", "transactional_id", req.TransactionalID, "err", err)
			setAll(txnErrorCode(err, req.Version >= 2))
		case len(perPartition) > 0:
			for tp, perr := range perPartition {
				codes[tp] = errorCode(perr)
			}
			failed = true
		}
	}
	if failed {
		for tp, c := range codes {
			if c == 0 {
				codes[tp] = kerr.OperationNotAttempted.Code
			}
		}
	}
	for _, t := range req.Topics {
		rt := kmsg.NewAddPartitionsToTxnResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p, codes[metastore.TopicPartition{Topic: t.Topic, Partition: p}]
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
