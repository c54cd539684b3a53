// Package tlsconf loads the broker's TLS material from PEM files, reloads it
// when the files change, builds the server and client tls.Configs of the
// Kafka and gRPC listeners and of the brokers' connections to each other,
// and generates a CA and certificates for `strata dev --tls`.
//
// Certificates are reloaded without a goroutine (package filereload): the
// handshake that needs one checks the file's modification time and size,
// at most every CheckInterval, and parses it again when they changed. A
// file that no longer parses keeps the previous material in use, and is
// logged once per change, so a certificate rotated by writing the file in
// place never takes the listener down.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/strata-broker/strata/internal/filereload"
)

// CheckInterval is how often, at most, a file in use is checked for a
// change: handshakes in between reuse what was loaded, so a busy listener
// does not stat its files on every connection.
const CheckInterval = 5 * time.Second

// loadFile reads a PEM file the listeners use, reloaded as it changes.
func loadFile[T any](path string, parse func([]byte) (T, error), logger *slog.Logger, interval time.Duration) (*filereload.File[T], error) {
	return filereload.Load(path, parse, filereload.Options{What: "TLS file", Logger: logger, Interval: interval})
}

// parseKeyPair reads a PEM file holding a private key and its certificate
// chain, leaf first: Kafka's PEM keystore (ssl.keystore.type=PEM).
func parseKeyPair(data []byte) (*tls.Certificate, error) {
	// X509KeyPair takes the CERTIFICATE blocks of its first argument and the
	// first private key of its second, skipping the rest: one file serves as
	// both.
	c, err := tls.X509KeyPair(data, data)
	if err != nil {
		return nil, fmt.Errorf("want a PEM private key and certificate chain: %w", err)
	}
	return &c, nil
}

// parsePool reads a PEM file of CA certificates: Kafka's PEM truststore.
func parsePool(data []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, errors.New("no PEM certificate in it")
	}
	return pool, nil
}
