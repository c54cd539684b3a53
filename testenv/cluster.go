package testenv

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-broker/strata/broker/server"
)

const (
	// DefaultClusterBrokers is the cluster size when ClusterOptions.Brokers
	// is zero: the smallest cluster where a replication factor of 3 and a
	// majority survive one failure.
	DefaultClusterBrokers = 3
	// defaultEtcdPrefix is strata's own default --etcd-prefix.
	defaultEtcdPrefix = "/strata"
)

// ClusterOptions configures StartCluster and NewTestCluster.
type ClusterOptions struct {
	// Dir holds everything the cluster writes: env.json, testenv.log, and a
	// directory per server (etcd/, minio/, broker-<id>/) with its data and
	// its log. It should be empty. Required by StartCluster; NewTestCluster
	// uses t.TempDir().
	Dir string
	// Brokers is the number of brokers, node ids 1..Brokers; zero means
	// DefaultClusterBrokers.
	Brokers int
	// Binary is the strata binary the brokers run. Required by
	// StartCluster; NewTestCluster uses Binary(t).
	Binary string
	// MinIO starts a MinIO server with one bucket beside etcd. Most tests
	// do not need one, and its first build takes minutes.
	MinIO bool
	// Bucket is the MinIO bucket; empty means DefaultBucket.
	Bucket string
	// SessionTimeout is every broker's --session-timeout (its etcd lease
	// TTL); zero means server.DefaultSessionTimeout.
	SessionTimeout time.Duration
	// BrokerSettings are broker settings passed to every broker as
	// --config key=value, e.g. {"log.retention.ms": "3600000"}.
	BrokerSettings map[string]string
	// BrokerArgs, when set, gives each broker command-line arguments of its
	// own (e.g. its broker.rack).
	BrokerArgs func(id int32) []string
	// ExtraArgs are appended to every `strata broker` command line; a flag
	// given here wins over the one the cluster sets.
	ExtraArgs []string
	// KafkaListeners, when set, gives every broker these Kafka listeners
	// (Kafka's listeners and listener.security.protocol.map, each on a
	// loopback port of its own, advertised as bound) instead of
	// --kafka-addr. The first is the one KafkaAddr and env.json report.
	// TLS settings for them go in BrokerSettings.
	KafkaListeners []KafkaListener
	// EtcdPrefix is the brokers' --etcd-prefix; empty means "/strata".
	EtcdPrefix string
	// EtcdArgs are appended to etcd's command line (EtcdOptions.ExtraArgs).
	EtcdArgs []string
	// EtcdBinary and MinIOBinary override the cached builds of
	// EtcdBinary() and MinIOBinary().
	EtcdBinary  string
	MinIOBinary string
	// Logger receives what the environment does (starts, stops, faults);
	// nil means a text log at Dir/testenv.log.
	Logger *slog.Logger
}

// KafkaListener is one named Kafka listener of every broker.
type KafkaListener struct {
	Name     string // upper case, as Kafka normalises listener names
	Protocol string // PLAINTEXT, SSL, ...
}

// Cluster is etcd, N strata brokers and optionally MinIO, each its own
// process on loopback, with a TCP proxy in front of every broker's gRPC
// listener and another between every broker and etcd, through which faults
// are injected (Broker.Isolate). Close stops everything. Methods are safe for
// concurrent use.
type Cluster struct {
	dir     string
	prefix  string
	logger  *slog.Logger
	logFile *os.File // the default logger's file; nil with ClusterOptions.Logger
	etcd    *Etcd
	minio   *MinIO

	mu       sync.Mutex
	isolated map[int32]bool
	crashes  []error // broker exits nobody asked for
	closed   bool
	brokers  []*Broker // in node id order; AddBroker appends

	// opts and bin are what the cluster was started with, for AddBroker;
	// addMu serialises additions.
	opts  ClusterOptions
	bin   string
	addMu sync.Mutex
}

