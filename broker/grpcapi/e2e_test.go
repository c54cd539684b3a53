package grpcapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/metastore/metastoretest"
	"github.com/strata-broker/strata/record"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// poisonPool is broker.ReadBuffers with accounting, and poison: a buffer given back
// is overwritten at once, then handed out again dirty. A buffer given back
// while gRPC still sends it reaches the client as garbage (and, under -race,
// as a data race); one that is not fully overwritten by a read shows up as
// garbage too.
type poisonPool struct {
	inner *broker.ReadBuffers

	mu         sync.Mutex
	gets, puts int
}

func (p *poisonPool) Get(n int) *[]byte {
	p.mu.Lock()
	p.gets++
	p.mu.Unlock()
	return p.inner.Get(n)
}

func (p *poisonPool) Put(b *[]byte) {
	full := (*b)[:cap(*b)]
	for i := range full {
		full[i] = 0xdd
	}
	p.mu.Lock()
	p.puts++
	p.mu.Unlock()
	p.inner.Put(b)
}

func (p *poisonPool) counts() (gets, puts int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gets, p.puts
}

// waitAllBack waits until every buffer handed out but `kept` is back: gRPC
// gives them back after writing, a moment after the client has them.
func (p *poisonPool) waitAllBack(t *testing.T, kept int) {
	t.Helper()
	await.NoError(t, 10*time.Second, "buffers to come back", func() error {
		gets, puts := p.counts()
		if puts > gets-kept { // more back than handed out: no point waiting
			t.Fatalf("%d buffers handed out, %d given back; want %d back", gets, puts, gets-kept)
		}
		if puts < gets-kept {
			return fmt.Errorf("%d buffers handed out, %d given back; want %d back", gets, puts, gets-kept)
		}
		return nil
	})
}

// startBroker runs a broker (embedded etcd, broker core, gRPC with
// ServerOptions) whose fetches read into a poisonPool.
func startBroker(t *testing.T) (stratav1.StrataClient, *poisonPool) {
	t.Helper()
	c, pool, _, _ := startBrokerWithPeers(t)
	return c, pool
}

// startBrokerWithPeers is startBroker with the brokers peers registered
// beside it at an address where nothing listens: they count as live
// replicas, whose part a test plays. It also returns the broker's address
// and the peers' replica secrets.
func startBrokerWithPeers(t *testing.T, peers ...int32) (stratav1.StrataClient, *poisonPool, string, map[int32]metastore.ReplicaSecret) {
	t.Helper()
	pool := &poisonPool{inner: broker.NewReadBuffers()}
	secrets := map[int32]metastore.ReplicaSecret{}
	_, c, addr := serveBroker(t, testBroker{peers: peers, buffers: pool, secrets: secrets})
	return c, pool, addr, secrets
}

// testBroker is what serveBroker runs.
type testBroker struct {
	settings map[string]string
	// peers are registered beside broker 1 at an address where nothing
	// listens: they count as live replicas, whose part a test plays.
	peers   []int32
	buffers *poisonPool // nil: the server's own
	// secrets, if not nil, receives the peers' replica secrets, which a
	// test playing a peer fetches with.
	secrets map[int32]metastore.ReplicaSecret
	// passwords and tokens verify credentials; serverOpts are added to the
	// server's (TLS credentials).
	passwords  PasswordVerifier
	tokens     TokenValidator
	serverOpts []grpc.ServerOption
	// store is the broker's metastore; nil: a new one.
	store *metastoretest.Store
}

