package kafkaapi_test

import (
	"context"
	"maps"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/broker/kafkaapi"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/metastore/metastoretest"
)

// serveCore runs broker 1 on an in-memory metastore with its Kafka
// frontend, and returns the broker, the store and the Kafka address.
func serveCore(t *testing.T) (*broker.Broker, *metastoretest.Store, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	store := metastoretest.New()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := store.RegisterBroker(ctx, metastore.BrokerInfo{NodeID: 1, GRPCAddr: "127.0.0.1:1", KafkaAddr: lis.Addr().String(), StartedAt: time.Now()}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	b, err := broker.New(broker.Config{NodeID: 1, DataDir: t.TempDir()}, store)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	s := kafkaapi.New(b, kafkaapi.Config{NodeID: 1, Groups: b.Groups()})
	served := make(chan error, 1)
	go func() { served <- s.Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		<-served
	})
	return b, store, lis.Addr().String()
}

// TestTxnOffsetCommitThroughGroupMarkers commits a transaction's offsets
// with TxnOffsetCommit, sees them unstable to OffsetFetch with
// require_stable and invisible without it, and completes them through the
// broker's GroupMarkerWriter, as the transaction coordinator does.
func TestTxnOffsetCommitThroughGroupMarkers(t *testing.T) {
	b, store, addr := serveCore(t)
	ctx := ctxFor(t)
	if _, err := b.CreateTopic(ctx, broker.TopicSpec{Name: "t", Partitions: 2, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, addr)
	// The transaction as AddOffsetsToTxn leaves it.
	putTxn := func(state string, prev int64) int64 {
		t.Helper()
		m, err := store.PutTransaction(ctx, metastore.TransactionMeta{
			TransactionalID: "tx", ProducerID: 1000, ProducerEpoch: 4, LastProducerID: -1, LastProducerEpoch: -1,
			TimeoutMs: 60_000, State: state, Groups: []string{"g"}, UpdatedAt: time.Now(),
		}, prev)
		if err != nil {
			t.Fatal(err)
		}
		return m.Revision
	}
	rev := putTxn(metastore.TxnStateOngoing, 0)

	// A plain commit of t-1 before the transaction.
	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.Group, oc.Generation = "g", -1
	ocp := kmsg.NewOffsetCommitRequestTopicPartition()
	ocp.Partition, ocp.Offset = 1, 3
	oc.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{ocp}}}
	if resp, err := oc.RequestWith(ctx, cl); err != nil || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("plain commit: %v %+v", err, resp)
	}

	txnCommit := func(epoch int16, offsets map[string]map[int32]int64) map[string]map[int32]int16 {
		t.Helper()
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = "tx", "g", 1000, epoch
		for topic, parts := range offsets {
			rt := kmsg.NewTxnOffsetCommitRequestTopic()
			rt.Topic = topic
			for p, o := range parts {
				rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
				rp.Partition, rp.Offset = p, o
				md := "txn"
				rp.Metadata = &md
				rt.Partitions = append(rt.Partitions, rp)
			}
			req.Topics = append(req.Topics, rt)
		}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("TxnOffsetCommit: %v", err)
		}
		codes := map[string]map[int32]int16{}
		for _, rt := range resp.Topics {
			codes[rt.Topic] = map[int32]int16{}
			for _, rp := range rt.Partitions {
				codes[rt.Topic][rp.Partition] = rp.ErrorCode
			}
		}
		return codes
	}
	codes := txnCommit(4, map[string]map[int32]int64{"t": {0: 10, 1: 11}, "missing": {0: 1}})
	if codes["t"][0] != 0 || codes["t"][1] != 0 || codes["missing"][0] != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("TxnOffsetCommit codes %v, want t served and missing UNKNOWN_TOPIC_OR_PARTITION", codes)
	}
	if codes := txnCommit(3, map[string]map[int32]int64{"t": {0: 99}}); codes["t"][0] != kerr.ProducerFenced.Code {
		t.Errorf("older epoch: code %d, want PRODUCER_FENCED", codes["t"][0])
	}

	type fetched struct {
		offset int64
		code   int16
	}
	fetch := func(stable bool, all bool) map[int32]fetched {
		t.Helper()
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Group, req.RequireStable = "g", stable
		if !all {
			req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0, 1}}}
		}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil || resp.ErrorCode != 0 {
			t.Fatalf("OffsetFetch: %v, code %d", err, resp.ErrorCode)
		}
		got := map[int32]fetched{}
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				got[rp.Partition] = fetched{rp.Offset, rp.ErrorCode}
			}
		}
		return got
	}
	unstable := kerr.UnstableOffsetCommit.Code
	if got, want := fetch(true, false), (map[int32]fetched{0: {-1, unstable}, 1: {-1, unstable}}); !maps.Equal(got, want) {
		t.Errorf("require_stable while pending: %v, want %v", got, want)
	}
	if got, want := fetch(true, true), (map[int32]fetched{1: {-1, unstable}}); !maps.Equal(got, want) {
		t.Errorf("require_stable, all topics, while pending: %v, want %v", got, want)
	}
	if got, want := fetch(false, false), (map[int32]fetched{0: {-1, 0}, 1: {3, 0}}); !maps.Equal(got, want) {
		t.Errorf("without require_stable while pending: %v, want %v", got, want)
	}

	// EndTxn stored PrepareCommit: no more offsets join, and the
	// coordinator writes the groups' markers (twice: a retry is harmless).
	putTxn("PrepareCommit", rev)
	if codes := txnCommit(4, map[string]map[int32]int64{"t": {0: 50}}); codes["t"][0] != kerr.InvalidTxnState.Code {
		t.Errorf("commit after PrepareCommit: code %d, want INVALID_TXN_STATE", codes["t"][0])
	}
	w := b.TxnGroupMarkerWriter()
	for range 2 {
		if err := w.WriteGroupMarkers(ctx, []string{"g"}, 1000, 4, true); err != nil {
			t.Fatalf("group markers: %v", err)
		}
	}
	if got, want := fetch(true, false), (map[int32]fetched{0: {10, 0}, 1: {11, 0}}); !maps.Equal(got, want) {
		t.Errorf("require_stable after the commit: %v, want %v", got, want)
	}
}