// Broker is one `strata broker` process of a Cluster. Its ports, data
// directory and proxies stay the same across restarts; the cluster holds the
// ports while the broker is down (see holdLoopbackAddrs).
type Broker struct {
	id        int32
	c         *Cluster
	bin       string
	dataDir   string
	logPath   string
	ports     *heldAddrs // grpcAddr, httpAddr, kafkaAddr; nil before firstStart
	grpcAddr  string     // the listener; clients use the inbound proxy's address
	httpAddr  string
	kafkaAddr string
	// listeners are the KafkaListeners, listenerAddrs their addresses
	// by name.
	listeners     []KafkaListener
	listenerAddrs map[string]string
	args          []string
	env           []string // nil: childEnv()
	inbound       *Proxy   // in front of grpcAddr: the advertised address
	etcdProxy     *Proxy   // the broker's only way to etcd

	mu     sync.Mutex
	proc   *process // the current (or last) process
	paused bool
}

// Env is every address of a cluster, as WriteEnv writes it (env.json).
type Env struct {
	Brokers []BrokerEnv `json:"brokers"`
	Etcd    EtcdEnv     `json:"etcd"`
	// S3 is set when the cluster runs MinIO.
	S3 *S3Env `json:"s3,omitempty"`
	// ObjectStore is the exact --object-store URL of the brokers (and of
	// strata replay), and ObjectStoreEnv the environment lines carrying the
	// credentials, NAME=value: what a user needs to point another process
	// at the same bucket. Set with S3.
	ObjectStore    string   `json:"object_store,omitempty"`
	ObjectStoreEnv []string `json:"object_store_env,omitempty"`
}

// BrokerEnv is one broker's addresses.
type BrokerEnv struct {
	NodeID int32 `json:"node_id"`
	// GRPCAddr is the address the broker advertises, its inbound proxy:
	// what clients and other brokers use.
	GRPCAddr string `json:"grpc_addr"`
	// DirectGRPCAddr is the broker's own listener, bypassing the proxy.
	DirectGRPCAddr string `json:"direct_grpc_addr"`
	KafkaAddr      string `json:"kafka_addr"`
	HTTPAddr       string `json:"http_addr"`
	DataDir        string `json:"data_dir"`
	LogPath        string `json:"log_path"`
}

// EtcdEnv is where the cluster's metadata lives.
type EtcdEnv struct {
	Endpoints []string `json:"endpoints"`
	Prefix    string   `json:"prefix"`
}

// NewTestCluster starts a cluster for a test: in t.TempDir() unless
// opts.Dir is set, running Binary(t) unless opts.Binary is set. It fails the
// test if the cluster does not start. A t.Cleanup closes the cluster, fails
// the test if a process exited without being asked to or did not stop
// cleanly, and prints the tail of every log if the test failed.
func NewTestCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Binary == "" {
		opts.Binary = Binary(t)
	}
	start := time.Now()
	c, err := StartCluster(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("testenv: cluster of %d brokers up in %v (dir %s)", len(c.Brokers()), time.Since(start).Round(time.Millisecond), c.dir)
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("testenv: %v", err)
		}
		if t.Failed() {
			t.Log(c.LogTails(logTailLines))
		}
	})
	return c
}

