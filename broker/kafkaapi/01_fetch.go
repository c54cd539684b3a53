// Fetch (key 1), versions 4-17.
//
// 4 is the first version whose records are record batch v2, the only format
// stored. A long poll is capped at maxFetchWait.
//
// From v7 fetches may use incremental fetch sessions (KIP-227, see
// fetchsession.go): a full fetch with session epoch 0 gets a session id,
// and the later ones send only what changed and get only what is new. An
// incremental fetch with nothing new waits out MaxWaitMillis / MinBytes as
// a full one does: the session's partitions are all fetched.
//
// v13 names topics by id (a topic deleted and created again under its name
// is another one: its old id gets UNKNOWN_TOPIC_ID); v15 moves the replica
// id into ReplicaState, which is ignored (every Kafka fetch is a
// consumer's: replication runs over gRPC); v16 answers a partition that
// has moved (NOT_LEADER_OR_FOLLOWER) with its current leader and that
// broker's endpoint (KIP-951); v17 only adds a follower's directory id.
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
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker"
)

func (s *Server) fetchAPI() api {
	return api{key: 1, min: 4, max: 17, amplification: 160, handle: decodedWithHeader(s.fetch), auth: checkedInHandler()}
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

func (s *Server) fetch(ctx context.Context, h header, req *kmsg.FetchRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	byID := req.Version >= 13
	var requested []sessionPartition
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			k := fetchSessionKey{partition: p.Partition}
			if byID {
				k.topicID = t.TopicID
			} else {
				k.topic = t.Topic
			}
			epoch := int32(-1)
			if req.Version >= 9 {
				epoch = p.CurrentLeaderEpoch
			}
			requested = append(requested, sessionPartition{key: k, fetchOffset: p.FetchOffset, maxBytes: p.PartitionMaxBytes,
				currentLeaderEpoch: epoch, highWatermark: -1, lastStableOffset: -1, logStartOffset: -1})
		}
	}
	plan, code := s.fetchSessions.plan(principalOf(ctx), req, requested)
	if code != 0 {
		resp.ErrorCode = code
		return resp
	}
	resp.SessionID = plan.sessionID

	// The topics' names (given, or found by id) and ids.
	names := make([]string, len(plan.parts))
	ids := make([]string, len(plan.parts))
	if byID {
		found := make(map[[16]byte][2]string, 8)
		for i, sp := range plan.parts {
			f, ok := found[sp.key.topicID]
			if !ok && sp.key.topicID != ([16]byte{}) {
				id := uuidString(sp.key.topicID)
				if name, known := s.core.TopicByID(id); known {
					f = [2]string{name, id}
				}
				found[sp.key.topicID] = f
			}
			names[i], ids[i] = f[0], f[1]
		}
	} else {
		for i, sp := range plan.parts {
			names[i] = sp.key.topic
		}
	}
	allowed := s.topicsAuthorized(ctx, acl.OpRead, func(yield func(string) bool) {
		for _, n := range names {
			if n != "" && !yield(n) {
				return
			}
		}
	})
	// fetched[i] is the place in parts of plan.parts[i], -1 if not fetched.
	fetched := make([]int, len(plan.parts))
	var parts []broker.FetchPartition
	for i, sp := range plan.parts {
		fetched[i] = -1
		if names[i] == "" || !allowedIn(allowed, names[i]) {
			continue
		}
		fetched[i] = len(parts)
		parts = append(parts, broker.FetchPartition{
			Topic: names[i], TopicID: ids[i], Partition: sp.key.partition, Offset: sp.fetchOffset, MaxBytes: sp.maxBytes,
			CheckLeaderEpoch: sp.currentLeaderEpoch >= 0, CurrentLeaderEpoch: sp.currentLeaderEpoch,
		})
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
			pooled.held = append(pooled.held, res)
		}
	}
	withRecords := make([]bool, len(plan.parts))
	moved := false // a partition is answered NOT_LEADER_OR_FOLLOWER
	place := 0     // the next partition's place in the response
	for i, sp := range plan.parts {
		rp := kmsg.NewFetchResponseTopicPartition()
		rp.Partition = sp.key.partition
		rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = -1, -1, -1
		rp.PreferredReadReplica = -1
		// Records are nullable on the wire, but librdkafka rejects a null
		// (size -1) set: an empty one is sent instead.
		rp.RecordBatches = []byte{}
		var pieces [][]byte
		j := fetched[i]
		switch {
		case names[i] == "" && byID:
			rp.ErrorCode = kerr.UnknownTopicID.Code
		case j < 0:
			rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
		case err != nil:
			rp.ErrorCode = errorCode(err)
		case results[j].Err != nil:
			rp.ErrorCode = errorCode(results[j].Err)
			if byID && errors.Is(results[j].Err, broker.ErrUnknownTopicID) {
				rp.ErrorCode = kerr.UnknownTopicID.Code
			}
		default:
			res := results[j]
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
			pieces = res.Pieces
		}
		withRecords[i] = len(rp.RecordBatches) > 0 || len(pieces) > 0
		if !plan.answered(i, &rp) && !withRecords[i] {
			continue
		}
		// Consecutive partitions of a topic share its entry, as in Kafka.
		if n := len(resp.Topics); n == 0 || resp.Topics[n-1].Topic != sp.key.topic || resp.Topics[n-1].TopicID != sp.key.topicID {
			rt := kmsg.NewFetchResponseTopic()
			rt.Topic, rt.TopicID = sp.key.topic, sp.key.topicID
			resp.Topics = append(resp.Topics, rt)
		}
		rt := &resp.Topics[len(resp.Topics)-1]
		if len(pieces) > 0 {
			pooled.pieces = append(pooled.pieces, make([][][]byte, place+1-len(pooled.pieces))...)
			pooled.pieces[place] = pieces
		}
		moved = moved || rp.ErrorCode == kerr.NotLeaderForPartition.Code
		rt.Partitions = append(rt.Partitions, rp)
		place++
	}
	plan.finish(withRecords)
	if req.Version >= 16 && moved {
		s.currentLeaders(ctx, h, resp)
	}
	return pooled
}