// serveBroker runs broker 1 (in-memory metastore, broker core, gRPC with
// ServerOptions) and returns its core, a client with gRPC's own codec (what
// the server sends must be plain protobuf, and what plain protobuf sends it
// must decode) and its address.
func serveBroker(t *testing.T, tb testBroker) (*broker.Broker, stratav1.StrataClient, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	store := tb.store
	if store == nil {
		store = metastoretest.New()
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addrs := map[int32]string{1: lis.Addr().String()}
	for _, id := range tb.peers {
		addrs[id] = "127.0.0.1:1"
	}
	for id, addr := range addrs {
		reg, err := store.RegisterBroker(ctx, metastore.BrokerInfo{NodeID: id, GRPCAddr: addr, StartedAt: time.Now()}, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { reg.Close() })
		if tb.secrets != nil && id != 1 {
			tb.secrets[id] = reg.ReplicaSecret()
		}
	}
	b, err := broker.New(broker.Config{NodeID: 1, DataDir: t.TempDir(), Settings: tb.settings}, store)
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
	api := New(b, Config{Passwords: tb.passwords, Tokens: tb.tokens})
	if tb.buffers != nil {
		api.buffers = tb.buffers
	}
	gs := grpc.NewServer(append(api.ServerOptions(), tb.serverOpts...)...)
	api.Register(gs)
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	t.Cleanup(func() {
		gs.Stop()
		<-served
	})
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return b, stratav1.NewStrataClient(conn), lis.Addr().String()
}

// Record i of a partition has key "k<i>" and a value of valueSize bytes
// derived from i, so whatever is read back can be checked.
const valueSize = 1000

func value(i int) []byte {
	return bytes.Repeat([]byte(strconv.Itoa(i)+";"), valueSize)[:valueSize]
}

// produce appends records [from, from+n) to partition p, as one batch.
func produce(t *testing.T, c stratav1.StrataClient, topic string, p int32, from, n int) {
	t.Helper()
	if err := tryProduce(c, topic, p, from, n); err != nil {
		t.Fatal(err)
	}
}

func tryProduce(c stratav1.StrataClient, topic string, p int32, from, n int) error {
	bld := record.NewBuilder(time.Now().UnixMilli(), 0)
	for i := from; i < from+n; i++ {
		bld.Append(&record.Record{Key: []byte("k" + strconv.Itoa(i)), Value: value(i)})
	}
	batch, err := bld.Build(record.None)
	if err != nil {
		return err
	}
	resp, err := c.Produce(context.Background(), &stratav1.ProduceRequest{
		Topic: topic, Partitions: []*stratav1.ProducePartition{{Partition: p, RecordBatches: batch}},
	})
	if err != nil {
		return err
	}
	if pe := resp.GetPartitions()[0].GetError(); pe != nil {
		return fmt.Errorf("produce: %v", pe)
	}
	return nil
}

// checkBatches checks the records of data from offset from on, and returns
// the offset after the last.
func checkBatches(data []byte, from int64) (int64, error) {
	next := from
	it := record.NewBatches(data)
	for it.Next() {
		if _, err := record.Validate(it.Bytes()); err != nil {
			return 0, fmt.Errorf("batch at %d: %w", it.Header().BaseOffset, err)
		}
		err := record.ForEach(it.Bytes(), func(r *record.Record) error {
			if r.Offset < next {
				return nil
			}
			if r.Offset != next || string(r.Key) != "k"+strconv.Itoa(int(r.Offset)) || !bytes.Equal(r.Value, value(int(r.Offset))) {
				return fmt.Errorf("record at %d (want %d): key %q", r.Offset, next, r.Key)
			}
			next++
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	return next, it.Err()
}

func createTopic(t *testing.T, c stratav1.StrataClient, name string, partitions int32) {
	t.Helper()
	if _, err := c.CreateTopic(context.Background(), &stratav1.CreateTopicRequest{Name: name, Partitions: partitions, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
}

// TestFetchGivesBuffersBackAfterSending fetches concurrently with bounds that
// exercise every read path (whole reads, a first batch larger than the bound,
// empty partitions) and checks every record and that every buffer returns to
// the pool, poisoned, only after it was sent.
func TestFetchGivesBuffersBackAfterSending(t *testing.T) {
	c, pool := startBroker(t)
	createTopic(t, c, "t", 3)
	const batches, perBatch = 20, 150 // ~150 KB batches
	for b := 0; b < batches; b++ {
		produce(t, c, "t", 0, b*perBatch, perBatch)
		produce(t, c, "t", 1, b*perBatch, perBatch)
	}
	total := int64(batches * perBatch)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g, maxBytes := range []int32{0, 1 << 20, 100 << 10, 1} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pos := []int64{int64(g * 7), 0, 0}
			for pos[0] < total || pos[1] < total {
				req := &stratav1.FetchRequest{MaxBytes: maxBytes}
				for p := range pos {
					req.Partitions = append(req.Partitions, &stratav1.FetchPartition{Topic: "t", Partition: int32(p), Offset: pos[p], MaxBytes: maxBytes})
				}
				resp, err := c.Fetch(context.Background(), req)
				if err != nil {
					errs <- err
					return
				}
				for p, pr := range resp.GetPartitions() {
					if pr.GetError() != nil {
						errs <- fmt.Errorf("partition %d: %v", p, pr.GetError())
						return
					}
					next, err := checkBatches(pr.GetRecordBatches(), pos[p])
					if err != nil {
						errs <- fmt.Errorf("max bytes %d, partition %d from %d: %w", maxBytes, p, pos[p], err)
						return
					}
					pos[p] = next
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	pool.waitAllBack(t, 0)
}

// TestLongPollGivesBuffersBack: a fetch waiting for more than there is reads
// several times; the earlier reads' buffers are given back too.
func TestLongPollGivesBuffersBack(t *testing.T) {
	c, pool := startBroker(t)
	createTopic(t, c, "t", 1)
	produce(t, c, "t", 0, 0, 10)
	resp, err := c.Fetch(context.Background(), &stratav1.FetchRequest{
		MinBytes: 1 << 20, MaxWaitMs: 50,
		Partitions: []*stratav1.FetchPartition{{Topic: "t", Partition: 0, Offset: 3}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if next, err := checkBatches(resp.GetPartitions()[0].GetRecordBatches(), 3); err != nil || next != 10 {
		t.Fatalf("read to %d: %v", next, err)
	}
	if gets, _ := pool.counts(); gets < 3 {
		t.Fatalf("%d reads; want one before waiting, one after registering, one at the deadline", gets)
	}
	pool.waitAllBack(t, 0)
}

// TestDecodedFetchKeepsBuffers: decoded records alias the read buffer, so it
// is left to the garbage collector rather than given back.
func TestDecodedFetchKeepsBuffers(t *testing.T) {
	c, pool := startBroker(t)
	createTopic(t, c, "t", 2)
	produce(t, c, "t", 0, 0, 20)
	resp, err := c.Fetch(context.Background(), &stratav1.FetchRequest{
		Decode:     true,
		Partitions: []*stratav1.FetchPartition{{Topic: "t", Partition: 0, Offset: 5}, {Topic: "t", Partition: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	recs := resp.GetPartitions()[0].GetRecords()
	if len(recs) != 15 {
		t.Fatalf("%d records, want 15", len(recs))
	}
	for i, r := range recs {
		if off := int64(5 + i); r.GetOffset() != off || !bytes.Equal(r.GetValue(), value(int(off))) {
			t.Fatalf("record %d: offset %d, value %.20q", i, r.GetOffset(), r.GetValue())
		}
	}
	pool.waitAllBack(t, 1) // partition 0's buffer; partition 1 read nothing
}

// TestFetchStreamGivesBuffersBack follows a partition while it is written.
func TestFetchStreamGivesBuffersBack(t *testing.T) {
	c, pool := startBroker(t)
	createTopic(t, c, "t", 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := c.FetchStream(ctx, &stratav1.FetchRequest{
		MaxWaitMs:  100,
		Partitions: []*stratav1.FetchPartition{{Topic: "t", Partition: 0}, {Topic: "t", Partition: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	const rounds, perBatch = 30, 100
	produced := make(chan error, 1)
	go func() {
		for r := 0; r < rounds; r++ {
			if err := tryProduce(c, "t", int32(r%2), r/2*perBatch, perBatch); err != nil {
				produced <- err
				return
			}
		}
		produced <- nil
	}()
	pos := []int64{0, 0}
	want := int64(rounds / 2 * perBatch)
	for pos[0] < want || pos[1] < want {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		for p, pr := range resp.GetPartitions() {
			if pos[p], err = checkBatches(pr.GetRecordBatches(), pos[p]); err != nil {
				t.Fatalf("partition %d: %v", p, err)
			}
		}
	}
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := stream.Recv(); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("stream after cancel: %v", err)
	}
	pool.waitAllBack(t, 0)
}