// StartCluster starts etcd (and MinIO if asked), then the brokers, waits
// until every broker answers /healthz (so each is registered in etcd), and
// writes Dir/env.json. Building etcd or MinIO the first time happens here and
// is bounded only by ctx. On failure everything started is stopped again.
func StartCluster(ctx context.Context, opts ClusterOptions) (_ *Cluster, err error) {
	if opts.Dir == "" {
		return nil, errors.New("testenv: ClusterOptions.Dir is required")
	}
	if opts.Binary == "" {
		return nil, errors.New("testenv: ClusterOptions.Binary (the strata binary) is required")
	}
	n := cmp.Or(opts.Brokers, DefaultClusterBrokers)
	if n < 1 {
		return nil, fmt.Errorf("testenv: %d brokers", opts.Brokers)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("testenv: create %s: %w", dir, err)
	}
	c := &Cluster{
		dir:      dir,
		prefix:   cmp.Or(opts.EtcdPrefix, defaultEtcdPrefix),
		logger:   opts.Logger,
		isolated: make(map[int32]bool),
	}
	if c.logger == nil {
		f, err := os.OpenFile(filepath.Join(dir, "testenv.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("testenv: %w", err)
		}
		c.logFile = f
		c.logger = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	defer func() {
		if err != nil {
			if cerr := c.Close(); cerr != nil {
				c.logger.Warn("stopping a cluster that failed to start", "err", cerr)
			}
			err = fmt.Errorf("testenv: start cluster in %s: %w", dir, err)
		}
	}()

	bin, err := filepath.Abs(opts.Binary)
	if err != nil {
		return nil, err
	}
	flags, err := commandFlags(bin, "broker")
	if err != nil {
		return nil, err
	}
	for _, f := range []string{"node-id", "data-dir", "grpc-addr", "http-addr", "kafka-addr", "etcd-endpoints", "etcd-prefix", "advertised-grpc-addr", "session-timeout"} {
		if !flags[f] {
			return nil, fmt.Errorf("%s broker has no --%s flag: rebuild it (make build)", bin, f)
		}
	}

	// The tool binaries first, both at once: a cold cache builds them.
	etcdBin, minioBin := opts.EtcdBinary, opts.MinIOBinary
	err = parallel(
		func() (err error) {
			if etcdBin == "" {
				etcdBin, err = EtcdBinary(ctx, c.logger)
			}
			return err
		},
		func() (err error) {
			if opts.MinIO && minioBin == "" {
				minioBin, err = MinIOBinary(ctx, c.logger)
			}
			return err
		},
	)
	if err != nil {
		return nil, err
	}
	var etcd *Etcd
	var mio *MinIO
	err = parallel(
		func() (err error) {
			etcd, err = StartEtcd(ctx, EtcdOptions{Dir: filepath.Join(dir, "etcd"), Binary: etcdBin, Logger: c.logger, ExtraArgs: opts.EtcdArgs})
			return err
		},
		func() (err error) {
			if opts.MinIO {
				mio, err = StartMinIO(ctx, MinIOOptions{Dir: filepath.Join(dir, "minio"), Binary: minioBin, Bucket: opts.Bucket, Logger: c.logger})
			}
			return err
		},
	)
	// Kept even on failure, so Close stops whichever did start.
	c.etcd, c.minio = etcd, mio
	if err != nil {
		return nil, err
	}
	etcd.beforeStop = c.cutEtcdClients

	c.opts, c.bin = opts, bin
	for id := int32(1); id <= int32(n); id++ {
		if _, err := c.newBroker(id); err != nil {
			return nil, err
		}
	}
	fns := make([]func() error, 0, n)
	for _, b := range c.Brokers() {
		fns = append(fns, func() error { return b.firstStart(ctx, opts.ExtraArgs) })
	}
	if err := parallel(fns...); err != nil {
		return nil, err
	}
	if err := c.WriteEnv(filepath.Join(dir, "env.json")); err != nil {
		return nil, err
	}
	c.logger.Info("cluster ready", "brokers", n, "etcd", etcd.Endpoint(), "minio", opts.MinIO)
	return c, nil
}

// newBroker prepares broker id (its directories, proxies and command line)
// and adds it to the cluster, not started.
func (c *Cluster) newBroker(id int32) (*Broker, error) {
	opts := c.opts
	sessionTimeout := cmp.Or(opts.SessionTimeout, server.DefaultSessionTimeout)
	settings := make([]string, 0, len(opts.BrokerSettings))
	for k, v := range opts.BrokerSettings {
		settings = append(settings, k+"="+v)
	}
	sort.Strings(settings)
	b := &Broker{
		id:        id,
		c:         c,
		bin:       c.bin,
		dataDir:   filepath.Join(c.dir, fmt.Sprintf("broker-%d", id), "data"),
		logPath:   filepath.Join(c.dir, fmt.Sprintf("broker-%d", id), "broker.log"),
		listeners: opts.KafkaListeners,
	}
	if err := os.MkdirAll(b.dataDir, 0o755); err != nil {
		return nil, err
	}
	logger := c.logger.With("broker", id)
	var err error
	// The target is set once the broker's ports are chosen.
	if b.inbound, err = NewProxy("", ProxyOptions{Identify: c.identify, Logger: logger.With("proxy_role", "grpc")}); err != nil {
		return nil, err
	}
	// Added now, so that Close closes its proxies whatever happens next.
	c.mu.Lock()
	c.brokers = append(c.brokers, b)
	c.mu.Unlock()
	if b.etcdProxy, err = NewProxy(c.etcd.ClientAddr(), ProxyOptions{Logger: logger.With("proxy_role", "etcd")}); err != nil {
		return nil, err
	}
	b.args = []string{
		"--node-id", fmt.Sprint(id),
		"--data-dir", b.dataDir,
		"--etcd-endpoints", "http://" + b.etcdProxy.Addr(),
		"--etcd-prefix", c.prefix,
		"--advertised-grpc-addr", b.inbound.Addr(),
		"--session-timeout", sessionTimeout.String(),
	}
	for _, s := range settings {
		b.args = append(b.args, "--config", s)
	}
	if opts.BrokerArgs != nil {
		b.args = append(b.args, opts.BrokerArgs(id)...)
	}
	if c.minio != nil {
		// Tiered topics keep their segments in the cluster's bucket.
		s3 := c.minio.S3()
		b.args = append(b.args, "--object-store", ObjectStoreURL(s3))
		b.env = append(childEnv(), "AWS_ACCESS_KEY_ID="+s3.AccessKey, "AWS_SECRET_ACCESS_KEY="+s3.SecretKey, "AWS_REGION="+s3.Region)
	}
	return b, nil
}

// AddBroker starts one more broker into the running cluster, with the next
// node id and the options the others were started with
// (ClusterOptions.BrokerArgs is asked for its id), and returns once it
// answers /healthz, registered. It holds no partition until one is moved
// to it or created on it. env.json is rewritten to list it.
func (c *Cluster) AddBroker(ctx context.Context) (*Broker, error) {
	c.addMu.Lock()
	defer c.addMu.Unlock()
	c.mu.Lock()
	closed, id := c.closed, int32(len(c.brokers)+1)
	c.mu.Unlock()
	if closed {
		return nil, errors.New("testenv: add a broker: the cluster is closed")
	}
	b, err := c.newBroker(id)
	if err != nil {
		return nil, fmt.Errorf("testenv: add broker %d: %w", id, err)
	}
	if err := b.firstStart(ctx, c.opts.ExtraArgs); err != nil {
		return nil, fmt.Errorf("testenv: add broker %d: %w", id, err)
	}
	if err := c.WriteEnv(filepath.Join(c.dir, "env.json")); err != nil {
		return nil, err
	}
	c.logger.Info("broker added", "broker", id)
	return b, nil
}

// firstStart picks the broker's ports and starts it, with new ports if it
// loses a race for one (possible only where they cannot be held; see
// holdLoopbackAddrs).
func (b *Broker) firstStart(ctx context.Context, extra []string) error {
	base := b.args
	for attempt := 1; ; attempt++ {
		b.ports.release()
		ports, err := holdLoopbackAddrs(3 + len(b.listeners))
		if err != nil {
			return err
		}
		b.ports = ports
		b.grpcAddr, b.httpAddr, b.kafkaAddr = ports.addrs[0], ports.addrs[1], ports.addrs[2]
		b.inbound.SetTarget(b.grpcAddr)
		b.args = append(slices.Clip(base),
			"--grpc-addr", b.grpcAddr,
			"--http-addr", b.httpAddr,
		)
		if len(b.listeners) == 0 {
			b.args = append(b.args, "--kafka-addr", b.kafkaAddr)
		} else {
			b.args = append(b.args, b.listenerArgs(ports.addrs[3:])...)
		}
		b.args = append(b.args, extra...)
		logStart := fileSize(b.logPath)
		err = b.Start(ctx)
		if err == nil {
			return nil
		}
		if errors.Is(err, errExited) && attempt < portAttempts &&
			lostPortRace(logSince(b.logPath, logStart)) {
			b.c.logger.Warn("broker lost a port race; retrying with new ports", "broker", b.id, "attempt", attempt)
			if p := b.current(); p != nil {
				p.exitHandled.Store(true)
			}
			continue
		}
		return err
	}
}

// listenerArgs declares the broker's KafkaListeners on addrs, one each.
func (b *Broker) listenerArgs(addrs []string) []string {
	b.listenerAddrs = map[string]string{}
	var listeners, protocols []string
	for i, l := range b.listeners {
		b.listenerAddrs[l.Name] = addrs[i]
		listeners = append(listeners, l.Name+"://"+addrs[i])
		protocols = append(protocols, l.Name+":"+l.Protocol)
	}
	b.kafkaAddr = addrs[0]
	return []string{"--kafka-addr", "",
		"--config", "listeners=" + strings.Join(listeners, ","),
		"--config", "listener.security.protocol.map=" + strings.Join(protocols, ","),
	}
}

// Dir is the directory holding everything the cluster writes.
func (c *Cluster) Dir() string { return c.dir }

// Brokers are the brokers, in node id order.
func (c *Cluster) Brokers() []*Broker {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.brokers)
}

// Broker is the broker with node id id, or nil.
func (c *Cluster) Broker(id int32) *Broker {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id < 1 || int(id) > len(c.brokers) {
		return nil
	}
	return c.brokers[id-1]
}

// Etcd is the cluster's etcd.
func (c *Cluster) Etcd() *Etcd { return c.etcd }

// MinIO is the cluster's MinIO, or nil without ClusterOptions.MinIO.
func (c *Cluster) MinIO() *MinIO { return c.minio }

// EtcdPrefix is the brokers' --etcd-prefix.
func (c *Cluster) EtcdPrefix() string { return c.prefix }

// BootstrapServers are the brokers' advertised gRPC addresses, comma
// separated.
func (c *Cluster) BootstrapServers() string {
	bs := c.Brokers()
	addrs := make([]string, 0, len(bs))
	for _, b := range bs {
		addrs = append(addrs, b.GRPCAddr())
	}
	return strings.Join(addrs, ",")
}

// Env is every address of the cluster.
func (c *Cluster) Env() Env {
	env := Env{
		Etcd: EtcdEnv{Endpoints: []string{c.etcd.Endpoint()}, Prefix: c.prefix},
	}
	for _, b := range c.Brokers() {
		env.Brokers = append(env.Brokers, BrokerEnv{
			NodeID:         b.id,
			GRPCAddr:       b.GRPCAddr(),
			DirectGRPCAddr: b.grpcAddr,
			KafkaAddr:      b.kafkaAddr,
			HTTPAddr:       b.httpAddr,
			DataDir:        b.dataDir,
			LogPath:        b.logPath,
		})
	}
	if c.minio != nil {
		s3 := c.minio.S3()
		env.S3 = &s3
		env.ObjectStore = ObjectStoreURL(s3)
		env.ObjectStoreEnv = CredentialEnv(s3)
	}
	return env
}

// WriteEnv writes Env as indented JSON to path, replacing it whole.
func (c *Cluster) WriteEnv(path string) error {
	b, err := json.MarshalIndent(c.Env(), "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write env: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write env: %w", err)
	}
	return nil
}

