package kafkaapi

import (
	"crypto/tls"
	"fmt"
	"strings"
	"time"

	"github.com/strata-broker/strata/internal/tlsconf"
)

// handshake runs the TLS handshake of a connection accepted by a TLS
// listener, under the idle deadline its first read would have had, and
// takes the client certificate's owner as the connection's principal, as
// Kafka's default principal builder does on an SSL listener
// ("User:CN=alice,OU=ops"). A connection without a certificate
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
	if p := tlsconf.Principal(tc.ConnectionState()); p != "" {
		c.principal = p
	}
	return nil
}
