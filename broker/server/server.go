// Package server assembles a running broker process: the metastore
// connection (or an embedded etcd for `strata dev`), the broker core, the gRPC
// listener and the HTTP listener for health and metrics. The strata command
// only parses flags into a Config and calls Run.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/broker/controller"
	"github.com/strata-broker/strata/broker/grpcapi"
	"github.com/strata-broker/strata/broker/kafkaapi"
	"github.com/strata-broker/strata/broker/sharepartition"
	"github.com/strata-broker/strata/internal/membudget"
	"github.com/strata-broker/strata/internal/tlsconf"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/sasl/oauthbearer"
	"github.com/strata-broker/strata/tiering/objstore"
	"github.com/strata-broker/strata/topicconfig"
)

// Config is everything a broker process needs.
type Config struct {
	NodeID   int32
	DataDir  string
	GRPCAddr string
	HTTPAddr string
	// KafkaAddr is where the Kafka protocol listener binds, as one entry of
	// Kafka's listeners: PLAINTEXT://host:port, SSL://host:port,
	// SASL_PLAINTEXT://host:port, SASL_SSL://host:port, or a bare
	// host:port (PLAINTEXT). SSL and SASL_SSL read Kafka's ssl.* keys from
	// Settings, the SASL ones sasl.enabled.mechanisms and its kin.
	// Empty means no Kafka listener, unless Settings declare several with
	// Kafka's listeners key (topicconfig.KafkaListeners); setting both is
	// an error.
	KafkaAddr string
	// ObjectStoreURL, when set, is where tiered topics keep their sealed
	// segments (s3://bucket/prefix?endpoint=... or file:///dir);
	// TieringCacheBytes bounds the disk cache of remote reads.
	ObjectStoreURL    string
	TieringCacheBytes int64
	// AdvertisedKafkaAddr is the Kafka address Metadata returns for this
	// broker; empty means the address KafkaAddr bound. With listeners,
	// advertised.listeners does this job.
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
	// EtcdTLS, when set, is the TLS of the connection to an external etcd:
	// its RootCAs verify etcd, its Certificates answer etcd's
	// --client-cert-auth. EtcdUser and EtcdPassword log in with etcd's own
	// authentication.
	EtcdTLS      *tls.Config
	EtcdUser     string
	EtcdPassword metastore.EtcdPassword

	// Settings are broker settings in Kafka's server.properties keys. A key
	// the broker neither reads nor lists in topicconfig.IgnoredBrokerKeys
	// fails Run.
	Settings map[string]string
	// Pprof serves Go's profiles under /debug/pprof/ on the HTTP listener.
	// Off by default: profiles show the process's memory, and whoever can
	// reach the listener could read them or load the CPU.
	Pprof bool
	// ShutdownTimeout bounds the graceful stop of the listeners.
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
}

// DefaultSessionTimeout is short enough for a failover within about three
// seconds and long enough (about six renewals) to ride out a busy machine.
const DefaultSessionTimeout = 2 * time.Second

// Addrs are the addresses a running broker listens on; Kafka is the first
// Kafka listener's, nil when there is none, and KafkaListeners has every
// Kafka listener's by name.
type Addrs struct {
	GRPC, HTTP, Kafka net.Addr
	KafkaListeners    map[string]net.Addr
}

// Ready is called once the broker serves, with the addresses it listens on.
type Ready func(Addrs)

// Run starts the broker and blocks until ctx is cancelled, then shuts down
// cleanly: listeners stop, logs are flushed and closed, the broker leaves the
// cluster. ready, if not nil, is called when the broker serves.
//
// Start-up is a sequence of steps, each pushing onto one cleanup stack what
// undoes it. A failed step unwinds the steps before it; shutdown unwinds
// them all. The stack's order is the shutdown order: stop serving, close the
// broker (flushing its logs), leave the cluster, then close the listeners
// and the metastore.
func Run(ctx context.Context, cfg Config, ready Ready) error {
	p := &process{cfg: cfg.withDefaults()}
	p.logger = p.cfg.Logger
	defer p.cleanup.run()

	if err := p.checkSettings(); err != nil {
		return err
	}
	if err := p.openMetastore(ctx); err != nil {
		return err
	}
	p.newRegistry()
	if err := p.loadListeners(); err != nil {
		return err
	}
	// Settings are refused before any port is bound: a refusal then says
	// what is wrong with them, not that a port was taken meanwhile.
	if err := p.readKafkaSettings(); err != nil {
		return err
	}
	if err := p.loadOAuthBearer(ctx); err != nil {
		return err
	}
	if err := p.listen(); err != nil {
		return err
	}
	p.exportRequestBudget()
	p.newReplicaClient()
	if err := p.register(ctx); err != nil {
		return err
	}
	if err := p.openObjectStore(ctx); err != nil {
		return err
	}
	if err := p.startBroker(ctx); err != nil {
		return err
	}
	p.runMembership()
	errc := p.serve()
	p.announce(ready)

	select {
	case <-ctx.Done():
		p.logger.Info("shutting down")
		return nil
	case err := <-errc:
		return err
	}
}

