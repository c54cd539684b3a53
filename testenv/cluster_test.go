package testenv_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

const (
	// expiryTimeout bounds how long a registration may outlive its broker:
	// the 2 s session timeout, etcd's lease expiry check (every 500 ms) and
	// the revoke going through raft, with room for a loaded machine.
	expiryTimeout = 10 * time.Second
	// probeTimeout bounds one RPC that checks whether a broker answers.
	probeTimeout = time.Second
)

// A cluster with MinIO starts every server, publishes every address in
// env.json, creates the bucket and registers every broker in etcd under the
// address of its proxy.
func TestClusterStartsEtcdMinIOAndBrokers(t *testing.T) {
	testenvtest.SkipShort(t)
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{MinIO: true})

	b, err := os.ReadFile(filepath.Join(c.Dir(), "env.json"))
	if err != nil {
		t.Fatal(err)
	}
	var env testenv.Env
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		t.Fatalf("env.json: %v\n%s", err, b)
	}
	if len(env.Brokers) != 3 {
		t.Fatalf("env.json has %d brokers, want 3:\n%s", len(env.Brokers), b)
	}
	for i, be := range env.Brokers {
		if be.NodeID != int32(i+1) {
			t.Errorf("broker %d has node id %d", i, be.NodeID)
		}
		for name, addr := range map[string]string{"grpc": be.GRPCAddr, "direct grpc": be.DirectGRPCAddr, "kafka": be.KafkaAddr, "http": be.HTTPAddr} {
			checkLoopback(t, fmt.Sprintf("broker %d %s", be.NodeID, name), addr)
		}
		if be.GRPCAddr == be.DirectGRPCAddr {
			t.Errorf("broker %d advertises its own listener %s, not a proxy", be.NodeID, be.GRPCAddr)
		}
		if be.DataDir == "" || be.LogPath == "" {
			t.Errorf("broker %d: data dir %q, log %q", be.NodeID, be.DataDir, be.LogPath)
		}
	}
	if len(env.Etcd.Endpoints) != 1 || env.Etcd.Prefix != "/strata" {
		t.Errorf("etcd: %+v", env.Etcd)
	}
	for _, e := range env.Etcd.Endpoints {
		checkLoopback(t, "etcd", strings.TrimPrefix(e, "http://"))
	}
	s3 := env.S3
	if s3 == nil {
		t.Fatalf("env.json has no s3:\n%s", b)
	}
	checkLoopback(t, "s3", strings.TrimPrefix(s3.Endpoint, "http://"))
	if !strings.HasPrefix(s3.Endpoint, "http://") || s3.Bucket == "" || s3.Region != "us-east-1" || s3.AccessKey == "" || s3.SecretKey == "" {
		t.Errorf("s3: %+v", *s3)
	}
	if env.ObjectStore != testenv.ObjectStoreURL(*s3) {
		t.Errorf("env.json object_store %q, want %q", env.ObjectStore, testenv.ObjectStoreURL(*s3))
	}
	for _, want := range []string{"AWS_ACCESS_KEY_ID=" + s3.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s3.SecretKey, "AWS_REGION=" + s3.Region} {
		if !slices.Contains(env.ObjectStoreEnv, want) {
			t.Errorf("env.json object_store_env %q lacks %q", env.ObjectStoreEnv, want)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mc := s3Client(t, *s3)
	if ok, err := mc.BucketExists(ctx, s3.Bucket); err != nil || !ok {
		t.Errorf("bucket %s exists: %v, %v", s3.Bucket, ok, err)
	}

	for _, be := range env.Brokers {
		if err := brokerHealthz(be.HTTPAddr); err != nil {
			t.Errorf("broker %d: %v", be.NodeID, err)
		}
		if err := probe(be.GRPCAddr); err != nil {
			t.Errorf("broker %d through its proxy: %v", be.NodeID, err)
		}
	}
	cli := testenvtest.EtcdClient(t, c)
	regs, err := registrations(ctx, cli, c.EtcdPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, be := range env.Brokers {
		if got := regs[be.NodeID]; got != be.GRPCAddr {
			t.Errorf("broker %d registered with gRPC address %q, want its proxy %s (all: %v)", be.NodeID, got, be.GRPCAddr, regs)
		}
	}
}

// Kill, Pause and Restart act on the process: a killed or paused broker's
// registration expires after the session timeout, and comes back when the
// broker is started or resumed.
func TestClusterBrokerKillPauseRestart(t *testing.T) {
	testenvtest.SkipShort(t)
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{})
	cli := testenvtest.EtcdClient(t, c)
	ctx := t.Context()

	killed := c.Broker(3)
	killed.Kill()
	if killed.Running() {
		t.Fatal("broker 3 still running after Kill")
	}
	waitRegistered(t, c, cli, 3, false)
	// The others are untouched.
	if regs, err := registrations(ctx, cli, c.EtcdPrefix()); err != nil || len(regs) != 2 {
		t.Fatalf("registrations after killing broker 3: %v, %v", regs, err)
	}
	if err := killed.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitRegistered(t, c, cli, 3, true)

	paused := c.Broker(2)
	if err := paused.Pause(); err != nil {
		t.Fatal(err)
	}
	if !paused.Paused() || !paused.Running() {
		t.Fatal("broker 2 not paused and alive after Pause")
	}
	waitRegistered(t, c, cli, 2, false)
	if err := paused.Resume(); err != nil {
		t.Fatal(err)
	}
	recoverBroker(t, c, cli, paused)
	waitRegistered(t, c, cli, 2, true)

	restarted := c.Broker(1)
	pid := restarted.Pid()
	if err := restarted.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if got := restarted.Pid(); got == 0 || got == pid {
		t.Errorf("pid %d after Restart, was %d", got, pid)
	}
	waitRegistered(t, c, cli, 1, true)
	if err := probe(restarted.GRPCAddr()); err != nil {
		t.Errorf("broker 1 after restart: %v", err)
	}
}

// etcd and MinIO restart on the same ports and data: what was stored before
// is there after, and the brokers are registered again.
func TestClusterEtcdAndMinIOStopStart(t *testing.T) {
	testenvtest.SkipShort(t)
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{MinIO: true, Brokers: 1})
	ctx := t.Context()

	s3 := c.MinIO().S3()
	mc := s3Client(t, s3)
	body := []byte("survives a restart")
	if _, err := mc.PutObject(ctx, s3.Bucket, "probe", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	addr := c.MinIO().Endpoint()
	start := time.Now()
	if err := c.MinIO().Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("MinIO stopped in %v", time.Since(start).Round(time.Millisecond))
	if c.MinIO().Pid() != 0 {
		t.Fatal("MinIO running after Stop")
	}
	start = time.Now()
	if err := c.MinIO().Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("MinIO started in %v", time.Since(start).Round(time.Millisecond))
	if c.MinIO().Endpoint() != addr {
		t.Errorf("MinIO moved from %s to %s", addr, c.MinIO().Endpoint())
	}
	obj, err := mc.GetObject(ctx, s3.Bucket, "probe", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(obj)
	obj.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Errorf("object after MinIO restart: %q, %v; want %q", got, err, body)
	}

	cli := testenvtest.EtcdClient(t, c)
	if _, err := cli.Put(ctx, "/testenv-probe", "kept"); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := c.Etcd().Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("etcd stopped in %v", time.Since(start).Round(time.Millisecond))
	if c.Etcd().Pid() != 0 {
		t.Fatal("etcd running after Stop")
	}
	start = time.Now()
	if err := c.Etcd().Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("etcd started in %v", time.Since(start).Round(time.Millisecond))
	getCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := cli.Get(getCtx, "/testenv-probe")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "kept" {
		t.Fatalf("key after etcd restart: %v, %v", resp, err)
	}
	// The broker's lease outlives a short outage: etcd extends leases when
	// it comes back. Should the broker give up anyway, that is the broker's
	// business; the environment must still let it be started again.
	recoverBroker(t, c, cli, c.Broker(1))
	waitRegistered(t, c, cli, 1, true)
}

// Isolate cuts a broker from clients and from etcd: its advertised address
// stops answering and its registration expires, while the others carry on.
// Heal lets it be reached again.
func TestClusterIsolateAndHeal(t *testing.T) {
	testenvtest.SkipShort(t)
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{})
	cli := testenvtest.EtcdClient(t, c)
	ctx := t.Context()

	b := c.Broker(2)
	// A connection made before the partition must not survive it.
	conn, err := net.Dial("tcp", b.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := probe(b.GRPCAddr()); err != nil {
		t.Fatal(err)
	}

	b.Isolate()
	if !b.Isolated() {
		t.Fatal("Isolated() false after Isolate")
	}
	// Reset, not merely quiet: the peer learns at once. (What the broker
	// sent before, its HTTP/2 settings, is read first.)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, conn); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read on a connection made before Isolate: %v, want it reset", err)
	}
	conn.Close()
	if err := probe(b.GRPCAddr()); err == nil {
		t.Error("isolated broker answered through its advertised address")
	}
	// New connections are black-holed: accepted, never answered.
	held, err := net.Dial("tcp", b.GRPCAddr())
	if err != nil {
		t.Fatalf("dial the isolated broker's proxy: %v", err)
	}
	defer held.Close()
	held.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := held.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read from a new connection to an isolated broker: %d bytes, %v; want a timeout", n, err)
	}
	// Closed before Heal, or the proxy would hand the broker a connection
	// that never speaks, which would hold up its graceful shutdown.
	held.Close()
	waitRegistered(t, c, cli, 2, false)
	for _, other := range []int32{1, 3} {
		if err := probe(c.Broker(other).GRPCAddr()); err != nil {
			t.Errorf("broker %d while broker 2 is isolated: %v", other, err)
		}
	}
	if regs, err := registrations(ctx, cli, c.EtcdPrefix()); err != nil || len(regs) != 2 {
		t.Errorf("registrations while broker 2 is isolated: %v, %v", regs, err)
	}

	b.Heal()
	if b.Isolated() {
		t.Fatal("Isolated() true after Heal")
	}
	recoverBroker(t, c, cli, b)
	waitRegistered(t, c, cli, 2, true)
	await.NoError(t, 10*time.Second, "broker 2 to answer through its proxy after Heal", func() error { return probe(b.GRPCAddr()) })
}