// currentLeaders tells a v16+ client where the partitions answered
// NOT_LEADER_OR_FOLLOWER went: each one's current leader, and the leaders'
// endpoints on the request's listener (KIP-951), so that it need not ask
// Metadata first. Leader epochs are those Metadata reports.
func (s *Server) currentLeaders(ctx context.Context, h header, resp *kmsg.FetchResponse) {
	var topics []string
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rp.ErrorCode == kerr.NotLeaderForPartition.Code {
				topics = append(topics, rt.Topic)
				break
			}
		}
	}
	byID := resp.Version >= 13
	var names map[[16]byte]string
	if byID {
		names = make(map[[16]byte]string, len(resp.Topics))
		for _, rt := range resp.Topics {
			if name, ok := s.core.TopicByID(uuidString(rt.TopicID)); ok {
				names[rt.TopicID] = name
			}
		}
		topics = topics[:0]
		for _, rt := range resp.Topics {
			if n := names[rt.TopicID]; n != "" {
				topics = append(topics, n)
			}
		}
	}
	if len(topics) == 0 {
		return
	}
	md, err := s.core.Metadata(ctx, topics)
	if err != nil {
		return
	}
	type leader struct{ id, epoch int32 }
	leaders := make(map[string][]leader, len(md.Topics))
	for _, tm := range md.Topics {
		for _, st := range tm.Partitions {
			leaders[tm.Name] = append(leaders[tm.Name], leader{st.Leader, st.LeaderEpoch})
		}
	}
	brokers, _ := s.liveBrokers(md, h.listener)
	named := map[int32]bool{}
	for i := range resp.Topics {
		rt := &resp.Topics[i]
		name := rt.Topic
		if byID {
			name = names[rt.TopicID]
		}
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			l := leaders[name]
			if rp.ErrorCode != kerr.NotLeaderForPartition.Code || rp.Partition < 0 || int(rp.Partition) >= len(l) || l[rp.Partition].id < 0 {
				continue
			}
			rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = l[rp.Partition].id, l[rp.Partition].epoch
			named[l[rp.Partition].id] = true
		}
	}
	for _, b := range brokers {
		if named[b.NodeID] {
			fb := kmsg.NewFetchResponseBroker()
			fb.NodeID, fb.Host, fb.Port, fb.Rack = b.NodeID, b.Host, b.Port, b.Rack
			resp.Brokers = append(resp.Brokers, fb)
		}
	}
}