// LogTails is the last n lines of every process's log, brokers first.
func (c *Cluster) LogTails(n int) string {
	var sb strings.Builder
	bs := c.Brokers()
	paths := make([]string, 0, len(bs)+2)
	for _, b := range bs {
		paths = append(paths, b.logPath)
	}
	if c.etcd != nil {
		paths = append(paths, c.etcd.LogPath())
	}
	if c.minio != nil {
		paths = append(paths, c.minio.LogPath())
	}
	for _, p := range paths {
		fmt.Fprintf(&sb, "--- last %d lines of %s ---\n%s\n", n, p, logTail(p, n))
	}
	return sb.String()
}

// Close stops the brokers (SIGTERM, in parallel; a paused or isolated broker,
// or any broker once etcd is down, is killed instead since it cannot leave
// the cluster cleanly), then the proxies, MinIO and etcd. It returns every
// process that exited without being asked to and every stop that was not
// clean. Closing twice does nothing.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()

	etcdUp := c.etcd != nil && c.etcd.Pid() != 0
	bs := c.Brokers()
	fns := make([]func() error, 0, len(bs))
	for _, b := range bs {
		fns = append(fns, func() error { return b.shutdown(etcdUp) })
	}
	errs := []error{parallel(fns...)}
	for _, b := range bs {
		b.ports.release()
		if b.inbound != nil {
			errs = append(errs, b.inbound.Close())
		}
		if b.etcdProxy != nil {
			errs = append(errs, b.etcdProxy.Close())
		}
	}
	errs = append(errs, parallel(
		func() error {
			if c.minio == nil {
				return nil
			}
			return c.minio.Close()
		},
		func() error {
			if c.etcd == nil {
				return nil
			}
			return c.etcd.Close()
		},
	))
	c.mu.Lock()
	errs = append(errs, c.crashes...)
	c.crashes = nil
	c.mu.Unlock()
	err := errors.Join(errs...)
	c.logger.Info("cluster closed", "err", err)
	if c.logFile != nil {
		c.logFile.Close()
	}
	return err
}