// Isolate also cuts what the isolated broker itself opens to the others: a
// follower's replica fetches from its leader, which go through the leader's
// proxy and are told apart from other connections by the process that opened
// them.
func TestClusterIsolateCutsReplicaFetches(t *testing.T) {
	testenvtest.SkipShort(t)
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{})
	cli := testenvtest.EtcdClient(t, c)
	api := dialAPI(t, c.Broker(1).GRPCAddr())
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := api.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "iso", Partitions: 1, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	var leader, follower *testenv.Broker
	await.NoError(t, 30*time.Second, "a leader and a full ISR", func() error {
		resp, err := api.DescribeTopic(ctx, &stratav1.DescribeTopicRequest{Name: "iso"})
		if err != nil {
			return err
		}
		p := resp.GetTopic().GetPartitions()[0]
		if p.GetLeader() < 1 || len(p.GetIsr()) != 3 {
			return fmt.Errorf("partition 0: leader %d, isr %v", p.GetLeader(), p.GetIsr())
		}
		leader = c.Broker(p.GetLeader())
		follower = c.Broker(p.GetLeader()%3 + 1)
		return nil
	})
	src := fmt.Sprintf("broker-%d", follower.ID())
	fetching := func() int { return leader.InboundProxy().ForwardingBySource()[src] }
	await.NoError(t, 30*time.Second, fmt.Sprintf("broker %d's fetches to reach leader %d through its proxy", follower.ID(), leader.ID()), func() error {
		if n := fetching(); n == 0 {
			return fmt.Errorf("connections by source: %v", leader.InboundProxy().ForwardingBySource())
		}
		return nil
	})

	follower.Isolate()
	if n := fetching(); n != 0 {
		t.Errorf("%d connections from isolated broker %d still forwarded by leader %d's proxy", n, follower.ID(), leader.ID())
	}
	// Other sources are not cut.
	if err := probe(leader.GRPCAddr()); err != nil {
		t.Errorf("leader %d while broker %d is isolated: %v", leader.ID(), follower.ID(), err)
	}
	waitRegistered(t, c, cli, follower.ID(), false)
	if n := fetching(); n != 0 {
		t.Errorf("%d connections from isolated broker %d forwarded after its lease expired", n, follower.ID())
	}

	follower.Heal()
	recoverBroker(t, c, cli, follower)
	await.NoError(t, 30*time.Second, fmt.Sprintf("broker %d to fetch from leader %d again", follower.ID(), leader.ID()), func() error {
		if n := fetching(); n == 0 {
			return fmt.Errorf("connections by source: %v", leader.InboundProxy().ForwardingBySource())
		}
		return nil
	})
}

