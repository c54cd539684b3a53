// Package kafkaapi is the Kafka protocol frontend: it accepts Kafka client
// connections, decodes requests with kmsg, answers them from the broker core
// (the same core the gRPC API serves, so a record produced through one is
// consumed through the other) and writes responses in request order.
package kafkaapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-broker/strata/acl"
	"github.com/strata-broker/strata/acl/audit"
	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/internal/membudget"
	"github.com/strata-broker/strata/internal/tlsconf"
	"github.com/strata-broker/strata/topicconfig"
)

// Defaults for a Config left zero. The broker process reads its values
// from the broker settings (topicconfig.KafkaListenerSettings).
const (
	// DefaultMaxRequestBytes is Kafka's socket.request.max.bytes default.
	DefaultMaxRequestBytes = 100 << 20
	// DefaultNonProduceMaxRequestBytes bounds every other request: clients
	// send large Produce requests only.
	DefaultNonProduceMaxRequestBytes = 1 << 20
	// DefaultIdleTimeout is Kafka's connections.max.idle.ms.
	DefaultIdleTimeout = 10 * time.Minute
	// DefaultRequestTimeout is Kafka clients' request.timeout.ms: a client
	// has given up on a request by then anyway.
	DefaultRequestTimeout = 30 * time.Second
)

// Config configures the frontend.
type Config struct {
	// NodeID is this broker's id, reported where Kafka reports it.
	NodeID int32
	// MaxRequestBytes bounds one request frame (socket.request.max.bytes);
	// a larger length prefix closes the connection.
	MaxRequestBytes int32
	// NonProduceMaxRequestBytes bounds every request but Produce
	// (socket.request.max.bytes.non.produce); it is never above
	// MaxRequestBytes.
	NonProduceMaxRequestBytes int32
	// RequestBudget is the memory shared by every request being read,
	// decoded and answered (queued.max.request.bytes): a request reserves
	// what it may take before its body is read, and waits while others
	// hold the budget. It is the process's one budget, which the broker
	// core may charge too (decompressing produced batches). Nil means no
	// limit.
	RequestBudget *membudget.Budget
	// MaxConnections bounds open connections (max.connections): at the
	// limit the listener stops accepting until one closes, as Kafka does.
	// Zero means no limit.
	MaxConnections int
	// MaxConnectionsPerIP bounds the connections from one address
	// (max.connections.per.ip): one more is closed at once, as in Kafka.
	// Zero means no limit.
	MaxConnectionsPerIP int
	// AutoCreateTopics is auto.create.topics.enable: Metadata (and Produce
	// via Metadata) creates a missing topic with the broker defaults.
	AutoCreateTopics bool
	// AutoCreateMaxPerRequest bounds the topics one Metadata request
	// creates; zero means the core's auto.create.topics.max.per.request
	// setting.
	AutoCreateMaxPerRequest int
	// FetchSessionCacheSlots bounds the incremental fetch sessions held
	// (max.incremental.fetch.session.cache.slots); zero means the broker
	// setting, negative none.
	FetchSessionCacheSlots int
	// Groups coordinates the consumer groups this broker owns; nil means
	// the group APIs are not served.
	Groups Groups
	// ShareGroups coordinates the share groups this broker owns; nil means
	// the share-group APIs are not served.
	ShareGroups ShareGroups
	// GroupConfigs serves the GROUP config resources; nil refuses them.
	GroupConfigs GroupConfigs
	// Shares serves share groups' records (ShareFetch, ShareAcknowledge)
	// and their offsets; nil answers those APIs COORDINATOR_NOT_AVAILABLE.
	Shares Shares
	// IdleTimeout closes a connection that sends nothing for this long
	// (connections.max.idle.ms); zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// RequestTimeout bounds the time from a request's first byte to its
	// last (socket.request.timeout.ms), so that a client cannot hold
	// memory by trickling a frame; zero means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// SASL authenticates the connections of SASL_PLAINTEXT and SASL_SSL
	// listeners; ServeListener refuses such a listener without it.
	SASL *SASLConfig
	// Authorizer decides every request against the cluster's ACLs; nil
	// (no authorizer.class.name) allows everything.
	Authorizer *acl.Authorizer
	// AuditLogger receives the authorization decisions (component=audit
	// is added); nil means Logger.
	AuditLogger *slog.Logger
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
}