func (cfg Config) withDefaults() Config {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
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
	return cfg
}

// cleanupStack holds what undoes each start-up step that succeeded.
type cleanupStack []func()

func (s *cleanupStack) push(f func()) { *s = append(*s, f) }

// run undoes the steps, last first.
func (s *cleanupStack) run() {
	for i := len(*s) - 1; i >= 0; i-- {
		(*s)[i]()
	}
	*s = nil
}

// process is a broker process being started, run and stopped: what each
// start-up step makes for the later ones.
type process struct {
	cfg     Config
	logger  *slog.Logger
	cleanup cleanupStack

	store *metastore.Store
	reg   *prometheus.Registry

	grpcLis, httpLis net.Listener
	// grpcAdvertised is the gRPC address registered for clients and the
	// other brokers.
	grpcAdvertised string
	// kafka are the Kafka listeners, in the order they were declared.
	kafka      []*kafkaListener
	autoCreate bool
	maxRequest int32
	// shares are the share partitions' settings (group.share.*).
	shares   topicconfig.ShareSettings
	listener topicconfig.KafkaListener
	// grpcTLS is the gRPC port's TLS material, nil when it is plaintext.
	grpcTLS *tlsconf.Material
	// reflection is grpc.reflection.enable.
	reflection bool
	// sasl is the SASL settings of the Kafka listeners that use SASL,
	// read whatever the protocols.
	sasl topicconfig.SASL
	// oauth validates OAUTHBEARER tokens; nil when no sasl.oauthbearer.*
	// setting says how.
	oauth *oauthbearer.Validator
	// requestBudget is queued.max.request.bytes: the memory requests in
	// flight share.
	requestBudget *membudget.Budget

	replicas *grpcapi.ReplicaClient
	member   *membership
	// memberCtx bounds the membership, which outlives Run's ctx (see
	// register); stopMember ends it.
	memberCtx  context.Context
	stopMember context.CancelFunc
	memberDone chan struct{} // closed when member.run returns; nil before it starts

	objects objstore.Store
	broker  *broker.Broker
}

// kafkaListener is one Kafka listener of the process.
type kafkaListener struct {
	cfg topicconfig.ListenerConfig
	// tls is the listener's TLS material, nil unless its protocol is SSL
	// or SASL_SSL.
	tls        *tlsconf.Material
	lis        net.Listener
	advertised string
	// advertisedSetting names the setting that sets advertised, for
	// errors.
	advertisedSetting string
	// principals is the listener's ssl.principal.mapping.rules.
	principals *tlsconf.PrincipalMapper
}

