package metastore

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"

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
