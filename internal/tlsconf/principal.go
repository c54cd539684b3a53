package tlsconf

import "crypto/tls"

// Principal is the Kafka principal of a TLS peer that presented a
// certificate: "User:" and the certificate's subject as an RFC 2253
// distinguished name ("User:CN=alice,OU=ops"), which is what Kafka's
// default principal builder makes of it. It is empty when the peer sent
// no certificate (or the handshake has not run).
func Principal(cs tls.ConnectionState) string {
	if len(cs.PeerCertificates) == 0 {
		return ""
	}
	return "User:" + cs.PeerCertificates[0].Subject.String()
}