// openMetastore connects to etcd, first starting it in this process if
// the configuration embeds it.
func (p *process) openMetastore(ctx context.Context) error {
	cfg := p.cfg
	endpoints := cfg.EtcdEndpoints
	if cfg.EmbedEtcd {
		etcd, err := metastore.StartEmbedded(ctx, filepath.Join(cfg.DataDir, "etcd"), cfg.EtcdClientAddr, p.logger.With("component", "etcd"))
		if err != nil {
			return fmt.Errorf("start embedded etcd: %w", err)
		}
		p.cleanup.push(func() { etcd.Close() })
		endpoints = etcd.Endpoints()
		p.logger.Info("embedded etcd ready", "endpoints", endpoints)
	}
	if len(endpoints) == 0 {
		return errors.New("no etcd endpoints: set --etcd-endpoints")
	}
	var opts []metastore.DialOption
	if cfg.EtcdTLS != nil || cfg.EtcdUser != "" || cfg.EtcdPassword != "" {
		if cfg.EmbedEtcd {
			return errors.New("etcd TLS and user settings are for an external etcd; the embedded one serves this process on loopback only")
		}
		if cfg.EtcdTLS != nil {
			opts = append(opts, metastore.WithTLS(cfg.EtcdTLS))
		}
		opts = append(opts, metastore.WithAuth(cfg.EtcdUser, cfg.EtcdPassword))
	}
	store, err := metastore.Dial(ctx, endpoints, cfg.EtcdPrefix, p.logger.With("component", "metastore"), opts...)
	if err != nil {
		return fmt.Errorf("connect to etcd %v: %w", endpoints, err)
	}
	p.cleanup.push(func() { store.Close() })
	p.store = store
	return nil
}

func (p *process) newRegistry() {
	p.reg = prometheus.NewRegistry()
	p.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// listen binds the gRPC, HTTP and (if configured) Kafka listeners. They are
// bound before registering because the registration publishes their
// addresses, which may be ports the system chose.
func (p *process) listen() error {
	cfg := p.cfg
	var err error
	if p.grpcLis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return fmt.Errorf("listen for gRPC on %s: %w", cfg.GRPCAddr, err)
	}
	p.cleanup.push(func() { p.grpcLis.Close() })
	if p.httpLis, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return fmt.Errorf("listen for HTTP on %s: %w", cfg.HTTPAddr, err)
	}
	p.cleanup.push(func() { p.httpLis.Close() })
	for _, k := range p.kafka {
		if k.lis, err = net.Listen("tcp", k.cfg.Addr); err != nil {
			return fmt.Errorf("listen for Kafka clients on %s (listener %s): %w", k.cfg.Addr, k.cfg.Name, err)
		}
		p.cleanup.push(func() { k.lis.Close() })
		if k.advertised, err = advertisedAddr(k.cfg.Advertised, k.lis.Addr(), k.advertisedSetting, os.Hostname); err != nil {
			return err
		}
	}
	if p.grpcAdvertised, err = advertisedAddr(cfg.AdvertisedGRPCAddr, p.grpcLis.Addr(), "--advertised-grpc-addr", os.Hostname); err != nil {
		return err
	}
	return nil
}

// checkSettings refuses broker settings no part of the broker reads, before
// anything starts, and names those it accepts but ignores (names only: a
// value may be a secret).
func (p *process) checkSettings() error {
	if err := topicconfig.CheckBrokerKeys(p.cfg.Settings); err != nil {
		return fmt.Errorf("broker settings: %w", err)
	}
	var ignored []string
	for _, k := range topicconfig.IgnoredBrokerKeys {
		if _, ok := p.cfg.Settings[k]; ok {
			ignored = append(ignored, k)
		}
	}
	if len(ignored) > 0 {
		p.logger.Info("broker settings accepted but not read by Strata", "keys", ignored)
	}
	var err error
	if p.reflection, err = topicconfig.GRPCReflection(p.cfg.Settings); err != nil {
		return fmt.Errorf("broker settings: %w", err)
	}
	return nil
}

