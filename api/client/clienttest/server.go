// Package clienttest runs in-memory Strata gRPC servers, for tests of code
// that uses package client (the client itself, the CLI) without a broker.
//
// It serves the API contract of api/strata/v1 in the simplest way. A Cluster
// is one or more brokers (node ids 1, 2, ...), each on its own loopback port,
// sharing one state: topics, and per partition an in-memory list of batches
// stored as received with offsets stamped (high watermark = log end, no
// retention), a leader, replicas and an ISR. Replication is not simulated:
// every broker sees the same log, so moving a leader loses nothing, and only
// the leader accepts Produce and serves Fetch and ListOffsets for a
// partition; the others answer NOT_LEADER_OR_FOLLOWER, as a real follower
// does. Tests move leaders (SetLeader), remove brokers (RemoveBroker) and
// pause them (Pause: a broker that holds calls without answering) to check
// that clients follow. It is not the broker and checks only what a client
// relies on; tests of the broker itself start the real one.
package clienttest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/record"
)

// defaultConfigs are the topic configs the server reports when a topic does
// not override them.
var defaultConfigs = map[string]string{
	"cleanup.policy":    "delete",
	"retention.ms":      "604800000",
	"max.message.bytes": "1048588",
}

// Cluster is a set of in-memory brokers sharing one cluster state.
type Cluster struct {
	mu      sync.Mutex
	brokers []*Server // by node id: brokers[i] has id i+1
	topics  map[string]*topic
	// changed is closed and replaced whenever a log grows or a leader
	// moves, waking fetches that wait.
	changed chan struct{}
}

// Server is one in-memory broker of a Cluster, listening on a loopback
// port.
type Server struct {
	stratav1.UnimplementedStrataServer

	// Addr is the host:port to dial.
	Addr string
	// ID is the broker's node id.
	ID int32

	c    *Cluster
	grpc *grpc.Server

	// The fields below are guarded by c.mu.

	// removed means the broker left the cluster (RemoveBroker).
	removed bool
	// noMetadata makes Metadata answer codes.Unimplemented, as a broker
	// from before replication.
	noMetadata bool
	// produceHook, if set, runs before every Produce; a non-nil error is
	// returned as the RPC's error.
	produceHook func(*stratav1.ProduceRequest) error
	produces    int
	metadatas   int
	// produced lists the partitions of every Produce call, in order.
	produced [][]int32
	// endStreams is closed (and replaced) by EndFetchStreams to end the
	// open FetchStream calls with endErr.
	endStreams chan struct{}
	endErr     error
	// streamStarts are the requests of every FetchStream call, in order.
	streamStarts []*stratav1.FetchRequest
	// resume is non-nil while the broker is paused, and closed by Resume.
	resume chan struct{}
	// held counts the calls that found the broker paused, by method.
	held map[string]int
}

type topic struct {
	id         string
	rf         int32
	overrides  map[string]string
	partitions []*partitionLog
}

type partitionLog struct {
	batches [][]byte // stamped batches, in offset order
	bases   []int64  // base offset of each batch
	end     int64    // log end offset = high watermark
	// stableTo, when set (SetLastStableOffset), holds the last stable
	// offset below the high watermark, as an open transaction does.
	stableTo *int64

	leader   int32 // -1: none
	epoch    int32
	replicas []int32
	isr      []int32
}

// NewServer starts a one-broker cluster and returns its broker (id 1). It
// stops when the test ends.
func NewServer(tb testing.TB) *Server {
	tb.Helper()
	return NewCluster(tb, 1).Broker(1)
}

// NewCluster starts n brokers, with node ids 1 to n, on 127.0.0.1. They
// stop when the test ends.
func NewCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	c := &Cluster{topics: make(map[string]*topic), changed: make(chan struct{})}
	for i := range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("clienttest: listen: %v", err)
		}
		s := &Server{
			Addr:       lis.Addr().String(),
			ID:         int32(i + 1),
			c:          c,
			endStreams: make(chan struct{}),
			held:       make(map[string]int),
		}
		s.grpc = grpc.NewServer(grpc.MaxRecvMsgSize(64<<20), grpc.MaxSendMsgSize(64<<20),
			grpc.ChainUnaryInterceptor(s.holdUnary), grpc.ChainStreamInterceptor(s.holdStream))
		stratav1.RegisterStrataServer(s.grpc, s)
		served := make(chan struct{})
		go func() {
			defer close(served)
			_ = s.grpc.Serve(lis)
		}()
		tb.Cleanup(func() {
			s.grpc.Stop()
			<-served
		})
		c.brokers = append(c.brokers, s)
	}
	return c
}

