package kafkaapi

import (
	"crypto/tls"
	"fmt"
	"strings"
	"time"
)

// handshake runs the TLS handshake of a connection accepted by a TLS
// listener, under the idle deadline its first read would have had, and
// takes the client certificate's owner as the connection's principal, as
// Kafka's default principal builder does on an SSL listener: "User:" and
// the subject's name ("User:CN=alice,OU=ops"), mapped by
// ssl.principal.mapping.rules. A subject no rule applies to fails the
// connection, as it fails Kafka's authentication. A connection without a certificate
// (ssl.client.auth=none, or requested and not sent) stays User:ANONYMOUS.
// On a SASL_SSL listener the certificate only secures the channel: the
// SASL exchange says who the client is.
func (c *conn) handshake() error {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return nil
	}
	tc.SetDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	tc.SetDeadline(time.Time{})
	if strings.HasPrefix(c.listener.Protocol, "SASL_") {
		return nil
	}
	cs := tc.ConnectionState()
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	name, err := c.listener.PrincipalMapper.Name(cs.PeerCertificates[0].Subject.String())
	if err != nil {
		return fmt.Errorf("client certificate: %w", err)
	}
	c.principal = "User:" + name
	return nil
}
