// SaslHandshake (key 17), versions 0-1.
// Names the mechanism the client will authenticate with and lists those
// enabled (sasl.enabled.mechanisms). v0: the exchange follows as bare
// length-prefixed frames; v1: in SaslAuthenticate requests. A handshake on
// an authenticated connection starts a re-authentication (KIP-368), which
// must use the same mechanism. On a listener without SASL the answer is
// ILLEGAL_SASL_STATE, as in Kafka; an unknown mechanism is
// UNSUPPORTED_SASL_MECHANISM and closes the connection.

package kafkaapi

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const saslHandshakeKey = 17

func (s *Server) saslHandshakeAPI() api {
	return api{key: saslHandshakeKey, min: 0, max: 1, amplification: 4, onConn: saslHandshake, auth: noAuthorization()}
}

func saslHandshake(c *conn, _ header, r kmsg.Request) (kmsg.Response, error) {
	req := r.(*kmsg.SASLHandshakeRequest)
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	cfg := c.s.cfg.SASL
	if !c.onSASLListener() {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return resp, nil
	}
	resp.SupportedMechanisms = cfg.names()
	switch {
	case c.sasl.session != nil:
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return resp, &closeAfter{err: protocolErrorf("SaslHandshake during a SASL exchange")}
	case c.sasl.authenticated && req.Version == 0:
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return resp, &closeAfter{err: protocolErrorf("re-authentication needs SaslHandshake v1")}
	}
	m := cfg.mechanism(req.Mechanism)
	if m == nil {
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		return resp, &closeAfter{err: protocolErrorf("SASL mechanism %q is not enabled (sasl.enabled.mechanisms)", req.Mechanism)}
	}
	if c.sasl.authenticated && req.Mechanism != c.sasl.mechanism {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return resp, &closeAfter{err: protocolErrorf("re-authentication with %s, not the connection's %s", req.Mechanism, c.sasl.mechanism)}
	}
	c.sasl.mechanism = m.Name()
	c.sasl.session = m.Start()
	c.sasl.raw = req.Version == 0
	return resp, nil
}

// closeAfter answers the request, then ends the connection with err: the
// client learns why before it is closed. With delay, the answer waits
// connection.failed.authentication.delay.ms first.
type closeAfter struct {
	err   error
	delay bool
}

func (e *closeAfter) Error() string { return fmt.Sprintf("closed after answering: %v", e.err) }
func (e *closeAfter) Unwrap() error { return e.err }
