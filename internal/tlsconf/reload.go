// Package tlsconf loads the broker's TLS material from PEM files, reloads it
// when the files change, builds the server and client tls.Configs of the
// Kafka and gRPC listeners and of the brokers' connections to each other,
// and generates a CA and certificates for `strata dev --tls`.
//
// Certificates are reloaded without a goroutine: the handshake that needs
// one checks the file's modification time and size, at most every
// CheckInterval, and parses it again when they changed. A file that no
// longer parses keeps the previous material in use, and is logged once per
// change, so a certificate rotated by writing the file in place never
// takes the listener down.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// CheckInterval is how often, at most, a file in use is checked for a
// change: handshakes in between reuse what was loaded, so a busy listener
// does not stat its files on every connection.
const CheckInterval = 5 * time.Second

// file is one PEM file parsed into T, reloaded when it changes.
type file[T any] struct {
	path     string
	parse    func([]byte) (T, error)
	logger   *slog.Logger
	interval time.Duration
	now      func() time.Time

	mu      sync.Mutex
	value   T
	modTime time.Time // of the version last read, parsed or not
	size    int64
	checked time.Time
}

func loadFile[T any](path string, parse func([]byte) (T, error), logger *slog.Logger, interval time.Duration) (*file[T], error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := &file[T]{path: path, parse: parse, logger: logger, interval: interval, now: time.Now}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	v, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.value, f.modTime, f.size, f.checked = v, st.ModTime(), st.Size(), f.now()
	return f, nil
}

// get returns the current value, reading the file again first if it has
// changed since the last check (and that was at least interval ago).
func (f *file[T]) get() T {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if now.Sub(f.checked) < f.interval {
		return f.value
	}
	f.checked = now
	st, err := os.Stat(f.path)
	if err != nil {
		f.logger.Warn("TLS file unreadable; keeping the loaded one", "path", f.path, "err", err)
		return f.value
	}
	if st.ModTime().Equal(f.modTime) && st.Size() == f.size {
		return f.value
	}
	// Remember this version even if it is bad: it is logged once, and read
	// again only when it changes again.
	f.modTime, f.size = st.ModTime(), st.Size()
	data, err := os.ReadFile(f.path)
	if err == nil {
		var v T
		if v, err = f.parse(data); err == nil {
			f.value = v
			f.logger.Info("TLS file reloaded", "path", f.path)
			return f.value
		}
	}
	f.logger.Error("TLS file changed but cannot be used; keeping the loaded one", "path", f.path, "err", err)
	return f.value
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
