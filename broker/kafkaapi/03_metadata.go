// Metadata (key 3), versions 0-13.
//
// 13 adds a top-level error code (KIP-1102), which Kafka sets to
// REBOOTSTRAP_REQUIRED when the client's bootstrap servers are all gone;
// it is set here only when the whole request fails. Partitions carry their leader epochs, which
// clients use to ignore stale metadata and, with OffsetForLeaderEpoch, to
// detect truncation after a leader change. Topics asked for by id only
// (v10+) are found in the topic list; an id that names none is answered
// UNKNOWN_TOPIC_ID, as from Kafka. Kafka's internal __consumer_offsets
// is listed, marked internal (see broker/internaltopic.go).
//
// With auto.create.topics.enable, v0-v3 create unknown topics whenever
// they are asked for, v4+ only when the client allows it; one request
// creates at most auto.create.topics.max.per.request of them, in the order
// it names them, and the rest stay UNKNOWN_TOPIC_OR_PARTITION until the
// client asks again, so that naming a thousand topics costs one request a
// bounded amount of work. Brokers are listed with their addresses on the
// listener the request came in on, as in Kafka; only brokers with that
// listener are listed; a partition whose leader is not among them
// is reported LEADER_NOT_AVAILABLE, so the client asks again. Any broker can
// serve admin requests, so when the controller is unknown this broker is
// named instead.
//
// DeleteTopics and DescribeCluster answer from the same helpers.

package kafkaapi

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/metastore"
)

func (s *Server) metadataAPI() api {
	return api{key: 3, min: 0, max: 13, amplification: 375, handle: decodedWithHeader(s.metadata), auth: checkedInHandler()}
}

// liveBrokers returns the brokers with the named Kafka listener, with
// their addresses on it, as Metadata and DescribeCluster list them, and
// their ids.
func (s *Server) liveBrokers(md broker.Metadata, listener string) ([]kmsg.MetadataResponseBroker, map[int32]bool) {
	live := make(map[int32]bool, len(md.Brokers))
	var out []kmsg.MetadataResponseBroker
	for _, b := range md.Brokers {
		addr := b.KafkaAddrFor(listener)
		if addr == "" {
			continue
		}
		host, port, err := hostPort(addr)
		if err != nil {
			s.logger.Warn("broker advertises a bad Kafka address", "node_id", b.NodeID, "listener", listener, "addr", addr, "err", err)
			continue
		}
		mb := kmsg.NewMetadataResponseBroker()
		mb.NodeID, mb.Host, mb.Port = b.NodeID, host, port
		if b.Rack != "" {
			mb.Rack = &b.Rack
		}
		out = append(out, mb)
		live[b.NodeID] = true
	}
	slices.SortFunc(out, func(a, b kmsg.MetadataResponseBroker) int { return int(a.NodeID - b.NodeID) })
	return out, live
}

// controllerFor names a live broker as the controller: clients send admin
// requests there, and any broker here can serve them, so when the elected
// controller is unknown or has no Kafka listener this broker stands in.
func (s *Server) controllerFor(md broker.Metadata, live map[int32]bool) int32 {
	if live[md.ControllerID] {
		return md.ControllerID
	}
	return s.cfg.NodeID
}

