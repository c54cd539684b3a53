package kafkatests_test

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"errors"
	"fmt"
	"hash"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	xdgscram "github.com/xdg-go/scram"

	"github.com/strata-broker/strata/internal/tlsconf"
)

// compatSecurity is how a client of the matrix connects: Kafka's
// security.protocol and, for the SASL ones, a mechanism and a user's
// credentials. The zero value is PLAINTEXT.
type compatSecurity struct {
	protocol  string // PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
	mechanism string // PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	user      string
	password  string
	caFile    string // the CA the broker's certificate is checked against
	// deniedTopic, when set, is a topic the user may not write: the
	// client's capDenied produces to it and must get an authorization
	// error, not a hang.
	deniedTopic string
}

func (s compatSecurity) tls() bool {
	return s.protocol == "SSL" || s.protocol == "SASL_SSL"
}

func (s compatSecurity) sasl() bool {
	return s.protocol == "SASL_PLAINTEXT" || s.protocol == "SASL_SSL"
}

// environ is the security as the client programs in compat/ read it.
func (s compatSecurity) environ() []string {
	if s.protocol == "" {
		return nil
	}
	return []string{
		"COMPAT_SECURITY_PROTOCOL=" + s.protocol,
		"COMPAT_SASL_MECHANISM=" + s.mechanism,
		"COMPAT_SASL_USERNAME=" + s.user,
		"COMPAT_SASL_PASSWORD=" + s.password,
		"COMPAT_SSL_CAFILE=" + s.caFile,
		"COMPAT_DENIED_TOPIC=" + s.deniedTopic,
	}
}

func (s compatSecurity) tlsConfig() (*tls.Config, error) {
	return tlsconf.ClientConfig(s.caFile, "", "")
}

// franzOpts are s as franz-go options.
func (s compatSecurity) franzOpts() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if s.tls() {
		cfg, err := s.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	if s.sasl() {
		switch s.mechanism {
		case "PLAIN":
			opts = append(opts, kgo.SASL(plain.Auth{User: s.user, Pass: s.password}.AsMechanism()))
		case "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: s.user, Pass: s.password}.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: s.user, Pass: s.password}.AsSha512Mechanism()))
		default:
			return nil, fmt.Errorf("franz-go: no SASL mechanism %q", s.mechanism)
		}
	}
	return opts, nil
}

// saramaConfig sets s on a sarama configuration.
func (s compatSecurity) saramaConfig(cfg *sarama.Config) error {
	if s.tls() {
		tc, err := s.tlsConfig()
		if err != nil {
			return err
		}
		cfg.Net.TLS.Enable = true
		cfg.Net.TLS.Config = tc
	}
	if !s.sasl() {
		return nil
	}
	cfg.Net.SASL.Enable = true
	cfg.Net.SASL.Handshake = true
	cfg.Net.SASL.User = s.user
	cfg.Net.SASL.Password = s.password
	switch s.mechanism {
	case "PLAIN":
		cfg.Net.SASL.Mechanism = sarama.SASLTypePlaintext
	case "SCRAM-SHA-256":
		cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
		cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &saramaSCRAM{hash: sha256.New} }
	case "SCRAM-SHA-512":
		cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
		cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &saramaSCRAM{hash: sha512.New} }
	default:
		return fmt.Errorf("sarama: no SASL mechanism %q", s.mechanism)
	}
	return nil
}

// saramaSCRAM is the SCRAM client sarama leaves to its users to provide.
type saramaSCRAM struct {
	hash func() hash.Hash
	conv *xdgscram.ClientConversation
}

func (c *saramaSCRAM) Begin(user, password, authzID string) error {
	client, err := xdgscram.HashGeneratorFcn(c.hash).NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	c.conv = client.NewConversation()
	return nil
}

func (c *saramaSCRAM) Step(challenge string) (string, error) { return c.conv.Step(challenge) }

func (c *saramaSCRAM) Done() bool { return c.conv.Done() }

// compatDenied is capDenied for the Go clients: produce must fail with
// TOPIC_AUTHORIZATION_FAILED (whichever way the client spells it) within
// the client's own timeouts.
func compatDenied(ctx context.Context, r *compatReport, sec compatSecurity, produce func(context.Context, string) error, isDenied func(error) bool) {
	if sec.deniedTopic == "" {
		return
	}
	r.check(capDenied, func() (string, error) {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		start := time.Now()
		err := produce(pctx, sec.deniedTopic)
		switch {
		case err == nil:
			return "", fmt.Errorf("produce to %s, which %s may not write, succeeded", sec.deniedTopic, sec.user)
		case errors.Is(err, context.DeadlineExceeded) && !isDenied(err):
			return "", fmt.Errorf("produce to %s hung instead of being refused: %w", sec.deniedTopic, err)
		case !isDenied(err):
			return "", fmt.Errorf("produce to %s: %w, want an authorization error", sec.deniedTopic, err)
		}
		return fmt.Sprintf("refused in %v: %v", time.Since(start).Round(time.Millisecond), err), nil
	})
}

func franzDenied(err error) bool { return errors.Is(err, kerr.TopicAuthorizationFailed) }

// franzClient is a franz-go client of env's cluster, connected as env.sec
// says.
func franzClient(env compatEnv, opts ...kgo.Opt) (*kgo.Client, error) {
	sec, err := env.sec.franzOpts()
	if err != nil {
		return nil, err
	}
	return kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(env.bootstrap...)}, sec...), opts...)...)
}