// shutdown stops b for Close; see there.
func (b *Broker) shutdown(etcdUp bool) error {
	b.mu.Lock()
	p := b.proc
	if p != nil {
		b.noteCrashLocked(p)
	}
	paused := b.paused
	b.mu.Unlock()
	if p == nil || p.exited() {
		return nil
	}
	if paused || b.Isolated() || !etcdUp {
		p.kill()
		return nil
	}
	return b.Stop()
}

// cutEtcdClients resets the brokers' connections to etcd and holds new ones
// until the returned function runs. etcd's graceful stop waits up to seven
// seconds for its clients' watch streams to end, and they end only when the
// connection does; a process that exits closes its connections, so cutting
// them as it stops is what a client sees anyway, minus the wait.
func (c *Cluster) cutEtcdClients() func() {
	for _, b := range c.Brokers() {
		b.etcdProxy.suspend()
	}
	return func() {
		for _, b := range c.Brokers() {
			b.etcdProxy.resume()
		}
	}
}

// identify names the broker process that opened conn, for the inbound
// proxies' BlockSource; "" for anything else (a client).
func (c *Cluster) identify(conn *net.TCPConn) string {
	bs := c.Brokers()
	byPID := make(map[int]int32, len(bs))
	pids := make([]int, 0, len(bs))
	for _, b := range bs {
		if pid := b.Pid(); pid != 0 {
			byPID[pid] = b.id
			pids = append(pids, pid)
		}
	}
	if pid := peerPID(conn, pids); pid != 0 {
		return brokerSource(byPID[pid])
	}
	return ""
}