func (s *Server) metadata(ctx context.Context, h header, req *kmsg.MetadataRequest) *kmsg.MetadataResponse {
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	v := req.Version
	// v0: an empty list means every topic; v1+: null means every topic and
	// an empty list none.
	all := req.Topics == nil || (v == 0 && len(req.Topics) == 0)
	// A topic asked for twice is answered once, as Kafka does: an answer
	// per name asked would let a small request name a topic of thousands
	// of partitions again and again.
	var names []string
	seen := map[string]bool{}
	byID := map[[16]byte]bool{}
	for _, t := range req.Topics {
		switch {
		case t.Topic == nil:
			byID[t.TopicID] = true
		case !seen[*t.Topic]:
			seen[*t.Topic] = true
			names = append(names, *t.Topic)
		}
	}
	var fromID map[string]bool
	if len(byID) > 0 {
		ids := s.namesByID(ctx, byID)
		fromID = make(map[string]bool, len(ids))
		for _, n := range ids {
			if !seen[n] {
				fromID[n] = true
				names = append(names, n)
			}
		}
	}
	// A topic the principal may not describe is refused by name, whether
	// or not it exists, so that its existence is not told; asked for by
	// id, its name is not told either. Listing every topic leaves it out.
	var denied []kmsg.MetadataResponseTopic
	if s.authz != nil && !all {
		kept := names[:0]
		for _, n := range names {
			if s.authorized(ctx, acl.OpDescribe, acl.ResourceTopic, n) {
				kept = append(kept, n)
				continue
			}
			rt := kmsg.NewMetadataResponseTopic()
			rt.ErrorCode = kerr.TopicAuthorizationFailed.Code
			if fromID[n] {
				rt.TopicID = s.idOf(ctx, n)
			} else {
				name := n
				rt.Topic = &name
			}
			denied = append(denied, rt)
		}
		names = kept
	}
	var md broker.Metadata
	var err error
	if all || len(names) > 0 {
		md, err = s.core.Metadata(ctx, names)
		if all && err == nil && s.authz != nil {
			md.Topics = slices.DeleteFunc(md.Topics, func(tm broker.TopicMetadata) bool {
				return !s.authorizedQuietly(ctx, acl.OpDescribe, acl.ResourceTopic, tm.Name)
			})
		}
	} else {
		md, err = s.core.Metadata(ctx, []string{})
		md.Topics = nil
	}
	if err != nil {
		s.logger.Warn("metadata", "err", err)
		resp.ErrorCode = errorCode(err)
		return resp
	}
	// Metadata v0-v3 always auto-create (when the broker allows it); v4+
	// only when the client asks.
	if s.cfg.AutoCreateTopics && !all && (v < 4 || req.AllowAutoTopicCreation) {
		md = s.autoCreate(ctx, md)
	}
	brokers, live := s.liveBrokers(md, h.listener)
	resp.Brokers = brokers
	if id, err := s.core.ClusterID(ctx); err == nil {
		resp.ClusterID = &id
	}
	resp.ControllerID = s.controllerFor(md, live)
	for _, tm := range md.Topics {
		rt := kmsg.NewMetadataResponseTopic()
		name := tm.Name
		rt.Topic = &name
		rt.TopicID = topicID(tm.ID)
		rt.IsInternal = tm.Internal
		if tm.Err != nil {
			rt.ErrorCode = errorCode(tm.Err)
			if errors.Is(tm.Err, errTopicAuthorization) {
				rt.ErrorCode = kerr.TopicAuthorizationFailed.Code
			}
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		for _, st := range tm.Partitions {
			rt.Partitions = append(rt.Partitions, metadataPartition(st, live))
		}
		resp.Topics = append(resp.Topics, rt)
	}
	resp.Topics = append(resp.Topics, denied...)
	// An id that names no topic is answered UNKNOWN_TOPIC_ID, as Kafka
	// does, rather than left out: a client asking by id learns it is gone.
	if len(byID) > 0 {
		answered := make(map[[16]byte]bool, len(resp.Topics))
		for _, rt := range resp.Topics {
			answered[rt.TopicID] = true
		}
		for _, id := range slices.SortedFunc(maps.Keys(byID), func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) }) {
			if !answered[id] {
				rt := kmsg.NewMetadataResponseTopic()
				rt.TopicID, rt.ErrorCode = id, kerr.UnknownTopicID.Code
				resp.Topics = append(resp.Topics, rt)
			}
		}
	}
	return resp
}