// loadListeners reads the Kafka listeners (--kafka-addr, or Kafka's
// listeners with their map and advertised addresses) and the TLS material
// of the listeners that have it, so that a bad declaration or a missing
// file fails the start.
func (p *process) loadListeners() error {
	s := p.cfg.Settings
	declared, err := topicconfig.KafkaListeners(s)
	if err != nil {
		return err
	}
	// What fixes a listener's published address, for the errors.
	advertisedSetting := func(name string) string {
		return topicconfig.AdvertisedListenersKey + " (listener " + name + ")"
	}
	switch {
	case declared != nil && p.cfg.KafkaAddr != "":
		return fmt.Errorf("--kafka-addr %s and the broker setting listeners are both set: declare every Kafka listener in listeners", p.cfg.KafkaAddr)
	case declared != nil && p.cfg.AdvertisedKafkaAddr != "":
		return errors.New("--kafka-advertised-addr and the broker setting listeners are both set: advertise each listener in advertised.listeners")
	case declared == nil && p.cfg.KafkaAddr != "":
		protocol, addr, err := topicconfig.ParseKafkaListener(p.cfg.KafkaAddr)
		if err != nil {
			return err
		}
		// As in Kafka without listener.security.protocol.map, the
		// listener's name is its protocol.
		declared = []topicconfig.ListenerConfig{{Name: protocol, Protocol: protocol, Addr: addr, Advertised: p.cfg.AdvertisedKafkaAddr}}
		advertisedSetting = func(string) string { return "--kafka-advertised-addr" }
		if err := topicconfig.CheckListenerSettings(s, []string{protocol}); err != nil {
			return err
		}
	case declared == nil:
		// No Kafka listener: a listener's own settings would be ignored.
		if err := topicconfig.CheckListenerSettings(s, nil); err != nil {
			return err
		}
	}
	// The shared ssl.* keys are checked even when no listener reads them:
	// a refused key (a password) fails the start either way.
	shared, err := topicconfig.KafkaSSL(s)
	if err != nil {
		return err
	}
	anyTLS := false
	for _, l := range declared {
		k := &kafkaListener{cfg: l, advertisedSetting: advertisedSetting(l.Name)}
		p.kafka = append(p.kafka, k)
		ssl, err := topicconfig.ListenerSSL(s, l.Name)
		if err != nil {
			return err
		}
		if !topicconfig.ProtocolUsesTLS(l.Protocol) {
			continue
		}
		anyTLS = true
		if !ssl.Enabled() {
			return fmt.Errorf("Kafka listener %s is %s but neither listener.name.%s.ssl.keystore.location nor ssl.keystore.location is set",
				l.Name, l.Protocol, strings.ToLower(l.Name))
		}
		if k.tls, err = p.loadMaterial(ssl); err != nil {
			return fmt.Errorf("Kafka listener %s: %w", l.Name, err)
		}
		k.principals = ssl.PrincipalMapper
	}
	if shared.Enabled() && !anyTLS && len(declared) > 0 {
		p.logger.Warn("ssl.* settings are set but no Kafka listener uses TLS; name one SSL (SSL://host:port) to use them")
	}
	ssl, err := topicconfig.GRPCSSL(s)
	if err != nil {
		return err
	}
	if ssl.Enabled() {
		if p.grpcTLS, err = p.loadMaterial(ssl); err != nil {
			return fmt.Errorf("gRPC listener: %w", err)
		}
	}
	return nil
}

func (p *process) loadMaterial(ssl topicconfig.SSL) (*tlsconf.Material, error) {
	return tlsconf.Load(tlsconf.Options{
		KeyStore:   ssl.KeystoreLocation,
		TrustStore: ssl.TruststoreLocation,
		ClientAuth: ssl.ClientAuth,
		Logger:     p.logger.With("component", "tls"),
	})
}

// readKafkaSettings reads the Kafka listener's settings, so that a bad one
// fails the start before the broker joins the cluster.
func (p *process) readKafkaSettings() error {
	var err error
	if p.autoCreate, err = topicconfig.AutoCreateTopics(p.cfg.Settings); err != nil {
		return err
	}
	if p.maxRequest, err = topicconfig.SocketRequestMaxBytes(p.cfg.Settings); err != nil {
		return err
	}
	if p.listener, err = topicconfig.KafkaListenerSettings(p.cfg.Settings); err != nil {
		return err
	}
	if p.sasl, err = topicconfig.SASLSettings(p.cfg.Settings); err != nil {
		return err
	}
	queued, err := topicconfig.QueuedMaxRequestBytes(p.cfg.Settings)
	if err != nil {
		return err
	}
	p.requestBudget = membudget.New(queued)
	if p.shares, err = topicconfig.Shares(p.cfg.Settings); err != nil {
		return err
	}
	return nil
}

// exportRequestBudget exports what the memory budget of requests in flight
// holds: the Kafka listener charges it for the requests it reads, the
// broker core for the batches it decompresses.
func (p *process) exportRequestBudget() {
	b := p.requestBudget
	p.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "strata_request_memory_held_bytes",
			Help: "Memory reserved by requests being read, decoded and answered, out of queued.max.request.bytes.",
		}, func() float64 { return float64(b.Held()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "strata_request_memory_limit_bytes",
			Help: "queued.max.request.bytes: the memory requests in flight may hold together (0: no limit).",
		}, func() float64 { return float64(b.Total()) }),
	)
}