// brokerSource is the proxy source name of broker id's connections.
func brokerSource(id int32) string { return fmt.Sprintf("broker-%d", id) }

// noteCrash records an exit nobody asked for, for Close to report.
func (c *Cluster) noteCrash(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.crashes = append(c.crashes, err)
	c.logger.Error("process exited on its own", "err", err)
}

// ID is the broker's node id.
func (b *Broker) ID() int32 { return b.id }

// GRPCAddr is the address the broker advertises in etcd, its inbound proxy:
// what clients and other brokers connect to, and what Isolate cuts.
func (b *Broker) GRPCAddr() string { return b.inbound.Addr() }

// DirectGRPCAddr is the broker's gRPC listener itself, bypassing the proxy.
func (b *Broker) DirectGRPCAddr() string { return b.grpcAddr }

// HTTPAddr serves /healthz and /metrics (not proxied: the environment must
// see a broker's health even while it is isolated).
func (b *Broker) HTTPAddr() string { return b.httpAddr }

// KafkaAddr is the broker's --kafka-addr (not proxied: the broker publishes
// it as given).
func (b *Broker) KafkaAddr() string { return b.kafkaAddr }

// KafkaListenerAddr is the address of the broker's Kafka listener of
// ClusterOptions.KafkaListeners named name ("" if none): what it binds and
// advertises.
func (b *Broker) KafkaListenerAddr(name string) string { return b.listenerAddrs[name] }

// DataDir is the broker's --data-dir.
func (b *Broker) DataDir() string { return b.dataDir }

// LogPath is the file collecting the broker's output across every start.
func (b *Broker) LogPath() string { return b.logPath }

// InboundProxy is the proxy in front of the broker's gRPC listener, for
// faults finer than Isolate (Block alone cuts clients and peers but not
// etcd).
func (b *Broker) InboundProxy() *Proxy { return b.inbound }

