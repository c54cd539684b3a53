// Produce (key 0), versions 0-12.
//
// Only record batch v2 is stored, yet the range starts at 0: a client that
// sends message sets v0/v1 gets UNSUPPORTED_FOR_MESSAGE_FORMAT for those
// partitions, while librdkafka only turns on gzip, snappy and lz4 when it
// sees Produce 0 offered. It stops at 12 because 13 names topics by id.
//
// Acks must be 0, 1 or -1. Transactional batches need the request's
// transactional id (Write on it), and a producer's first batch of a
// transaction in a partition is verified with the coordinator's stored
// state (KIP-890 part 1: INVALID_TXN_STATE for a partition not added). A
// batch naming a producer id the cluster never issued gets
// UNKNOWN_PRODUCER_ID where Kafka would accept it, so that clients cannot
// make partitions keep state for ids they invent. The
// topics of one request are appended in parallel, so with acks=all their
// replication overlaps, and so are the partitions of a topic when it names
// many (see broker.Produce). An acks=0 request gets no response at all.
// Writing to the internal __consumer_offsets is INVALID_TOPIC_EXCEPTION,
// as Kafka answers a client (see broker/internaltopic.go).

package kafkaapi

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker"
)

const produceKey = 0

func (s *Server) produceAPI() api {
	return api{key: produceKey, min: 0, max: 12, handle: decoded(s.produce),
		cost: produceCost, releasesFrame: true, auth: checkedInHandler()}
}

// batchMagicOffset is where a record batch (or an old message set entry)
// keeps its format version: after the 8-byte base offset, the 4-byte length
// and, for v2, the 4-byte leader epoch (v0/v1 have a CRC there).
const batchMagicOffset = 16

// produceParallelTopics is how many topics of one request are appended at
// once: enough for a producer's request to all the topics it writes, with
// a goroutine (and its stack) each, which a request naming thousands of
// topics must not multiply.
const produceParallelTopics = 64

// produce returns kmsg.Response rather than its concrete type: with acks=0
// it answers nothing, and that nil must stay a nil interface.
func (s *Server) produce(ctx context.Context, req *kmsg.ProduceRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	acks := broker.Acks(req.Acks)
	code := int16(0)
	switch {
	case req.Acks != 0 && req.Acks != 1 && req.Acks != -1:
		code = kerr.InvalidRequiredAcks.Code
	case req.TransactionID != nil && !s.authorized(ctx, acl.OpWrite, acl.ResourceTransactionalID, *req.TransactionID):
		code = kerr.TransactionalIDAuthorizationFailed.Code
	}
	txnID := ""
	if req.TransactionID != nil {
		txnID = *req.TransactionID
	}
	timeout := time.Duration(req.TimeoutMillis) * time.Millisecond
	resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	for i := range req.Topics {
		rt := &resp.Topics[i]
		*rt = kmsg.NewProduceResponseTopic()
		rt.Topic = req.Topics[i].Topic
		if code != 0 {
			for _, p := range req.Topics[i].Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, code
				rt.Partitions = append(rt.Partitions, rp)
			}
		}
	}
	switch {
	case code != 0:
	case len(req.Topics) == 1:
		s.produceTopic(ctx, req.Version, txnID, acks, timeout, &req.Topics[0], &resp.Topics[0])
	default:
		s.produceTopics(ctx, req, resp, txnID, acks, timeout)
	}
	if req.Acks == 0 {
		return nil
	}
	return resp
}

// produceTopics appends the topics of req, answering in resp. Topics are
// independent: with acks=all they replicate in parallel rather than one
// after the other, a few at a time, as a request may name thousands.
func (s *Server) produceTopics(ctx context.Context, req *kmsg.ProduceRequest, resp *kmsg.ProduceResponse, txnID string, acks broker.Acks, timeout time.Duration) {
	var next atomic.Int64
	work := func() {
		for i := int(next.Add(1) - 1); i < len(req.Topics); i = int(next.Add(1) - 1) {
			s.produceTopic(ctx, req.Version, txnID, acks, timeout, &req.Topics[i], &resp.Topics[i])
		}
	}
	var wg sync.WaitGroup
	for range min(len(req.Topics), produceParallelTopics) - 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work()
		}()
	}
	work()
	wg.Wait()
}

func (s *Server) produceTopic(ctx context.Context, version int16, txnID string, acks broker.Acks, timeout time.Duration, t *kmsg.ProduceRequestTopic, rt *kmsg.ProduceResponseTopic) {
	rt.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(t.Partitions))
	if !s.authorized(ctx, acl.OpWrite, acl.ResourceTopic, t.Topic) {
		for i, p := range t.Partitions {
			rp := &rt.Partitions[i]
			*rp = kmsg.NewProduceResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, kerr.TopicAuthorizationFailed.Code
			rp.BaseOffset, rp.LogStartOffset = -1, -1
		}
		return
	}
	parts := make([]broker.PartitionBatches, 0, len(t.Partitions))
	at := make([]int, 0, len(t.Partitions)) // response index of each of parts
	for i, p := range t.Partitions {
		rp := &rt.Partitions[i]
		*rp = kmsg.NewProduceResponseTopicPartition()
		rp.Partition = p.Partition
		rp.BaseOffset, rp.LogStartOffset = -1, -1
		if len(p.Records) > batchMagicOffset && p.Records[batchMagicOffset] != 2 {
			// Message sets v0/v1 are not stored: every record is a v2 batch.
			rp.ErrorCode = kerr.UnsupportedForMessageFormat.Code
			msg := "only record batch v2 (magic 2) is accepted"
			rp.ErrorMessage = &msg
			continue
		}
		parts = append(parts, broker.PartitionBatches{Partition: p.Partition, Batches: p.Records})
		at = append(at, i)
	}
	if len(parts) == 0 {
		return
	}
	var results []broker.ProduceResult
	var err error
	if txnID != "" {
		results, err = s.core.ProduceTransactional(ctx, txnID, t.Topic, acks, timeout, parts)
	} else {
		results, err = s.core.ProduceWithTimeout(ctx, t.Topic, acks, timeout, parts)
	}
	if err != nil {
		for _, i := range at {
			rt.Partitions[i].ErrorCode = errorCode(err)
			if version >= 8 {
				rt.Partitions[i].ErrorMessage = errorMessage(err)
			}
		}
		return
	}
	for j, res := range results {
		rp := &rt.Partitions[at[j]]
		if res.Err != nil {
			rp.ErrorCode = errorCode(res.Err)
			if version >= 8 {
				rp.ErrorMessage = errorMessage(res.Err)
			}
			continue
		}
		rp.BaseOffset = res.BaseOffset
		rp.LogStartOffset = res.LogStartOffset
	}
}
