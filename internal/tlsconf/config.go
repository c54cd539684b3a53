package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/strata-broker/strata/internal/filereload"
)

// Options are one listener's TLS material.
type Options struct {
	// KeyStore is a PEM file with the private key and its certificate
	// chain, leaf first.
	KeyStore string
	// TrustStore is a PEM file of CA certificates: client certificates are
	// verified against it, and so are other brokers' certificates when
	// this material dials them. Required unless ClientAuth is none and
	// nothing is dialled.
	TrustStore string
	ClientAuth tls.ClientAuthType
	Logger     *slog.Logger
	// CheckInterval overrides the package's CheckInterval (for tests).
	CheckInterval time.Duration
}

// Material is a listener's key pair and trust store, reloaded from disk as
// they change.
type Material struct {
	cert       *filereload.File[*tls.Certificate]
	trust      *filereload.File[*x509.CertPool] // nil without a trust store
	clientAuth tls.ClientAuthType
}

// Load reads the files of opts. Unlike a reload, a first load that fails
// is an error: there is nothing to fall back on.
func Load(opts Options) (*Material, error) {
	interval := opts.CheckInterval
	if interval == 0 {
		interval = CheckInterval
	}
	if opts.KeyStore == "" {
		return nil, errors.New("no key store")
	}
	if opts.ClientAuth != tls.NoClientCert && opts.TrustStore == "" {
		return nil, errors.New("client authentication needs a trust store to verify certificates against")
	}
	m := &Material{clientAuth: opts.ClientAuth}
	var err error
	if m.cert, err = loadFile(opts.KeyStore, parseKeyPair, opts.Logger, interval); err != nil {
		return nil, fmt.Errorf("key store: %w", err)
	}
	if opts.TrustStore != "" {
		if m.trust, err = loadFile(opts.TrustStore, parsePool, opts.Logger, interval); err != nil {
			return nil, fmt.Errorf("trust store: %w", err)
		}
	}
	return m, nil
}

// ServerConfig is the listener's configuration: each handshake gets the
// key pair and trust store as they are on disk now (checked at most every
// CheckInterval).
func (m *Material) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			c := &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{*m.cert.Get()},
				ClientAuth:   m.clientAuth,
			}
			if m.trust != nil {
				c.ClientCAs = m.trust.Get()
			}
			return c, nil
		},
	}
}

// PeerCredentials are the gRPC credentials a broker dials other brokers
// with: their certificates are verified against the trust store (the
// cluster's CA) and this broker's own key pair is its client certificate.
// Both are read as they are on disk at each handshake.
func (m *Material) PeerCredentials() credentials.TransportCredentials {
	return peerCreds{TransportCredentials: credentials.NewTLS(m.peerConfig()), m: m}
}

func (m *Material) peerConfig() *tls.Config {
	c := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{*m.cert.Get()},
	}
	if m.trust != nil {
		c.RootCAs = m.trust.Get()
	}
	return c
}

// peerCreds builds its TLS configuration per connection, so a reloaded CA
// or key pair is used by the next connection to a peer. Server handshakes,
// Info and the rest are the embedded credentials'.
type peerCreds struct {
	credentials.TransportCredentials
	m *Material
}

func (p peerCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return credentials.NewTLS(p.m.peerConfig()).ClientHandshake(ctx, authority, conn)
}

func (p peerCreds) Clone() credentials.TransportCredentials {
	return peerCreds{TransportCredentials: p.TransportCredentials.Clone(), m: p.m}
}

// ClientConfig is a client's configuration (the strata CLI, the Go
// client): servers are verified against the CA certificates of caFile,
// or the system's when it is empty; certFile, if set, is a PEM file with
// the client certificate chain and, unless keyFile names another file,
// its private key.
func ClientConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		data, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("TLS CA: %w", err)
		}
		if c.RootCAs, err = parsePool(data); err != nil {
			return nil, fmt.Errorf("TLS CA %s: %w", caFile, err)
		}
	}
	if certFile == "" {
		if keyFile != "" {
			return nil, errors.New("TLS key given without a certificate")
		}
		return c, nil
	}
	if keyFile == "" {
		keyFile = certFile
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS client certificate: %w", err)
	}
	c.Certificates = []tls.Certificate{pair}
	return c, nil
}
