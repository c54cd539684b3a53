package kafkaapi

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/sasl"
	"github.com/strata-broker/strata/topicconfig"
)

// SASLConfig is how SASL listeners authenticate their connections (the
// broker settings, read by topicconfig.SASLSettings).
type SASLConfig struct {
	// Mechanisms are offered in SaslHandshake, in this order.
	Mechanisms []sasl.Mechanism
	// MaxReauth is connections.max.reauth.ms: an authentication lasts this
	// long (or until its Session's Expiry, if sooner), and a connection
	// must authenticate again to go on (KIP-368). Zero: for its life.
	MaxReauth time.Duration
	// FailedAuthenticationDelay (connection.failed.authentication.delay.ms)
	// holds a refused connection's answer and close this long, so that
	// guessing passwords is slow.
	FailedAuthenticationDelay time.Duration
	// MaxReceiveSize (sasl.server.max.receive.size) bounds every frame
	// before the connection has authenticated, and the SASL frames after;
	// zero means Kafka's default.
	MaxReceiveSize int32
}

func (c *SASLConfig) maxReceive() int32 {
	if c == nil || c.MaxReceiveSize <= 0 {
		return topicconfig.DefaultSASLServerMaxReceiveSize
	}
	return c.MaxReceiveSize
}

func (c *SASLConfig) mechanism(name string) sasl.Mechanism {
	for _, m := range c.Mechanisms {
		if m.Name() == name {
			return m
		}
	}
	return nil
}

func (c *SASLConfig) names() []string {
	out := make([]string, len(c.Mechanisms))
	for i, m := range c.Mechanisms {
		out[i] = m.Name()
	}
	return out
}

// saslState is a connection's SASL authentication, on a SASL listener.
type saslState struct {
	// authenticated is set once an exchange succeeded; it stays set while
	// the client re-authenticates.
	authenticated bool
	// mechanism is the one the client chose; a re-authentication must
	// use it again, as in Kafka.
	mechanism string
	// session is the exchange in progress, between a SaslHandshake and
	// the step that ends it; nil otherwise.
	session sasl.Session
	// raw: the handshake was v0, so the exchange's messages come as bare
	// length-prefixed frames rather than SaslAuthenticate requests.
	raw bool
	// expires is when the authentication stops being valid; zero if it
	// does not.
	expires time.Time
}

// authError ends a connection whose authentication failed.
type authError struct{ err error }

func (e *authError) Error() string { return e.err.Error() }
func (e *authError) Unwrap() error { return e.err }

// errSessionExpired ends a connection that sent a request other than
// SaslHandshake or SaslAuthenticate once its authentication expired.
var errSessionExpired = errors.New("request after the SASL session expired (connections.max.reauth.ms) without re-authenticating")

// onSASLListener reports whether the connection must authenticate.
func (c *conn) onSASLListener() bool { return topicconfig.ProtocolUsesSASL(c.listener.Protocol) }

// admit decides, from its key and size, whether a request may be read at
// all: before a connection on a SASL listener has authenticated it may
// send ApiVersions and the SASL requests only, in small frames; once its
// session has expired, only the SASL requests.
func (c *conn) admit(key int16, size int32) error {
	if !c.onSASLListener() {
		return nil
	}
	isSASL := key == saslHandshakeKey || key == saslAuthenticateKey
	if limit := c.s.cfg.SASL.maxReceive(); (!c.sasl.authenticated || isSASL) && size > limit {
		return protocolErrorf("%s request of %d bytes before authentication is over sasl.server.max.receive.size (%d)", kmsg.NameForKey(key), size, limit)
	}
	switch {
	case isSASL:
		return nil
	case !c.sasl.authenticated:
		if key == apiVersionsKey && c.sasl.session == nil {
			return nil
		}
		return protocolErrorf("%s request before SASL authentication", kmsg.NameForKey(key))
	case !c.sasl.expires.IsZero() && !time.Now().Before(c.sasl.expires):
		return errSessionExpired
	}
	return nil
}

// answerOnConn decodes and answers a request of an API that changes the
// connection's state.
func (c *conn) answerOnConn(a *api, h header, req kmsg.Request, body []byte) (kmsg.Response, error) {
	name := kmsg.NameForKey(h.key)
	if !a.supports(h.version) {
		return nil, protocolErrorf("%s v%d is not supported (client %s)", name, h.version, clientForLog(h.clientID))
	}
	if err := req.ReadFrom(body); err != nil {
		return nil, protocolErrorf("decode %s v%d: %v", name, h.version, err)
	}
	return a.onConn(c, h, req)
}

