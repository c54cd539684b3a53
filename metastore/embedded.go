package metastore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap/zapcore"
)

// Embedded etcd settings.
const (
	embeddedName         = "strata"
	embeddedStartTimeout = 30 * time.Second
	// embeddedMaxTxnOps bounds partitions per topic (CreateTopic is one
	// transaction of 1+partitions puts); etcd's default is 128.
	embeddedMaxTxnOps = 4096
	// A restarted member waits out a randomized election timeout, in
	// ticks of ElectionMs, before it elects itself and serves: with etcd's
	// defaults (100 and 1,000 ms) that was most of a small broker's
	// restart. One member has no peer to miss a heartbeat from, so short
	// timeouts risk nothing here.
	embeddedTickMs     = 20
	embeddedElectionMs = 200
)

// Embedded is an etcd server running inside this process, for `strata dev`
// and tests: a single member, on loopback, with its data in one directory.
type Embedded struct {
	etcd      *embed.Etcd
	endpoints []string
	closing   atomic.Bool
	closeOnce sync.Once
}

// StartEmbedded starts a single-member etcd with its data in dir (created if
// missing; an existing dir keeps its data across restarts) serving clients on
// clientAddr, a loopback host:port such as "127.0.0.1:2379". Port 0 picks a
// free port; Endpoints reports the real one. Peer traffic uses another free
// loopback port. etcd's own log goes to logger at warn level and above.
// It returns once the server is ready to serve, or fails when ctx ends or
// 30 s pass.
func StartEmbedded(ctx context.Context, dir string, clientAddr string, logger *slog.Logger) (*Embedded, error) {
	return startEmbedded(ctx, dir, clientAddr, logger, freePort)
}

// embeddedStartAttempts bounds the starts of an embedded etcd whose chosen
// ports were taken. A port is chosen by binding port 0 and letting it go
// (etcd binds its listeners itself), so another process can take it in
// between; a new choice then gets another port, where failing would stop a
// broker that asked for any free port.
const embeddedStartAttempts = 3

// startEmbedded is StartEmbedded choosing free ports with pick.
func startEmbedded(ctx context.Context, dir string, clientAddr string, logger *slog.Logger, pick func(host string) (string, error)) (*Embedded, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	for attempt := 1; ; attempt++ {
		e, err := startEmbeddedOnce(ctx, dir, clientAddr, logger, pick)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || attempt == embeddedStartAttempts || ctx.Err() != nil {
			return e, err
		}
		logger.Info("a port chosen for the embedded etcd was taken before etcd bound it; choosing again", "err", err)
	}
}

func startEmbeddedOnce(ctx context.Context, dir string, clientAddr string, logger *slog.Logger, pick func(host string) (string, error)) (*Embedded, error) {
	clientURL, err := loopbackURL(clientAddr, pick)
	if err != nil {
		return nil, fmt.Errorf("metastore: start embedded etcd: client address: %w", err)
	}
	peerURL, err := loopbackURL(net.JoinHostPort(clientURL.Hostname(), "0"), pick)
	if err != nil {
		return nil, fmt.Errorf("metastore: start embedded etcd: peer address: %w", err)
	}

	cfg := embed.NewConfig()
	cfg.Name = embeddedName
	cfg.Dir = dir
	cfg.ListenClientUrls = []url.URL{*clientURL}
	cfg.AdvertiseClientUrls = []url.URL{*clientURL}
	cfg.ListenPeerUrls = []url.URL{*peerURL}
	cfg.AdvertisePeerUrls = []url.URL{*peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.TickMs, cfg.ElectionMs = embeddedTickMs, embeddedElectionMs
	cfg.MaxTxnOps = embeddedMaxTxnOps
	cfg.EnableGRPCGateway = false
	// Partition states and broker leases churn; keep an hour of history.
	cfg.AutoCompactionMode = embed.CompactorModePeriodic
	cfg.AutoCompactionRetention = "1h"
	cfg.LogLevel = "warn"
	emb := &Embedded{}
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(newZapLogger(logger, zapcore.WarnLevel, "etcd", emb.demoteLog))

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("metastore: start embedded etcd in %s: %w", dir, err)
	}
	timer := time.NewTimer(embeddedStartTimeout)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		if err == nil {
			err = errors.New("server stopped")
		}
		emb.closing.Store(true)
		e.Close()
		return nil, fmt.Errorf("metastore: start embedded etcd in %s: %w", dir, err)
	case <-ctx.Done():
		emb.closing.Store(true)
		e.Close()
		return nil, fmt.Errorf("metastore: start embedded etcd in %s: %w", dir, ctx.Err())
	case <-timer.C:
		emb.closing.Store(true)
		e.Close()
		return nil, fmt.Errorf("metastore: start embedded etcd in %s: not ready after %v", dir, embeddedStartTimeout)
	}
	endpoint := url.URL{Scheme: "http", Host: e.Clients[0].Addr().String()}
	logger.Info("embedded etcd ready", "dir", dir, "endpoint", endpoint.String())
	emb.etcd = e
	emb.endpoints = []string{endpoint.String()}
	return emb, nil
}

// benignEtcdWarnings are what etcd logs on starts of a dev member that
// tells its user nothing: there is no auth, so the token type does not
// matter; loopback-only dev traffic may share one port; and a new member's
// storage version check can run before its first term is stored and log
// an error that etcd's own maintainers call harmless.
var benignEtcdWarnings = map[string]bool{
	"simple token is not cryptographically signed":                                         true,
	"Running http and grpc server on single port. This is not recommended for production.": true,
	"failed to update storage version":                                                     true,
}

// demoteLog moves etcd's benign warnings, and everything it says while
// shutting down (closed listeners and servers logged as errors), to debug.
func (e *Embedded) demoteLog(ent zapcore.Entry) bool {
	return e.closing.Load() || benignEtcdWarnings[ent.Message]
}

// loopbackURL turns host:port into an http URL, replacing port 0 with a
// free port. etcd cannot listen on port 0 itself: it records the configured
// URLs in its membership, so they must be the real ones. (The port is found
// by pick, which binds and releases it, so another process could take it in
// between; startEmbedded then chooses again.)
func loopbackURL(addr string, pick func(host string) (string, error)) (*url.URL, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		if host != "localhost" {
			return nil, fmt.Errorf("%q is not a loopback address", addr)
		}
		host = "127.0.0.1"
	}
	if port == "0" || port == "" {
		if port, err = pick(host); err != nil {
			return nil, err
		}
	}
	return &url.URL{Scheme: "http", Host: net.JoinHostPort(host, port)}, nil
}

// freePort returns a port free on host now, by binding port 0 and letting
// it go: free, not reserved (see embeddedStartAttempts).
func freePort(host string) (string, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	if err := l.Close(); err != nil {
		return "", err
	}
	return port, nil
}

// Endpoints returns the client URLs to give to Dial.
func (e *Embedded) Endpoints() []string { return append([]string(nil), e.endpoints...) }

// Close stops the server and waits for it to finish. Close clients first:
// etcd waits for open watch streams up to its request timeout (about 7 s).
func (e *Embedded) Close() error {
	var err error
	e.closeOnce.Do(func() {
		e.closing.Store(true)
		e.etcd.Close()
		for werr := range e.etcd.Err() {
			err = errors.Join(err, werr)
		}
	})
	if err != nil {
		return fmt.Errorf("metastore: close embedded etcd: %w", err)
	}
	return nil
}