// newReplicaClient makes the client the broker fetches from other brokers
// with. It is closed after the broker has left the cluster.
func (p *process) newReplicaClient() {
	// Brokers share one gRPC port for clients and each other: when it is
	// TLS, peers are dialled with the cluster's trust store and this
	// broker's certificate.
	var creds credentials.TransportCredentials
	if p.grpcTLS != nil {
		creds = p.grpcTLS.PeerCredentials()
	}
	p.replicas = grpcapi.NewReplicaClient(creds)
	p.cleanup.push(func() { p.replicas.Close() })
}

// register makes the broker a member of the cluster. Leaving is pushed
// before registering: it undoes a registration that an interrupt raced.
func (p *process) register(ctx context.Context) error {
	cfg := p.cfg
	if cfg.EmbedEtcd {
		// Nobody else reaches this process's etcd: a registration under our id
		// is our own previous run's, left by a crash. Clear it instead of
		// waiting for its lease to expire.
		if err := p.store.RemoveBroker(ctx, cfg.NodeID); err != nil {
			return err
		}
	}
	// Before registering: registered, a broker is a candidate for leadership
	// of what the states credit it with, its lost logs included.
	if err := broker.ReleaseLostReplicas(ctx, p.store, cfg.NodeID, cfg.DataDir, p.logger); err != nil {
		return err
	}
	rack, err := topicconfig.BrokerRack(cfg.Settings)
	if err != nil {
		return err
	}
	// Read now, though only a controller uses it, so that a bad value
	// fails every broker's start rather than a later election's winner.
	rebalance, err := topicconfig.LeaderRebalanceSettings(cfg.Settings)
	if err != nil {
		return err
	}
	info := metastore.BrokerInfo{
		NodeID:    cfg.NodeID,
		GRPCAddr:  p.grpcAdvertised,
		HTTPAddr:  p.httpLis.Addr().String(),
		Rack:      rack,
		StartedAt: time.Now(),
	}
	for i, k := range p.kafka {
		if i == 0 {
			info.KafkaAddr = k.advertised
		}
		info.Endpoints = append(info.Endpoints, metastore.Endpoint{Listener: k.cfg.Name, SecurityProtocol: k.cfg.Protocol, Addr: k.advertised})
	}
	p.member = &membership{
		store:     p.store,
		logger:    p.logger,
		ttl:       cfg.SessionTimeout,
		info:      info,
		rebalance: rebalance,
		metrics:   controller.NewMetrics(p.reg),
	}
	// The registration outlives ctx: the broker leaves the cluster last, after
	// its logs are closed. Until it is made, an interrupt still ends it.
	p.memberCtx, p.stopMember = context.WithCancel(context.Background())
	p.cleanup.push(p.leave)
	interrupt := context.AfterFunc(ctx, p.stopMember)
	// The first registration is part of starting: a node id clash fails here.
	err = p.member.register(p.memberCtx)
	if !interrupt() || err != nil {
		if err == nil {
			err = ctx.Err()
		}
		return fmt.Errorf("register broker %d: %w", cfg.NodeID, err)
	}
	return nil
}

// leave stops the membership and revokes the registration, if any.
func (p *process) leave() {
	p.stopMember()
	if p.memberDone != nil {
		<-p.memberDone
	}
	p.member.close()
}

// openObjectStore opens the store of tiered topics, if one is configured.
// Opening it does not contact it, and it holds nothing to close.
func (p *process) openObjectStore(ctx context.Context) error {
	if p.cfg.ObjectStoreURL == "" {
		return nil
	}
	var err error
	p.objects, err = objstore.Open(ctx, p.cfg.ObjectStoreURL, objstore.Options{Registerer: p.reg, Logger: p.logger.With("component", "objstore")})
	if err != nil {
		return fmt.Errorf("object store: %w", err)
	}
	p.logger.Info("object store for tiered topics", "store", p.objects.String())
	return nil
}