// step runs one message of the exchange. A refusal is an authError, with
// a message for the client that holds no secret; a broker that could not
// check the credentials is logged, and the client told only that.
func (c *conn) step(in []byte) (out []byte, done bool, err error) {
	ctx, cancel := context.WithTimeout(c.s.stop, c.s.cfg.RequestTimeout)
	defer cancel()
	out, done, err = c.sasl.session.Step(ctx, in)
	if err != nil {
		c.sasl.session = nil
		c.s.metrics.authentications.WithLabelValues(c.sasl.mechanism, "failure").Inc()
		if !errors.Is(err, sasl.ErrAuthentication) {
			c.s.warnings.log(slog.LevelWarn, "SASL authentication could not be checked", "remote", c.remote, "mechanism", c.sasl.mechanism, "err", err)
			err = fmt.Errorf("%w: the broker could not check the credentials", sasl.ErrAuthentication)
		}
		return nil, false, &authError{err: err}
	}
	if !done {
		return out, false, nil
	}
	s := c.sasl.session
	c.sasl.session = nil
	principal := s.Principal()
	if c.sasl.authenticated && principal != c.principal {
		c.s.metrics.authentications.WithLabelValues(c.sasl.mechanism, "failure").Inc()
		return nil, false, &authError{err: fmt.Errorf("%w: re-authentication must keep the principal %s", sasl.ErrAuthentication, c.principal)}
	}
	c.s.metrics.authentications.WithLabelValues(c.sasl.mechanism, "success").Inc()
	c.sasl.authenticated = true
	c.principal = principal
	c.sasl.expires = time.Time{}
	if life := c.s.cfg.SASL.MaxReauth; life > 0 {
		now := time.Now()
		c.sasl.expires = now.Add(life)
		if exp := s.Expiry(); !exp.IsZero() && exp.Before(c.sasl.expires) {
			c.sasl.expires = exp
		}
	}
	return out, true, nil
}

// sessionLifetimeMs is SaslAuthenticate's SessionLifetimeMs: zero when
// the session does not expire.
func (c *conn) sessionLifetimeMs() int64 {
	if c.sasl.expires.IsZero() {
		return 0
	}
	return max(1, time.Until(c.sasl.expires).Milliseconds())
}

// delayFailure waits connection.failed.authentication.delay.ms, or until
// shutdown: the connection's goroutine holds it, no longer.
func (c *conn) delayFailure() {
	d := c.s.cfg.SASL.FailedAuthenticationDelay
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.s.shutdown:
	}
}

// serveToken reads, steps and answers one bare SASL message, the frames
// a SaslHandshake v0 client sends instead of SaslAuthenticate requests.
// A refusal closes the connection, after the failure delay, without an
// answer: v0 has no way to carry one.
func (c *conn) serveToken() error {
	s := c.s
	var head [4]byte
	n, err := c.nc.Read(head[:])
	if n == 0 {
		if errors.Is(err, os.ErrDeadlineExceeded) && !c.closing.Load() {
			return errIdle
		}
		return err
	}
	c.nc.SetReadDeadline(time.Now().Add(s.cfg.RequestTimeout))
	if _, err := io.ReadFull(c.nc, head[n:]); err != nil {
		return c.readError(err, 0, 0)
	}
	size := int32(binary.BigEndian.Uint32(head[:]))
	if limit := s.cfg.SASL.maxReceive(); size < 0 || size > limit {
		return protocolErrorf("SASL message of %d bytes is over sasl.server.max.receive.size (%d)", size, limit)
	}
	mem := &c.mem
	defer mem.release()
	if _, err := c.reserve(mem, int64(size), s.cfg.IdleTimeout); err != nil {
		return err
	}
	in := make([]byte, size)
	if _, err := io.ReadFull(c.nc, in); err != nil {
		return c.readError(err, 0, size)
	}
	out, done, err := c.step(in)
	if err != nil {
		c.delayFailure()
		return err
	}
	if done {
		c.sasl.raw = false
	}
	frame := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(out)), uint32(len(out)))
	c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := c.nc.Write(append(frame, out...)); err != nil {
		return fmt.Errorf("write SASL message: %w", err)
	}
	return nil
}
