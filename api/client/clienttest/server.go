// Package clienttest runs an in-memory Strata gRPC server, for tests of code
// that uses package client (the client itself, the CLI) without a broker.
//
// It serves the API contract of api/strata/v1 in the simplest way: one
// broker (id 1), each partition an in-memory list of batches stored as
// received with offsets stamped, high watermark = log end, no replication,
// no retention. It is not the broker and checks only what a client relies on;
// tests of the broker itself start the real one.
package clienttest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/broker/record"
)

// defaultConfigs are the topic configs the server reports when a topic does
// not override them.
var defaultConfigs = map[string]string{
	"cleanup.policy":    "delete",
	"retention.ms":      "604800000",
	"max.message.bytes": "1048588",
}

// Server is an in-memory Strata server listening on a loopback port.
type Server struct {
	stratav1.UnimplementedStrataServer

	// Addr is the host:port to dial.
	Addr string

	grpc *grpc.Server

	mu     sync.Mutex
	topics map[string]*topic
	// changed is closed and replaced whenever a log grows.
	changed chan struct{}
	// produceHook, if set, runs before every Produce; a non-nil error is
	// returned as the RPC's error.
	produceHook func(*stratav1.ProduceRequest) error
	produces    int
	// endStreams is closed (and replaced) by EndFetchStreams to end the
	// open FetchStream calls with endErr.
	endStreams chan struct{}
	endErr     error
	// streamStarts are the requests of every FetchStream call, in order.
	streamStarts []*stratav1.FetchRequest
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
}

// NewServer starts a server on 127.0.0.1 and stops it when the test ends.
func NewServer(tb testing.TB) *Server {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("clienttest: listen: %v", err)
	}
	s := &Server{
		Addr:       lis.Addr().String(),
		grpc:       grpc.NewServer(grpc.MaxRecvMsgSize(64<<20), grpc.MaxSendMsgSize(64<<20)),
		topics:     make(map[string]*topic),
		changed:    make(chan struct{}),
		endStreams: make(chan struct{}),
	}
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
	return s
}

// SetProduceHook installs fn to run before every Produce (nil removes it).
// It may sleep to delay requests, or return an error to fail them.
func (s *Server) SetProduceHook(fn func(*stratav1.ProduceRequest) error) {
	s.mu.Lock()
	s.produceHook = fn
	s.mu.Unlock()
}

// EndFetchStreams ends every open FetchStream call with err (as a broker
// shutting down ends them with codes.Unavailable). Calls opened later are not
// affected.
func (s *Server) EndFetchStreams(err error) {
	s.mu.Lock()
	s.endErr = err
	close(s.endStreams)
	s.endStreams = make(chan struct{})
	s.mu.Unlock()
}

// FetchStreams returns the requests of the FetchStream calls served so far,
// in the order they were opened.
func (s *Server) FetchStreams() []*stratav1.FetchRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*stratav1.FetchRequest(nil), s.streamStarts...)
}

// Produces is the number of Produce calls served.
func (s *Server) Produces() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.produces
}

// Batches returns copies of the stored batches of a partition.
func (s *Server) Batches(topicName string, partition int32) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topics[topicName]
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
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.topics[topicName].partitions[partition].batches[index]
	b[len(b)-1] ^= 0xff
	h, _ := record.ParseHeader(b)
	return h.BaseOffset, h.NextOffset()
}