func metadataPartition(st metastore.PartitionState, live map[int32]bool) kmsg.MetadataResponseTopicPartition {
	rp := kmsg.NewMetadataResponseTopicPartition()
	rp.Partition = st.Partition
	rp.Leader = st.Leader
	rp.LeaderEpoch = st.LeaderEpoch
	rp.Replicas = slices.Clone(st.Replicas)
	rp.ISR = slices.Clone(st.ISR)
	if rp.Replicas == nil {
		rp.Replicas = []int32{}
	}
	if rp.ISR == nil {
		rp.ISR = []int32{}
	}
	rp.OfflineReplicas = []int32{}
	for _, id := range st.Replicas {
		if !live[id] {
			rp.OfflineReplicas = append(rp.OfflineReplicas, id)
		}
	}
	if rp.Leader < 0 || !live[rp.Leader] {
		// A leader that just died is no use to a client: say there is none
		// so it asks again.
		rp.Leader = -1
		rp.ErrorCode = kerr.LeaderNotAvailable.Code
	}
	return rp
}

// autoCreate creates the unknown topics of md with the broker defaults, at
// most AutoCreateMaxPerRequest of them, and returns the metadata with them
// in it.
func (s *Server) autoCreate(ctx context.Context, md broker.Metadata) broker.Metadata {
	var created []string
	attempts, left := 0, 0
	for i, tm := range md.Topics {
		if tm.Err == nil || !errors.Is(tm.Err, broker.ErrUnknownTopicOrPartition) {
			continue
		}
		if attempts == s.cfg.AutoCreateMaxPerRequest {
			left++
			continue
		}
		attempts++
		// Creating needs Create on the cluster or on the topic.
		if !s.authorizedQuietly(ctx, acl.OpCreate, acl.ResourceCluster, acl.ClusterName) &&
			!s.authorized(ctx, acl.OpCreate, acl.ResourceTopic, tm.Name) {
			md.Topics[i].Err = errTopicAuthorization
			continue
		}
		_, err := s.core.CreateTopic(ctx, broker.TopicSpec{Name: tm.Name})
		if err != nil && !errors.Is(err, broker.ErrTopicExists) {
			s.logger.Info("auto-create topic failed", "topic", tm.Name, "err", err)
			md.Topics[i].Err = err
			continue
		}
		if err == nil {
			s.logger.Info("auto-created topic", "topic", tm.Name)
		}
		created = append(created, tm.Name)
	}
	if left > 0 {
		s.logger.Info("auto-create limit reached; the request's other unknown topics wait for the client to ask again",
			"created", len(created), "left", left, "limit", s.cfg.AutoCreateMaxPerRequest)
	}
	if len(created) == 0 {
		return md
	}
	fresh, err := s.core.Metadata(ctx, created)
	if err != nil {
		return md
	}
	for _, ft := range fresh.Topics {
		for i := range md.Topics {
			if md.Topics[i].Name == ft.Name {
				md.Topics[i] = ft
			}
		}
	}
	return md
}

// idOf is the id of the topic name, zero when it has none.
func (s *Server) idOf(ctx context.Context, name string) [16]byte {
	topics, err := s.core.ListTopics(ctx)
	if err != nil {
		return [16]byte{}
	}
	for _, t := range topics {
		if t.Name == name {
			return topicID(t.ID)
		}
	}
	return [16]byte{}
}

// namesByID resolves topic ids (Metadata v10+ may name topics only by id).
func (s *Server) namesByID(ctx context.Context, ids map[[16]byte]bool) []string {
	topics, err := s.core.ListTopics(ctx)
	if err != nil {
		return nil
	}
	var names []string
	for _, t := range topics {
		if ids[topicID(t.ID)] {
			names = append(names, t.Name)
		}
	}
	// The internal topic is not stored; its id is the one Metadata lists.
	if cid, err := s.core.ClusterID(ctx); err == nil && ids[broker.OffsetsTopicUUID(cid)] && !slices.Contains(names, broker.OffsetsTopic) {
		names = append(names, broker.OffsetsTopic)
	}
	return names
}
