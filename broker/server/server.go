// Package server assembles a running broker process: the metastore
// connection (or an embedded etcd for `strata dev`), the broker core, the gRPC
// listener and the HTTP listener for health and metrics. The strata command
// only parses flags into a Config and calls Run.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/broker/grpcapi"
	"github.com/strata-broker/strata/broker/kafkaapi"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/tiering/objstore"
	"github.com/strata-broker/strata/topicconfig"
)

// Config is everything a broker process needs.
type Config struct {
	NodeID   int32
	DataDir  string
	GRPCAddr string
	HTTPAddr string
	// KafkaAddr is where the Kafka protocol listener binds; empty means no
	// Kafka listener.
	KafkaAddr string
	// ObjectStoreURL, when set, is where tiered topics keep their sealed
	// segments (s3://bucket/prefix?endpoint=... or file:///dir);
	// TieringCacheBytes bounds the disk cache of remote reads.
	ObjectStoreURL    string
	TieringCacheBytes int64
	// AdvertisedKafkaAddr is the Kafka address Metadata returns for this
	// broker; empty means the address KafkaAddr bound.
	AdvertisedKafkaAddr string
	// AdvertisedGRPCAddr is the gRPC address published in the cluster, for
	// clients and other brokers; empty means the address GRPCAddr bound.
	AdvertisedGRPCAddr string
	// SessionTimeout is the TTL of the broker's lease in etcd: a broker that
	// has not renewed it for this long is considered gone, and its partitions
	// move to other brokers. Zero means DefaultSessionTimeout.
	SessionTimeout time.Duration

	// EtcdEndpoints of an external etcd cluster. Empty with EmbedEtcd runs
	// etcd inside this process, its data under DataDir/etcd.
	EtcdEndpoints []string
	EmbedEtcd     bool
	// EtcdClientAddr is where the embedded etcd listens for clients.
	EtcdClientAddr string
	// EtcdPrefix is the key prefix of this cluster in etcd.
	EtcdPrefix string

	// Settings are broker settings in Kafka's server.properties keys.
	Settings map[string]string
	// ShutdownTimeout bounds the graceful stop of the listeners.
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
}

// DefaultSessionTimeout is short enough for a failover within about three
// seconds and long enough (about six renewals) to ride out a busy machine.
const DefaultSessionTimeout = 2 * time.Second

// Addrs are the addresses a running broker listens on; Kafka is nil when
// the Kafka listener is off.
type Addrs struct {
	GRPC, HTTP, Kafka net.Addr
}

// Ready is called once the broker serves, with the addresses it listens on.
type Ready func(Addrs)