func (s *Server) describe(name string, t *topic) *stratav1.TopicDescription {
	d := &stratav1.TopicDescription{Name: name, TopicId: t.id, ReplicationFactor: t.rf}
	for i := range t.partitions {
		d.Partitions = append(d.Partitions, &stratav1.PartitionInfo{
			Partition: int32(i), Leader: 1, Replicas: []int32{1}, Isr: []int32{1},
		})
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

func (s *Server) topicLocked(name string) (*topic, error) {
	t := s.topics[name]
	if t == nil {
		return nil, status.Errorf(codes.NotFound, "topic %q does not exist", name)
	}
	return t, nil
}

// CreateTopic implements stratav1.StrataServer.
func (s *Server) CreateTopic(_ context.Context, req *stratav1.CreateTopicRequest) (*stratav1.CreateTopicResponse, error) {
	if req.GetName() == "" || req.GetPartitions() <= 0 || req.GetReplicationFactor() <= 0 {
		return nil, status.Error(codes.InvalidArgument, "name, partitions and replication factor are required")
	}
	if req.GetReplicationFactor() > 1 {
		return nil, status.Errorf(codes.InvalidArgument, "replication factor %d exceeds the 1 available broker", req.GetReplicationFactor())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.topics[req.GetName()]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "topic %q already exists", req.GetName())
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	t := &topic{id: hex.EncodeToString(id), rf: req.GetReplicationFactor(), overrides: map[string]string{}}
	for k, v := range req.GetConfigs() {
		t.overrides[k] = v
	}
	for range req.GetPartitions() {
		t.partitions = append(t.partitions, &partitionLog{})
	}
	if !req.GetValidateOnly() {
		s.topics[req.GetName()] = t
	}
	return &stratav1.CreateTopicResponse{Topic: s.describe(req.GetName(), t)}, nil
}

// DeleteTopic implements stratav1.StrataServer.
func (s *Server) DeleteTopic(_ context.Context, req *stratav1.DeleteTopicRequest) (*stratav1.DeleteTopicResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.topicLocked(req.GetName()); err != nil {
		return nil, err
	}
	delete(s.topics, req.GetName())
	return &stratav1.DeleteTopicResponse{}, nil
}

// ListTopics implements stratav1.StrataServer.
func (s *Server) ListTopics(context.Context, *stratav1.ListTopicsRequest) (*stratav1.ListTopicsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &stratav1.ListTopicsResponse{}
	for name, t := range s.topics {
		resp.Topics = append(resp.Topics, &stratav1.TopicSummary{Name: name, Partitions: int32(len(t.partitions)), ReplicationFactor: t.rf})
	}
	return resp, nil
}

// DescribeTopic implements stratav1.StrataServer.
func (s *Server) DescribeTopic(_ context.Context, req *stratav1.DescribeTopicRequest) (*stratav1.DescribeTopicResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.topicLocked(req.GetName())
	if err != nil {
		return nil, err
	}
	return &stratav1.DescribeTopicResponse{Topic: s.describe(req.GetName(), t)}, nil
}

// AlterTopicConfigs implements stratav1.StrataServer.
func (s *Server) AlterTopicConfigs(_ context.Context, req *stratav1.AlterTopicConfigsRequest) (*stratav1.AlterTopicConfigsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.topicLocked(req.GetName())
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

// Produce implements stratav1.StrataServer. It accepts record_batches only.
func (s *Server) Produce(_ context.Context, req *stratav1.ProduceRequest) (*stratav1.ProduceResponse, error) {
	s.mu.Lock()
	s.produces++
	hook := s.produceHook
	s.mu.Unlock()
	if hook != nil {
		if err := hook(req); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.topicLocked(req.GetTopic())
	if err != nil {
		return nil, err
	}
	resp := &stratav1.ProduceResponse{}
	grew := false
	for _, pp := range req.GetPartitions() {
		res := &stratav1.ProducePartitionResult{Partition: pp.GetPartition(), BaseOffset: -1}
		resp.Partitions = append(resp.Partitions, res)
		if pp.GetPartition() < 0 || int(pp.GetPartition()) >= len(t.partitions) {
			res.Error = &stratav1.PartitionError{Code: int32(codes.NotFound), Message: "no such partition"}
			continue
		}
		if len(pp.GetRecords()) > 0 {
			res.Error = &stratav1.PartitionError{Code: int32(codes.Unimplemented), Message: "clienttest serves record_batches only"}
			continue
		}
		log := t.partitions[pp.GetPartition()]
		// Validate every batch before appending any, so a request is
		// appended whole or not at all.
		var batches [][]byte
		data := pp.GetRecordBatches()
		for len(data) > 0 {
			h, err := record.Validate(data)
			if err != nil {
				res.Error = &stratav1.PartitionError{Code: int32(codes.InvalidArgument), Message: err.Error()}
				break
			}
			batches = append(batches, append([]byte(nil), data[:h.Size()]...))
			data = data[h.Size():]
		}
		if res.Error != nil {
			continue
		}
		if len(batches) == 0 {
			res.Error = &stratav1.PartitionError{Code: int32(codes.InvalidArgument), Message: "no records"}
			continue
		}
		base := log.end
		for _, b := range batches {
			h, _ := record.ParseHeader(b)
			record.SetBaseOffset(b, log.end)
			record.SetPartitionLeaderEpoch(b, 0)
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
		close(s.changed)
		s.changed = make(chan struct{})
	}
	return resp, nil
}

// readLocked returns the partition's result for a fetch at offset, and the
// number of record bytes in it.
func (s *Server) readLocked(fp *stratav1.FetchPartition, budget int32) (*stratav1.FetchPartitionResult, int32) {
	res := &stratav1.FetchPartitionResult{Topic: fp.GetTopic(), Partition: fp.GetPartition(), NextOffset: fp.GetOffset()}
	t := s.topics[fp.GetTopic()]
	if t == nil || fp.GetPartition() < 0 || int(fp.GetPartition()) >= len(t.partitions) {
		res.Error = &stratav1.PartitionError{Code: int32(codes.NotFound), Message: "unknown topic or partition"}
		return res, 0
	}
	log := t.partitions[fp.GetPartition()]
	res.HighWatermark = log.end
	off := fp.GetOffset()
	if off < 0 || off > log.end {
		res.Error = &stratav1.PartitionError{Code: int32(codes.OutOfRange), Message: "offset out of range"}
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
		if size > 0 && size+int32(len(b)) > limit {
			break
		}
		res.RecordBatches = append(res.RecordBatches, b...)
		size += int32(len(b))
		res.NextOffset = h.NextOffset()
	}
	return res, size
}

// Fetch implements stratav1.StrataServer (decode = false only).
func (s *Server) Fetch(ctx context.Context, req *stratav1.FetchRequest) (*stratav1.FetchResponse, error) {
	deadline := time.Now().Add(time.Duration(req.GetMaxWaitMs()) * time.Millisecond)
	for {
		s.mu.Lock()
		resp, total := s.fetchLocked(req)
		changed := s.changed
		s.mu.Unlock()
		wait := time.Until(deadline)
		if total >= req.GetMinBytes() || wait <= 0 {
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

func (s *Server) fetchLocked(req *stratav1.FetchRequest) (*stratav1.FetchResponse, int32) {
	budget := req.GetMaxBytes()
	if budget <= 0 {
		budget = 64 << 20
	}
	resp := &stratav1.FetchResponse{}
	var total int32
	for _, fp := range req.GetPartitions() {
		b := budget - total
		if total > 0 && b <= 0 {
			b = 0
		}
		if total == 0 {
			b = max(b, 1) // the first batch is always returned
		}
		res, n := s.readLocked(fp, b)
		total += n
		resp.Partitions = append(resp.Partitions, res)
	}
	return resp, total
}

// FetchStream implements stratav1.StrataServer: it sends whatever is
// readable at the stream's positions, advancing them, until cancelled.
func (s *Server) FetchStream(req *stratav1.FetchRequest, stream grpc.ServerStreamingServer[stratav1.FetchResponse]) error {
	ctx := stream.Context()
	pos := make([]*stratav1.FetchPartition, len(req.GetPartitions()))
	for i, fp := range req.GetPartitions() {
		pos[i] = &stratav1.FetchPartition{Topic: fp.GetTopic(), Partition: fp.GetPartition(), Offset: fp.GetOffset(), MaxBytes: fp.GetMaxBytes()}
	}
	cur := &stratav1.FetchRequest{Partitions: pos, MaxBytes: req.GetMaxBytes()}
	s.mu.Lock()
	end := s.endStreams
	s.streamStarts = append(s.streamStarts, req)
	s.mu.Unlock()
	for {
		s.mu.Lock()
		resp, total := s.fetchLocked(cur)
		changed := s.changed
		s.mu.Unlock()
		failed := false
		for i, r := range resp.GetPartitions() {
			if r.GetError() != nil {
				failed = true
			} else {
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
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.endErr
		case <-changed:
		}
	}
}

// ListOffsets implements stratav1.StrataServer.
func (s *Server) ListOffsets(_ context.Context, req *stratav1.ListOffsetsRequest) (*stratav1.ListOffsetsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.topicLocked(req.GetTopic())
	if err != nil {
		return nil, err
	}
	resp := &stratav1.ListOffsetsResponse{}
	for _, lp := range req.GetPartitions() {
		res := &stratav1.ListOffsetsPartitionResult{Partition: lp.GetPartition(), Offset: -1, Timestamp: -1}
		resp.Partitions = append(resp.Partitions, res)
		if lp.GetPartition() < 0 || int(lp.GetPartition()) >= len(t.partitions) {
			res.Error = &stratav1.PartitionError{Code: int32(codes.NotFound), Message: "no such partition"}
			continue
		}
		log := t.partitions[lp.GetPartition()]
		switch ts := lp.GetTimestamp(); ts {
		case -2:
			res.Offset = 0
		case -1:
			res.Offset = log.end
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
