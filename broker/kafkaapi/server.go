// Package kafkaapi is the Kafka protocol frontend: it accepts Kafka client
// connections, decodes requests with kmsg, answers them from the broker core
// (the same core the gRPC API serves, so a record produced through one is
// consumed through the other) and writes responses in request order.
package kafkaapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/topicconfig"
)

// DefaultMaxRequestBytes is Kafka's socket.request.max.bytes default.
const DefaultMaxRequestBytes = 100 << 20

// Config configures the frontend.
type Config struct {
	// NodeID is this broker's id, reported where Kafka reports it.
	NodeID int32
	// MaxRequestBytes bounds one request frame (socket.request.max.bytes);
	// a larger length prefix closes the connection.
	MaxRequestBytes int32
	// AutoCreateTopics is auto.create.topics.enable: Metadata (and Produce
	// via Metadata) creates a missing topic with the broker defaults.
	AutoCreateTopics bool
	// AutoCreateMaxPerRequest bounds the topics one Metadata request
	// creates; zero means the core's auto.create.topics.max.per.request
	// setting.
	AutoCreateMaxPerRequest int
	// Groups coordinates the consumer groups this broker owns; nil means
	// the group APIs are not served.
	Groups Groups
	// IdleTimeout closes a connection that sends nothing for this long
	// (connections.max.idle.ms); zero means 10 minutes, Kafka's default.
	IdleTimeout time.Duration
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
}

// Server serves Kafka connections. Its zero value is not usable: use New.
type Server struct {
	core    Core
	groups  Groups
	cfg     Config
	logger  *slog.Logger
	metrics *metrics
	// apis are the registered APIs. New builds them and nothing changes
	// them after, so connections read them without a lock.
	apis  []api
	byKey []*api // apis by key, for lookup
	// buffers holds fetch read buffers and response encoding buffers, which
	// are large (up to a fetch's size) and would otherwise be allocated and
	// cleared for every response.
	buffers broker.BufferPool

	mu       sync.Mutex
	lis      []net.Listener
	conns    map[*conn]struct{}
	closed   bool
	connsWG  sync.WaitGroup
	shutdown chan struct{}
}

// New returns a server answering from core.
func New(core Core, cfg Config) *Server {
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 10 * time.Minute
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
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		core:     core,
		groups:   cfg.Groups,
		cfg:      cfg,
		logger:   logger,
		metrics:  newMetrics(cfg.Registerer),
		buffers:  broker.NewReadBuffers(),
		conns:    make(map[*conn]struct{}),
		shutdown: make(chan struct{}),
	}
	s.apis = s.registered()
	s.byKey = indexByKey(s.apis)
	return s
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("kafka server closed")

// Serve accepts connections on lis until Shutdown. Each connection is served
// by its own goroutine, which Shutdown waits for.
func (s *Server) Serve(lis net.Listener) error {
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
		nc, err := lis.Accept()
		if err != nil {
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
		c := newConn(s, nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.connsWG.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.connsWG.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Shutdown stops accepting, lets each connection finish the request it is
// handling (the core's Drain ends long polls), then closes the connections.
// When ctx ends first, the remaining connections are closed at once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.shutdown)
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
