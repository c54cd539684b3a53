// Fetch (key 1), versions 4-12.
//
// 4 is the first version whose records are record batch v2, the only format
// stored; 13 names topics by id. There are no fetch sessions (KIP-227): the
// session id is always 0, so clients keep sending full requests. A long poll
// is capped at maxFetchWait.
//
// isolation_level 1 (read_committed) reads up to the last stable offset and
// gets the aborted transactions of the records returned, which the client
// filters out; 0 reads up to the high watermark and gets null. Both get the
// last stable offset, as from Kafka. Records read from the object store are
// not yet held to the last stable offset nor carry their aborted
// transactions (ARCHITECTURE.md, "Transactions").
//
// v11 carries the consumer's rack (KIP-392). From v11 on a follower serves
// consumers from its own log up to its high watermark, and a leader with
// replica.selector.class=RackAwareReplicaSelector answers a partition with
// preferred_read_replica (and no records) when an in-sync replica in the
// consumer's rack can serve it, as Kafka does (see broker/readreplica.go).
//
// Record data is not copied into the response: it stays in pooled buffers,
// or in the chunks read from the object store, and fetchwrite.go writes it
// from there.

package kafkaapi

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker"
)

func (s *Server) fetchAPI() api {
	return api{key: 1, min: 4, max: 12, amplification: 160, handle: decoded(s.fetch), auth: checkedInHandler()}
}

// maxFetchWait caps a fetch's long poll, whatever the client asks.
const maxFetchWait = 30 * time.Second

// pooledResponse is a response whose record data lives in pooled buffers,
// given back once the response is written (the record batches are written
// from them, not copied into the response).
type pooledResponse struct {
	kmsg.Response
	buffers []*[]byte
	pool    broker.BufferPool
	// pieces are the record batches of the partitions read from the
	// object store, by the partition's place in the response (nil for the
	// others), written in place of their RecordBatches; held are the
	// results holding them.
	pieces [][][]byte
	held   []broker.FetchResult
}

func (r *pooledResponse) release() {
	for _, b := range r.buffers {
		r.pool.Put(b)
	}
	r.buffers = nil
	for i := range r.held {
		r.held[i].Release()
	}
	r.held = nil
}

func (s *Server) fetch(ctx context.Context, req *kmsg.FetchRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	// Fetch sessions (KIP-227) are optional for a broker: session id 0 tells
	// the client there is none, and it keeps sending full requests.
	resp.SessionID = 0
	var parts []broker.FetchPartition
	allowed := s.topicsAuthorized(ctx, acl.OpRead, func(yield func(string) bool) {
		for _, t := range req.Topics {
			if !yield(t.Topic) {
				return
			}
		}
	})
	for _, t := range req.Topics {
		if !allowedIn(allowed, t.Topic) {
			continue
		}
		for _, p := range t.Partitions {
			parts = append(parts, broker.FetchPartition{
				Topic: t.Topic, Partition: p.Partition, Offset: p.FetchOffset, MaxBytes: p.PartitionMaxBytes,
			})
		}
	}
	if len(parts) == 0 && allowed == nil {
		return resp
	}
	maxBytes := req.MaxBytes
	if req.Version < 3 || maxBytes <= 0 {
		maxBytes = 0 // the core's default
	}
	wait := min(time.Duration(max(req.MaxWaitMillis, 0))*time.Millisecond, maxFetchWait)
	var results []broker.FetchResult
	var err error
	if len(parts) > 0 {
		opts := broker.FetchOptions{
			MaxBytes: maxBytes, MinBytes: req.MinBytes, MaxWait: wait, Buffers: s.buffers, Pieces: true,
		}
		if req.IsolationLevel == 1 {
			opts.IsolationLevel = broker.ReadCommitted
		}
		if req.Version >= 11 {
			// Replication runs over gRPC: every Kafka fetch is a consumer's.
			opts.FollowerReads, opts.ClientRack, opts.RedirectToRackReplica = true, req.Rack, true
		}
		results, err = s.core.Fetch(ctx, parts, opts)
	}
	pooled := &pooledResponse{Response: resp, pool: s.buffers}
	for _, res := range results {
		if res.Buffer != nil {
			pooled.buffers = append(pooled.buffers, res.Buffer)
		}
		if res.Pieces != nil {
			if pooled.pieces == nil {
				pooled.pieces = make([][][]byte, len(results))
			}
			pooled.held = append(pooled.held, res)
		}
	}
	i := 0
	for _, t := range req.Topics {
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic = t.Topic
		if !allowedIn(allowed, t.Topic) {
			for _, p := range t.Partitions {
				rp := kmsg.NewFetchResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, kerr.TopicAuthorizationFailed.Code
				rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = -1, -1, -1
				rp.PreferredReadReplica = -1
				rp.RecordBatches = []byte{}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		for range t.Partitions {
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.Partition = parts[i].Partition
			rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = -1, -1, -1
			rp.PreferredReadReplica = -1
			// Records are nullable on the wire, but librdkafka rejects a null
			// (size -1) set: an empty one is sent instead.
			rp.RecordBatches = []byte{}
			switch {
			case err != nil:
				rp.ErrorCode = errorCode(err)
			case results[i].Err != nil:
				rp.ErrorCode = errorCode(results[i].Err)
			default:
				res := results[i]
				rp.HighWatermark = res.HighWatermark
				rp.LastStableOffset = res.LastStableOffset
				rp.LogStartOffset = res.LogStartOffset
				if res.Aborted != nil {
					rp.AbortedTransactions = make([]kmsg.FetchResponseTopicPartitionAbortedTransaction, len(res.Aborted))
					for k, a := range res.Aborted {
						at := &rp.AbortedTransactions[k]
						at.ProducerID, at.FirstOffset = a.ProducerID, a.FirstOffset
					}
				}
				rp.PreferredReadReplica = res.PreferredReadReplica
				if len(res.Data) > 0 {
					rp.RecordBatches = res.Data
				}
				if len(res.Pieces) > 0 {
					pooled.pieces[i] = res.Pieces
				}
			}
			rt.Partitions = append(rt.Partitions, rp)
			i++
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return pooled
}