// Run starts the broker and blocks until ctx is cancelled, then shuts down
// cleanly: listeners stop, logs are flushed and closed, the broker leaves the
// cluster. ready, if not nil, is called when the broker serves.
func Run(ctx context.Context, cfg Config, ready Ready) error {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.EtcdPrefix == "" {
		cfg.EtcdPrefix = "/strata"
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = DefaultSessionTimeout
	}

	endpoints := cfg.EtcdEndpoints
	if cfg.EmbedEtcd {
		etcd, err := metastore.StartEmbedded(ctx, filepath.Join(cfg.DataDir, "etcd"), cfg.EtcdClientAddr, logger.With("component", "etcd"))
		if err != nil {
			return fmt.Errorf("start embedded etcd: %w", err)
		}
		defer etcd.Close()
		endpoints = etcd.Endpoints()
		logger.Info("embedded etcd ready", "endpoints", endpoints)
	}
	if len(endpoints) == 0 {
		return errors.New("no etcd endpoints: set --etcd-endpoints")
	}
	store, err := metastore.Dial(ctx, endpoints, cfg.EtcdPrefix, logger.With("component", "metastore"))
	if err != nil {
		return fmt.Errorf("connect to etcd %v: %w", endpoints, err)
	}
	defer store.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	grpcLis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("listen for gRPC on %s: %w", cfg.GRPCAddr, err)
	}
	defer grpcLis.Close()
	httpLis, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen for HTTP on %s: %w", cfg.HTTPAddr, err)
	}
	defer httpLis.Close()
	var kafkaLis net.Listener
	advertisedKafka := cfg.AdvertisedKafkaAddr
	if cfg.KafkaAddr != "" {
		if kafkaLis, err = net.Listen("tcp", cfg.KafkaAddr); err != nil {
			return fmt.Errorf("listen for Kafka clients on %s: %w", cfg.KafkaAddr, err)
		}
		defer kafkaLis.Close()
		if advertisedKafka == "" {
			advertisedKafka = advertise(kafkaLis.Addr())
		}
	}
	autoCreate, err := topicconfig.AutoCreateTopics(cfg.Settings)
	if err != nil {
		return err
	}
	maxRequest, err := topicconfig.SocketRequestMaxBytes(cfg.Settings)
	if err != nil {
		return err
	}

	if cfg.EmbedEtcd {
		// Nobody else reaches this process's etcd: a registration under our id
		// is our own previous run's, left by a crash. Clear it instead of
		// waiting for its lease to expire.
		if err := store.RemoveBroker(ctx, cfg.NodeID); err != nil {
			return err
		}
	}
	advertised := cfg.AdvertisedGRPCAddr
	if advertised == "" {
		advertised = grpcLis.Addr().String()
	}
	member := &membership{
		store:  store,
		logger: logger,
		ttl:    cfg.SessionTimeout,
		info: metastore.BrokerInfo{
			NodeID:    cfg.NodeID,
			GRPCAddr:  advertised,
			HTTPAddr:  httpLis.Addr().String(),
			KafkaAddr: advertisedKafka,
			StartedAt: time.Now(),
		},
	}
	// The registration outlives ctx: the broker leaves the cluster last, after
	// its logs are closed. Until it is made, an interrupt still ends it.
	memberCtx, stopMember := context.WithCancel(context.Background())
	defer stopMember()
	interrupt := context.AfterFunc(ctx, stopMember)
	// The first registration is part of starting: a node id clash fails here.
	err = member.register(memberCtx)
	if !interrupt() || err != nil {
		if err == nil {
			member.close()
			err = ctx.Err()
		}
		return fmt.Errorf("register broker %d: %w", cfg.NodeID, err)
	}

	var objects objstore.Store
	if cfg.ObjectStoreURL != "" {
		if objects, err = objstore.Open(ctx, cfg.ObjectStoreURL, objstore.Options{Registerer: reg, Logger: logger.With("component", "objstore")}); err != nil {
			member.close()
			return fmt.Errorf("object store: %w", err)
		}
		logger.Info("object store for tiered topics", "store", objects.String())
	}

	replicas := grpcapi.NewReplicaClient()
	defer replicas.Close()
	b, err := broker.New(broker.Config{
		NodeID:            cfg.NodeID,
		DataDir:           cfg.DataDir,
		Settings:          cfg.Settings,
		Logger:            logger,
		Registerer:        reg,
		Replicas:          replicas,
		LeaseValidUntil:   member.validUntil,
		RegistrationEpoch: member.epoch,
		ObjectStore:       objects,
		TieringCacheBytes: cfg.TieringCacheBytes,
	}, store)
	if err != nil {
		member.close()
		return err
	}
	if err := b.Start(ctx); err != nil {
		member.close()
		return err
	}
	defaults, _ := topicconfig.BrokerDefaults(cfg.Settings) // checked by broker.New
	memberDone := make(chan struct{})
	go func() {
		defer close(memberDone)
		member.run(memberCtx, defaults)
	}()
	defer func() {
		if err := b.Close(); err != nil {
			logger.Error("closing broker", "err", err)
		}
		// Leave the cluster last: until the logs are closed this broker
		// still holds data its followers may need.
		stopMember()
		<-memberDone
		member.close()
	}()

	rpcMetrics := newRPCMetrics(reg)
	gs := grpc.NewServer(append(grpcapi.ServerOptions(),
		grpc.ChainUnaryInterceptor(rpcMetrics.unary),
		grpc.ChainStreamInterceptor(rpcMetrics.stream),
	)...)
	grpcapi.New(b).Register(gs)

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	// Profiles are served beside the metrics: the HTTP listener is meant for
	// operators (loopback by default), and performance work starts with pprof.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ks := kafkaapi.New(b, kafkaapi.Config{
		NodeID:           cfg.NodeID,
		AutoCreateTopics: autoCreate,
		Groups:           b.Groups(),
		MaxRequestBytes:  maxRequest,
		Logger:           logger.With("component", "kafka"),
		Registerer:       reg,
	})

	errc := make(chan error, 3)
	go func() { errc <- fmt.Errorf("gRPC server: %w", gs.Serve(grpcLis)) }()
	go func() { errc <- fmt.Errorf("HTTP server: %w", hs.Serve(httpLis)) }()
	kafkaDone := make(chan struct{})
	if kafkaLis != nil {
		go func() {
			defer close(kafkaDone)
			if err := ks.Serve(kafkaLis); !errors.Is(err, kafkaapi.ErrServerClosed) {
				errc <- fmt.Errorf("Kafka server: %w", err)
			}
		}()
	} else {
		close(kafkaDone)
	}
	logger.Info("broker ready", "node_id", cfg.NodeID, "grpc", grpcLis.Addr().String(),
		"http", httpLis.Addr().String(), "kafka", advertisedKafka, "data_dir", cfg.DataDir)
	if ready != nil {
		addrs := Addrs{GRPC: grpcLis.Addr(), HTTP: httpLis.Addr()}
		if kafkaLis != nil {
			addrs.Kafka = kafkaLis.Addr()
		}
		ready(addrs)
	}

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case runErr = <-errc:
	}

	// Long polls and follow streams would hold GracefulStop until their
	// MaxWait: end them first.
	b.Drain()
	stopped := make(chan struct{})
	go func() {
		kctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		_ = ks.Shutdown(kctx)
		<-kafkaDone
		gs.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(cfg.ShutdownTimeout):
		gs.Stop()
		<-stopped
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	_ = hs.Shutdown(shutCtx)
	return runErr
}

// advertise is the address to publish for a listener: its bound address,
// with the machine's host name in place of an unspecified IP (0.0.0.0), as
// Kafka does, since clients cannot connect to that.
func advertise(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return addr.String()
	}
	host, err := os.Hostname()
	if err != nil {
		host = "localhost"
	}
	return net.JoinHostPort(host, strconv.Itoa(tcp.Port))
}