// dialAPI is a gRPC client of addr, closed when the test ends.
func dialAPI(t *testing.T, addr string) stratav1.StrataClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return stratav1.NewStrataClient(conn)
}

// etcd on its own: what was written survives a kill -9 and a restart on
// the same port.
func TestEtcdSurvivesKill(t *testing.T) {
	testenvtest.SkipShort(t)
	e := testenv.NewTestEtcd(t, testenv.EtcdOptions{})
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	e.Kill()
	if e.Pid() != 0 {
		t.Fatal("etcd running after Kill")
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, "k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("after kill and start: %v, %v", resp, err)
	}
}

// `strata testenv` starts an environment, writes env.json, says how to use
// it, and stops everything cleanly on SIGINT.
func TestTestenvCommandRunsUntilInterrupted(t *testing.T) {
	testenvtest.SkipShort(t)
	dir := filepath.Join(t.TempDir(), "env")
	cmd := exec.Command(testenv.Binary(t), "testenv", "--brokers", "2", "--minio=false", "--dir", dir)
	var out, errOut syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	await.NoError(t, time.Minute, "strata testenv to be ready", func() error {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("strata testenv exited: %v\n%s%s", err, out.String(), errOut.String())
		default:
		}
		if !strings.Contains(out.String(), "Ctrl-C stops everything") {
			return errors.New("not ready")
		}
		return nil
	})
	b, err := os.ReadFile(filepath.Join(dir, "env.json"))
	if err != nil {
		t.Fatal(err)
	}
	var env testenv.Env
	if err := json.Unmarshal(b, &env); err != nil || len(env.Brokers) != 2 || env.S3 != nil {
		t.Fatalf("env.json: %v\n%s", err, b)
	}
	if want := "topics create demo --partitions 3 --replication-factor 2 --bootstrap-server " + env.Brokers[0].GRPCAddr; !strings.Contains(out.String(), want) {
		t.Errorf("output lacks the example %q:\n%s", want, out.String())
	}
	for _, be := range env.Brokers {
		if err := probe(be.GRPCAddr); err != nil {
			t.Errorf("broker %d: %v", be.NodeID, err)
		}
	}

	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("strata testenv after SIGINT: %v\n%s%s", err, out.String(), errOut.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("strata testenv still running a minute after SIGINT\n%s", out.String())
	}
	if !strings.HasSuffix(out.String(), "stopped\n") {
		t.Errorf("output does not end with stopped:\n%s", out.String())
	}
	for _, be := range env.Brokers {
		if err := brokerHealthz(be.HTTPAddr); err == nil {
			t.Errorf("broker %d still answers after strata testenv stopped", be.NodeID)
		}
	}
}