// EtcdProxy is the proxy between the broker and etcd (Block alone cuts the
// broker from etcd only: its lease expires while it still serves).
func (b *Broker) EtcdProxy() *Proxy { return b.etcdProxy }

// LogTail is the last n lines of the broker's log.
func (b *Broker) LogTail(n int) string { return logTail(b.logPath, n) }

// Pid is the process id of the running broker, or 0 when it is not running.
func (b *Broker) Pid() int {
	if p := b.current(); p != nil && !p.exited() {
		return p.pid()
	}
	return 0
}

// Running reports whether the broker process is alive (paused counts).
func (b *Broker) Running() bool { return b.Pid() != 0 }

// Paused reports whether the broker is stopped by Pause.
func (b *Broker) Paused() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.paused && b.proc != nil && !b.proc.exited()
}

// Start starts the broker (again, after Kill, Stop or an exit) on its data
// directory and ports and waits until /healthz answers, which it does once it
// is registered in etcd. After a kill that is when the previous run's lease
// has expired (up to the session timeout). An isolated broker cannot
// register: Heal it first. Start fails if the broker is running; an earlier
// exit nobody asked for is reported by Close.
func (b *Broker) Start(ctx context.Context) error {
	if b.c.isClosed() {
		return fmt.Errorf("broker %d: cluster is closed", b.id)
	}
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	b.mu.Lock()
	if prev := b.proc; prev != nil {
		if !prev.exited() {
			b.mu.Unlock()
			return fmt.Errorf("broker %d (pid %d) is still running", b.id, prev.pid())
		}
		b.noteCrashLocked(prev)
	}
	p, err := startProc(procSpec{
		name:     fmt.Sprintf("broker %d", b.id),
		logPath:  b.logPath,
		bin:      b.bin,
		args:     append([]string{"broker"}, b.args...),
		env:      b.env,
		ownGroup: true,
	})
	if err != nil {
		b.mu.Unlock()
		return err
	}
	b.proc, b.paused = p, false
	b.mu.Unlock()
	if err := p.waitHealthyContext(ctx, "http://"+b.httpAddr+"/healthz"); err != nil {
		note := ""
		if b.Isolated() {
			note = " (it is isolated, so it cannot register in etcd)"
		}
		return fmt.Errorf("%w%s%s", err, note, tailNote(b.logPath))
	}
	b.c.logger.Info("broker started", "broker", b.id, "pid", p.pid())
	return nil
}

// Restart stops the broker cleanly if it runs, then starts it.
func (b *Broker) Restart(ctx context.Context) error {
	if err := b.Stop(); err != nil {
		return err
	}
	return b.Start(ctx)
}

// Stop sends SIGTERM (resuming a paused broker so it sees it) and waits for a
// clean exit, killing the broker after 30 seconds. A clean shutdown is part
// of the broker's contract: any other exit is an error. It does nothing if
// the broker is not running.
func (b *Broker) Stop() error {
	b.mu.Lock()
	p, paused := b.proc, b.paused
	b.paused = false
	b.mu.Unlock()
	if p == nil || p.exited() {
		return nil
	}
	if paused {
		// SIGTERM first, so it is pending when the process runs again and
		// the broker shuts down rather than doing anything else first.
		_ = p.signal(syscall.SIGTERM)
		_ = p.signal(syscall.SIGCONT)
	}
	b.c.logger.Info("stopping broker", "broker", b.id, "pid", p.pid())
	if err := p.terminate(stopTimeout); err != nil {
		return fmt.Errorf("stop broker %d (pid %d): %w%s", b.id, p.pid(), err, tailNote(b.logPath))
	}
	return nil
}

// Kill sends SIGKILL and waits until the process is gone: a crash. Its
// registration in etcd stays until the lease expires. It does nothing if the
// broker is not running.
func (b *Broker) Kill() {
	b.mu.Lock()
	p := b.proc
	b.paused = false
	b.mu.Unlock()
	if p == nil || p.exited() {
		return
	}
	b.c.logger.Info("killing broker", "broker", b.id, "pid", p.pid())
	p.kill()
}

