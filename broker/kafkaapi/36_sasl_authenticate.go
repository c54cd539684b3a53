// SaslAuthenticate (key 36), versions 0-2.
// Carries one message of the exchange the SaslHandshake (v1) began. v1
// adds SessionLifetimeMs: with connections.max.reauth.ms set, how long
// the authentication lasts before the client must authenticate again
// (KIP-368); v2 is flexible. A refused exchange answers
// SASL_AUTHENTICATION_FAILED with a message after
// connection.failed.authentication.delay.ms, then closes the connection.
// Without a handshake first, or on a listener without SASL, the answer is
// ILLEGAL_SASL_STATE.

package kafkaapi

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const saslAuthenticateKey = 36

func (s *Server) saslAuthenticateAPI() api {
	return api{key: saslAuthenticateKey, min: 0, max: 2, amplification: 48, onConn: saslAuthenticate, auth: noAuthorization()}
}

func saslAuthenticate(c *conn, _ header, r kmsg.Request) (kmsg.Response, error) {
	req := r.(*kmsg.SASLAuthenticateRequest)
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	switch {
	case !c.onSASLListener():
		resp.ErrorCode = kerr.IllegalSaslState.Code
		resp.ErrorMessage = kmsg.StringPtr("SaslAuthenticate on a listener without SASL")
		return resp, nil
	case c.sasl.session == nil || c.sasl.raw:
		resp.ErrorCode = kerr.IllegalSaslState.Code
		resp.ErrorMessage = kmsg.StringPtr("SaslAuthenticate without a SaslHandshake v1 first")
		return resp, &closeAfter{err: protocolErrorf("SaslAuthenticate without a SaslHandshake v1 first")}
	}
	out, done, err := c.step(req.SASLAuthBytes)
	if err != nil {
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		resp.ErrorMessage = kmsg.StringPtr(err.Error())
		return resp, &closeAfter{err: err, delay: true}
	}
	resp.SASLAuthBytes = out
	if done {
		resp.SessionLifetimeMillis = c.sessionLifetimeMs()
	}
	return resp, nil
}