// Server serves Kafka connections. Its zero value is not usable: use New.
type Server struct {
	core   Core
	groups Groups
	// shareGroups and groupConfigs are Config's.
	shareGroups  ShareGroups
	groupConfigs GroupConfigs
	shares       Shares
	cfg          Config
	logger       *slog.Logger
	metrics      *metrics
	// authz is the authorizer, nil when none is configured; audit records
	// its decisions.
	authz *acl.Authorizer
	audit *audit.Auditor
	// apis are the registered APIs. New builds them and nothing changes
	// them after, so connections read them without a lock.
	apis  []api
	byKey []*api // apis by key, for lookup
	// buffers holds fetch read buffers and response encoding buffers, which
	// are large (up to a fetch's size) and would otherwise be allocated and
	// cleared for every response.
	buffers broker.BufferPool
	// fetchSessions are the incremental fetch sessions (KIP-227).
	fetchSessions *fetchSessions
	// warnings are the log lines clients cause, rate limited.
	warnings *connLog
	// slots holds a token per open connection when max.connections is
	// set: the accept loop waits for room before accepting.
	slots chan struct{}
	// requestMemory is the most of the request budget requests can ever
	// hold: what the budget already holds when the server is made is held
	// for the life of the process (the core's decompression slots).
	requestMemory int64
	// stop ends waits for the request budget at shutdown.
	stop       context.Context
	cancelStop context.CancelFunc

	mu       sync.Mutex
	lis      []net.Listener
	conns    map[*conn]struct{}
	perIP    map[string]int // open connections by remote address
	closed   bool
	connsWG  sync.WaitGroup
	shutdown chan struct{}
	// connIDs numbers connections (conn.id).
	connIDs atomic.Uint64
}