// Pause stops the process with SIGSTOP: it holds its connections and state
// but does nothing, so its lease expires after the session timeout, as with a
// long GC pause or a stalled VM.
func (b *Broker) Pause() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.proc == nil {
		return fmt.Errorf("broker %d is not running", b.id)
	}
	if err := b.proc.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	b.paused = true
	b.c.logger.Info("paused broker", "broker", b.id, "pid", b.proc.pid())
	return nil
}

// Resume continues a paused broker with SIGCONT.
func (b *Broker) Resume() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.proc == nil {
		return fmt.Errorf("broker %d is not running", b.id)
	}
	if err := b.proc.signal(syscall.SIGCONT); err != nil {
		return err
	}
	b.paused = false
	b.c.logger.Info("resumed broker", "broker", b.id, "pid", b.proc.pid())
	return nil
}

// WaitExit waits until the broker process exits (or ctx ends) and returns its
// exit error. An exit waited for is expected: Close does not report it.
func (b *Broker) WaitExit(ctx context.Context) error {
	p := b.current()
	if p == nil {
		return nil
	}
	return p.wait(ctx)
}

// Isolate cuts the broker off the network: its inbound proxy and its etcd
// proxy block (existing connections are reset, new ones held unanswered), and
// every other broker's inbound proxy blocks connections this broker's process
// opened (identified through /proc on Linux; the proxies name them
// "broker-<id>"), so it can neither serve clients, nor be fetched from, nor
// fetch from others, nor renew its lease.
// The process keeps running; its HTTP listener stays reachable for the
// environment's health checks.
func (b *Broker) Isolate() {
	c := b.c
	c.mu.Lock()
	if c.isolated[b.id] {
		c.mu.Unlock()
		return
	}
	c.isolated[b.id] = true
	c.mu.Unlock()
	c.logger.Info("isolating broker", "broker", b.id)
	b.inbound.Block()
	b.etcdProxy.Block()
	for _, o := range c.Brokers() {
		if o != b {
			o.inbound.BlockSource(brokerSource(b.id))
		}
	}
}

// Heal undoes Isolate: held connections go through, new ones are forwarded.
func (b *Broker) Heal() {
	c := b.c
	c.mu.Lock()
	if !c.isolated[b.id] {
		c.mu.Unlock()
		return
	}
	delete(c.isolated, b.id)
	c.mu.Unlock()
	c.logger.Info("healing broker", "broker", b.id)
	for _, o := range c.Brokers() {
		if o != b {
			o.inbound.UnblockSource(brokerSource(b.id))
		}
	}
	b.etcdProxy.Unblock()
	b.inbound.Unblock()
}

// Isolated reports whether the broker is isolated.
func (b *Broker) Isolated() bool {
	b.c.mu.Lock()
	defer b.c.mu.Unlock()
	return b.c.isolated[b.id]
}

func (b *Broker) current() *process {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.proc
}

// noteCrashLocked records p's exit if nobody asked for it. b.mu must be held.
func (b *Broker) noteCrashLocked(p *process) {
	if p.crashed() {
		b.c.noteCrash(fmt.Errorf("broker %d (pid %d) exited on its own: %v%s", b.id, p.pid(), p.waitErr, tailNote(b.logPath)))
	}
}

func (c *Cluster) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// parallel runs fns at once and joins their errors.
func parallel(fns ...func() error) error {
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Go(func() { errs[i] = fn() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// ObjectStorePrefix is where a test cluster's brokers keep tiered segments
// in its bucket.
const ObjectStorePrefix = "strata"

// ObjectStoreURL is the --object-store URL of a test cluster's bucket (the
// credentials go in the AWS environment variables).
func ObjectStoreURL(s3 S3Env) string {
	return "s3://" + s3.Bucket + "/" + ObjectStorePrefix + "?endpoint=" + url.QueryEscape(s3.Endpoint) + "&region=" + url.QueryEscape(s3.Region)
}

// CredentialEnv is the environment, NAME=value, that gives a broker or
// strata replay the bucket's credentials and region.
func CredentialEnv(s3 S3Env) []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s3.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s3.SecretKey, "AWS_REGION=" + s3.Region}
}