// Broker returns the broker with node id id.
func (c *Cluster) Broker(id int32) *Server {
	return c.brokers[id-1]
}

// Addrs returns the brokers' addresses, by node id, comma-separated: a
// bootstrap server list.
func (c *Cluster) Addrs() string {
	var out []string
	for _, s := range c.brokers {
		out = append(out, s.Addr)
	}
	return strings.Join(out, ",")
}

// SetLeader makes node leader (-1: none) lead the partition, as an election
// would: the leader epoch grows, and the leader joins the ISR. Fetches and
// streams the old leader serves for the partition end with
// NOT_LEADER_OR_FOLLOWER.
func (c *Cluster) SetLeader(topicName string, partition, leader int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pl := c.partitionLocked(topicName, partition)
	pl.leader = leader
	pl.epoch++
	if leader >= 0 && !slices.Contains(pl.isr, leader) {
		pl.isr = append(pl.isr, leader)
	}
	c.wakeLocked()
}

// Leader returns the node leading the partition, -1 when none does.
func (c *Cluster) Leader(topicName string, partition int32) int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.partitionLocked(topicName, partition).leader
}

// RemoveBroker stops a broker and takes it out of the cluster metadata, as
// when a broker dies and its session expires: each partition it led moves
// to its next live replica (or has no leader), and it leaves every ISR.
func (c *Cluster) RemoveBroker(id int32) {
	s := c.Broker(id)
	c.mu.Lock()
	s.removed = true
	for _, t := range c.topics {
		for _, pl := range t.partitions {
			pl.isr = slices.DeleteFunc(pl.isr, func(r int32) bool { return r == id })
			if pl.leader != id {
				continue
			}
			pl.leader = -1
			for _, r := range pl.replicas {
				if !c.Broker(r).removed {
					pl.leader = r
					break
				}
			}
			pl.epoch++
		}
	}
	c.wakeLocked()
	c.mu.Unlock()
	s.grpc.Stop()
}

// SetLastStableOffset holds the partition's last stable offset at off, as a
// transaction open from there would, until ClearLastStableOffset:
// READ_COMMITTED fetches read no batch from there on, and ListOffsets
// latest answers it to them. It must be at a batch boundary.
func (c *Cluster) SetLastStableOffset(topicName string, partition int32, off int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.partitionLocked(topicName, partition).stableTo = &off
	c.wakeLocked()
}

// ClearLastStableOffset lets the last stable offset follow the high
// watermark again, as when the transaction ends.
func (c *Cluster) ClearLastStableOffset(topicName string, partition int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.partitionLocked(topicName, partition).stableTo = nil
	c.wakeLocked()
}

// lastStable is the partition's last stable offset.
func (pl *partitionLog) lastStable() int64 {
	if pl.stableTo != nil && *pl.stableTo < pl.end {
		return *pl.stableTo
	}
	return pl.end
}

func (c *Cluster) partitionLocked(topicName string, partition int32) *partitionLog {
	t := c.topics[topicName]
	if t == nil || partition < 0 || int(partition) >= len(t.partitions) {
		panic(fmt.Sprintf("clienttest: no partition %s/%d", topicName, partition))
	}
	return t.partitions[partition]
}

func (c *Cluster) wakeLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// liveLocked returns the ids of the brokers in the cluster.
func (c *Cluster) liveLocked() []int32 {
	var out []int32
	for _, s := range c.brokers {
		if !s.removed {
			out = append(out, s.ID)
		}
	}
	return out
}

// Pause makes the broker stop answering without closing its connections,
// as a process stopped with SIGSTOP or cut off by a network partition:
// every call, those in progress included (a FetchStream sends nothing more),
// waits until Resume or until the caller gives up. The cluster metadata is
// not changed: move the broker's partitions with SetLeader, as the cluster
// would elect successors.
func (s *Server) Pause() {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.resume == nil {
		s.resume = make(chan struct{})
	}
}

