package broker

// Follower fetching (KIP-392). A consumer whose fetch may be served by a
// follower (Kafka's Fetch v11 and later, the gRPC Fetch naming a rack) reads
// a follower's log up to the follower's high watermark, which the follower
// learns from its leader's replica fetch responses and which never passes
// what the ISR holds. A leader running with replica.selector.class =
// RackAwareReplicaSelector answers a consumer that names its rack, for a
// partition it does not share a rack with, with the in-sync replica of that
// rack that has the fetch offset (FetchResult.PreferredReadReplica) instead
// of records, as Kafka's RackAwareReplicaSelector does; the consumer then
// fetches from there.

// readablePartition returns the partition a fetch reads: one this broker
// leads, or, when the fetch allows follower reads, one it follows.
func (h *hostedTopics) readablePartition(topicName string, partition int32, followerOK bool) (p *Partition, follower bool, err error) {
	if !followerOK {
		p, err := h.leaderPartition(topicName, partition)
		return p, false, err
	}
	p, err = h.partition(topicName, partition)
	if err != nil {
		p, err = h.leaderPartition(topicName, partition) // its errors tell clients where to go
		return p, false, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.offline == nil && p.role == roleFollower {
		return p, true, nil
	}
	if err := p.leaderErrLocked(); err != nil {
		return nil, false, err
	}
	return p, false, nil
}

// syncedFollowers returns the log end offsets of the ISR's followers as of
// their last fetch in this leader epoch, for those whose log reaches offset.
// Empty unless this broker leads.
func (p *Partition) syncedFollowers(offset int64) map[int32]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.role != roleLeader {
		return nil
	}
	out := map[int32]int64{}
	for _, id := range p.state.ISR {
		if f := p.followers[id]; id != p.self && f != nil && f.leo >= offset {
			out[id] = f.leo
		}
	}
	return out
}

// preferredReadReplica picks the replica a consumer in clientRack should
// read p from at offset: -1 for this broker (the leader), which keeps
// consumers in its own rack, in a rack without an in-sync replica, or naming
// no rack. Among several in-sync, live replicas of the rack, the one with
// the most of the log wins (then the lowest id), as Kafka's selector takes
// the most caught-up.
func (b *Broker) preferredReadReplica(p *Partition, offset int64, clientRack string) int32 {
	if !b.rackAware || clientRack == "" {
		return -1
	}
	live := b.cluster.liveBrokers()
	if self, ok := find(live, b.cfg.NodeID); !ok || self.Rack == clientRack {
		return -1
	}
	best, bestLEO := int32(-1), int64(-1)
	for id, leo := range p.syncedFollowers(offset) {
		br, ok := find(live, id)
		if !ok || br.Rack != clientRack {
			continue
		}
		if leo > bestLEO || leo == bestLEO && id < best {
			best, bestLEO = id, leo
		}
	}
	return best
}

// Rack relations of a consumer to the broker serving it, the values of
// strata_consumer_fetch_bytes_total's rack label.
const (
	rackSame    = "same"
	rackOther   = "other"
	rackUnknown = "unknown" // the consumer or this broker names no rack
)

// rackRelation tells whether a consumer in clientRack is in this broker's
// rack, as its registration gives it.
func (b *Broker) rackRelation(clientRack string) string {
	if clientRack == "" {
		return rackUnknown
	}
	self, ok := find(b.cluster.liveBrokers(), b.cfg.NodeID)
	switch {
	case !ok || self.Rack == "":
		return rackUnknown
	case self.Rack == clientRack:
		return rackSame
	default:
		return rackOther
	}
}

// countServed adds what a fetch returns to the consumer bytes served.
func (b *Broker) countServed(results []FetchResult, clientRack string) {
	n := 0
	for i := range results {
		n += results[i].Len()
	}
	if n > 0 {
		b.metrics.consumerBytes.WithLabelValues(b.rackRelation(clientRack)).Add(float64(n))
	}
}