// startBroker creates the broker core and starts it: its logs are opened
// and recovered. A failed Start has already stopped what it started.
func (p *process) startBroker(ctx context.Context) error {
	cfg := p.cfg
	b, err := broker.New(broker.Config{
		NodeID:            cfg.NodeID,
		DataDir:           cfg.DataDir,
		Settings:          cfg.Settings,
		Logger:            p.logger,
		Registerer:        p.reg,
		Replicas:          p.replicas,
		LeaseValidUntil:   p.member.validUntil,
		RegistrationEpoch: p.member.epoch,
		ReplicaSecret:     p.member.replicaSecret,
		ObjectStore:       p.objects,
		TieringCacheBytes: cfg.TieringCacheBytes,
		RequestBudget:     p.requestBudget,
	}, p.store)
	if err != nil {
		return err
	}
	if err := b.Start(ctx); err != nil {
		return err
	}
	p.broker = b
	// Leave the cluster only after this: until the logs are closed this
	// broker still holds data its followers may need.
	p.cleanup.push(func() {
		if err := b.Close(); err != nil {
			p.logger.Error("closing broker", "err", err)
		}
	})
	return nil
}

// runMembership keeps the registration alive and campaigns for controller
// until leave.
func (p *process) runMembership() {
	defaults, _ := topicconfig.BrokerDefaults(p.cfg.Settings) // checked by broker.New
	p.memberDone = make(chan struct{})
	go func() {
		defer close(p.memberDone)
		p.member.run(p.memberCtx, defaults)
	}()
}