// Resume ends a Pause: the calls held go on.
func (s *Server) Resume() {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.resume != nil {
		close(s.resume)
		s.resume = nil
	}
}

// HeldCalls returns how many calls of a method (its full name,
// stratav1.Strata_Produce_FullMethodName say) found the broker paused.
func (s *Server) HeldCalls(method string) int {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.held[method]
}

// hold waits while the broker is paused, counting the call as held, and
// fails with the caller's cancellation if it gives up first.
func (s *Server) hold(ctx context.Context, method string) error {
	s.c.mu.Lock()
	resume := s.resume
	if resume != nil {
		s.held[method]++
	}
	s.c.mu.Unlock()
	if resume == nil {
		return nil
	}
	select {
	case <-resume:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

func (s *Server) holdUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := s.hold(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (s *Server) holdStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := s.hold(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}

// SetMetadataUnimplemented makes the broker answer Metadata with
// codes.Unimplemented (or serve it again), as a broker from before
// replication.
func (s *Server) SetMetadataUnimplemented(on bool) {
	s.c.mu.Lock()
	s.noMetadata = on
	s.c.mu.Unlock()
}

// SetProduceHook installs fn to run before every Produce (nil removes it).
// It may sleep to delay requests, or return an error to fail them.
func (s *Server) SetProduceHook(fn func(*stratav1.ProduceRequest) error) {
	s.c.mu.Lock()
	s.produceHook = fn
	s.c.mu.Unlock()
}

// EndFetchStreams ends every open FetchStream call with err (as a broker
// shutting down ends them with codes.Unavailable). Calls opened later are not
// affected.
func (s *Server) EndFetchStreams(err error) {
	s.c.mu.Lock()
	s.endErr = err
	close(s.endStreams)
	s.endStreams = make(chan struct{})
	s.c.mu.Unlock()
}

// FetchStreams returns the requests of the FetchStream calls served so far,
// in the order they were opened.
func (s *Server) FetchStreams() []*stratav1.FetchRequest {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return append([]*stratav1.FetchRequest(nil), s.streamStarts...)
}

// Produces is the number of Produce calls served.
func (s *Server) Produces() int {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.produces
}

// MetadataCalls is the number of Metadata calls served.
func (s *Server) MetadataCalls() int {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.metadatas
}

// ProducedPartitions returns the partitions of every Produce call served,
// in the order of the calls.
func (s *Server) ProducedPartitions() [][]int32 {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	out := make([][]int32, len(s.produced))
	for i, ps := range s.produced {
		out[i] = slices.Clone(ps)
	}
	return out
}

// Batches returns copies of the stored batches of a partition.
func (s *Server) Batches(topicName string, partition int32) [][]byte {
	return s.c.Batches(topicName, partition)
}

// Batches returns copies of the stored batches of a partition.
func (c *Cluster) Batches(topicName string, partition int32) [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.topics[topicName]
	if t == nil || partition < 0 || int(partition) >= len(t.partitions) {
		return nil
	}
	var out [][]byte
	for _, b := range t.partitions[partition].batches {
		out = append(out, append([]byte(nil), b...))
	}
	return out
}

// CorruptBatch flips a byte in the records of the partition's index-th
// stored batch, so its CRC no longer matches, and returns the batch's offset
// range [base, next).
func (s *Server) CorruptBatch(topicName string, partition int32, index int) (base, next int64) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	b := s.c.partitionLocked(topicName, partition).batches[index]
	b[len(b)-1] ^= 0xff
	h, _ := record.ParseHeader(b)
	return h.BaseOffset, h.NextOffset()
}

func partitionInfo(i int, pl *partitionLog) *stratav1.PartitionInfo {
	return &stratav1.PartitionInfo{
		Partition:   int32(i),
		Leader:      pl.leader,
		LeaderEpoch: pl.epoch,
		Replicas:    slices.Clone(pl.replicas),
		Isr:         slices.Clone(pl.isr),
	}
}

func (c *Cluster) describeLocked(name string, t *topic) *stratav1.TopicDescription {
	d := &stratav1.TopicDescription{Name: name, TopicId: t.id, ReplicationFactor: t.rf}
	for i, pl := range t.partitions {
		d.Partitions = append(d.Partitions, partitionInfo(i, pl))
	}
	d.Configs = configEntries(t)
	return d
}

func configEntries(t *topic) []*stratav1.ConfigEntry {
	var out []*stratav1.ConfigEntry
	for k, v := range defaultConfigs {
		if _, ok := t.overrides[k]; !ok {
			out = append(out, &stratav1.ConfigEntry{Name: k, Value: v, Source: "default"})
		}
	}
	for k, v := range t.overrides {
		out = append(out, &stratav1.ConfigEntry{Name: k, Value: v, Source: "topic"})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (c *Cluster) topicLocked(name string) (*topic, error) {
	t := c.topics[name]
	if t == nil {
		return nil, status.Errorf(codes.NotFound, "topic %q does not exist", name)
	}
	return t, nil
}

func partitionError(code codes.Code, reason stratav1.ErrorReason, msg string) *stratav1.PartitionError {
	return &stratav1.PartitionError{Code: int32(code), Reason: reason.ReasonName(), Message: msg}
}

// leadLocked returns the partition's log if this broker leads it, else the
// error a non-leader answers. Lock should be held.
func (s *Server) leadLocked(topicName string, partition int32) (*partitionLog, *stratav1.PartitionError) {
	t := s.c.topics[topicName]
	if t == nil || partition < 0 || int(partition) >= len(t.partitions) {
		return nil, partitionError(codes.NotFound, stratav1.ErrorReason_UNKNOWN_TOPIC_OR_PARTITION, "unknown topic or partition")
	}
	pl := t.partitions[partition]
	switch pl.leader {
	case s.ID:
		return pl, nil
	case -1:
		return nil, partitionError(codes.Unavailable, stratav1.ErrorReason_LEADER_NOT_AVAILABLE, "the partition has no leader")
	}
	return nil, partitionError(codes.Unavailable, stratav1.ErrorReason_NOT_LEADER_OR_FOLLOWER, fmt.Sprintf("broker %d does not lead the partition", s.ID))
}

// Metadata implements stratav1.StrataServer.
func (s *Server) Metadata(_ context.Context, req *stratav1.MetadataRequest) (*stratav1.MetadataResponse, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.metadatas++
	if s.noMetadata {
		return nil, status.Error(codes.Unimplemented, "method Metadata not implemented")
	}
	resp := &stratav1.MetadataResponse{ControllerId: -1}
	for _, id := range s.c.liveLocked() {
		b := s.c.Broker(id)
		resp.Brokers = append(resp.Brokers, &stratav1.BrokerInfo{NodeId: id, GrpcAddr: b.Addr})
		if resp.ControllerId < 0 {
			resp.ControllerId = id
		}
	}
	names := req.GetTopics()
	if len(names) == 0 {
		for name := range s.c.topics {
			names = append(names, name)
		}
		sort.Strings(names)
	}
	for _, name := range names {
		tm := &stratav1.TopicMetadata{Name: name}
		if t := s.c.topics[name]; t == nil {
			tm.Error = partitionError(codes.NotFound, stratav1.ErrorReason_UNKNOWN_TOPIC_OR_PARTITION, fmt.Sprintf("topic %q does not exist", name))
		} else {
			tm.TopicId = t.id
			for i, pl := range t.partitions {
				tm.Partitions = append(tm.Partitions, partitionInfo(i, pl))
			}
		}
		resp.Topics = append(resp.Topics, tm)
	}
	return resp, nil
}

// CreateTopic implements stratav1.StrataServer. Partition p's replicas are
// the live brokers from the (p mod n)-th on, the first of them its leader.
func (s *Server) CreateTopic(_ context.Context, req *stratav1.CreateTopicRequest) (*stratav1.CreateTopicResponse, error) {
	if req.GetName() == "" || req.GetPartitions() <= 0 || req.GetReplicationFactor() <= 0 {
		return nil, status.Error(codes.InvalidArgument, "name, partitions and replication factor are required")
	}
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	live := s.c.liveLocked()
	if int(req.GetReplicationFactor()) > len(live) {
		return nil, status.Errorf(codes.InvalidArgument, "replication factor %d exceeds the %d available brokers", req.GetReplicationFactor(), len(live))
	}
	if _, ok := s.c.topics[req.GetName()]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "topic %q already exists", req.GetName())
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	t := &topic{id: hex.EncodeToString(id), rf: req.GetReplicationFactor(), overrides: map[string]string{}}
	for k, v := range req.GetConfigs() {
		t.overrides[k] = v
	}
	for p := range int(req.GetPartitions()) {
		var replicas []int32
		for i := range int(req.GetReplicationFactor()) {
			replicas = append(replicas, live[(p+i)%len(live)])
		}
		t.partitions = append(t.partitions, &partitionLog{leader: replicas[0], replicas: replicas, isr: slices.Clone(replicas)})
	}
	if !req.GetValidateOnly() {
		s.c.topics[req.GetName()] = t
	}
	return &stratav1.CreateTopicResponse{Topic: s.c.describeLocked(req.GetName(), t)}, nil
}

// DeleteTopic implements stratav1.StrataServer.
func (s *Server) DeleteTopic(_ context.Context, req *stratav1.DeleteTopicRequest) (*stratav1.DeleteTopicResponse, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if _, err := s.c.topicLocked(req.GetName()); err != nil {
		return nil, err
	}
	delete(s.c.topics, req.GetName())
	s.c.wakeLocked()
	return &stratav1.DeleteTopicResponse{}, nil
}

// ListTopics implements stratav1.StrataServer.
func (s *Server) ListTopics(context.Context, *stratav1.ListTopicsRequest) (*stratav1.ListTopicsResponse, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	resp := &stratav1.ListTopicsResponse{}
	for name, t := range s.c.topics {
		resp.Topics = append(resp.Topics, &stratav1.TopicSummary{Name: name, Partitions: int32(len(t.partitions)), ReplicationFactor: t.rf})
	}
	return resp, nil
}

// DescribeTopic implements stratav1.StrataServer.
func (s *Server) DescribeTopic(_ context.Context, req *stratav1.DescribeTopicRequest) (*stratav1.DescribeTopicResponse, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	t, err := s.c.topicLocked(req.GetName())
	if err != nil {
		return nil, err
	}
	return &stratav1.DescribeTopicResponse{Topic: s.c.describeLocked(req.GetName(), t)}, nil
}

// AlterTopicConfigs implements stratav1.StrataServer.
func (s *Server) AlterTopicConfigs(_ context.Context, req *stratav1.AlterTopicConfigsRequest) (*stratav1.AlterTopicConfigsResponse, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	t, err := s.c.topicLocked(req.GetName())
	if err != nil {
		return nil, err
	}
	for k, v := range req.GetSet() {
		t.overrides[k] = v
	}
	for _, k := range req.GetDelete() {
		delete(t.overrides, k)
	}
	return &stratav1.AlterTopicConfigsResponse{Configs: configEntries(t)}, nil
}

// Produce implements stratav1.StrataServer. It accepts record_batches only,
// for the partitions this broker leads.
func (s *Server) Produce(_ context.Context, req *stratav1.ProduceRequest) (*stratav1.ProduceResponse, error) {
	s.c.mu.Lock()
	s.produces++
	var parts []int32
	for _, pp := range req.GetPartitions() {
		parts = append(parts, pp.GetPartition())
	}
	s.produced = append(s.produced, parts)
	hook := s.produceHook
	s.c.mu.Unlock()
	if hook != nil {
		if err := hook(req); err != nil {
			return nil, err
		}
	}
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if _, err := s.c.topicLocked(req.GetTopic()); err != nil {
		return nil, err
	}
	resp := &stratav1.ProduceResponse{}
	grew := false
	for _, pp := range req.GetPartitions() {
		res := &stratav1.ProducePartitionResult{Partition: pp.GetPartition(), BaseOffset: -1}
		resp.Partitions = append(resp.Partitions, res)
		log, perr := s.leadLocked(req.GetTopic(), pp.GetPartition())
		if perr != nil {
			res.Error = perr
			continue
		}
		if len(pp.GetRecords()) > 0 {
			res.Error = partitionError(codes.Unimplemented, stratav1.ErrorReason_ERROR_REASON_UNSPECIFIED, "clienttest serves record_batches only")
			continue
		}
		// Validate every batch before appending any, so a request is
		// appended whole or not at all.
		var batches [][]byte
		data := pp.GetRecordBatches()
		for len(data) > 0 {
			h, err := record.Validate(data)
			if err != nil {
				res.Error = partitionError(codes.InvalidArgument, stratav1.ErrorReason_CORRUPT_MESSAGE, err.Error())
				break
			}
			batches = append(batches, append([]byte(nil), data[:h.Size()]...))
			data = data[h.Size():]
		}
		if res.Error != nil {
			continue
		}
		if len(batches) == 0 {
			res.Error = partitionError(codes.InvalidArgument, stratav1.ErrorReason_CORRUPT_MESSAGE, "no records")
			continue
		}
		base := log.end
		for _, b := range batches {
			h, _ := record.ParseHeader(b)
			record.SetBaseOffset(b, log.end)
			record.SetPartitionLeaderEpoch(b, log.epoch)
			log.batches = append(log.batches, b)
			log.bases = append(log.bases, log.end)
			log.end += int64(h.LastOffsetDelta) + 1
			res.RecordCount += h.RecordCount
		}
		grew = true
		if req.GetAcks() != stratav1.Acks_ACKS_NONE {
			res.BaseOffset = base
		}
	}
	if grew {
		s.c.wakeLocked()
	}
	return resp, nil
}

// readLocked returns the partition's result for a fetch at offset, and the
// number of record bytes in it.
// A committed read stops at the last stable offset.
func (s *Server) readLocked(fp *stratav1.FetchPartition, budget int32, committed bool) (*stratav1.FetchPartitionResult, int32) {
	res := &stratav1.FetchPartitionResult{Topic: fp.GetTopic(), Partition: fp.GetPartition(), NextOffset: fp.GetOffset()}
	log, perr := s.leadLocked(fp.GetTopic(), fp.GetPartition())
	if perr != nil {
		res.Error = perr
		return res, 0
	}
	res.HighWatermark = log.end
	lso := log.lastStable()
	res.LastStableOffset = &lso
	upTo := log.end
	if committed {
		upTo = lso
	}
	off := fp.GetOffset()
	if off < 0 || off > log.end {
		res.Error = partitionError(codes.OutOfRange, stratav1.ErrorReason_OFFSET_OUT_OF_RANGE, "offset out of range")
		return res, 0
	}
	// The batch containing off: the last one whose base is <= off.
	i := sort.Search(len(log.bases), func(i int) bool { return log.bases[i] > off }) - 1
	if i < 0 {
		i = 0
	}
	var size int32
	limit := min(budget, fp.GetMaxBytes())
	if fp.GetMaxBytes() <= 0 {
		limit = budget
	}
	for ; i < len(log.batches); i++ {
		b := log.batches[i]
		h, _ := record.ParseHeader(b)
		if h.NextOffset() <= off {
			continue
		}
		if h.BaseOffset >= upTo || size > 0 && size+int32(len(b)) > limit {
			break
		}
		res.RecordBatches = append(res.RecordBatches, b...)
		size += int32(len(b))
		res.NextOffset = h.NextOffset()
	}
	return res, size
}

// Fetch implements stratav1.StrataServer (decode = false only). A partition
// error answers at once.
func (s *Server) Fetch(ctx context.Context, req *stratav1.FetchRequest) (*stratav1.FetchResponse, error) {
	deadline := time.Now().Add(time.Duration(req.GetMaxWaitMs()) * time.Millisecond)
	for {
		// A long poll under way when the broker is paused does not
		// answer either.
		if err := s.hold(ctx, stratav1.Strata_Fetch_FullMethodName); err != nil {
			return nil, err
		}
		s.c.mu.Lock()
		resp, total, failed := s.fetchLocked(req)
		changed := s.c.changed
		s.c.mu.Unlock()
		wait := time.Until(deadline)
		if total >= req.GetMinBytes() || wait <= 0 || failed {
			return resp, nil
		}
		select {
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-changed:
		case <-time.After(wait):
		}
	}
}

func (s *Server) fetchLocked(req *stratav1.FetchRequest) (*stratav1.FetchResponse, int32, bool) {
	budget := req.GetMaxBytes()
	if budget <= 0 {
		budget = 64 << 20
	}
	resp := &stratav1.FetchResponse{}
	var total int32
	failed := false
	for _, fp := range req.GetPartitions() {
		b := budget - total
		if total > 0 && b <= 0 {
			b = 0
		}
		if total == 0 {
			b = max(b, 1) // the first batch is always returned
		}
		res, n := s.readLocked(fp, b, req.GetIsolationLevel() == stratav1.IsolationLevel_READ_COMMITTED)
		total += n
		failed = failed || res.GetError() != nil
		resp.Partitions = append(resp.Partitions, res)
	}
	return resp, total, failed
}

// FetchStream implements stratav1.StrataServer: it sends whatever is
// readable at the stream's positions, advancing them, until cancelled. A
// partition error (this broker no longer leads a partition, say) is sent,
// and ends the stream.
func (s *Server) FetchStream(req *stratav1.FetchRequest, stream grpc.ServerStreamingServer[stratav1.FetchResponse]) error {
	ctx := stream.Context()
	pos := make([]*stratav1.FetchPartition, len(req.GetPartitions()))
	for i, fp := range req.GetPartitions() {
		pos[i] = &stratav1.FetchPartition{Topic: fp.GetTopic(), Partition: fp.GetPartition(), Offset: fp.GetOffset(), MaxBytes: fp.GetMaxBytes()}
	}
	cur := &stratav1.FetchRequest{Partitions: pos, MaxBytes: req.GetMaxBytes(), IsolationLevel: req.GetIsolationLevel()}
	s.c.mu.Lock()
	end := s.endStreams
	s.streamStarts = append(s.streamStarts, req)
	s.c.mu.Unlock()
	for {
		// A paused broker's open streams go silent too.
		if err := s.hold(ctx, stratav1.Strata_FetchStream_FullMethodName); err != nil {
			return err
		}
		s.c.mu.Lock()
		resp, total, failed := s.fetchLocked(cur)
		changed := s.c.changed
		paused := s.resume != nil
		s.c.mu.Unlock()
		if paused {
			continue // paused since the hold: wait there
		}
		for i, r := range resp.GetPartitions() {
			if r.GetError() == nil {
				pos[i].Offset = r.GetNextOffset()
			}
		}
		if total > 0 || failed {
			if err := stream.Send(resp); err != nil {
				return err
			}
		}
		if failed {
			return nil
		}
		if total > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-end:
			s.c.mu.Lock()
			defer s.c.mu.Unlock()
			return s.endErr
		case <-changed:
		}
	}
}

// ListOffsets implements stratav1.StrataServer.
func (s *Server) ListOffsets(_ context.Context, req *stratav1.ListOffsetsRequest) (*stratav1.ListOffsetsResponse, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if _, err := s.c.topicLocked(req.GetTopic()); err != nil {
		return nil, err
	}
	resp := &stratav1.ListOffsetsResponse{}
	for _, lp := range req.GetPartitions() {
		res := &stratav1.ListOffsetsPartitionResult{Partition: lp.GetPartition(), Offset: -1, Timestamp: -1}
		resp.Partitions = append(resp.Partitions, res)
		log, perr := s.leadLocked(req.GetTopic(), lp.GetPartition())
		if perr != nil {
			res.Error = perr
			continue
		}
		switch ts := lp.GetTimestamp(); ts {
		case -2:
			res.Offset = 0
		case -1:
			res.Offset = log.end
			if req.GetIsolationLevel() == stratav1.IsolationLevel_READ_COMMITTED {
				res.Offset = log.lastStable()
			}
		default:
			for _, b := range log.batches {
				_ = record.ForEach(b, func(r *record.Record) error {
					if res.Offset < 0 && r.Timestamp >= ts {
						res.Offset, res.Timestamp = r.Offset, r.Timestamp
					}
					return nil
				})
				if res.Offset >= 0 {
					break
				}
			}
		}
	}
	return resp, nil
}
