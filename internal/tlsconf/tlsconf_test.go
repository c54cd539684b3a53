package tlsconf

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// handshake connects a client with cfg to a server with srv over loopback
// TCP (buffered, so neither side blocks writing an alert the other does not
// read) and returns the server certificate the client saw, or the first
// side's failure.
func handshake(t *testing.T, srv, cfg *tls.Config) (*x509.Certificate, error) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	errc := make(chan error, 1)
	go func() {
		nc, err := lis.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer nc.Close()
		errc <- tls.Server(nc, srv).Handshake()
	}()
	nc, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := tls.Client(nc, cfg)
	if err := c.Handshake(); err != nil {
		return nil, err
	}
	if err := <-errc; err != nil {
		return nil, err
	}
	return c.ConnectionState().PeerCertificates[0], nil
}

func TestGenerateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	g, err := Generate(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Load(Options{KeyStore: g.Server, TrustStore: g.CA, ClientAuth: tls.RequireAndVerifyClientCert})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"127.0.0.1", "localhost", "::1"} {
		cfg, err := ClientConfig(g.CA, g.Client, "")
		if err != nil {
			t.Fatal(err)
		}
		cfg.ServerName = name
		if _, err := handshake(t, m.ServerConfig(), cfg); err != nil {
			t.Fatalf("mutual TLS to %s: %v", name, err)
		}
	}
	// Without a client certificate, a listener requiring one refuses.
	cfg, err := ClientConfig(g.CA, "", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg.ServerName = "127.0.0.1"
	if _, err := handshake(t, m.ServerConfig(), cfg); err == nil {
		t.Fatal("handshake without a client certificate succeeded; want refused")
	}
	// A broker's own material dials another broker (the server certificate
	// doubles as a client certificate).
	peer := m.peerConfig()
	peer.ServerName = "127.0.0.1"
	if _, err := handshake(t, m.ServerConfig(), peer); err != nil {
		t.Fatalf("broker to broker: %v", err)
	}

	// A second Generate reuses the files.
	before, _ := os.ReadFile(g.CA)
	if _, err := Generate(dir); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(g.CA)
	if !bytes.Equal(before, after) {
		t.Fatal("Generate replaced an existing CA")
	}
	st, err := os.Stat(filepath.Join(dir, "ca-key.pem"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("ca-key.pem: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
}

func TestReloadAfterChangeAndKeepOnBadFile(t *testing.T) {
	first, err := Generate(filepath.Join(t.TempDir(), "a"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := Generate(filepath.Join(t.TempDir(), "b"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyStore := filepath.Join(dir, "server.pem")
	trust := filepath.Join(dir, "ca.pem")
	copyFile(t, first.Server, keyStore, time.Now().Add(-time.Minute))
	copyFile(t, first.CA, trust, time.Now().Add(-time.Minute))
	var logs bytes.Buffer
	m, err := Load(Options{KeyStore: keyStore, TrustStore: trust, CheckInterval: -1,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	client := func(ca string) *tls.Config {
		cfg, err := ClientConfig(ca, "", "")
		if err != nil {
			t.Fatal(err)
		}
		cfg.ServerName = "localhost"
		return cfg
	}
	if _, err := handshake(t, m.ServerConfig(), client(first.CA)); err != nil {
		t.Fatalf("before the change: %v", err)
	}

	// The file is rewritten with another CA's certificate: the next
	// handshake serves it.
	copyFile(t, second.Server, keyStore, time.Now())
	if _, err := handshake(t, m.ServerConfig(), client(second.CA)); err != nil {
		t.Fatalf("after the change: %v", err)
	}
	if _, err := handshake(t, m.ServerConfig(), client(first.CA)); err == nil {
		t.Fatal("the old certificate is still served after the file changed")
	}

	// A broken file keeps the loaded certificate, and says so.
	if err := os.WriteFile(keyStore, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(keyStore, time.Now().Add(time.Minute), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(t, m.ServerConfig(), client(second.CA)); err != nil {
		t.Fatalf("after a bad file: %v", err)
	}
	if !strings.Contains(logs.String(), "cannot be used") || !strings.Contains(logs.String(), keyStore) {
		t.Fatalf("bad file not logged; log:\n%s", logs.String())
	}
}

func copyFile(t *testing.T, from, to string, mtime time.Time) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(to, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// TestIssueClient: a certificate issued by the generated CA is accepted by
// a server trusting that CA, and names its owner as User:CN=<name>.
func TestIssueClient(t *testing.T) {
	dir := t.TempDir()
	g, err := Generate(dir)
	if err != nil {
		t.Fatal(err)
	}
	path, err := IssueClient(dir, "alice")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(path, path)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(g.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("issued certificate does not verify against the CA: %v", err)
	}
	if p := Principal(tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}); p != "User:CN=alice" {
		t.Fatalf("principal %q; want User:CN=alice", p)
	}
	if _, err := IssueClient(dir, "../escape"); err == nil {
		t.Fatal("a name with a path accepted")
	}
}