// syncBuffer is a bytes.Buffer a child process writes to while the test
// reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// recoverBroker waits until b is registered in etcd again or has exited, and
// starts it again if it exited after losing its etcd lease (a pause or a
// partition longer than the session timeout). Brokers whose lease expires
// exit today; they are to re-register instead, and then this only waits.
func recoverBroker(t *testing.T, c *testenv.Cluster, cli *clientv3.Client, b *testenv.Broker) {
	t.Helper()
	await.NoError(t, expiryTimeout, fmt.Sprintf("broker %d to register again or exit", b.ID()), func() error {
		if !b.Running() {
			return nil
		}
		regs, err := registrations(t.Context(), cli, c.EtcdPrefix())
		if err != nil {
			return err
		}
		if _, ok := regs[b.ID()]; !ok {
			return fmt.Errorf("registered brokers: %v", regs)
		}
		return nil
	})
	if b.Running() {
		return
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	err := b.WaitExit(ctx)
	t.Logf("broker %d exited after losing its lease (%v); starting it again", b.ID(), err)
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func checkLoopback(t *testing.T, what, addr string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" {
		t.Errorf("%s address %q: want 127.0.0.1:<port> (%v)", what, addr, err)
		return
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 {
		t.Errorf("%s address %q: bad port", what, addr)
	}
}

func brokerHealthz(addr string) error {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /healthz: %s", resp.Status)
	}
	return nil
}

// probe makes one ListTopics call on a fresh connection to addr.
func probe(addr string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	_, err = stratav1.NewStrataClient(conn).ListTopics(ctx, &stratav1.ListTopicsRequest{})
	return err
}

// registrations maps each registered broker's node id to the gRPC address it
// published.
func registrations(ctx context.Context, cli *clientv3.Client, prefix string) (map[int32]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, prefix+"/brokers/", clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	regs := make(map[int32]string)
	for _, kv := range resp.Kvs {
		var v struct {
			NodeID   int32  `json:"node_id"`
			GRPCAddr string `json:"grpc_addr"`
		}
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, fmt.Errorf("%s: %w", kv.Key, err)
		}
		regs[v.NodeID] = v.GRPCAddr
	}
	return regs, nil
}

// waitRegistered waits until broker id is (or is not) registered in etcd, and
// says how long that took.
func waitRegistered(t *testing.T, c *testenv.Cluster, cli *clientv3.Client, id int32, want bool) {
	t.Helper()
	start := time.Now()
	what := fmt.Sprintf("broker %d's registration to go", id)
	if want {
		what = fmt.Sprintf("broker %d to be registered", id)
	}
	await.NoError(t, expiryTimeout, what, func() error {
		regs, err := registrations(t.Context(), cli, c.EtcdPrefix())
		if err != nil {
			return err
		}
		if _, ok := regs[id]; ok != want {
			return fmt.Errorf("registered brokers: %v", regs)
		}
		return nil
	})
	t.Logf("waited %v for %s", time.Since(start).Round(time.Millisecond), what)
}

// s3Client is a MinIO client whose idle connections close with the test.
func s3Client(t testing.TB, s3 testenv.S3Env) *minio.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	mc, err := minio.New(strings.TrimPrefix(s3.Endpoint, "http://"), &minio.Options{
		Creds:     credentials.NewStaticV4(s3.AccessKey, s3.SecretKey, ""),
		Region:    s3.Region,
		Transport: tr,
	})
	if err != nil {
		t.Fatal(err)
	}
	return mc
}