// New returns a server answering from core.
func New(core Core, cfg Config) *Server {
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.NonProduceMaxRequestBytes <= 0 {
		cfg.NonProduceMaxRequestBytes = DefaultNonProduceMaxRequestBytes
	}
	cfg.NonProduceMaxRequestBytes = min(cfg.NonProduceMaxRequestBytes, cfg.MaxRequestBytes)
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.AutoCreateMaxPerRequest <= 0 {
		// broker.New refuses a bad value, so an error here means a core
		// that is not one: take the default.
		n, err := topicconfig.AutoCreateMaxPerRequest(core.BrokerSettings())
		if err != nil {
			n = topicconfig.DefaultAutoCreateMaxPerRequest
		}
		cfg.AutoCreateMaxPerRequest = n
	}
	if cfg.FetchSessionCacheSlots == 0 {
		n, err := topicconfig.FetchSessionCacheSlots(core.BrokerSettings())
		if err != nil {
			n = topicconfig.DefaultFetchSessionCacheSlots
		}
		cfg.FetchSessionCacheSlots = n
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	auditLogger := cfg.AuditLogger
	if auditLogger == nil {
		auditLogger = logger
	}
	stop, cancelStop := context.WithCancel(context.Background())
	s := &Server{
		authz:         cfg.Authorizer,
		core:          core,
		groups:        cfg.Groups,
		shareGroups:   cfg.ShareGroups,
		groupConfigs:  cfg.GroupConfigs,
		shares:        cfg.Shares,
		cfg:           cfg,
		logger:        logger,
		metrics:       newMetrics(cfg.Registerer),
		audit:         audit.New("kafka", auditLogger, cfg.Registerer),
		buffers:       broker.NewReadBuffers(),
		fetchSessions: newFetchSessions(max(cfg.FetchSessionCacheSlots, 0), time.Now, cfg.Registerer),
		warnings:      newConnLog(logger),
		stop:          stop,
		cancelStop:    cancelStop,
		conns:         make(map[*conn]struct{}),
		perIP:         make(map[string]int),
		shutdown:      make(chan struct{}),
	}
	if cfg.MaxConnections > 0 {
		s.slots = make(chan struct{}, cfg.MaxConnections)
	}
	if b := cfg.RequestBudget; b != nil {
		s.requestMemory = b.Total() - b.Held()
	}
	if cfg.SASL != nil {
		// Every mechanism offered has both outcomes from the start, so a
		// failure rate is zero rather than absent until the first failure.
		for _, name := range cfg.SASL.names() {
			s.metrics.authentications.WithLabelValues(name, "success")
			s.metrics.authentications.WithLabelValues(name, "failure")
		}
	}
	s.apis = s.registered()
	s.byKey = indexByKey(s.apis)
	return s
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("kafka server closed")

// Listener is one Kafka listener of a Server: its name (Kafka's listener
// name, PLAINTEXT, SSL, INTERNAL, ...) and its security protocol, which
// says whether its connections must authenticate with SASL before they
// are served. An SSL or SASL_SSL listener's net.Listener already speaks
// TLS.
type Listener struct {
	Name     string
	Protocol string // topicconfig.Protocol*
	// PrincipalMapper is the listener's ssl.principal.mapping.rules: it
	// names the principal of a client certificate on an SSL listener; nil
	// keeps the whole subject (DEFAULT).
	PrincipalMapper *tlsconf.PrincipalMapper
	// TLS, when set, makes the server speak TLS on the listener's
	// connections (an SSL or SASL_SSL listener whose net.Listener is
	// plain): the server then gathers each response's TLS records into
	// few writes (corkConn).
	TLS *tls.Config
}

// Serve accepts connections on lis as a PLAINTEXT listener until Shutdown.
func (s *Server) Serve(lis net.Listener) error {
	return s.ServeListener(lis, Listener{Name: topicconfig.ProtocolPlaintext, Protocol: topicconfig.ProtocolPlaintext})
}

// ServeListener accepts connections on lis, served as l says, until
// Shutdown. Each connection is served by its own goroutine, which Shutdown
// waits for.
func (s *Server) ServeListener(lis net.Listener, l Listener) error {
	if topicconfig.ProtocolUsesSASL(l.Protocol) && (s.cfg.SASL == nil || len(s.cfg.SASL.Mechanisms) == 0) {
		lis.Close()
		return fmt.Errorf("kafka listener %s is %s but no SASL mechanism is configured", l.Name, l.Protocol)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		lis.Close()
		return ErrServerClosed
	}
	s.lis = append(s.lis, lis)
	s.mu.Unlock()

	var delay time.Duration
	for {
		if err := s.takeSlot(); err != nil {
			return err
		}
		nc, err := lis.Accept()
		if err != nil {
			s.releaseSlot()
			select {
			case <-s.shutdown:
				return ErrServerClosed
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("accept kafka connection: %w", err)
			}
			// Out of descriptors (EMFILE, ENFILE), a connection reset
			// before it was accepted (ECONNABORTED), out of buffers: none
			// is a timeout, and none is a reason to stop serving the
			// clients already connected. Back off rather than spin; the
			// log line is at most one a second at the longest delay.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.logger.Warn("kafka listener: accept failed, retrying", "err", err, "delay", delay)
			select {
			case <-s.shutdown:
				return ErrServerClosed
			case <-time.After(delay):
			}
			continue
		}
		delay = 0
		if err := s.start(nc, l); err != nil {
			return err
		}
	}
}

// takeSlot waits, at max.connections, until a connection closes. Kafka
// blocks its acceptor the same way: clients wait in the listen backlog
// rather than being refused.
func (s *Server) takeSlot() error {
	if s.slots == nil {
		return nil
	}
	select {
	case s.slots <- struct{}{}:
		return nil
	default:
	}
	s.warnings.log(slog.LevelWarn, "kafka listener at max.connections: new connections wait until one closes", "max_connections", cap(s.slots))
	select {
	case s.slots <- struct{}{}:
		return nil
	case <-s.shutdown:
		return ErrServerClosed
	}
}

func (s *Server) releaseSlot() {
	if s.slots != nil {
		<-s.slots
	}
}

// start serves an accepted connection on its own goroutine, unless its
// address already has max.connections.per.ip: then it is closed at once,
// as Kafka does.
func (s *Server) start(nc net.Conn, l Listener) error {
	ip := ipOf(nc.RemoteAddr())
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		s.releaseSlot()
		return ErrServerClosed
	}
	if limit := s.cfg.MaxConnectionsPerIP; limit > 0 && s.perIP[ip] >= limit {
		s.mu.Unlock()
		nc.Close()
		s.releaseSlot()
		s.metrics.rejected.WithLabelValues("max_connections_per_ip").Inc()
		s.warnings.log(slog.LevelWarn, "kafka connection refused: address has max.connections.per.ip", "remote", nc.RemoteAddr().String(), "max_connections_per_ip", limit)
		return nil
	}
	var cork *corkConn
	if l.TLS != nil {
		cork = &corkConn{Conn: nc, pool: s.buffers}
		nc = tls.Server(cork, l.TLS)
	}
	c := newConn(s, nc, l)
	c.cork = cork
	s.perIP[ip]++
	s.conns[c] = struct{}{}
	s.connsWG.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.connsWG.Done()
		c.serve()
		s.connectionClosed(c)
		s.mu.Lock()
		delete(s.conns, c)
		if s.perIP[ip]--; s.perIP[ip] <= 0 {
			delete(s.perIP, ip)
		}
		s.mu.Unlock()
		s.releaseSlot()
	}()
	return nil
}

// connectionClosed ends what lives as long as connection c: the share
// sessions opened on it release their members' records (bounded by the
// request timeout, and cut short by shutdown: the records' locks expire
// anyway).
func (s *Server) connectionClosed(c *conn) {
	if s.shares == nil {
		return
	}
	ctx, cancel := context.WithTimeout(s.stop, s.cfg.RequestTimeout)
	defer cancel()
	s.shares.ConnectionClosed(ctx, c.id)
}

// ipOf is the address part of a remote address, which connection limits
// count by.
func ipOf(a net.Addr) string {
	if tcp, ok := a.(*net.TCPAddr); ok {
		return tcp.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// Shutdown stops accepting, lets each connection finish the request it is
// handling (the core's Drain ends long polls), then closes the connections.
// When ctx ends first, the remaining connections are closed at once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.shutdown)
		s.cancelStop()
		for _, l := range s.lis {
			l.Close()
		}
		for c := range s.conns {
			c.closeIdle()
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.connsWG.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// hostPort splits an advertised address for Metadata's host and port fields.
func hostPort(addr string) (string, int32, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port of %q: %w", addr, err)
	}
	return host, int32(p), nil
}