// serve starts the gRPC, HTTP and Kafka servers on their listeners. The
// channel reports the first server that fails.
func (p *process) serve() <-chan error {
	cfg := p.cfg
	rpcMetrics := newRPCMetrics(p.reg)
	apiCfg := grpcapi.Config{Logger: p.logger, Registerer: p.reg}
	if p.oauth != nil {
		// The Kafka listener's OAUTHBEARER validator takes gRPC's bearer
		// tokens too: one configuration, one principal per token.
		apiCfg.Tokens = p.oauth
	}
	api := grpcapi.New(p.broker, apiCfg)
	// The metrics interceptors go first, so that they count the calls the
	// frontend refuses (Unauthenticated, PermissionDenied) too.
	grpcOpts := append([]grpc.ServerOption{
		grpc.ChainUnaryInterceptor(rpcMetrics.unary),
		grpc.ChainStreamInterceptor(rpcMetrics.stream),
	}, api.ServerOptions()...)
	if p.grpcTLS != nil {
		grpcOpts = append(grpcOpts, grpc.Creds(credentials.NewTLS(p.grpcTLS.ServerConfig())))
	}
	gs := grpc.NewServer(grpcOpts...)
	api.Register(gs)
	healthpb.RegisterHealthServer(gs, newGRPCHealth(p.broker))
	if p.reflection {
		// Both versions: grpcurl and most tools ask v1 first and fall back
		// to v1alpha, which older ones ask only.
		reflection.Register(gs)
	}

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{}))
	if cfg.Pprof {
		// Beside the metrics, when asked for: performance work starts with
		// pprof. /debug/pprof/cmdline is left out (the Index handler
		// answers it 404): the command line may carry settings' secrets.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	}
	mux.HandleFunc("/healthz", healthz(p.broker))
	mux.HandleFunc("/readyz", readyz(p.broker))
	hs := newHTTPServer(mux, defaultHTTPTimeouts)

	// Share groups' records are kept on the partitions' leaders, their
	// state in etcd; the share-group coordinator's membership and group
	// configs are given to the manager where they exist.
	shares := sharepartition.NewManager(sharepartition.ManagerConfig{
		Core: p.broker, Store: p.store, Groups: p.broker, Settings: p.shares,
		Logger: p.logger.With("component", "shares"),
	})
	shares.SetMembers(p.broker)
	ks := kafkaapi.New(p.broker, kafkaapi.Config{
		NodeID:                    cfg.NodeID,
		AutoCreateTopics:          p.autoCreate,
		Groups:                    p.broker.Groups(),
		ShareGroups:               p.broker.ShareGroups(),
		GroupConfigs:              p.broker,
		Shares:                    shares,
		MaxRequestBytes:           p.maxRequest,
		NonProduceMaxRequestBytes: p.listener.NonProduceRequestMaxBytes,
		RequestBudget:             p.requestBudget,
		MaxConnections:            p.listener.MaxConnections,
		MaxConnectionsPerIP:       p.listener.MaxConnectionsPerIP,
		IdleTimeout:               p.listener.ConnectionsMaxIdle,
		RequestTimeout:            p.listener.RequestTimeout,
		SASL:                      p.saslConfig(),
		Authorizer:                p.broker.Authorizer(),
		AuditLogger:               p.logger,
		Logger:                    p.logger.With("component", "kafka"),
		Registerer:                p.reg,
	})

	errc := make(chan error, 2+len(p.kafka))
	go func() { errc <- fmt.Errorf("gRPC server: %w", gs.Serve(p.grpcLis)) }()
	go func() { errc <- fmt.Errorf("HTTP server: %w", hs.Serve(p.httpLis)) }()
	// One server for every Kafka listener: connections differ only in the
	// listener they carry (its name picks the addresses Metadata returns).
	var kafkaServing sync.WaitGroup
	for _, k := range p.kafka {
		lis := k.lis
		// The server makes a TLS listener's connections TLS itself, so
		// that it can gather each response's records into few writes; the
		// handshake runs first thing in the connection's own goroutine,
		// under the listener's idle deadline.
		var tlsConfig *tls.Config
		if k.tls != nil {
			tlsConfig = k.tls.ServerConfig()
		}
		kafkaServing.Go(func() {
			if err := ks.ServeListener(lis, kafkaapi.Listener{Name: k.cfg.Name, Protocol: k.cfg.Protocol, PrincipalMapper: k.principals, TLS: tlsConfig}); !errors.Is(err, kafkaapi.ErrServerClosed) {
				errc <- fmt.Errorf("Kafka server, listener %s: %w", k.cfg.Name, err)
			}
		})
	}
	p.cleanup.push(func() {
		// Long polls and follow streams would hold GracefulStop until their
		// MaxWait: end them first.
		p.broker.Drain()
		stopped := make(chan struct{})
		go func() {
			kctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			defer cancel()
			_ = ks.Shutdown(kctx)
			kafkaServing.Wait()
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
	})
	return errc
}

// httpTimeouts bound what a client of the HTTP listener may hold: a
// connection sending its request slowly, one not reading its answer, one
// left open between requests.
type httpTimeouts struct {
	readHeader, read, write, idle time.Duration
}

// defaultHTTPTimeouts: requests are GETs without bodies, answered from
// memory; a CPU profile (/debug/pprof/profile, 30 s by default) must fit
// the write timeout, which net/http/pprof checks; Prometheus keeps its
// connection open between scrapes, at most a minute or two apart.
var defaultHTTPTimeouts = httpTimeouts{
	readHeader: 10 * time.Second,
	read:       30 * time.Second,
	write:      2 * time.Minute,
	idle:       2 * time.Minute,
}

// maxHTTPHeaderBytes bounds a request's header: the listener's requests
// carry none of any size.
const maxHTTPHeaderBytes = 64 << 10

func newHTTPServer(h http.Handler, t httpTimeouts) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.readHeader,
		ReadTimeout:       t.read,
		WriteTimeout:      t.write,
		IdleTimeout:       t.idle,
		MaxHeaderBytes:    maxHTTPHeaderBytes,
	}
}

// announce logs that the broker serves and calls ready with its addresses.
func (p *process) announce(ready Ready) {
	kafka := make([]string, 0, len(p.kafka))
	addrs := Addrs{GRPC: p.grpcLis.Addr(), HTTP: p.httpLis.Addr(), KafkaListeners: map[string]net.Addr{}}
	for i, k := range p.kafka {
		kafka = append(kafka, fmt.Sprintf("%s://%s (bound %s)", k.cfg.Name, k.advertised, k.lis.Addr()))
		addrs.KafkaListeners[k.cfg.Name] = k.lis.Addr()
		if i == 0 {
			addrs.Kafka = k.lis.Addr()
		}
	}
	p.logger.Info("broker ready", "node_id", p.cfg.NodeID, "grpc", p.grpcLis.Addr().String(), "grpc_advertised", p.grpcAdvertised,
		"http", p.httpLis.Addr().String(), "kafka", kafka, "data_dir", p.cfg.DataDir)
	if ready != nil {
		ready(addrs)
	}
}
