package metastore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// DialOption configures how Dial reaches etcd.
type DialOption func(*dialConfig)

type dialConfig struct {
	tls      *tls.Config
	user     string
	password EtcdPassword
}

// WithTLS dials etcd over TLS with cfg: its RootCAs verify etcd's
// certificate (etcd's --trusted-ca-file on its side), its Certificates are
// the client certificate etcd's --client-cert-auth asks for. Every
// endpoint must then be https:// or have no scheme.
func WithTLS(cfg *tls.Config) DialOption {
	return func(c *dialConfig) { c.tls = cfg }
}

// WithAuth authenticates to etcd as user (etcd's auth, `etcdctl auth
// enable`): the client exchanges the password for a token and renews it.
func WithAuth(user string, password EtcdPassword) DialOption {
	return func(c *dialConfig) { c.user, c.password = user, password }
}

// EtcdPassword is etcd's password for WithAuth. It prints, logs and
// marshals as "[redacted]": a configuration holding it can be logged.
type EtcdPassword string

// String hides the password.
func (EtcdPassword) String() string { return redacted }

// GoString hides the password from %#v.
func (EtcdPassword) GoString() string { return redacted }

// Format hides the password from every verb.
func (EtcdPassword) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// LogValue hides the password from slog.
func (EtcdPassword) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText hides the password from encoders.
func (EtcdPassword) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// apply sets the client configuration. An http:// endpoint with TLS is
// refused: etcd's client would drop the credentials for it and speak
// plaintext.
func (c dialConfig) apply(cfg *clientv3.Config) error {
	if c.tls != nil {
		for _, ep := range cfg.Endpoints {
			if u, err := url.Parse(ep); err == nil && strings.EqualFold(u.Scheme, "http") {
				return fmt.Errorf("endpoint %s is http:// but the etcd client has TLS settings: write https://%s", ep, u.Host)
			}
		}
		cfg.TLS = c.tls
	}
	if c.user != "" {
		cfg.Username, cfg.Password = c.user, string(c.password)
	} else if c.password != "" {
		return fmt.Errorf("an etcd password without a user")
	}
	return nil
}

// probeTimeout bounds each step of probeTLS.
const probeTimeout = 2 * time.Second

// probeTLS makes one TLS connection to each endpoint, until one is
// accepted, and fails only if every endpoint refused this client's TLS:
// a certificate that does not verify, or a client certificate etcd
// rejects. etcd's client would retry those silently forever, and the
// broker would wait without saying why. An endpoint not answering is not
// a refusal (etcd may be starting): the client's own retries handle it.
func probeTLS(ctx context.Context, endpoints []string, cfg *tls.Config) error {
	var refusals []error
	for _, ep := range endpoints {
		host := ep
		if u, err := url.Parse(ep); err == nil && u.Host != "" {
			host = u.Host
		}
		err := probeEndpoint(ctx, host, cfg)
		if err == nil {
			return nil
		}
		if !isTLSRefusal(err) {
			return nil
		}
		refusals = append(refusals, fmt.Errorf("%s: %w", ep, err))
	}
	return fmt.Errorf("TLS refused: %w", errors.Join(refusals...))
}

func probeEndpoint(ctx context.Context, host string, cfg *tls.Config) error {
	c := cfg.Clone()
	if c.ServerName == "" {
		if h, _, err := net.SplitHostPort(host); err == nil {
			c.ServerName = h
		}
	}
	c.NextProtos = []string{"h2"} // as gRPC dials
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	d := tls.Dialer{Config: c}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return err
	}
	defer conn.Close()
	// With TLS 1.3 the server checks the client's certificate after the
	// client's handshake is done: its refusal is the first thing read.
	// A server that accepted waits for the HTTP/2 preface instead.
	_ = conn.SetReadDeadline(time.Now().Add(probeTimeout / 2))
	if _, err := conn.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	return nil
}

// isTLSRefusal tells a TLS failure (an alert from etcd, a certificate
// that does not verify) from a network one.
func isTLSRefusal(err error) bool {
	var alert tls.AlertError
	var verify *tls.CertificateVerificationError
	return errors.As(err, &alert) || errors.As(err, &verify) || strings.Contains(err.Error(), "tls: ")
}
